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

    private TestApp() { }

    /** The container's evaluator of schema news's rank profiles (its RankProfilesEvaluator component). */
    static RankProfilesEvaluator newsProfiles(Application app) {
        List<String> ids = new ArrayList<>();
        for (AbstractComponent component : app.getJDisc("default").components().allComponents()) {
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

    static Application load(Path dir) {
        return Application.fromApplicationPackage(dir, Networking.disable);
    }

    /** Copies the built package to a fresh directory, for tests that modify it. */
    static Path copyOfPackage(Path parent) {
        Path target = parent.resolve("app");
        try (Stream<Path> files = Files.walk(APP_DIR)) {
            for (Path source : (Iterable<Path>) files::iterator) {
                Path destination = target.resolve(APP_DIR.relativize(source).toString());
                if (Files.isDirectory(source)) Files.createDirectories(destination);
                else Files.copy(source, destination);
            }
            return target;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

}
