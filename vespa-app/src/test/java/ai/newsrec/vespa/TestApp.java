package ai.newsrec.vespa;

import com.yahoo.application.Application;
import com.yahoo.application.Networking;
import com.yahoo.component.AbstractComponent;
import com.yahoo.search.ranking.RankProfilesEvaluator;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;

import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

/** Locations and helpers shared by the tests. */
final class TestApp {

    /**
     * vespa-app/, from surefire (the working directory is not always it: tests of a package with an ONNX model
     * run in the directory the in-process container resolves models/ against, see pom.xml).
     */
    static final Path PROJECT_DIR = Path.of(System.getProperty("newsrec.project.dir", ".")).toAbsolutePath().normalize();
    /** The complete package built by process-resources: src/main/application + ../schemas. */
    static final Path APP_DIR = Path.of(System.getProperty("newsrec.app.dir", PROJECT_DIR.resolve("target/application").toString()));
    static final Path SCHEMAS_DIR = PROJECT_DIR.resolveSibling("schemas");

    /** The container clusters of services.xml: queries (search, the reader handler) and feeding (document-api). */
    static final String QUERY = "query";
    static final String FEED = "feed";
    static final String MINIMUM_VERSION = "minimum-required-vespa-version";
    /** The Vespa version of the Maven dependencies the tests run on (pom.xml's parent). */
    static final String VESPA_VERSION = System.getProperty("newsrec.vespa.version", "");

    private TestApp() { }

    /** The container's evaluator of schema news's rank profiles (its RankProfilesEvaluator component). */
    static RankProfilesEvaluator newsProfiles(Application app) {
        List<String> ids = new ArrayList<>();
        for (AbstractComponent component : app.getJDisc(QUERY).components().allComponents()) {
            if (component instanceof RankProfilesEvaluator evaluator && component.getId().stringValue().contains("news"))
                return evaluator;
            ids.add(component.getId().stringValue());
        }
        throw new AssertionError("No RankProfilesEvaluator for news among " + ids);
    }

    /**
     * `dir` (a package copy) with a test-only rank profile that has a global phase: Vespa's container creates the
     * news RankProfilesEvaluator (which evaluates every profile of the schema) only for a schema with a global
     * phase, and the default package has none since the placeholder on recommendation was removed.
     */
    static Path withEvaluator(Path dir) {
        try {
            Files.createDirectories(dir.resolve("schemas/news"));
            Files.writeString(dir.resolve("schemas/news/test_evaluator.profile"), """
                    rank-profile test_evaluator inherits base {
                        global-phase {
                            expression: 1
                        }
                    }
                    """);
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A copy of the built package whose rank profiles the container can evaluate (withEvaluator). */
    static Path evaluablePackage(Path parent) {
        return withEvaluator(copyOfPackage(parent));
    }

    /** The query cluster of the package in `dir`, in Vespa's in-process container. */
    static Application load(Path dir) {
        return load(dir, QUERY);
    }

    /**
     * One container cluster of the package in `dir`, in Vespa's in-process container, which runs one cluster only
     * ("Found multiple container elements"): a copy of the package whose services.xml keeps that cluster's
     * container element and drops the others' (and the content cluster's reference to them for indexing). The whole package, both clusters, is built by Vespa's config model
     * in ClusterSplitTest.
     */
    static Application load(Path dir, String cluster) {
        return Application.fromApplicationPackage(oneCluster(dir, cluster), Networking.disable);
    }

    static Path oneCluster(Path dir, String cluster) {
        return rewrittenServices(dir, cluster);
    }

    /** A copy of the package in `dir` that Vespa's code of the tests (version 1.0.0) builds: see rewrittenServices. */
    static Path testable(Path dir) {
        return rewrittenServices(dir, null);
    }

    /**
     * A copy of the package in `dir` whose services.xml has no minimum-required-vespa-version (the config model and
     * in-process container of the tests report version 1.0.0 and refuse it; VespaVersionTest checks its value) and,
     * unless `cluster` is null, only that container cluster.
     */
    private static Path rewrittenServices(Path dir, String cluster) {
        try {
            Path copy = copyOfPackage(dir, Files.createTempDirectory("newsrec-" + (cluster == null ? "package" : cluster)));
            Path services = copy.resolve("services.xml");
            Document xml = DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(services.toFile());
            xml.getDocumentElement().removeAttribute(MINIMUM_VERSION);
            if (cluster != null) keepCluster(xml, cluster, services);
            TransformerFactory.newInstance().newTransformer().transform(new DOMSource(xml), new StreamResult(services.toFile()));
            return copy;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (Exception e) {
            throw new IllegalStateException("Cannot rewrite services.xml of " + dir, e);
        }
    }

    private static void keepCluster(Document xml, String cluster, Path services) {
        NodeList containers = xml.getDocumentElement().getElementsByTagName("container");
        List<Element> others = new ArrayList<>();
        boolean found = false;
        for (int i = 0; i < containers.getLength(); i++) {
            Element container = (Element) containers.item(i);
            if (container.getAttribute("id").equals(cluster)) found = true;
            else others.add(container);
        }
        if ( ! found) throw new IllegalArgumentException("No container cluster '" + cluster + "' in " + services);
        NodeList docproc = xml.getDocumentElement().getElementsByTagName("document-processing");
        for (int i = 0; i < docproc.getLength(); i++) {  // the content cluster's reference to a dropped cluster
            Element reference = (Element) docproc.item(i);
            if (reference.hasAttribute("cluster") && ! reference.getAttribute("cluster").equals(cluster)) others.add(reference);
        }
        others.forEach(other -> other.getParentNode().removeChild(other));
    }

    /** Copies the built package to a fresh directory, for tests that modify it. */
    static Path copyOfPackage(Path parent) {
        return copyOfPackage(APP_DIR, parent);
    }

    static Path copyOfPackage(Path from, Path parent) {
        Path target = parent.resolve("app");
        try (Stream<Path> files = Files.walk(from)) {
            for (Path source : (Iterable<Path>) files::iterator) {
                Path destination = target.resolve(from.relativize(source).toString());
                if (Files.isDirectory(source)) Files.createDirectories(destination);
                else Files.copy(source, destination);
            }
            return target;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

}
