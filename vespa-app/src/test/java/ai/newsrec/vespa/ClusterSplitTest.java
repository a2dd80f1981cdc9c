package ai.newsrec.vespa;

import com.yahoo.config.model.application.provider.FilesApplicationPackage;
import com.yahoo.vespa.model.VespaModel;
import com.yahoo.vespa.model.container.ApplicationContainerCluster;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Vespa's config model builds the whole package, both container clusters (the in-process container of the other
 * tests runs one at a time): "query" serves /search/ and the reader handler and has no document/v1; "feed" serves
 * document/v1 and no search. Single node (two ports on one host) and the multi-node variant alike.
 */
class ClusterSplitTest {

    static final String SEARCH = "com.yahoo.search.handler.SearchHandler";
    static final String DOCUMENT_API = "com.yahoo.document.restapi.resource.DocumentV1ApiHandler";

    @Test
    void singleNodePackageHasAQueryAndAFeedCluster() throws Exception {
        assertSplit(new VespaModel(FilesApplicationPackage.fromDir(TestApp.testable(TestApp.APP_DIR).toFile(), Map.of())));
    }

    @Test
    void multiNodePackageHasAQueryAndAFeedCluster(@TempDir Path tmp) throws Exception {
        Path app = TestApp.copyOfPackage(tmp);
        for (String file : new String[] {"services.xml", "hosts.xml"})
            Files.copy(TestApp.PROJECT_DIR.resolve("multinode").resolve(file), app.resolve(file), StandardCopyOption.REPLACE_EXISTING);
        VespaModel model = new VespaModel(FilesApplicationPackage.fromDir(TestApp.testable(app).toFile(), Map.of()));
        assertSplit(model);
        assertEquals(2, model.getContainerClusters().get(TestApp.QUERY).getContainers().size());
        assertEquals(2, model.getContainerClusters().get(TestApp.FEED).getContainers().size());
    }

    private static void assertSplit(VespaModel model) {
        Map<String, ApplicationContainerCluster> clusters = model.getContainerClusters();
        assertEquals(Set.of(TestApp.QUERY, TestApp.FEED), clusters.keySet());
        ApplicationContainerCluster query = clusters.get(TestApp.QUERY), feed = clusters.get(TestApp.FEED);
        assertNotNull(query.getSearch());
        assertNull(feed.getSearch());
        assertEquals(Set.of("/newsrec/v1/user/*"), bindings(query, UserHistoryHandler.class.getName()));
        assertEquals(Set.of(), bindings(feed, UserHistoryHandler.class.getName()));
        assertEquals(Set.of(), bindings(feed, SEARCH));
        // Vespa's document/v1 handler on the feed cluster only (the config model may bind a dummy that serves
        // no document on the other)
        assertEquals(Set.of(), bindings(query, DOCUMENT_API));
        assertTrue(bindings(feed, DOCUMENT_API).contains("/document/v1/*"), bindings(feed, DOCUMENT_API).toString());
    }

    /** The paths `cluster` binds to handler class `handler`. */
    private static Set<String> bindings(ApplicationContainerCluster cluster, String handler) {
        return cluster.getHandlers().stream().filter(h -> h.getClassId().getName().equals(handler))
                      .flatMap(h -> h.getServerBindings().stream()).map(b -> b.path()).collect(Collectors.toSet());
    }

}
