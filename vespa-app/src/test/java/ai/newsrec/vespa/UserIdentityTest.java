package ai.newsrec.vespa;

import com.yahoo.application.Application;
import com.yahoo.application.container.handler.Request;
import com.yahoo.application.container.handler.Response;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * user_id bound to the caller's verified identity: a package whose default query profile names the header an
 * authenticating proxy sets (user_identity_header) answers a query with user_id only when the header holds that
 * user id; a request cannot switch the binding off (the field is not overridable). The default package binds
 * nothing.
 */
class UserIdentityTest {

    static final String HEADER = "X-Verified-User";

    @Test
    void userIdMustBeTheVerifiedIdentityWhenThePackageNamesTheHeader(@TempDir Path tmp) throws Exception {
        Path app = TestApp.copyOfPackage(tmp);
        Path profile = app.resolve("search/query-profiles/default.xml");
        Files.writeString(profile, Files.readString(profile).replace(
                "<field name=\"user_identity_header\" overridable=\"false\"></field>",
                "<field name=\"user_identity_header\" overridable=\"false\">" + HEADER + "</field>"));
        try (Application bound = TestApp.load(app)) {
            Response missing = get(bound, "/search/?user_id=U1", null);
            assertEquals(401, missing.getStatus(), missing.getBodyAsString());
            assertTrue(missing.getBodyAsString().contains("verified identity in header " + HEADER), missing.getBodyAsString());
            Response other = get(bound, "/search/?user_id=U1", "U2");
            assertEquals(403, other.getStatus(), other.getBodyAsString());
            Response switchedOff = get(bound, "/search/?user_id=U1&user_identity_header=", "U2");
            assertEquals(403, switchedOff.getStatus(), switchedOff.getBodyAsString());
            Response same = get(bound, "/search/?user_id=U1", "U1");  // on to the lookup (no content nodes here)
            assertNotEquals(401, same.getStatus());
            assertNotEquals(403, same.getStatus());
        }
    }

    @Test
    void theDefaultPackageBindsNothing() throws Exception {
        try (Application app = TestApp.load(TestApp.APP_DIR)) {
            Response response = get(app, "/search/?user_id=U1", null);
            assertNotEquals(401, response.getStatus(), response.getBodyAsString());
        }
    }

    private static Response get(Application app, String pathAndQuery, String verified) {
        Request request = new Request("http://localhost:8080" + pathAndQuery);
        if (verified != null) request.getHeaders().put(HEADER, verified);
        return app.getJDisc(TestApp.QUERY).handleRequest(request);
    }

}
