"""Recall cost: the HNSW graph against exact search, recall@100 and queries/s side by side, 161k and 1M news.

    python3 bench/bench_ann_cost.py                  # 161k and 1M news (about 1.5 h on 2 busy cores)
    python3 bench/bench_ann_cost.py --sizes 161000   # one size
    python3 bench/bench_ann_cost.py --quick          # 20k news, to check that it runs (saved under bench/out/quick)

Writes bench/results/ann-cost.json (raw) and prints the BENCHMARKS.md section "Recall cost: graph against exact".

Every timing is one query at a time on ONE thread (faiss.omp_set_num_threads(1); numpy's BLAS limited to one
thread with threadpoolctl); graph builds use every core. Exact search is the baseline, run in the same process
on the same stored vectors: the embedded index's 65-d MIPS-transformed rows [v, sqrt(Φ² - |v|²)] and queries
[u, 0] (the inner product with [u, 0] is u · v), top 100 by numpy matmul + argpartition; also faiss IndexFlatIP
and the embedded index's exact path as it was ((rows - q)² summed, full argsort). Each graph row's ratio is
against an exact timing taken right after it (the machine is shared: drift hits both alike), and a row whose
recall@100 is below TARGET publishes no ratio.

Graphs (faiss IndexHNSWFlat, built once each, efSearch swept upwards until recall@100 ≥ 0.999 or the graph is
STOP_SLOWER times slower than exact): L2 over the transformed vectors (the embedded index; Vespa's `euclidean`
over the explicit Φ, and the graph Vespa's `dotproduct` builds: see render()) at several links (M) and
efConstruction, inserted
  - "feed order": one faiss `add` of the rows in feed order (what build_hnsw did: faiss shuffles the rows of a
    level within one add, so this is a random insert order), or
  - "descending norm": rows sorted by descending |v|, added in CHUNKS consecutive batches (so at most one
    chunk's worth of rows is out of order), then `permute_entries` so that graph ids are rows again;
and faiss's inner-product HNSW (METRIC_INNER_PRODUCT over the raw 64-d v, the graph linked by inner product:
"ip-NSW", Morozov & Babenko 2018), which is NOT what Vespa's `dotproduct` does.

Filtered: a recency filter keeping the latest 10% and 2% of the news (rows are feed = publication order; the
generator draws rows i.i.d., so the recent news are a random sample of topics), searched in the graph with a
faiss IDSelectorBatch (as the embedded index's graph_search), against exact search over the allowed rows only
(gathered by index, as LocalBackend.nearest does). Truth there: the exact top 100 among the allowed rows.

Vectors (generate()): not a trained model's, and not jittered copies of a small set. D = 64, a mixture of 300
topic clusters with Zipf(0.8) popularity; a cluster's mean direction is a random unit vector plus 0.6 x a
direction shared by all (learned embeddings are not centred), renormalised; a news vector is that mean plus an
anisotropic deviation (per-coordinate σ_j = 0.32 / sqrt(j), j = 1..64, rotated by the cluster's own random
orthogonal matrix), normalised, times a norm exp(0.15 a + 0.25 b) with a (per cluster) and b (per news) standard
normals clipped at ±2 and ±2.5 (log-norm spread 0.29, as the tiny trained UniRec's news vectors in
bench/out/tiny; max / median norm about 2.5). A user (query) picks 1 to 3 clusters by popularity, draws a
history of 10 to 50 fresh news from them and takes its mean plus isotropic noise of 40% of the mean's norm:
queries come from the same generator but are none of the news.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from pathlib import Path

import numpy as np

from newsrec.feed.local_backend import HNSW_EXPLORE_AT_INSERT, HNSW_LINKS

TOP = 100  # recall@100: the funnel's default recall budget R
TARGET = 0.98  # recall@100 a row must reach to publish a speed ratio (issue: ≥ 10× exact at ≥ 0.98)
WANTED_RATIO = 10.0
STOP_SLOWER = 3.0  # stop an efSearch sweep once the graph is this many times slower than exact
STOP_RECALL = 0.999
EF_GRID = (100, 120, 150, 200, 250, 300, 400, 600, 800, 1_200, 1_600, 2_400, 3_200, 4_800, 6_400, 9_600, 12_800, 19_200)
CHUNKS = 1_000  # descending-norm build: the rows go into the graph in this many consecutive batches
SHARES = (0.10, 0.02)  # recency filter: the latest share of the news
ADJACENT = 40  # exact timings right after each graph row (queries)
UNBOUNDED_FROM = 1_200  # from this efSearch, each row is also timed with faiss's unbounded candidate queue
DIM = 64

# size -> (queries, unfiltered graphs, graphs searched under the filter); a graph = (metric, links, efC, order)
L2, IP = "L2 over [v, √(Φ²−|v|²)]", "inner product over v (faiss ip-NSW)"
FEED, DESC, GROWING = "feed order", "descending norm", "descending norm, growing batches"
PLAN = {
    161_000: (500, [(L2, 16, 200, FEED), (L2, 32, 100, FEED), (L2, 32, 200, FEED), (L2, 32, 400, FEED),
                    (L2, 48, 200, FEED), (L2, 48, 400, FEED),
                    (L2, 16, 200, DESC), (L2, 32, 100, DESC), (L2, 32, 200, DESC), (L2, 48, 200, DESC),
                    (IP, 32, 200, FEED), (IP, 48, 200, FEED), (IP, 32, 200, DESC), (L2, 32, 200, GROWING)],
              [(L2, 32, 200, FEED), (L2, 32, 200, DESC), (L2, 32, 200, GROWING)]),
    1_000_000: (200, [(L2, 32, 200, FEED), (L2, 32, 200, GROWING)],  # IP, more links: no better at 161k
                [(L2, 32, 200, FEED), (L2, 32, 200, GROWING)]),
}
QUICK_PLAN = {20_000: (100, [(L2, 32, 200, FEED), (L2, 32, 200, DESC), (IP, 32, 200, FEED)],
                       [(L2, 32, 200, DESC)])}

RESULTS = Path(__file__).resolve().parent / "results" / "ann-cost.json"
QUICK_RESULTS = Path(__file__).resolve().parent / "out" / "quick" / "ann-cost.json"


# ----------------------------------------------------------------------------------------------- vectors

def generate(count: int, queries: int, seed: int = 0, clusters: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """(count, 64) news vectors and (queries, 64) user vectors, float32: the mixture of the module docstring."""
    rng = np.random.default_rng(seed)
    shared = _unit(rng.normal(size=DIM))
    means = _unit(_unit(rng.normal(size=(clusters, DIM))) + 0.6 * shared)
    spread = 0.32 / np.sqrt(np.arange(1, DIM + 1))
    rotations = np.stack([np.linalg.qr(rng.normal(size=(DIM, DIM)))[0] for _ in range(clusters)])
    popularity = 1.0 / np.arange(1, clusters + 1) ** 0.8
    popularity /= popularity.sum()
    cluster_norm = 0.15 * np.clip(rng.normal(size=clusters), -2, 2)

    def draw(labels: np.ndarray) -> np.ndarray:
        out = np.empty((len(labels), DIM))
        for cluster in np.unique(labels):
            rows = np.flatnonzero(labels == cluster)
            deviation = (rng.normal(size=(len(rows), DIM)) * spread) @ rotations[cluster].T
            norms = np.exp(cluster_norm[cluster] + 0.25 * np.clip(rng.normal(size=len(rows)), -2.5, 2.5))
            out[rows] = _unit(means[cluster] + deviation) * norms[:, None]
        return out

    news = draw(rng.choice(clusters, count, p=popularity)).astype(np.float32)
    users = np.empty((queries, DIM))
    for i in range(queries):
        liked = rng.choice(clusters, rng.integers(1, 4), p=popularity)
        history = draw(rng.choice(liked, rng.integers(10, 51)))
        mean = history.mean(0)
        users[i] = mean + 0.4 * np.linalg.norm(mean) * rng.normal(size=DIM) / math.sqrt(DIM)
    return news, users.astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def transformed(news: np.ndarray, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The embedded index's stored rows [v, √(Φ² − |v|²)] (Φ = the largest norm) and queries [u, 0]."""
    from newsrec.pipeline.transforms import EuclideanTransform

    transform = EuclideanTransform.fit(news)
    return np.ascontiguousarray(transform.news(news)), np.ascontiguousarray(transform.query(users))


def exact_top(users: np.ndarray, news: np.ndarray, rows: np.ndarray | None = None, chunk: int = 64) -> np.ndarray:
    """(Q, TOP) the exact top rows by inner product (among `rows` when given), any order."""
    pool = news if rows is None else news[rows]
    out = []
    for start in range(0, len(users), chunk):
        scores = users[start:start + chunk] @ pool.T
        top = np.argpartition(-scores, TOP, axis=1)[:, :TOP]
        out.append(top if rows is None else rows[top])
    return np.concatenate(out)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean |found ∩ truth| / TOP over the queries."""
    return float(np.mean([np.intersect1d(f[f >= 0], t).size / TOP for f, t in zip(found, truth)]))


# ----------------------------------------------------------------------------------------------- timing

@contextlib.contextmanager
def one_thread():
    """faiss and numpy's BLAS on one thread inside; every core outside (graph builds)."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(limits=1)
    except ImportError:  # threadpoolctl comes with scikit-learn (the bench extras); else OMP_NUM_THREADS=1
        limits = contextlib.nullcontext()
    try:
        with limits:
            yield
    finally:
        faiss.omp_set_num_threads(threads)


def exact_matmul(stored: np.ndarray, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """The top TOP rows by inner product, best first: one matrix-vector product and an argpartition (over the
    allowed `rows` only, gathered, when given)."""
    pool = stored if rows is None else stored[rows]
    scores = pool @ query
    top = np.argpartition(-scores, TOP)[:TOP]
    top = top[np.argsort(-scores[top])]
    return top if rows is None else rows[top]


def exact_scan(stored: np.ndarray, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """The top TOP rows by inner product, best first: faiss's exhaustive scan (`faiss.knn`, IndexFlatIP's code: one
    pass keeping a heap, no score array), over the allowed `rows` only, gathered, when given. The baseline."""
    import faiss

    pool = stored if rows is None else stored[rows]
    top = faiss.knn(query[None], pool, TOP, metric=faiss.METRIC_INNER_PRODUCT)[1][0]
    return top if rows is None else rows[top]


def exact_embedded_before(stored: np.ndarray, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """LocalBackend.nearest's exact path before this study: squared distances of every allowed row, full sort."""
    distances = ((stored[rows] - query) ** 2).sum(1)
    return rows[np.argsort(distances, kind="stable")[:TOP]]


def per_query(search, queries: np.ndarray) -> tuple[float, list]:
    """(seconds per query, results): `search(query)` one query at a time."""
    started = time.perf_counter()
    found = [search(q) for q in queries]
    return (time.perf_counter() - started) / len(queries), found


def bandwidth(gib: float = 1.0, repeats: int = 3) -> dict:
    """This machine's memory bandwidth on one thread (GB/s, 1e9 bytes): reading a `gib` GiB float32 array
    (numpy sum and max, the faster) and copying it (bytes read + written)."""
    with one_thread():
        data = np.ones(int(gib * 2**30 / 4), dtype=np.float32)
        target = np.empty_like(data)
        read = min(min(_seconds(data.sum), _seconds(data.max)) for _ in range(repeats))
        copy = min(_seconds(lambda: np.copyto(target, data)) for _ in range(repeats))
    return {"bytes": data.nbytes, "read_gbs": data.nbytes / read / 1e9, "copy_gbs": 2 * data.nbytes / copy / 1e9}


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# ----------------------------------------------------------------------------------------------- graphs

def build(vectors: np.ndarray, metric: str, links: int, efc: int, order: str, chunks: int = CHUNKS):
    """faiss IndexHNSWFlat over `vectors` (the transformed rows for L2, the raw v for IP), ids = rows."""
    import faiss

    if order == GROWING:  # build_hnsw's own (feed/local_backend.py): what the embedded index ships
        from newsrec.feed.local_backend import build_hnsw

        if (metric, links, efc) != (L2, HNSW_LINKS, HNSW_EXPLORE_AT_INSERT):
            raise ValueError("growing batches are build_hnsw's: L2, the schema's links and insert exploration only")
        return build_hnsw(vectors)
    index = faiss.IndexHNSWFlat(vectors.shape[1], links, faiss.METRIC_L2 if metric == L2 else faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = efc
    if order == FEED:
        index.add(vectors)
        return index
    head = vectors[:, :DIM]  # v: for the transformed rows, the extra coordinate grows as |v| shrinks
    inserted = np.argsort(-np.einsum("nd,nd->n", head, head), kind="stable")
    for part in np.array_split(inserted, min(chunks, len(inserted))):
        index.add(vectors[part])
    index.permute_entries(np.argsort(inserted))  # graph id r holds row r again
    return index


def sweep(index, queries: np.ndarray, truth: np.ndarray, exact_once, rows: np.ndarray | None = None,
          grid: tuple[int, ...] = EF_GRID) -> list[dict]:
    """recall@TOP, queries/s and distance computations per query at each efSearch of `grid` (stopping as the
    module says); `exact_once()` times exact search (seconds per query) right after each row, for its ratio."""
    import faiss

    selector = None if rows is None else faiss.IDSelectorBatch(rows.astype(np.int64))
    out = []
    for ef in grid:
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
        with one_thread():
            faiss.cvar.hnsw_stats.reset()
            cpu = time.thread_time()
            seconds, (_, found) = _timed(lambda: index.search(queries, TOP, params=params))
            cpu = time.thread_time() - cpu
            distances = faiss.cvar.hnsw_stats.ndis / len(queries)
            exact_s = exact_once()
            unbounded = None
            if ef >= UNBOUNDED_FROM:  # faiss's default candidate queue (MinimaxHeap) pops in O(efSearch)
                plain = faiss.SearchParametersHNSW(sel=selector, efSearch=ef, bounded_queue=False)
                unbounded_s, (_, same) = _timed(lambda: index.search(queries, TOP, params=plain))
                unbounded = {"qps": len(queries) / unbounded_s, "recall": recall(same, truth)}
        graph_s = seconds / len(queries)
        row = {"ef": ef, "unbounded_queue": unbounded, "recall": recall(found, truth), "qps": 1 / graph_s, "distances": distances,
               "exact_qps": 1 / exact_s, "ratio": exact_s / graph_s,
               "cpu_share": cpu / seconds}  # below 1: the thread waited (a busy machine) while the graph was timed
        out.append(row)
        print(f"    ef {ef:>6,}: recall@{TOP} {row['recall']:.4f}, {row['qps']:,.0f} q/s, exact {row['exact_qps']:,.0f} "
              f"q/s, {row['ratio']:.2f}×, {distances:,.0f} distances", flush=True)
        if row["recall"] >= STOP_RECALL or graph_s > STOP_SLOWER * exact_s or ef >= index.ntotal:
            break
    return out


def _timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


# ----------------------------------------------------------------------------------------------- one size

def measure(size: int, queries: int, graphs: list, filtered_graphs: list, seed: int = 0, checkpoint=None,
            saved: dict | None = None) -> dict:
    """One corpus: exact search, then each graph built once and swept (unfiltered, then under the recency filter
    when in `filtered_graphs`); `checkpoint(partial result)` after each graph. With `saved` (this size's saved
    result), only the graphs it lacks are measured and added to it."""
    news, users = generate(size, queries, seed)
    stored, asked = transformed(news, users)
    truth = exact_top(users, news)
    norms = np.linalg.norm(news, axis=1)
    print(f"{size:,} news: generated; norms {norms.min():.2f} / {np.median(norms):.2f} / {norms.max():.2f}", flush=True)

    def exact_once(rows=None):
        return per_query(lambda q: exact_scan(stored, q, rows), asked[:ADJACENT])[0]

    with one_thread():
        scan_s, found = per_query(lambda q: exact_scan(stored, q), asked[:100])
        matmul_s, matmul_found = per_query(lambda q: exact_matmul(stored, q), asked[:100])
        everything = np.arange(size)
        before_s, _ = per_query(lambda q: exact_embedded_before(stored, q, everything), asked[:20])
        batch_s = _timed(lambda: exact_top(asked, stored))[0] / len(asked)
    exact = {"scan_qps": 1 / scan_s, "matmul_qps": 1 / matmul_s, "embedded_before_qps": 1 / before_s,
             "batched_qps": 1 / batch_s, "bytes_per_query": stored.nbytes,
             "recall_check": min(recall(np.asarray(found), truth[:100]), recall(np.asarray(matmul_found), truth[:100]))}
    print(f"  exact: faiss scan {exact['scan_qps']:,.1f} q/s, matmul {exact['matmul_qps']:,.1f}, embedded path before "
          f"{exact['embedded_before_qps']:,.1f}, batched 64 {exact['batched_qps']:,.0f} (recall {exact['recall_check']})",
          flush=True)

    filtered = []
    for share in SHARES:
        rows = np.arange(size - round(share * size), size)  # the latest news
        with one_thread():
            gathered_s, _ = per_query(lambda q: exact_scan(stored, q, rows), asked[:100])
            matmul_s, _ = per_query(lambda q: exact_matmul(stored, q, rows), asked[:100])
            before_s, _ = per_query(lambda q: exact_embedded_before(stored, q, rows), asked[:50])
        filtered.append({"share": share, "kept": len(rows), "exact_qps": 1 / gathered_s, "matmul_qps": 1 / matmul_s,
                         "embedded_before_qps": 1 / before_s, "graphs": []})
        print(f"  filter {share:.0%} ({len(rows):,} news): exact {1 / gathered_s:,.0f} q/s, embedded path before "
              f"{1 / before_s:,.0f}", flush=True)
    wanted = [exact_top(users, news, np.arange(size - f["kept"], size)) for f in filtered]

    result = {"size": size, "queries": queries, "norms": [float(norms.min()), float(np.median(norms)), float(norms.max())],
              "exact": exact, "graphs": [], "filtered": filtered}
    if saved:  # keep what was measured; the new graphs' ratios come from their own side-by-side exact timings
        result = {**saved, "graphs": list(saved["graphs"]),
                  "filtered": [{**f, "graphs": list(f["graphs"])} for f in saved["filtered"]]}
        filtered = result["filtered"]
        done = {_spec(g) for g in saved["graphs"]}
        graphs = [spec for spec in graphs if spec not in done]
    for spec in graphs:
        metric, links, efc, order = spec
        data, query = (stored, asked) if metric == L2 else (np.ascontiguousarray(news), users)
        build_s, index = _timed(lambda: build(data, metric, links, efc, order))
        print(f"  {metric}, {links} links, efC {efc}, {order}: built in {build_s:.0f} s", flush=True)
        result["graphs"].append({"metric": metric, "links": links, "efc": efc, "order": order, "build_s": build_s,
                                 "rows": sweep(index, query, truth, exact_once)})
        if spec in filtered_graphs:  # the recency filter, searched in the same graph
            for f, truth_f in zip(filtered, wanted):
                rows = np.arange(size - f["kept"], size)
                print(f"  filter {f['share']:.0%}:", flush=True)
                f["graphs"].append({"metric": metric, "links": links, "efc": efc, "order": order,
                                    "rows": sweep(index, asked, truth_f, lambda: exact_once(rows), rows)})
        del index
        if checkpoint is not None:
            checkpoint(result)
    return result


def _spec(g: dict) -> tuple:
    return g["metric"], g["links"], g["efc"], g["order"]


def run(quick: bool = False, sizes: list[int] | None = None, target: Path | None = None,
        resume: bool = False) -> dict:
    """Measure the plan's sizes (or `sizes` of it); with `target`, save there after every graph, keeping the
    other sizes already saved; `resume`: only the graphs a saved size lacks."""
    from newsrec.bench.common import machine

    plan = QUICK_PLAN if quick else PLAN
    chosen = [size for size in plan if sizes is None or size in sizes]
    saved = json.loads(target.read_text()) if target is not None and target.is_file() and (sizes or resume) else {}
    before = {e["size"]: e for e in saved.get("sizes", [])} if resume else {}
    data = {"machine": machine(), "bandwidth": bandwidth(), "target": TARGET, "top": TOP, "chunks": CHUNKS,
            "quick": quick, "sizes": [e for e in saved.get("sizes", []) if e["size"] not in chosen]}

    def save(entry: dict) -> None:
        data["sizes"] = sorted([e for e in data["sizes"] if e["size"] != entry["size"]] + [entry],
                               key=lambda e: e["size"])
        data["seconds"] = sum(e.get("seconds", 0.0) for e in data["sizes"])
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(data, indent=1) + "\n")

    for size in chosen:
        started = time.perf_counter()
        entry = measure(size, *plan[size], checkpoint=lambda partial: save({**partial, "partial": True}),
                        saved=before.get(size))
        save({**entry, "partial": False, "seconds": before.get(size, {}).get("seconds", 0.0) + time.perf_counter() - started})
    return data


# ----------------------------------------------------------------------------------------------- report

SERVED = (L2, HNSW_LINKS, HNSW_EXPLORE_AT_INSERT, GROWING)  # the graph build_hnsw builds (feed/local_backend.py)


def fastest(entry: dict, graph: tuple | None = None) -> dict | None:
    """The fastest unfiltered graph row with recall@TOP ≥ TARGET (of `graph` only, when given), with its graph."""
    rows = [{**row, **{k: g[k] for k in ("metric", "links", "efc", "order", "build_s")}}
            for g in entry["graphs"] for row in g["rows"] if row["recall"] >= TARGET
            and (graph is None or _spec(g) == graph)]
    return max(rows, key=lambda r: r["qps"], default=None)


def first_meeting(rows: list[dict]) -> dict | None:
    return next((row for row in rows if row["recall"] >= TARGET), None)


def rows_per_explored(entry: dict, max_ef: int = 1_600) -> list[float]:
    """For each graph row of a size with efSearch ≤ `max_ef` (unfiltered and filtered, L2 graphs): how many rows
    of the exact scan cost what one explored candidate costs, (graph seconds / efSearch) / (exact seconds / rows
    scanned), both from the row's side-by-side timing. feed/exploration.py's EXACT_ROWS_PER_EXPLORED comes from these."""
    out = []
    for rows_scanned, graphs in [(entry["size"], entry["graphs"])] + [(f["kept"], f["graphs"]) for f in entry["filtered"]]:
        for g in graphs:
            if g["metric"] != L2:
                continue
            out += [(1 / r["qps"] / r["ef"]) / (1 / r["exact_qps"] / rows_scanned) for r in g["rows"] if r["ef"] <= max_ef]
    return out


def _rate(qps: float) -> str:
    return f"{qps:,.0f}" if qps >= 10 else f"{qps:.2f}"


def _ratio(row: dict) -> str:
    return f"{row['ratio']:.1f}×" if row["recall"] >= TARGET else "— (recall below target)"


def _unbounded(row: dict) -> str:
    """queries/s with faiss's unbounded candidate queue (same recall), where measured."""
    other = row.get("unbounded_queue")
    return "" if not other else f"{_rate(other['qps'])} ({other['qps'] / row['qps']:.1f}×)"


def _graph_name(g: dict) -> str:
    metric = "L2/Φ" if g["metric"] == L2 else "IP"
    return f"{metric}, M {g['links']}, efC {g['efc']}, {g['order']}"


def render(data: dict) -> str:
    bw = data["bandwidth"]
    parts = [f"""## Recall cost: graph against exact (161k and 1M news)

`python3 bench/run.py ann-cost` or `python3 bench/bench_ann_cost.py [--sizes 161000] [--resume]` (raw: `bench/results/ann-cost.json`)

One query at a time on one thread for both sides (faiss.omp_set_num_threads(1), numpy's BLAS at 1 thread);
graph builds on both cores. Exact = the top 100 by inner product over the 65-d transformed rows the embedded
index stores, by faiss's exhaustive scan (`faiss.knn`, IndexFlatIP's code; numpy matmul + argpartition is
slower, see below), timed right after each graph row: "× exact" = exact's time ÷ the graph's, published only where recall@100 ≥ {TARGET}. Vectors:
generated (`generate()` in the script: 300 anisotropic topic clusters, Zipf popularity, log-norm spread 0.29,
users = noisy means of 10-50 fresh news of 1-3 topics), not jittered copies; no trained model's vectors were
at hand (bench/out/small absent), so the real 49k run was not made. faiss HNSW over
L2 on [v, √(Φ² − |v|²)] (as the embedded index; queries [u, 0]) or inner product on v (faiss's ip-NSW);
"feed order" = one faiss add (build_hnsw before this study), "descending norm" = rows added by descending |v|
in {data['chunks']:,} consecutive batches, ids permuted back to rows. Sweeps stop at recall@100 ≥ {STOP_RECALL} or
{STOP_SLOWER:.0f}× slower than exact. Memory bandwidth measured here on one thread: {bw['read_gbs']:.1f} GB/s read
(numpy sum/max of {bw['bytes'] / 2**30:.0f} GiB), {bw['copy_gbs']:.1f} GB/s copy (read + write)."""]
    for entry in data["sizes"]:
        parts.append(_size_section(entry, bw))
    return "\n\n".join(parts)


def _size_section(entry: dict, bw: dict) -> str:
    from newsrec.bench.common import table

    size, exact = entry["size"], entry["exact"]
    gbs = exact["bytes_per_query"] * exact["scan_qps"] / 1e9
    lines = [f"**{size:,} news** ({entry['queries']:,} queries; norms {entry['norms'][0]:.2f} / {entry['norms'][1]:.2f} / "
             f"{entry['norms'][2]:.2f} min / median / max)",
             f"Exact, one query at a time: faiss scan {_rate(exact['scan_qps'])} queries/s, numpy matmul + "
             f"argpartition {_rate(exact['matmul_qps'])}, the embedded index's exact path before this study "
             f"((rows − q)² + full sort) {_rate(exact['embedded_before_qps'])}; 64 queries per matrix product "
             f"{_rate(exact['batched_qps'])} queries/s (throughput, not a served latency). Exact reads "
             f"{exact['bytes_per_query'] / 1e6:.0f} MB per query: {gbs:.1f} GB/s, "
             f"{gbs / bw['read_gbs']:.0%} of the one-thread read bandwidth measured here."]
    rows = []
    for g in entry["graphs"]:
        meets = first_meeting(g["rows"])
        best = max(g["rows"], key=lambda r: r["recall"])
        shown = meets or best
        rows.append([_graph_name(g), f"{g['build_s']:.0f} s", f"{shown['ef']:,}", f"{shown['recall']:.4f}",
                     _rate(shown["qps"]), _unbounded(shown), f"{shown['distances']:,.0f}", _ratio(shown),
                     " / ".join(f"{r['ef']:,}: {r['recall']:.3f}" for r in g["rows"])])
    lines.append(table(["graph", "build", "efSearch (first ≥ target, else best)", "recall@100", "queries/s",
                        "queries/s, unbounded queue", "distances / query", "× exact", "sweep (efSearch: recall@100)"],
                       rows))
    waited = [r for g in entry["graphs"] + [g for f in entry["filtered"] for g in f["graphs"]] for r in g["rows"]
              if r.get("cpu_share", 1.0) < 0.8]
    if waited:
        lines.append(f"{len(waited)} graph timings ran with under 80% of a core (the machine was busy): their queries/s "
                     "are low, and so are their ratios.")
    best = fastest(entry)
    if best is None:
        lines.append(f"No graph setting reached recall@100 ≥ {TARGET} before it was {STOP_SLOWER:.0f}× slower than exact.")
    else:
        verdict = "reached" if best["ratio"] >= WANTED_RATIO else "**not reached**"
        lines.append(f"Fastest with recall@100 ≥ {TARGET}: {_graph_name(best)}, efSearch {best['ef']:,}: recall@100 "
                     f"{best['recall']:.4f}, {_rate(best['qps'])} queries/s, {best['ratio']:.1f}× exact "
                     f"({_rate(best['exact_qps'])} queries/s beside it); ≥ {WANTED_RATIO:.0f}×: {verdict}.")
    costs = rows_per_explored(entry)
    if costs:
        lines.append(f"Cost of one explored candidate in exact rows ((graph time ÷ efSearch) ÷ (exact time ÷ rows scanned), "
                     f"L2 graphs, efSearch ≤ 1,600, unfiltered and filtered rows): median {np.median(costs):.0f}, "
                     f"range {min(costs):.0f} to {max(costs):.0f}.")
    for f in entry["filtered"]:
        frows = []
        for g in f["graphs"]:
            meets = first_meeting(g["rows"])
            last = g["rows"][-1]
            shown = meets or last
            frows.append([_graph_name(g), f"{shown['ef']:,}", f"{shown['recall']:.4f}", _rate(shown["qps"]),
                          f"{shown['distances']:,.0f}", _ratio(shown),
                          " / ".join(f"{r['ef']:,}: {r['recall']:.3f}" for r in g["rows"])])
        lines.append(f"Recency filter, latest {f['share']:.0%} ({f['kept']:,} news): exact over them (gathered) "
                     f"{_rate(f['exact_qps'])} queries/s (numpy matmul {_rate(f['matmul_qps'])}; the embedded path "
                     f"before: {_rate(f['embedded_before_qps'])})\n\n"
                     + table(["graph (IDSelectorBatch)", "efSearch (first ≥ target, else last)", "recall@100",
                              "queries/s", "distances / query", "× exact", "sweep (efSearch: recall@100)"], frows))
    return "\n\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20k news, to check that it runs")
    parser.add_argument("--sizes", type=int, nargs="*", help="only these sizes of the plan")
    parser.add_argument("--resume", action="store_true", help="only the graphs the saved results lack")
    parser.add_argument("--render", action="store_true", help="print the section from the saved results only")
    args = parser.parse_args()
    target = QUICK_RESULTS if args.quick else RESULTS
    if not args.render:
        run(args.quick, args.sizes, target, args.resume)
    print(render(json.loads(target.read_text())))


if __name__ == "__main__":
    main()
