package ai.newsrec.vespa;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.yahoo.application.Application;
import com.yahoo.application.container.handler.Request;
import com.yahoo.application.container.handler.Response;
import com.yahoo.component.chain.Chain;
import com.yahoo.container.jdisc.HttpRequest;
import com.yahoo.container.jdisc.HttpResponse;
import com.yahoo.jdisc.handler.BindingNotFoundException;
import com.yahoo.jdisc.http.HttpRequest.Method;
import com.yahoo.search.Query;
import com.yahoo.search.query.profile.QueryProfile;
import com.yahoo.search.query.profile.QueryProfileRegistry;
import com.yahoo.search.query.profile.compiled.CompiledQueryProfile;
import com.yahoo.search.searchchain.Execution;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The reader handler of the query cluster (GET /newsrec/v1/user/ID): one user's history and vectors from one
 * lookup, a short list of ids for a trusted tier, the identity binding of user_id on /search/; over a mock backend
 * that knows U1 (read N1, N2), and over HTTP in the package's query cluster.
 */
class UserHistoryHandlerTest {

    static final String HEADER = "X-Verified-User";

    @Test
    void oneUsersHistoryAndVectorsFromOneLookup() throws Exception {
        UserProfileSearcherTest.MockBackend backend = new UserProfileSearcherTest.MockBackend();
        JsonNode user = json(handle(handler(backend, ""), "/newsrec/v1/user/U1", null), 200);
        assertEquals("U1", user.get("user_id").asText());
        assertEquals(List.of("N1", "N2"), List.of(user.get("has_read_items").get(0).asText(), user.get("has_read_items").get(1).asText()));
        assertEquals(65, user.get("ranking_embedding").size());
        assertEquals(0.25, user.get("ranking_embedding").get(0).asDouble(), 1e-9);
        assertEquals(0.5, user.get("recall_embedding").get(0).asDouble(), 1e-9);
        assertEquals(1, backend.queries.size());  // the lookup: one term on schema user, one hit
        Query lookup = backend.queries.get(0);
        assertEquals("user_id:U1", lookup.getModel().getQueryTree().getRoot().toString());
        assertEquals(1, lookup.getHits());
    }

    @Test
    void unknownMalformedAndCaseChangedIdsAreRefused() throws Exception {
        UserHistoryHandler handler = handler(new UserProfileSearcherTest.MockBackend(), "");
        assertTrue(json(handle(handler, "/newsrec/v1/user/U404", null), 404).get("message").asText().contains("U404"));
        json(handle(handler, "/newsrec/v1/user/u1", null), 404);  // the mock matches case-insensitively: u1 is not U1
        json(handle(handler, "/newsrec/v1/user/U1%22%20or%20true", null), 400);
        json(handle(handler, "/newsrec/v1/user/" + "x".repeat(65), null), 400);
        assertEquals(405, handler.handle(HttpRequest.createTestRequest("http://localhost/newsrec/v1/user/U1", Method.POST)).getStatus());
    }

    @Test
    void theListIsOneQueryOfAtMostMaxListedIds() throws Exception {
        UserProfileSearcherTest.MockBackend backend = new UserProfileSearcherTest.MockBackend();
        JsonNode users = json(handle(handler(backend, ""), "/newsrec/v1/user/?hits=5", null), 200).get("users");
        assertEquals(2, users.size(), users.toString());  // the mock's two users
        assertEquals(1, backend.queries.size());
        assertEquals(5, backend.queries.get(0).getHits());
        assertEquals(UserHistoryHandler.ID_SUMMARY, backend.queries.get(0).getPresentation().getSummary());
        for (String bad : List.of("0", "101", "abc", "-1", "1e3"))
            json(handle(handler(backend, ""), "/newsrec/v1/user/?hits=" + bad, null), 400);
        assertEquals(UserHistoryHandler.DEFAULT_LISTED, lastHits(backend, "/newsrec/v1/user/"));
    }

    @Test
    void boundToTheVerifiedIdentityWhenThePackageNamesTheHeader() throws Exception {
        UserProfileSearcherTest.MockBackend backend = new UserProfileSearcherTest.MockBackend();
        UserHistoryHandler bound = handler(backend, HEADER);
        assertTrue(json(handle(bound, "/newsrec/v1/user/U1", null), 401).get("message").asText().contains(HEADER));
        json(handle(bound, "/newsrec/v1/user/U1", "U2"), 403);
        json(handle(bound, "/newsrec/v1/user/U1?user_identity_header=", "U2"), 403);  // the request cannot unbind
        json(handle(bound, "/newsrec/v1/user/?hits=5", "U1"), 403);  // no list for a verified reader
        assertTrue(backend.queries.isEmpty(), "refused before any lookup");
        assertEquals("U1", json(handle(bound, "/newsrec/v1/user/U1", "U1"), 200).get("user_id").asText());
    }

    @Test
    void servedByTheQueryClusterWhichHasNoDocumentApi() throws Exception {
        try (Application query = TestApp.load(TestApp.APP_DIR, TestApp.QUERY)) {
            Response bad = get(query, TestApp.QUERY, "/newsrec/v1/user/U1%22");
            assertEquals(400, bad.getStatus(), bad.getBodyAsString());
            Response lookup = get(query, TestApp.QUERY, "/newsrec/v1/user/U1");  // no content node here: the lookup fails, named
            assertFalse(lookup.getStatus() == 404 && lookup.getBodyAsString().contains("No request handler"), lookup.getBodyAsString());
            assertThrows(BindingNotFoundException.class, () -> get(query, TestApp.QUERY, "/document/v1/news/user/docid/U1"));
        }
        try (Application feed = TestApp.load(TestApp.APP_DIR, TestApp.FEED)) {
            assertThrows(BindingNotFoundException.class, () -> get(feed, TestApp.FEED, "/newsrec/v1/user/U1"));
            assertThrows(BindingNotFoundException.class, () -> get(feed, TestApp.FEED, "/search/?query=x"));
            Response document = get(feed, TestApp.FEED, "/document/v1/news/user/docid/U1?timeout=1s");  // bound: no content node
            assertTrue(document.getStatus() >= 400, document.getBodyAsString());
        }
    }

    private static int lastHits(UserProfileSearcherTest.MockBackend backend, String path) throws Exception {
        handle(handler(backend, ""), path, null);
        return backend.queries.get(backend.queries.size() - 1).getHits();
    }

    private static UserHistoryHandler handler(UserProfileSearcherTest.MockBackend backend, String identityHeader) {
        QueryProfileRegistry registry = new QueryProfileRegistry();
        QueryProfile defaults = new QueryProfile("default");
        defaults.set(UserProfileSearcher.IDENTITY_HEADER.toString(), identityHeader, registry);
        defaults.setOverridable(UserProfileSearcher.IDENTITY_HEADER.toString(), false, Map.of());
        registry.register(defaults);
        CompiledQueryProfile compiled = registry.compile().getComponent("default");
        return new UserHistoryHandler(Executors.newSingleThreadExecutor(),
                                      () -> new Execution(new Chain<>(backend), Execution.Context.createContextStub()),
                                      compiled);
    }

    private static HttpResponse handle(UserHistoryHandler handler, String pathAndQuery, String verified) {
        HttpRequest request = HttpRequest.createTestRequest("http://localhost:8080" + pathAndQuery, Method.GET);
        if (verified != null) request.getJDiscRequest().headers().add(HEADER, verified);
        return handler.handle(request);
    }

    private static JsonNode json(HttpResponse response, int status) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        response.render(out);
        String body = out.toString();
        assertEquals(status, response.getStatus(), body);
        return new ObjectMapper().readTree(body);
    }

    private static Response get(Application app, String cluster, String pathAndQuery) {
        return app.getJDisc(cluster).handleRequest(new Request("http://localhost:8080" + pathAndQuery));
    }

}
