package ai.newsrec.vespa;

import com.yahoo.application.Application;
import com.yahoo.application.container.handler.Request;
import com.yahoo.application.container.handler.Response;
import com.yahoo.component.chain.Chain;
import com.yahoo.search.Searcher;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Vespa's own config model accepts the complete package: services.xml, query profiles and ../schemas. */
class ApplicationPackageTest {

    private static Application app;

    @BeforeAll
    static void load() { app = TestApp.load(TestApp.APP_DIR); }

    @AfterAll
    static void close() { app.close(); }

    @Test
    void packageContainsTheRootSchemasVerbatim() throws Exception {
        for (String schema : List.of("news.sd", "user.sd", "category_ctr.sd"))
            assertEquals(Files.readString(TestApp.SCHEMAS_DIR.resolve(schema)),
                         Files.readString(TestApp.APP_DIR.resolve("schemas").resolve(schema)), schema);
    }

    @Test
    void defaultChainRunsUserProfileSearcherAfterYqlParsing() {
        Chain<Searcher> chain = app.getJDisc(TestApp.QUERY).search().getChains().getComponent("default");
        List<String> names = chain.components().stream().map(s -> s.getClass().getSimpleName()).toList();
        assertTrue(names.contains("UserProfileSearcher"), names.toString());
        assertTrue(names.indexOf("MinimalQueryInserter") < names.indexOf("UserProfileSearcher"), names.toString());
    }

    @Test
    void invalidUserIdIsRejectedOverHttp() throws Exception {
        Response response = get("/search/?user_id=" + encode("U1\" or true or \""));
        assertEquals(400, response.getStatus(), response.getBodyAsString());
        assertTrue(response.getBodyAsString().contains("Invalid user_id"), response.getBodyAsString());
    }

    @Test
    void invalidRerankBudgetIsRejectedOverHttp() throws Exception {
        for (String bad : List.of("0", "1001", "abc")) {
            Response response = get("/search/?user_id=U1&rerank_budget=" + bad);
            assertEquals(400, response.getStatus(), response.getBodyAsString());
            assertTrue(response.getBodyAsString().contains("rerank_budget"), response.getBodyAsString());
        }
    }

    @Test
    void rankProfileInputsAreTyped() throws Exception {
        String yql = "/search/?yql=" + encode("select * from news where true") + "&ranking=recommendation";
        Response tensor = get(yql + "&input.query(user_ranking)=abc");
        assertEquals(400, tensor.getStatus(), tensor.getBodyAsString());
        assertTrue(tensor.getBodyAsString().contains("tensor<float>(x[65])"), tensor.getBodyAsString());
        Response weight = get(yql + "&input.query(popularity_weight)=abc");
        assertEquals(400, weight.getStatus(), weight.getBodyAsString());
        assertTrue(weight.getBodyAsString().contains("popularity_weight"), weight.getBodyAsString());
    }

    static Response get(String pathAndQuery) {
        return app.getJDisc(TestApp.QUERY).handleRequest(new Request("http://localhost:8080" + pathAndQuery));
    }

    static String encode(String s) { return URLEncoder.encode(s, StandardCharsets.UTF_8); }

}
