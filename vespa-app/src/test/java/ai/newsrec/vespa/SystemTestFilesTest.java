package ai.newsrec.vespa;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.yahoo.application.Application;
import com.yahoo.application.container.handler.Request;
import com.yahoo.application.container.handler.Response;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

/**
 * Replays the requests of the system tests (run for real by `vespa test` against a running
 * application) on the in-process container, which has no content nodes. That still checks the
 * parts the container owns: document JSON against the document types (unknown field, bad value:
 * 400) and request parameters (e.g. a rejected user_id: 400). Feeds then time out (no content node).
 */
class SystemTestFilesTest {

    private static final Path DIR = TestApp.PROJECT_DIR.resolve("src/test/application/tests/system-test");
    private static final ObjectMapper json = new ObjectMapper();
    private static Application app;

    @BeforeAll
    static void load() { app = TestApp.load(TestApp.APP_DIR); }

    @AfterAll
    static void close() { app.close(); }

    @Test
    void requestsOfTheSystemTestsAreAcceptedByTheContainer() throws Exception {
        List<Path> files;
        try (Stream<Path> list = Files.list(DIR)) { files = list.filter(f -> f.toString().endsWith(".json")).toList(); }
        assertFalse(files.isEmpty());
        for (Path file : files) {
            for (JsonNode step : json.readTree(file.toFile()).get("steps")) {
                JsonNode request = step.get("request");
                String method = request.path("method").asText("GET");
                String uri = request.get("uri").asText() + "?timeout=200ms" + parameters(request.path("parameters"));
                byte[] body = request.has("body") ? json.writeValueAsBytes(request.get("body")) : new byte[0];
                Response response = app.getJDisc("default").handleRequest(
                        new Request("http://localhost:8080" + uri, body, Request.Method.valueOf(method)));
                String what = file.getFileName() + ": " + step.get("name").asText() + ": " + response.getBodyAsString();
                if (step.path("response").path("code").asInt() == 400)
                    assertEquals(400, response.getStatus(), what);
                else
                    assertNotEquals(400, response.getStatus(), what);
            }
        }
    }

    private static String parameters(JsonNode parameters) {
        StringBuilder query = new StringBuilder();
        for (Map.Entry<String, JsonNode> p : parameters.properties()) {
            query.append('&').append(URLEncoder.encode(p.getKey(), StandardCharsets.UTF_8))
                 .append('=').append(URLEncoder.encode(p.getValue().asText(), StandardCharsets.UTF_8));
        }
        return query.toString();
    }

}
