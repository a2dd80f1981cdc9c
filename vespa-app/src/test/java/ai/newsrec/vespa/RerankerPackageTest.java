package ai.newsrec.vespa;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.vespa.models.evaluation.FunctionEvaluator;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.yahoo.application.Application;
import com.yahoo.application.container.handler.Request;
import com.yahoo.application.container.handler.Response;
import com.yahoo.search.ranking.RankProfilesEvaluator;
import com.yahoo.tensor.Tensor;
import com.yahoo.tensor.TensorType;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The package with the UNBERT re-ranker (schemas/news/unbert.profile + models/unbert.onnx), whatever the build's
 * -Dnewsrec.reranker: the tiny model the Python pipeline exported to src/test/resources/reranker is added to a copy
 * of target/application.
 * <ul>
 *   <li>the global-phase profile builds in Vespa's config model and loads in the container;</li>
 *   <li>wrong ONNX input and output names fail the load (an output name: in the config model, naming it; an input
 *       name: in the container, unnamed by Vespa, named by {@link #namesMissingFromModel}); the profile's names are
 *       the test model's, and with -Dnewsrec.reranker the packaged model's;</li>
 *   <li>parity: the container's evaluation of the cross-encoder (tokenInputIds / tokenTypeIds / tokenAttentionMask +
 *       Java onnxruntime) gives the scores Python's onnxruntime gave for the same title and history pieces
 *       (cases.json, written by the pipeline with the model); the global phase adds its linear normalization to the
 *       two-tower's.</li>
 * </ul>
 * The in-process container reads models/unbert.onnx relative to the working directory, so this class runs in
 * surefire execution reranker-test (tag reranker-model), in target/reranker-test, where the build puts the same
 * model (pom.xml).
 */
@Tag("reranker-model")
class RerankerPackageTest {

    static final Path RESOURCES = TestApp.PROJECT_DIR.resolve("src/test/resources/reranker");
    static final Path MODEL = RESOURCES.resolve("unbert.onnx");
    static final Path PROFILE = TestApp.SCHEMAS_DIR.resolve("news/unbert.profile");
    static final TensorType TITLE = TensorType.fromSpec("tensor<float>(d0[32])");
    static final TensorType HISTORY = TensorType.fromSpec("tensor<float>(d0[128])");
    static final double TOLERANCE = 1e-4;

    @TempDir
    Path tmp;

    @BeforeAll
    static void modelResolvesToTheTestModel() throws Exception {
        Path resolved = Path.of("models/unbert.onnx").toAbsolutePath();
        assertTrue(Files.exists(resolved) && Files.mismatch(resolved, MODEL) == -1,
                   "The in-process container reads " + resolved + ": it must be " + MODEL +
                   " (run with mvn, whose execution reranker-test runs in target/reranker-test)");
    }

    @Test
    void packageWithTheGlobalPhaseProfileBuilds() throws Exception {
        try (Application app = TestApp.load(packageWith(tmp, profileText()))) {
            assertTrue(evaluator(app).modelForRankProfile("unbert").functions().stream()
                                     .anyMatch(f -> f.getName().equals("globalphase")));
            // the container knows the profile's input: a value of another type is refused
            Response response = app.getJDisc(TestApp.QUERY).handleRequest(new Request(
                    "http://localhost:8080/search/?yql=" + ApplicationPackageTest.encode("select * from news where true") +
                    "&ranking=unbert&input.query(history_tokens)=abc"));
            assertEquals(400, response.getStatus(), response.getBodyAsString());
            assertTrue(response.getBodyAsString().contains("tensor<float>(d0[128])"), response.getBodyAsString());
        }
    }

    /**
     * Vespa 8.700.24's config model (which the config server runs too) accepts an ONNX input name the model lacks
     * when the model's own input is still mapped by default (to the function of the same name); the container then
     * fails to construct the news rank profile evaluator, "Onnx model unbert: Mismatch between 4 configured inputs
     * and 3 actual model inputs", which does not name it. namesMissingFromModel does.
     */
    @Test
    void wrongOnnxInputNameFailsTheLoadAndIsNamed() throws Exception {
        String profile = profileText().replace("input input_ids: input_ids", "input input_idz: input_ids");
        String message = buildFailure(profile);
        assertTrue(message.contains("Onnx model unbert") && message.contains("inputs"), message);
        assertEquals(List.of("input input_idz (model inputs: [attention_mask, input_ids, token_type_ids])"),
                     namesMissingFromModel(profile, MODEL));
    }

    @Test
    void declaredOnnxNamesAreTheModels() throws Exception {
        assertEquals(List.of(), namesMissingFromModel(profileText(), MODEL));
    }

    /** Built with -Dnewsrec.reranker=FILE: the exported model in target/application has the profile's names. */
    @Test
    void packagedModelHasTheDeclaredNames() throws Exception {
        Path packaged = TestApp.APP_DIR.resolve("models/unbert.onnx");
        Assumptions.assumeTrue(Files.exists(packaged), "package built without -Dnewsrec.reranker");
        assertEquals(List.of(), namesMissingFromModel(Files.readString(TestApp.APP_DIR.resolve("schemas/news/unbert.profile")),
                                                      packaged));
    }

    @Test
    void wrongOnnxOutputNameFailsTheBuild() throws Exception {
        String profile = profileText().replace("output score: score", "output scores: score");
        String message = buildFailure(profile);  // in the config model
        assertTrue(message.contains("rank profile 'unbert'") && message.contains("output 'scores'"), message);
        assertEquals(List.of("output scores (model outputs: [score])"), namesMissingFromModel(profile, MODEL));
    }

    @Test
    void expressionReferencingAMissingOutputFailsTheBuild() throws Exception {
        String message = buildFailure(profileText().replace("sum(onnx(unbert).score)", "sum(onnx(unbert).logits)"));
        assertTrue(message.contains("rank profile 'unbert'") && message.contains("onnx(unbert).logits"), message);
    }

    @Test
    void crossEncoderGivesPythonsScores() throws Exception {
        JsonNode cases = new ObjectMapper().readTree(RESOURCES.resolve("cases.json").toFile()).get("cases");
        assertFalse(cases.isEmpty());
        double maxDifference = 0;
        List<String> arguments = null;
        try (Application app = TestApp.load(packageWith(tmp, profileText()))) {
            for (int i = 0; i < cases.size(); i++) {
                JsonNode c = cases.get(i);
                FunctionEvaluator crossEncoder = evaluator(app).modelForRankProfile("unbert").evaluatorOf("cross_encoder");
                arguments = crossEncoder.function().arguments();
                assertEquals(Set.of("attribute(title_tokens)", "query(history_tokens)"), Set.copyOf(arguments),
                             "the cross-encoder's arguments");
                crossEncoder.bind("attribute(title_tokens)", tensor(TITLE, c.get("title_tokens")));
                crossEncoder.bind("query(history_tokens)", tensor(HISTORY, c.get("history_tokens")));
                double score = crossEncoder.evaluate().asDouble();
                double expected = c.get("score").asDouble();
                assertEquals(expected, score, TOLERANCE, "cases.json case " + i);
                maxDifference = Math.max(maxDifference, Math.abs(score - expected));
            }
        }
        System.out.printf("UNBERT parity: %d cases, arguments %s, max |Vespa - onnxruntime (Python)| = %.3g%n",
                          cases.size(), arguments, maxDifference);
    }

    /**
     * The global phase fuses: its expression is the sum of two linear normalizers (of recommendation_score and of
     * cross_encoder, as the profile writes them; Vespa names them normalize@HASH@linear), whose values the container
     * computes over the N hits (com.yahoo.search.ranking.NormalizerParityTest checks that math against Python's).
     */
    @Test
    void globalPhaseAddsTwoLinearNormalizers() throws Exception {
        try (Application app = TestApp.load(packageWith(tmp, profileText()))) {
            FunctionEvaluator globalPhase = evaluator(app).modelForRankProfile("unbert").evaluatorOf("globalphase");
            List<String> arguments = globalPhase.function().arguments();
            assertEquals(2, arguments.size(), arguments.toString());
            assertTrue(arguments.stream().allMatch(a -> a.startsWith("normalize@") && a.endsWith("@linear")),
                       arguments.toString());
            globalPhase.bind(arguments.get(0), 0.25);
            globalPhase.bind(arguments.get(1), 0.5);
            assertEquals(0.75, globalPhase.evaluate().asDouble(), 1e-15);
        }
    }

    /** The container's evaluator of schema news' rank profiles (component ranking-expression-evaluator.news). */
    private static RankProfilesEvaluator evaluator(Application app) {
        return TestApp.newsProfiles(app);
    }

    private static Tensor tensor(TensorType type, JsonNode values) {
        assertEquals(type.dimensions().get(0).size().get().intValue(), values.size(), type.toString());
        Tensor.Builder builder = Tensor.Builder.of(type);
        for (int i = 0; i < values.size(); i++) builder.cell(values.get(i).asDouble(), i);
        return builder.build();
    }

    private static String profileText() throws Exception { return Files.readString(PROFILE); }

    /** A copy of target/application with the re-ranker: schemas/news/unbert.profile (given text) + models/unbert.onnx. */
    static Path packageWith(Path parent, String profile) throws Exception {
        Files.createDirectories(parent);
        Path copy = TestApp.copyOfPackage(parent);
        Files.createDirectories(copy.resolve("schemas/news"));
        Files.writeString(copy.resolve("schemas/news/unbert.profile"), profile);
        Files.createDirectories(copy.resolve("models"));
        Files.copy(MODEL, copy.resolve("models/unbert.onnx"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        return copy;
    }

    private static final Pattern DECLARED = Pattern.compile("^\\s*(input|output)\\s+(\\S+?)\\s*:", Pattern.MULTILINE);

    /** The input and output names the profile's onnx-model declares that the ONNX file does not have. */
    static List<String> namesMissingFromModel(String profile, Path model) throws OrtException {
        OrtEnvironment environment = OrtEnvironment.getEnvironment();
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions();
             OrtSession session = environment.createSession(model.toString(), options)) {
            Set<String> inputs = new TreeSet<>(session.getInputNames()), outputs = new TreeSet<>(session.getOutputNames());
            List<String> missing = new ArrayList<>();
            Matcher declared = DECLARED.matcher(profile);
            while (declared.find()) {
                boolean input = declared.group(1).equals("input");
                if ( ! (input ? inputs : outputs).contains(declared.group(2)))
                    missing.add(declared.group(1) + " " + declared.group(2) + " (model " + declared.group(1) + "s: " +
                                (input ? inputs : outputs) + ")");
            }
            return missing;
        }
    }

    private String buildFailure(String profile) throws Exception {
        assertFalse(profile.equals(profileText()), "the replacement must change the profile");
        Path copy = packageWith(tmp, profile);
        Throwable e = assertThrows(Throwable.class, () -> TestApp.load(copy).close());
        StringBuilder messages = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) messages.append(t).append('\n');
        return messages.toString();
    }

}
