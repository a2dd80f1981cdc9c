package ai.newsrec.vespa;

import com.yahoo.application.Application;
import com.yahoo.application.container.handler.Request;
import com.yahoo.application.container.handler.Response;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static ai.newsrec.vespa.ApplicationPackageTest.encode;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Why the default query profile pins searchChain: without it, searchChain=vespa runs Vespa's built-in chain,
 * which has no NewsOnlySearcher, and a query for the user schema goes out to the content cluster.
 * (A class of its own: one in-process container at a time.)
 */
class SearchChainPinTest {

    private static final String PIN = "<field name=\"searchChain\" overridable=\"false\">default</field>";
    private static final String USER_QUERY =
            "/search/?timeout=200ms&searchChain=vespa&yql=" + encode("select * from user where true");

    @Test
    void withoutThePinTheVespaChainBypassesTheGuard(@TempDir Path tmp) throws Exception {
        Path app = TestApp.copyOfPackage(tmp);
        Path profile = app.resolve("search/query-profiles/default.xml");
        String pinned = Files.readString(profile);
        assertTrue(pinned.contains(PIN), pinned);
        Files.writeString(profile, pinned.replace(PIN, ""));
        try (Application unpinned = TestApp.load(app)) {
            Response response = unpinned.getJDisc(TestApp.QUERY).handleRequest(new Request("http://localhost:8080" + USER_QUERY));
            assertFalse(response.getBodyAsString().contains("Only schema 'news'"), response.getBodyAsString());
        }
    }

    @Test
    void withThePinItIsRefused() throws Exception {
        try (Application app = TestApp.load(TestApp.APP_DIR)) {
            Response response = app.getJDisc(TestApp.QUERY).handleRequest(new Request("http://localhost:8080" + USER_QUERY));
            assertEquals(400, response.getStatus(), response.getBodyAsString());
            assertTrue(response.getBodyAsString().contains("Only schema 'news'"), response.getBodyAsString());
        }
    }

}
