package ai.newsrec.vespa;

import com.yahoo.config.model.application.provider.FilesApplicationPackage;
import com.yahoo.vespa.model.VespaModel;
import com.yahoo.vespa.model.container.ApplicationContainerCluster;
import com.yahoo.vespa.model.container.component.Handler;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Vespa's config model builds the whole package, both container clusters (the in-process container of the other
 * tests runs one at a time): "query" serves /search/ and the reader handler and has no document/v1; "feed" serves
 * document/v1 and no search. Single node (two ports on one host) and the multi-node variant alike.
 */
class ClusterSplitTest {

    @Test
    void singleNodePackageHasAQueryAndAFeedCluster() throws Exception {
        assertSplit(new VespaModel(FilesApplicationPackage.fromDir(TestApp.APP_DIR.toFile(), Map.of())));
    }

    @Test
    void multiNodePackageHasAQueryAndAFeedCluster(@TempDir Path tmp) throws Exception {
        Path app = TestApp.copyOfPackage(tmp);
        for (String file : new String[] {"services.xml", "hosts.xml"})
            Files.copy(TestApp.PROJECT_DIR.resolve("multinode").resolve(file), app.resolve(file), StandardCopyOption.REPLACE_EXISTING);
        VespaModel model = new VespaModel(FilesApplicationPackage.fromDir(app.toFile(), Map.of()));
        assertSplit(model);
        assertEquals(2, model.getContainerClusters().get(TestApp.QUERY).getContainers().size());
        assertEquals(2, model.getContainerClusters().get(TestApp.FEED).getContainers().size());
    }

    private static void assertSplit(VespaModel model) {
        Map<String, ApplicationContainerCluster> clusters = model.getContainerClusters();
        assertEquals(Set.of(TestApp.QUERY, TestApp.FEED), clusters.keySet());
        ApplicationContainerCluster query = clusters.get(TestApp.QUERY), feed = clusters.get(TestApp.FEED);
        assertNotNull(query.getSearch());
        assertTrue(bindings(query).stream().anyMatch(b -> b.contains(UserHistoryHandler.PATH)), bindings(query).toString());
        assertFalse(bindings(query).stream().anyMatch(b -> b.contains("/document/v1")), bindings(query).toString());
        assertTrue(bindings(feed).stream().anyMatch(b -> b.contains("/document/v1")), bindings(feed).toString());
        assertFalse(bindings(feed).stream().anyMatch(b -> b.contains("/search/") || b.contains(UserHistoryHandler.PATH)),
                    bindings(feed).toString());
        assertNull(feed.getSearch());
    }

    private static Set<String> bindings(ApplicationContainerCluster cluster) {
        return cluster.getHandlers().stream().flatMap(h -> h.getServerBindings().stream())
                      .map(Object::toString).collect(Collectors.toSet());
    }

}
