package ai.newsrec.vespa;

import com.yahoo.application.Application;
import com.yahoo.application.container.handler.Request;
import com.yahoo.application.container.handler.Response;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

import static ai.newsrec.vespa.ApplicationPackageTest.encode;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The documented multi-node variant (multinode/services.xml + hosts.xml) builds with the same schemas. */
class MultiNodePackageTest {

    @Test
    void multiNodeVariantBuildsAndKeepsUsersPrivate(@TempDir Path tmp) throws Exception {
        Path app = TestApp.copyOfPackage(tmp);
        for (String file : new String[] {"services.xml", "hosts.xml"})
            Files.copy(TestApp.PROJECT_DIR.resolve("multinode").resolve(file), app.resolve(file), StandardCopyOption.REPLACE_EXISTING);
        try (Application multiNode = TestApp.load(app)) {
            Response response = multiNode.getJDisc(TestApp.QUERY).handleRequest(new Request(
                    "http://localhost:8080/search/?yql=" + encode("select * from user where true")));
            assertEquals(400, response.getStatus(), response.getBodyAsString());
            assertTrue(response.getBodyAsString().contains("Only schema 'news'"), response.getBodyAsString());
        }
    }

}
