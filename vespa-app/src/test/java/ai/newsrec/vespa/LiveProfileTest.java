package ai.newsrec.vespa;

import ai.vespa.models.evaluation.FunctionEvaluator;
import ai.vespa.models.evaluation.Model;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.yahoo.application.Application;
import com.yahoo.application.container.handler.Request;
import com.yahoo.application.container.handler.Response;
import com.yahoo.component.AbstractComponent;
import com.yahoo.search.Query;
import com.yahoo.search.ranking.RankProfilesEvaluator;
import com.yahoo.searchlib.rankingexpression.ExpressionFunction;
import com.yahoo.tensor.Tensor;
import com.yahoo.tensor.TensorType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Rank profile live (schemas/news.sd): time in ranking.
 * <ul>
 *   <li>Vespa's config model accepts the schema with the live fields and the profile, and the container knows its
 *       inputs and their types;</li>
 *   <li>parity: the container's evaluation of the profile's functions (live_decay, live_ctr, age_hours,
 *       ranking_score, live_score and the second phase) on the cases of tests/fixtures/live_profile.json gives the
 *       values feed/ranking.py gives (written there by tests/live_profile_fixture.py; tests/test_live_profile.py
 *       checks that the file still holds what Python computes);</li>
 *   <li>the time the profile ranks at is set per query: the container passes ranking.properties.vespa.now (and its
 *       alias rankproperty.vespa.now) on as the rank property vespa.now, which the content node's `now` feature
 *       reads (searchlib nowfeature.cpp, see the comment in news.sd), and does not replace it.</li>
 * </ul>
 */
class LiveProfileTest {

    static final Path FIXTURE = TestApp.PROJECT_DIR.resolveSibling("tests/fixtures/live_profile.json");
    static final TensorType VECTOR = TensorType.fromSpec("tensor<float>(x[65])");
    static final String PROFILE = "live";
    /** The functions of the profile whose values the fixture holds, in the order they build on each other. */
    static final List<String> FUNCTIONS = List.of("ranking_score", "live_decay", "live_ctr", "age_hours", "live_score");
    static final Set<String> ATTRIBUTES = Set.of("clicks_decayed", "impressions_decayed", "published", "appeal");

    private static Application app;
    private static JsonNode fixture;

    @BeforeAll
    static void load() throws Exception {
        app = TestApp.load(TestApp.evaluablePackage(Files.createTempDirectory("live-profile")));
        fixture = new ObjectMapper().readTree(FIXTURE.toFile());
    }

    @AfterAll
    static void close() { app.close(); }

    @Test
    void theProfileAndItsFunctionsAreInTheContainer() {
        Set<String> names = new TreeSet<>();
        for (ExpressionFunction function : model().functions()) names.add(function.getName());
        assertTrue(names.containsAll(FUNCTIONS), names.toString());
        assertTrue(names.containsAll(List.of("firstphase", "secondphase")), names.toString());
    }

    @Test
    void theProfilesInputsAreTyped() throws Exception {
        String live = "/search/?yql=" + ApplicationPackageTest.encode("select * from news where true") + "&ranking=" + PROFILE;
        for (String input : List.of("decay_origin", "decay_rate", "w_user", "w_ctr", "w_recency", "w_appeal")) {
            Response response = get(live + "&input.query(" + input + ")=abc");
            assertEquals(400, response.getStatus(), input + ": " + response.getBodyAsString());
            assertTrue(response.getBodyAsString().contains(input), response.getBodyAsString());
        }
    }

    @Test
    void liveScoreReadsTheDocumentsLiveFieldsTheQueryAndNow() {
        Set<String> expected = new TreeSet<>(Set.of("now", "query(user_ranking)", "attribute(embedding)",
                "query(decay_origin)", "query(decay_rate)", "query(w_user)", "query(w_ctr)", "query(w_recency)",
                "query(w_appeal)"));
        for (String attribute : ATTRIBUTES) expected.add("attribute(" + attribute + ")");
        assertEquals(expected, reads("live_score"));
    }

    @Test
    void functionsGivePythonsValues() {
        JsonNode rows = fixture.get("rows");
        double tolerance = fixture.get("tolerance").asDouble();
        assertEquals(6, rows.size());
        Map<String, Double> maxDifference = new TreeMap<>();
        for (JsonNode row : rows) {
            String name = row.get("name").asText();
            for (String function : FUNCTIONS) {
                double value = evaluate(function, row);
                double expected = row.get("expected").get(function).asDouble();
                // relative where the value is large: age_hours of a news item never seen is ~437,000
                assertEquals(expected, value, tolerance * Math.max(1, Math.abs(expected)), name + ": " + function);
                maxDifference.merge(function, Math.abs(value - expected), Math::max);
            }
            double second = evaluate("secondphase", row);
            assertEquals(row.get("expected").get("live_score").asDouble(), second, tolerance, name + ": secondphase");
        }
        System.out.println("live profile parity: " + rows.size() + " cases, max |Vespa - feed/ranking.py| " + maxDifference);
    }

    @Test
    void theQuerySetsNowAsARankProperty() {
        Query query = new Query("/search/?ranking=live&ranking.properties.vespa.now=1573257600");
        query.getRanking().prepare();
        assertEquals(List.of("1573257600"), query.getRanking().getProperties().get("vespa.now"));

        Query alias = new Query("/search/?ranking=live&rankproperty.vespa.now=1573257600");
        alias.getRanking().prepare();
        assertEquals(List.of("1573257600"), alias.getRanking().getProperties().get("vespa.now"));

        // ranking.freshness sets vespa.now too (Ranking.prepareNow), but only when the query has none
        Query fresh = new Query("/search/?ranking.freshness=now-3600");
        fresh.getRanking().prepare();
        assertNotNull(fresh.getRanking().getProperties().get("vespa.now"));
        Query both = new Query("/search/?ranking.properties.vespa.now=1573257600&ranking.freshness=now-3600");
        both.getRanking().prepare();
        assertEquals(List.of("1573257600"), both.getRanking().getProperties().get("vespa.now"));

        Query none = new Query("/search/?ranking=live");
        none.getRanking().prepare();
        assertNull(none.getRanking().getProperties().get("vespa.now"));  // the content node's clock then
    }

    /**
     * One function of the profile on one fixture row, evaluated by the container: the row's values bound to its
     * arguments. A function the profile lists in match-features is an argument of the functions using it (the
     * container takes its value from the hit, as the content node computed it): it is evaluated first, the same way.
     */
    private static double evaluate(String function, JsonNode row) {
        FunctionEvaluator evaluator = model().evaluatorOf(function);
        List<String> unbound = new ArrayList<>();
        for (String argument : evaluator.context().arguments()) {
            if (argument.startsWith("rankingExpression("))
                evaluator.bind(argument, evaluate(inner(argument), row));
            else if ( ! bind(evaluator, argument, row))
                unbound.add(argument);
        }
        assertTrue(unbound.isEmpty(), function + ": no value in the fixture for " + unbound);
        return evaluator.evaluate().asDouble();
    }

    /** The features a function reads, through the functions it uses. */
    private static Set<String> reads(String function) {
        Set<String> features = new TreeSet<>();
        for (String argument : model().evaluatorOf(function).context().arguments()) {
            if (argument.startsWith("rankingExpression(")) features.addAll(reads(inner(argument)));
            else features.add(argument);
        }
        return features;
    }

    private static boolean bind(FunctionEvaluator evaluator, String argument, JsonNode row) {
        JsonNode query = row.get("query"), attributes = row.get("attributes");
        if (argument.equals("now")) {
            evaluator.bind(argument, row.get("now").asDouble());
        } else if (argument.equals("closeness(field,embedding)")) {
            evaluator.bind(argument, 0.5);  // the first phase's; no live function reads it
        } else if (argument.startsWith("query(")) {
            return bindValue(evaluator, argument, query.get(inner(argument)));
        } else if (argument.startsWith("attribute(")) {
            return bindValue(evaluator, argument, attributes.get(inner(argument)));
        } else {
            return false;
        }
        return true;
    }

    /** A vector as a tensor<float>(x[65]), a number as a double (the fixture's float values are exact in a float). */
    private static boolean bindValue(FunctionEvaluator evaluator, String argument, JsonNode value) {
        if (value == null) return false;
        if (value.isArray()) evaluator.bind(argument, vector(value));
        else evaluator.bind(argument, value.asDouble());
        return true;
    }

    private static String inner(String feature) {
        return feature.substring(feature.indexOf('(') + 1, feature.length() - 1);
    }

    private static Tensor vector(JsonNode values) {
        assertEquals(65, values.size());
        Tensor.Builder builder = Tensor.Builder.of(VECTOR);
        for (int i = 0; i < values.size(); i++) builder.cell(values.get(i).asDouble(), i);
        return builder.build();
    }

    private static Model model() {
        List<String> ids = new ArrayList<>();
        for (AbstractComponent component : app.getJDisc(TestApp.QUERY).components().allComponents()) {
            if (component instanceof RankProfilesEvaluator evaluator && component.getId().stringValue().contains("news"))
                return evaluator.modelForRankProfile(PROFILE);
            ids.add(component.getId().stringValue());
        }
        throw new AssertionError("No RankProfilesEvaluator for news among " + ids);
    }

    private static Response get(String pathAndQuery) {
        return app.getJDisc(TestApp.QUERY).handleRequest(new Request("http://localhost:8080" + pathAndQuery));
    }

}
