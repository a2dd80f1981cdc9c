package ai.newsrec.vespa;

import com.yahoo.application.Application;
import com.yahoo.application.container.handler.Request;
import com.yahoo.application.container.handler.Response;
import com.yahoo.component.chain.Chain;
import com.yahoo.schema.ApplicationBuilder;
import com.yahoo.schema.RankProfileRegistry;
import com.yahoo.schema.Schema;
import com.yahoo.schema.derived.DerivedConfiguration;
import com.yahoo.search.Searcher;
import com.yahoo.search.config.IndexInfoConfig;
import com.yahoo.search.query.profile.QueryProfileRegistry;
import com.yahoo.vespa.config.search.AttributesConfig;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.List;

import static ai.newsrec.vespa.ApplicationPackageTest.encode;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Private users, over HTTP on the in-process container built from the complete package (no content node:
 * what is proven here is that a query naming the user schema never leaves the container; that the lookup
 * still works and narrowing to news is shown over a mock backend in UserProfileSearcherTest).
 */
class UserPrivacyTest {

    private static final String REFUSED = "Only schema 'news' can be searched; not user";
    private static final String USER_YQL = encode("select * from user where true");
    private static Application app;

    @BeforeAll
    static void load() { app = TestApp.load(TestApp.APP_DIR); }

    @AfterAll
    static void close() { app.close(); }

    @Test
    void defaultChainRestrictsToNewsBeforeTheUserLookup() {
        List<String> names = chainNames("default");
        int yql = names.indexOf("MinimalQueryInserter");
        int guard = names.indexOf("NewsOnlySearcher");
        int lookup = names.indexOf("UserProfileSearcher");
        assertTrue(0 <= yql && yql < guard && guard < lookup, names.toString());
    }

    @Test
    void userSchemaIsRefusedOverHttp() throws Exception {
        for (String request : List.of("/search/?yql=" + USER_YQL,
                                      "/search/?yql=" + USER_YQL + "&user_id=U1",
                                      "/search/?yql=" + encode("select * from news where true") + "&model.restrict=user",
                                      "/search/?yql=" + encode("select * from sources * where true") + "&restrict=user",
                                      "/search/?sources=user&query=U1",
                                      "/search/?yql=" + USER_YQL + "&queryProfile=default")) {
            Response response = get(request);
            assertRefused(response, request);
        }
    }

    @Test
    void userSchemaIsRefusedInPostedJson() throws Exception {
        byte[] body = "{\"yql\": \"select * from user where true\", \"hits\": 400}".getBytes(StandardCharsets.UTF_8);
        Request request = new Request("http://localhost:8080/search/", body, Request.Method.POST);
        request.getHeaders().put("Content-Type", "application/json");
        assertRefused(app.getJDisc(TestApp.QUERY).handleRequest(request), "POST");
    }

    @Test
    void anotherSearchChainCannotBypassTheGuard() throws Exception {
        assertFalse(chainNames("vespa").contains("NewsOnlySearcher"));  // what searchChain=vespa would skip
        // (SearchChainPinTest: without the pin in the default query profile, it would)
        for (String chain : List.of("vespa", "native", "mind"))
            assertRefused(get("/search/?yql=" + USER_YQL + "&searchChain=" + chain), chain);
        // nor can naming another query profile (there is none) drop the pin
        Response otherProfile = get("/search/?yql=" + USER_YQL + "&searchChain=vespa&queryProfile=other");
        assertEquals(400, otherProfile.getStatus(), otherProfile.getBodyAsString());
        assertTrue(otherProfile.getBodyAsString().contains("Could not resolve query profile 'other'"));
    }

    @Test
    void newsQueriesAreNotRefused() throws Exception {
        for (String request : List.of("/search/?yql=" + encode("select * from news where true"),
                                      "/search/?yql=" + encode("select * from sources * where true"),
                                      "/search/?user_id=U1&user_fallback=popularity")) {
            Response response = get(request + "&timeout=200ms");
            assertNotEquals(400, response.getStatus(), response.getBodyAsString());
            assertFalse(response.getBodyAsString().contains(REFUSED), response.getBodyAsString());
        }
    }

    @Test
    void userIdIsMatchedCasedFromAHashDictionary() throws Exception {
        RankProfileRegistry rankProfiles = new RankProfileRegistry();
        Schema user = ApplicationBuilder.buildFromFile(TestApp.SCHEMAS_DIR.resolve("user.sd").toString(),
                                                       rankProfiles, new QueryProfileRegistry());
        DerivedConfiguration derived = new DerivedConfiguration(user, rankProfiles);

        AttributesConfig.Builder attributes = new AttributesConfig.Builder();
        derived.getConfig(attributes);
        AttributesConfig.Attribute userId = attributes.build().attribute().stream()
                .filter(a -> a.name().equals("user_id")).findFirst().orElseThrow();
        assertEquals(AttributesConfig.Attribute.Match.CASED, userId.match());  // content nodes: u1 != U1
        assertEquals(AttributesConfig.Attribute.Dictionary.Match.CASED, userId.dictionary().match());
        assertEquals(AttributesConfig.Attribute.Dictionary.Type.HASH, userId.dictionary().type());

        IndexInfoConfig.Builder indexInfo = new IndexInfoConfig.Builder();
        derived.getIndexInfo().getConfig(indexInfo);
        List<String> commands = indexInfo.build().indexinfo(0).command().stream()
                .filter(c -> c.indexname().equals("user_id")).map(IndexInfoConfig.Indexinfo.Command::command).toList();
        assertTrue(commands.contains("attribute"), commands.toString());
        assertFalse(commands.contains("lowercase"), commands.toString());  // the container keeps the case too
    }

    private static void assertRefused(Response response, String what) throws Exception {
        String body = response.getBodyAsString();
        assertEquals(400, response.getStatus(), what + ": " + body);
        assertTrue(body.contains(REFUSED), what + ": " + body);
        assertFalse(body.contains("id:news:user::"), what + ": " + body);
    }

    private static List<String> chainNames(String id) {
        Chain<Searcher> chain = app.getJDisc(TestApp.QUERY).search().getChains().getComponent(id);
        return chain.components().stream().map(s -> s.getClass().getSimpleName()).toList();
    }

    private static Response get(String pathAndQuery) {
        return app.getJDisc(TestApp.QUERY).handleRequest(new Request("http://localhost:8080" + pathAndQuery));
    }

}
