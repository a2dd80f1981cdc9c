package ai.newsrec.vespa;

/**
 * How many graph candidates the recall phase explores for a corpus of N news: base(N), the law of
 * feed/exploration.py in the repository (its CALIBRATION interpolated as a power of N between the points, flat below
 * the first, the last segment's power continued beyond the last), so that Vespa explores as the embedded index does.
 * tests/fixtures/exploration.json holds Python's base(N) on a grid; ExplorationTest checks this class against it.
 */
public final class Exploration {

    /** (N, base(N)): feed/exploration.py CALIBRATION, measured by bench/bench_ann.py. */
    static final long[] SIZES = {10_000, 100_000, 1_000_000};
    static final long[] BASES = {500, 6_000, 20_000};

    private Exploration() { }

    /** base(N) for a corpus of {@code corpusSize} news (at least 1). */
    public static int base(long corpusSize) {
        long size = Math.max(1, corpusSize);
        if (size <= SIZES[0]) return (int) BASES[0];
        int segment = SIZES.length - 1;
        for (int i = 1; i < SIZES.length; i++) {
            if (size <= SIZES[i]) { segment = i; break; }
        }
        double power = Math.log((double) BASES[segment] / BASES[segment - 1])
                       / Math.log((double) SIZES[segment] / SIZES[segment - 1]);
        double base = BASES[segment - 1] * Math.pow((double) size / SIZES[segment - 1], power);
        return (int) Math.min(Integer.MAX_VALUE, Math.rint(base));  // Python's round(): half to even
    }

}
