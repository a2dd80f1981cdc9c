package ai.newsrec.vespa;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The searcher's exploration law is Python's: base(N) on the grid of tests/fixtures/exploration.json. */
class ExplorationTest {

    static final Path FIXTURE = TestApp.PROJECT_DIR.resolveSibling("tests/fixtures/exploration.json");

    @Test
    void baseIsPythonsOnEveryCorpusSizeOfTheFixture() throws Exception {
        JsonNode bases = new ObjectMapper().readTree(FIXTURE.toFile()).get("bases");  // [[N, base(N)], ...]
        for (JsonNode pair : bases)
            assertEquals(pair.get(1).asInt(), Exploration.base(pair.get(0).asLong()), pair.toString());
        assertTrue(bases.size() >= 10, "the fixture's grid");
    }

    @Test
    void anEmptyCorpusExploresTheFirstBase() {
        assertEquals(500, Exploration.base(0));
        assertEquals(500, Exploration.base(-1));
    }

}
