package ai.newsrec.vespa;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/** The documented multi-node variant (multinode/services.xml + hosts.xml) builds with the same schemas. */
class MultiNodePackageTest {

    @Test
    void multiNodeVariantBuilds(@TempDir Path tmp) throws Exception {
        Path app = TestApp.copyOfPackage(tmp);
        for (String file : new String[] {"services.xml", "hosts.xml"})
            Files.copy(Path.of("multinode", file), app.resolve(file), StandardCopyOption.REPLACE_EXISTING);
        TestApp.load(app).close();
    }

}
