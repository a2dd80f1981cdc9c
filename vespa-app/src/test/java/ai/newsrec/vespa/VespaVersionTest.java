package ai.newsrec.vespa;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Both services.xml files require the Vespa version the tests ran on (pom.xml's parent), so a deployment to an older
 * Vespa is refused by the config server instead of running code this package was never tested with. The tests'
 * own Vespa code reports version 1.0.0 and would refuse it too: they build a copy without it (TestApp.testable).
 */
class VespaVersionTest {

    private static final Pattern REQUIRED = Pattern.compile("<services version=\"1.0\" minimum-required-vespa-version=\"([0-9.]+)\">");

    @Test
    void servicesRequireTheVersionTheTestsRanOn() throws Exception {
        assertFalse(TestApp.VESPA_VERSION.isEmpty(), "pom.xml passes newsrec.vespa.version");
        for (Path services : new Path[] {TestApp.APP_DIR.resolve("services.xml"),
                                         TestApp.PROJECT_DIR.resolve("multinode/services.xml")}) {
            Matcher matcher = REQUIRED.matcher(Files.readString(services));
            assertTrue(matcher.find(), services + " names minimum-required-vespa-version");
            assertEquals(TestApp.VESPA_VERSION, matcher.group(1), services.toString());
        }
    }

}
