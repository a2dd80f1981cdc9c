package ai.newsrec.vespa;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.yahoo.application.Application;
import com.yahoo.application.container.handler.Request;
import com.yahoo.application.container.handler.Response;
import org.junit.jupiter.api.Test;

import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

/**
 * Replays the requests of the system tests (run for real by `vespa test` against a running
 * application) on the in-process container, which has no content nodes, each to the container cluster
 * it names (the file's default "query", "feed" for document/v1). That still checks the parts the
 * container owns: document JSON against the document types (unknown field, bad value: 400) and request
 * parameters (e.g. a rejected user_id: 400). Feeds then time out (no content node).
 */
class SystemTestFilesTest {

    private static final Path DIR = TestApp.PROJECT_DIR.resolve("src/test/application/tests/system-test");
    private static final ObjectMapper json = new ObjectMapper();
    /** One step of a test file, with the container cluster it goes to. */
    private record Step(String name, String cluster, JsonNode request, int expected) { }

    @Test
    void requestsOfTheSystemTestsAreAcceptedByTheContainer() throws Exception {
        List<Step> steps = steps();
        assertFalse(steps.isEmpty());
        for (String cluster : List.of(TestApp.FEED, TestApp.QUERY)) {  // one in-process container at a time
            try (Application app = TestApp.load(TestApp.APP_DIR, cluster)) {
                for (Step step : steps)
                    if (step.cluster().equals(cluster)) check(app, step);
            }
        }
    }

    private static List<Step> steps() throws Exception {
        List<Path> files;
        try (Stream<Path> list = Files.list(DIR)) { files = list.filter(f -> f.toString().endsWith(".json")).toList(); }
        List<Step> steps = new ArrayList<>();
        for (Path file : files) {
            JsonNode test = json.readTree(file.toFile());
            for (JsonNode step : test.get("steps")) {
                JsonNode request = step.get("request");
                String cluster = request.path("cluster").asText(test.path("defaults").path("cluster").asText());
                String what = file.getFileName() + ": " + step.get("name").asText();
                assertEquals(request.get("uri").asText().startsWith("/document/v1/") ? TestApp.FEED : TestApp.QUERY, cluster,
                             what + ": the cluster that binds its path");
                steps.add(new Step(what, cluster, request,
                                   step.path("response").path("code").asInt()));
            }
        }
        return steps;
    }

    private static void check(Application app, Step step) throws Exception {
        JsonNode request = step.request();
        String method = request.path("method").asText("GET");
        String uri = request.get("uri").asText() + "?timeout=200ms" + parameters(request.path("parameters"));
        byte[] body = request.has("body") ? json.writeValueAsBytes(request.get("body")) : new byte[0];
        Response response = app.getJDisc(step.cluster()).handleRequest(
                new Request("http://localhost:8080" + uri, body, Request.Method.valueOf(method)));
        String what = step.name() + ": " + response.getBodyAsString();
        if (step.expected() == 400)
            assertEquals(400, response.getStatus(), what);
        else
            assertNotEquals(400, response.getStatus(), what);
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
