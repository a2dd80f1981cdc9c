"""How many graph candidates the recall phase explores: E = explore(R, N) for a recall budget R (the candidates
phase 1 hands to the second phase) over a corpus of N news.

The HNSW graph is searched with Euclidean distance over MIPS-transformed vectors (pipeline/transforms.py): every
news item sits at distance Φ from the origin and a query [u, 0] is far from all of them, so the distances the
search follows are flat and it must explore far more candidates than it keeps, the more so the larger the corpus.
Measured (bench/bench_ann.py), the exploration needed depends mostly on N and little on R: at 100k news E = 6,000
gives recall@R ≥ 0.99 for R = 100 and 200, and about 10 candidates per hit suffice for R = 500 and 1,000. The law:

    E = min(N, max(PER_HIT × R, base(N)))

with base(N) interpolated as a power of N between the points of CALIBRATION (flat below the first, the last
segment's power continued beyond the last). So E ≥ R (when R ≤ N), E ≤ N, and E grows with R and with N.
On Vespa, E is sent as `totalTargetHits` (the hits exposed to first-phase closeness; the best R go on to the
second phase through `total-rerank-count`), with base(N) replaced by the query profile's `recall_exploration`
since the searcher does not know N (feed/funnel.py); on the embedded index it is faiss efSearch, and the best R by
distance are kept.

Calibration (`python3 bench/run.py ann`; the sweep table in BENCHMARKS.md, "ANN: recall@R ..."): recall@100
against the exact top 100 by inner product, faiss HNSW with the schema's 32 links and 200 explored at insert,
users' recall vectors of the trained small UniRec as queries; news vectors: the model's 49,000, and beyond them
jittered resamples (bench_ann.vectors_at):

    N          base(N)   recall@100 at base(N)
    10,000         500   0.9984
    100,000      6,000   0.9999 (R = 200: 0.9998; E = 2,000 already gives 0.9905)
    1,000,000   20,000   0.9995 (200 queries; E = 10,000: 0.9698). With 16 links per node the same vectors
                         reached only 0.91 at E = 20,000: the schema moved to 32 (issue 13).
"""
from __future__ import annotations

import math

CALIBRATION: tuple[tuple[int, int], ...] = ((10_000, 500), (100_000, 6_000), (1_000_000, 20_000))  # (N, base(N))
PER_HIT = 10  # candidates explored per hit kept, for budgets large enough that R x PER_HIT > base(N)
# Exact search against the graph, one query on one thread (bench/bench_ann_cost.py; BENCHMARKS.md "Recall cost:
# graph against exact"): one graph candidate explored (one unit of faiss efSearch) costs what an exact scan of
# about EXACT_ROWS_PER_EXPLORED allowed rows of 65 floats costs: a median of 76 at 161,000 news and 77 at 1M over
# efSearch 100 to 1,600, filtered and not (range 25 to 188: more at larger efSearch, faiss's candidate queue being
# a linear-scan heap).
EXACT_ROWS_PER_EXPLORED = 80


class ExplorationError(ValueError):
    """A recall budget or corpus size that is not a positive count."""


def base_exploration(corpus_size: int) -> int:
    """The candidates to explore at `corpus_size` news whatever the budget: CALIBRATION interpolated in log-log."""
    if corpus_size < 1:
        raise ExplorationError(f"corpus size must be at least 1, got {corpus_size}")
    sizes = [size for size, _ in CALIBRATION]
    bases = [base for _, base in CALIBRATION]
    if corpus_size <= sizes[0]:
        return bases[0]
    segment = next((i for i in range(1, len(sizes)) if corpus_size <= sizes[i]), len(sizes) - 1)
    power = math.log(bases[segment] / bases[segment - 1]) / math.log(sizes[segment] / sizes[segment - 1])
    return round(bases[segment - 1] * (corpus_size / sizes[segment - 1]) ** power)


def explore(recall_budget: int, corpus_size: int) -> int:
    """Graph candidates to explore so that the best `recall_budget` of them hold the exact top ones (see the
    module's calibration); never more than the corpus."""
    if recall_budget < 1:
        raise ExplorationError(f"recall budget must be at least 1, got {recall_budget}")
    return min(corpus_size, max(PER_HIT * recall_budget, base_exploration(corpus_size)))


def exact_is_cheaper(rows: int, explored: int) -> bool:
    """Whether an exact scan of `rows` allowed news costs no more than a graph search exploring `explored`
    candidates (EXACT_ROWS_PER_EXPLORED): the embedded index then searches exactly (feed/local_backend.py), with
    recall 1 for less time."""
    return rows <= EXACT_ROWS_PER_EXPLORED * explored
