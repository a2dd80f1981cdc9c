package com.yahoo.search.ranking;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * Vespa's own global-phase normalizers (this container-search's LinearNormalizer and ReciprocalRankNormalizer,
 * package-private, hence this package) give what feed/reranking.py's normalize_linear and reciprocal_rank give, on
 * the cases tests/fusion_fixture.py wrote: the embedded index fuses the cross-encoder with the two-tower score as
 * rank profile unbert's global phase does in Vespa.
 */
class NormalizerParityTest {

    static final Path FIXTURE = Path.of("src/test/resources/fusion.json");
    static final double RECIPROCAL_RANK_K = 60.0;  // Vespa's default k, as feed/reranking.py's

    @Test
    void vespasNormalizersGivePythonsValues() throws Exception {
        JsonNode cases = new ObjectMapper().readTree(FIXTURE.toFile()).get("cases");
        assertFalse(cases.isEmpty());
        for (int i = 0; i < cases.size(); i++) {
            JsonNode c = cases.get(i);
            check(new LinearNormalizer(c.get("values").size()), c, "normalize_linear", i);
            check(new ReciprocalRankNormalizer(c.get("values").size(), RECIPROCAL_RANK_K), c, "reciprocal_rank", i);
        }
    }

    private static void check(Normalizer normalizer, JsonNode c, String name, int i) {
        JsonNode values = c.get("values"), expected = c.get(name);
        for (int j = 0; j < values.size(); j++) assertEquals(j, normalizer.addInput(values.get(j).asDouble()));
        normalizer.normalize();
        for (int j = 0; j < values.size(); j++) {
            double want = expected.get(j).asDouble();
            assertEquals(want, normalizer.getOutput(j), Math.abs(want) * 1e-12, name + ", fusion.json case " + i + ", hit " + j);
        }
    }
}
