package ai.newsrec.vespa;

import ai.vespa.models.evaluation.FunctionEvaluator;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.yahoo.application.Application;
import com.yahoo.application.container.handler.Request;
import com.yahoo.application.container.handler.Response;
import com.yahoo.search.ranking.RankProfilesEvaluator;
import com.yahoo.searchlib.rankingexpression.ExpressionFunction;
import com.yahoo.searchlib.rankingexpression.evaluation.MapContext;
import com.yahoo.searchlib.rankingexpression.evaluation.TensorValue;
import com.yahoo.tensor.Tensor;
import com.yahoo.tensor.TensorType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The package with a learned ranker (schemas/news/learned.profile + models/ranker.json, LightGBM's dump_model),
 * whatever the build's -Dnewsrec.ranker: the rankers tests/learned_ranker_fixture.py trained (binary and lambdarank,
 * src/test/resources/ranker) are added to a copy of target/application.
 * <ul>
 *   <li>the profile builds in Vespa's config model (which converts the trees to a ranking expression) and loads in
 *       the container, its inputs typed;</li>
 *   <li>parity: the container's evaluation of learned_score on the 40 cases of cases.json gives LightGBM's own
 *       predictions in Python (P(click) for binary, the raw score for lambdarank) within 1e-5;</li>
 *   <li>learned_score reads only the profile's functions of the model's feature names (tests/test_learned_ranker.py
 *       checks that each feature name is a function of learned.profile: Vespa checks unknown rank features on the
 *       content nodes, which the in-process container does not run).</li>
 * </ul>
 */
class LearnedRankerPackageTest {

    static final Path RESOURCES = TestApp.PROJECT_DIR.resolve("src/test/resources/ranker");
    static final Path PROFILE = TestApp.SCHEMAS_DIR.resolve("news/learned.profile");
    static final List<String> OBJECTIVES = List.of("binary", "lambdarank");

    @TempDir
    Path tmp;

    @Test
    void learnedScoreGivesLightGbmsPredictions() throws Exception {
        JsonNode fixture = new ObjectMapper().readTree(RESOURCES.resolve("cases.json").toFile());
        double tolerance = fixture.get("tolerance").asDouble();
        Set<String> features = new TreeSet<>();
        fixture.get("features").forEach(f -> features.add(f.asText()));
        for (String objective : OBJECTIVES) {
            try (Application app = TestApp.load(packageWith(tmp.resolve(objective), objective, Files.readString(PROFILE)))) {
                double maxDifference = 0;
                for (JsonNode c : fixture.get("cases")) {
                    FunctionEvaluator score = evaluator(app).modelForRankProfile("learned").evaluatorOf("learned_score");
                    Set<String> arguments = new TreeSet<>(score.context().arguments());
                    assertFalse(arguments.isEmpty());
                    assertTrue(wrapped(features).containsAll(arguments),
                               "learned_score reads the model's features (those its trees split on), as functions: " + arguments);
                    for (String argument : arguments)
                        score.bind(argument, c.get("values").get(argument.substring(18, argument.length() - 1)).asDouble());
                    double value = score.evaluate().asDouble();
                    double expected = c.get(objective).asDouble();
                    assertEquals(expected, value, tolerance, objective + ": " + c.get("values"));
                    maxDifference = Math.max(maxDifference, Math.abs(value - expected));
                }
                System.out.println("learned ranker parity (" + objective + "): " + fixture.get("cases").size() +
                                   " cases, max |Vespa - LightGBM| " + maxDifference);
            }
        }
    }

    /** Rank profile learned_features (news.sd): each feature function on raw inputs = feed/ranking.py's value. */
    @Test
    void featuresGivePythonsValues() throws Exception {
        JsonNode fixture = new ObjectMapper().readTree(RESOURCES.resolve("features.json").toFile());
        double tolerance = fixture.get("tolerance").asDouble();
        Set<String> features = new TreeSet<>();
        new ObjectMapper().readTree(RESOURCES.resolve("cases.json").toFile()).get("features").forEach(f -> features.add(f.asText()));
        try (Application app = TestApp.load(TestApp.evaluablePackage(tmp))) {
            double maxDifference = 0;
            for (JsonNode row : fixture.get("rows")) {
                for (String feature : features) {
                    if (feature.equals("ranking_score")) continue;  // base's, checked by LiveProfileTest
                    double value = LABEL_FEATURES.contains(feature) ? evaluateBody(app, feature, row, fixture)
                                                                    : evaluate(app, feature, row, fixture);
                    double expected = row.get("expected").get(feature).asDouble();
                    assertEquals(expected, value, tolerance * Math.max(1, Math.abs(expected)), feature + ": " + row);
                    maxDifference = Math.max(maxDifference, Math.abs(value - expected));
                }
            }
            System.out.println("learned_features parity: " + fixture.get("rows").size() + " news x " + features.size() +
                               " features, max |Vespa - feed/ranking.py| " + maxDifference);
        }
    }

    /**
     * The features reading tensorFromLabels: the container's evaluator types that argument as a number (the content
     * node computes it from the attribute), so their bodies are evaluated with the label tensors bound by name.
     */
    static final Set<String> LABEL_FEATURES = Set.of("live_category_ctr", "category_match", "entity_match");

    private static double evaluate(Application app, String feature, JsonNode row, JsonNode fixture) {
        FunctionEvaluator evaluator = evaluator(app).modelForRankProfile("learned_features").evaluatorOf(feature);
        for (String argument : evaluator.context().arguments())
            bindRaw(evaluator, argument, row, fixture);
        return evaluator.evaluate().asDouble();
    }

    private static double evaluateBody(Application app, String feature, JsonNode row, JsonNode fixture) {
        ExpressionFunction function = evaluator(app).modelForRankProfile("learned_features").functions().stream()
                .filter(f -> f.getName().equals(feature)).findFirst().orElseThrow();
        MapContext context = new MapContext();
        JsonNode attributes = row.get("attributes"), query = fixture.get("query");
        context.put("tensorFromLabels(attribute(category),category)",
                    new TensorValue(labels("category", List.of(attributes.get("category").asText()))));
        List<String> entities = new ArrayList<>();
        attributes.get("entities").forEach(e -> entities.add(e.asText()));
        context.put("tensorFromLabels(attribute(entities),entity)", new TensorValue(labels("entity", entities)));
        for (String name : List.of("category_ctrs", "user_categories"))
            context.put("query(" + name + ")", new TensorValue(cells("category", query.get(name))));
        context.put("query(user_entities)", new TensorValue(cells("entity", query.get("user_entities"))));
        return function.getBody().evaluate(context).asDouble();
    }

    private static void bindRaw(FunctionEvaluator evaluator, String argument, JsonNode row, JsonNode fixture) {
        JsonNode attributes = row.get("attributes"), query = fixture.get("query");
        if (argument.equals("now")) evaluator.bind(argument, fixture.get("now").asDouble());
        else if (argument.equals("closeness(field,embedding)")) evaluator.bind(argument, row.get("closeness").asDouble());
        else if (argument.equals("rankingExpression(ranking_score)")) evaluator.bind(argument, row.get("ranking_score").asDouble());
        else if (argument.startsWith("tensorFromLabels(attribute(category)"))
            evaluator.bind(argument, labels("category", List.of(attributes.get("category").asText())));
        else if (argument.startsWith("tensorFromLabels(attribute(entities)")) {
            List<String> entities = new ArrayList<>();
            attributes.get("entities").forEach(e -> entities.add(e.asText()));
            evaluator.bind(argument, labels("entity", entities));
        } else if (argument.startsWith("attribute(")) evaluator.bind(argument, attributes.get(inner(argument)).asDouble());
        else if (argument.startsWith("query(")) {
            JsonNode value = query.get(inner(argument));
            if (value == null) throw new AssertionError("no value in features.json for " + argument);
            if (value.isObject()) evaluator.bind(argument, cells(argument.equals("query(user_entities)") ? "entity" : "category", value));
            else evaluator.bind(argument, value.asDouble());
        } else throw new AssertionError("no value in features.json for " + argument);
    }

    private static String inner(String feature) {
        return feature.substring(feature.indexOf('(') + 1, feature.length() - 1);
    }

    private static Tensor labels(String dimension, List<String> labels) {
        Tensor.Builder builder = Tensor.Builder.of(TensorType.fromSpec("tensor(" + dimension + "{})"));
        for (String label : labels) builder.cell().label(dimension, label).value(1.0);
        return builder.build();
    }

    private static Tensor cells(String dimension, JsonNode values) {
        Tensor.Builder builder = Tensor.Builder.of(TensorType.fromSpec("tensor(" + dimension + "{})"));
        for (var e : values.properties()) builder.cell().label(dimension, e.getKey()).value(e.getValue().asDouble());
        return builder.build();
    }

    /** RankerVersionSearcher: rank profile learned only for the model version the packaged ranker was trained on. */
    @Test
    void aQueryFromAnotherModelIsRefusedByName() throws Exception {
        Path app = packageWith(tmp, "binary", Files.readString(PROFILE));
        Path profile = app.resolve("search/query-profiles/default.xml");
        Files.writeString(profile, Files.readString(profile).replace(
                "name=\"ranker_model_version\" overridable=\"false\"></field>",
                "name=\"ranker_model_version\" overridable=\"false\">aaaa000011112222</field>"));
        try (Application loaded = TestApp.load(app)) {
            String learned = "http://localhost:8080/search/?yql=" +
                             ApplicationPackageTest.encode("select * from news where true") + "&ranking=learned";
            Response other = handle(loaded, learned + "&model_version=bbbb000011112222");
            assertEquals(400, other.getStatus(), other.getBodyAsString());
            assertTrue(other.getBodyAsString().contains("aaaa000011112222") &&
                       other.getBodyAsString().contains("bbbb000011112222"), other.getBodyAsString());
            Response none = handle(loaded, learned);
            assertEquals(400, none.getStatus(), none.getBodyAsString());
            assertTrue(none.getBodyAsString().contains("model_version"), none.getBodyAsString());
            // the package's version cannot be overridden by the request
            Response forged = handle(loaded, learned + "&model_version=cccc&ranker_model_version=cccc");
            assertEquals(400, forged.getStatus(), forged.getBodyAsString());
            Response same = handle(loaded, learned + "&model_version=aaaa000011112222");
            assertFalse(same.getBodyAsString().contains("model_version"), same.getBodyAsString());  // passed on
            Response live = handle(loaded, learned.replace("ranking=learned", "ranking=live"));
            assertFalse(live.getBodyAsString().contains("model_version"), live.getBodyAsString());
        }
        try (Application bare = TestApp.load(TestApp.APP_DIR)) {  // built without a ranker: no version
            Response response = handle(bare, "http://localhost:8080/search/?yql=" +
                    ApplicationPackageTest.encode("select * from news where true") + "&ranking=learned&model_version=x");
            assertEquals(400, response.getStatus(), response.getBodyAsString());
        }
    }

    private static Response handle(Application app, String uri) throws Exception {
        return app.getJDisc(TestApp.QUERY).handleRequest(new Request(uri));
    }

    @Test
    void theProfilesInputsAreTyped() throws Exception {
        try (Application app = TestApp.load(packageWith(tmp, "binary", Files.readString(PROFILE)))) {
            String search = "http://localhost:8080/search/?yql=" +
                            ApplicationPackageTest.encode("select * from news where true") + "&ranking=learned";
            for (String input : List.of("history_length", "category_ctrs")) {
                Response response = app.getJDisc(TestApp.QUERY).handleRequest(
                        new Request(search + "&input.query(" + input + ")=abc"));
                assertEquals(400, response.getStatus(), input + ": " + response.getBodyAsString());
                assertTrue(response.getBodyAsString().contains(input), response.getBodyAsString());
            }
        }
    }

    /** A copy of target/application with the profile and this objective's ranker as models/ranker.json. */
    private static Path packageWith(Path parent, String objective, String profile) throws Exception {
        Path app = TestApp.withEvaluator(TestApp.copyOfPackage(Files.createDirectories(parent)));
        Files.createDirectories(app.resolve("schemas/news"));
        Files.writeString(app.resolve("schemas/news/learned.profile"), profile);
        Files.createDirectories(app.resolve("models"));
        Files.copy(RESOURCES.resolve(objective).resolve("lightgbm.json"), app.resolve("models/ranker.json"));
        return app;
    }

    private static Set<String> wrapped(Set<String> features) {
        Set<String> out = new TreeSet<>();
        for (String feature : features) out.add("rankingExpression(" + feature + ")");
        return out;
    }

    private static RankProfilesEvaluator evaluator(Application app) {
        return TestApp.newsProfiles(app);
    }
}
