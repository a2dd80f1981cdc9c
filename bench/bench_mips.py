"""MIPS on an HNSW graph: newsrec's explicit Φ vs Vespa's `dotproduct` distance metric (simulated) vs no
transform, on the same vectors and queries, in three feed orders; and what headroom above Φ costs.

    python3 bench/run.py mips          # 10k and 100k news; recorded in BENCHMARKS.md
    python3 bench/bench_mips.py --quick

What Vespa's `dotproduct` does (searchlib/src/vespa/searchlib/tensor/mips_distance_transform.{h,cpp} and
hnsw_index.cpp in vespa-engine/vespa, read at 1f79d33): a shared MaximumSquaredNormStore holds the largest
squared norm inserted so far, starting at 1.0. Binding a distance function to a vector being inserted
raises that maximum M² first; every distance then computed (to a candidate, or between two stored nodes
when a neighbour list is pruned) is −(a·b + √(M² − |a|²)·√(M² − |b|²)) with the *current* M, so a stored
node's extra coordinate grows with M and links chosen earlier were chosen under a smaller M. A query's
distance is −q·d: the exact inner product. With every vector at norm M in N + 1 dimensions,
−(a·b + e_a e_b) = (|a′ − b′|² − 2M²) / 2, so Euclidean order on [v, √(M² − |v|²)] is the same order.

The simulation: faiss IndexHNSWFlat (HNSW_LINKS links, 200 explored at insert, as schemas/news.sd) storing
[v, √(M_t² − |v|²)]; vectors inserted one at a time in feed order; whenever M_t grows, the extra
coordinate of every stored vector is rewritten in place before the next insert. Queries [q, 0] rank by
|q|² + M² − 2 q·d, i.e. by inner product. Where it differs from Vespa: faiss's HNSW is not Vespa's
(same Malkov–Yashunin neighbour heuristic and 2 × links at level 0, but another level generator and no
two-phase multi-threaded insert, whose prepare step may bind an older M), float32 extra coordinates
(Vespa: double), one feeder thread.
"""
from __future__ import annotations

import numpy as np
import torch

from newsrec.bench.common import machine, row_main, table, timed
from newsrec.feed.local_backend import HNSW_EXPLORE_AT_INSERT, HNSW_LINKS, build_hnsw
from newsrec.pipeline.inference import top_k_inner_product
from newsrec.pipeline.transforms import DEFAULT_PHI_HEADROOM, EuclideanTransform, no_transform

VESPA_INITIAL_MAX_SQUARED_NORM = 1.0  # MaximumSquaredNormStore starts here
ORDERS = ("random", "ascending norm", "descending norm")
EXPLORE_AT_10 = (10, 100, 200, 500)  # = targetHits 10 + exploreAdditionalHits 0 / 90 / 190 / 490 (Vespa's blog)
EXPLORE_AT_100 = 2_000  # newsrec's 20 x hits for 100 hits
HEADROOMS = (0.0, 0.1, 0.25, 0.5)

# Vespa's published recall@10 (blog.vespa.ai/announcing-maximum-inner-product-search/, 2023-07-03; source
# vespa-engine/blog _posts/2023-07-03-announcing-maximum-inner-product-search.md): 400k Cohere
# wikipedia-22-12-simple 768-d paragraphs, max-links-per-node 48, 200 explored at insert, 10k queries.
VESPA_PUBLISHED = {"random": (54.2, 81.9, 87.4, 92.4), "ascending norm": (55.3, 90.5, 95.1, 98.2),
                   "descending norm": (81.9, 98.6, 99.6, 99.8)}  # per exploreAdditionalHits 0, 90, 190, 490


def feed_order(news: np.ndarray, order: str, seed: int = 0) -> np.ndarray:
    """Row indices of `news` in the named feed order (norm ties keep row order)."""
    norms = np.linalg.norm(news.astype(np.float64), axis=1)
    if order == "random":
        return np.random.default_rng(seed).permutation(len(news))
    if order == "ascending norm":
        return np.argsort(norms, kind="stable")
    if order == "descending norm":
        return np.argsort(-norms, kind="stable")
    raise ValueError(f"unknown feed order {order!r}; choose from {', '.join(ORDERS)}")


def running_max_squared_norm(vectors_in_feed_order: np.ndarray) -> np.ndarray:
    """(N,) M_t² after inserting vector t: Vespa's MaximumSquaredNormStore (starts at 1.0, only grows)."""
    squared = np.einsum("nd,nd->n", *(2 * [vectors_in_feed_order.astype(np.float64)]))
    return np.maximum.accumulate(np.maximum(squared, VESPA_INITIAL_MAX_SQUARED_NORM))


def dotproduct_graph(vectors_in_feed_order: np.ndarray):
    """faiss HNSW built as Vespa's `dotproduct` metric builds its graph: one insert at a time, every stored
    vector's extra coordinate rewritten to √(M_t² − |v|²) whenever the running maximum M_t grows."""
    import faiss

    vectors = np.ascontiguousarray(vectors_in_feed_order, dtype=np.float32)  # (N, D)
    squared = np.einsum("nd,nd->n", *(2 * [vectors.astype(np.float64)]))
    maxima = running_max_squared_norm(vectors)
    index = faiss.IndexHNSWFlat(vectors.shape[1] + 1, HNSW_LINKS, faiss.METRIC_L2)
    index.hnsw.efConstruction = HNSW_EXPLORE_AT_INSERT
    for position in range(len(vectors)):
        if position and maxima[position] > maxima[position - 1]:
            rewrite_extra_coordinate(index, squared[:position], maxima[position])
        index.add(_augmented(vectors[position:position + 1], squared[position:position + 1], maxima[position]))
    return index


def _augmented(vectors: np.ndarray, squared: np.ndarray, max_squared: float) -> np.ndarray:
    """(n, D) -> (n, D + 1) float32: [v, √(M² − |v|²)]."""
    extra = np.sqrt(np.clip(max_squared - squared, 0.0, None))
    return np.concatenate([vectors, extra[:, None]], axis=1).astype(np.float32)


def stored_vectors(index) -> np.ndarray:
    """(N, D + 1) copy of the vectors an IndexHNSWFlat stores."""
    return _storage_view(index).copy()


def _storage_view(index) -> np.ndarray:
    """(N, D + 1) writable view of the index's storage: valid while `index` lives and until its next add."""
    import faiss

    storage = faiss.downcast_index(index.storage)
    return faiss.rev_swig_ptr(storage.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)


def rewrite_extra_coordinate(index, squared: np.ndarray, max_squared: float) -> None:
    """Every stored vector's last coordinate set to √(M² − |v|²) for the new running maximum M²."""
    _storage_view(index)[:, -1] = np.sqrt(np.clip(max_squared - squared, 0.0, None))


def sequential_graph(vectors_in_feed_order: np.ndarray):
    """faiss HNSW with one insert at a time in the given order (a batch `add` reorders by level)."""
    import faiss

    vectors = np.ascontiguousarray(vectors_in_feed_order, dtype=np.float32)
    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_LINKS, faiss.METRIC_L2)
    index.hnsw.efConstruction = HNSW_EXPLORE_AT_INSERT
    for position in range(len(vectors)):
        index.add(vectors[position:position + 1])
    return index


def recall(index, queries: np.ndarray, exact: np.ndarray, hits: int, explore: int, rows: np.ndarray) -> float:
    """Mean |found ∩ exact top `hits`| / hits; `rows` maps the index's positions to news rows."""
    index.hnsw.efSearch = explore
    _, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), hits)
    return float(np.mean([len(set(rows[f].tolist()) & set(e[:hits].tolist())) / hits
                          for f, e in zip(found, exact)]))


def measure(size: int, queries: int) -> dict:
    """Every variant at `size` news: recall@10 at each of EXPLORE_AT_10, recall@100 at EXPLORE_AT_100."""
    from newsrec.bench.bench_ann import vectors_at

    news, users, source = vectors_at(size, queries)
    exact = top_k_inner_product(torch.from_numpy(users), torch.from_numpy(news), 100, np.arange(len(news)))
    query = EuclideanTransform(1.0).query(users)
    explicit = EuclideanTransform.fit(news)
    builds = {f"Vespa dotproduct (simulated), {o}": (o, lambda v: dotproduct_graph(v)) for o in ORDERS}
    builds.update({f"explicit Φ (newsrec), {o}": (o, lambda v: sequential_graph(explicit.news(v))) for o in ORDERS})
    builds["none, random"] = ("random", lambda v: sequential_graph(no_transform(v)))
    variants = {}
    for name, (order, build) in builds.items():
        rows = feed_order(news, order)
        build_s, index = timed(lambda: build(news[rows]))
        variants[name] = {"order": order, "build_s": build_s,
                          "recall_at_10": [recall(index, query, exact, 10, ef, rows) for ef in EXPLORE_AT_10],
                          "recall_at_100": recall(index, query, exact, 100, EXPLORE_AT_100, rows)}
    norms = np.linalg.norm(news, axis=1)
    return {"size": size, "source": source, "norms": [float(norms.min()), float(np.median(norms)), float(norms.max())],
            "variants": variants}


# ------------------------------------------------------------------------------------ headroom

def headroom_recall(size: int, queries: int) -> dict:
    """Recall@100 of the embedded index's own build (`build_hnsw`) with Φ = (1 + h) × the maximum norm, for two
    random orders of the news (the spread between them is the build's own noise)."""
    from newsrec.bench.bench_ann import vectors_at

    news, users, _ = vectors_at(size, queries)
    exact = top_k_inner_product(torch.from_numpy(users), torch.from_numpy(news), 100, np.arange(len(news)))
    query, maximum = EuclideanTransform(1.0).query(users), EuclideanTransform.fit(news).max_norm
    found = {}
    for headroom in HEADROOMS:
        transform = EuclideanTransform((1 + headroom) * maximum)
        found[str(headroom)] = [recall(build_hnsw(transform.news(news[rows])), query, exact, 100, EXPLORE_AT_100, rows)
                                for rows in (feed_order(news, "random", seed) for seed in (0, 1))]
    return {"size": size, "recall_at_100": found}


def refeeds(norms: np.ndarray, feeds: int, headroom: float, trials: int = 200, seed: int = 0) -> dict:
    """News arriving in `feeds` equal feeds, in random order: Φ = (1 + h) × the first feed's maximum, grown to
    (1 + h) × the new maximum when a feed does not fit. Mean re-feeds of every news vector per history, and the
    share of histories with none."""
    rng = np.random.default_rng(seed)
    counts = []
    for _ in range(trials):
        maxima = [chunk.max() for chunk in np.array_split(norms[rng.permutation(len(norms))], feeds)]
        phi, count = (1 + headroom) * maxima[0], 0
        for maximum in maxima[1:]:
            if maximum > phi:
                phi, count = (1 + headroom) * maximum, count + 1
        counts.append(count)
    return {"mean_refeeds": float(np.mean(counts)), "share_without": float(np.mean(np.array(counts) == 0))}


def headroom_study(size: int, queries: int, feeds: int) -> dict:
    from newsrec.bench.bench_ann import vectors_at

    norms = np.linalg.norm(vectors_at(size, queries)[0].astype(np.float64), axis=1)
    return {**headroom_recall(size, queries), "feeds": feeds,
            "refeeds": {str(h): refeeds(norms, feeds, h) for h in HEADROOMS},
            "held_out": held_out_fit(norms)}


def held_out_fit(norms: np.ndarray, held_out: float = 0.01) -> dict:
    """The largest-norm `held_out` share of news held back from the first feed: the headroom they need."""
    ranked = np.sort(norms)
    first_max = ranked[int(len(ranked) * (1 - held_out)) - 1]
    return {"share": held_out, "needed_headroom": float(ranked[-1] / first_max - 1),
            "fit": {str(h): float(np.mean(ranked[int(len(ranked) * (1 - held_out)):] <= (1 + h) * first_max))
                    for h in HEADROOMS}}


def run(quick: bool) -> dict:
    sizes, queries = ([2_000], 200) if quick else ([10_000, 100_000], 1_000)
    return {"machine": machine(), "queries": queries, "links": HNSW_LINKS,
            "sizes": [measure(size, queries) for size in sizes],
            "headroom": headroom_study(sizes[-1], queries, feeds=7)}


# ------------------------------------------------------------------------------------ rendering

def render(data: dict) -> str:
    sections = [_size_section(entry, data["queries"]) for entry in data["sizes"]]
    return f"""## MIPS: explicit Φ vs Vespa's dotproduct (simulated) vs none

`python3 bench/run.py mips` (`bench/bench_mips.py`; the trained model of `python3 bench/model_table.py
--size small` when present, as the ANN row)

Vespa's `dotproduct` distance metric keeps a running maximum M of the norms inserted so far (from 1.0)
and computes each node's extra coordinate √(M² − |d|²) on the fly with the *current* M, at insert and
when neighbour lists are pruned; queries are scored by the exact inner product
(`searchlib/src/vespa/searchlib/tensor/mips_distance_transform.cpp` in vespa-engine/vespa). Simulated
here on faiss HNSW ({data.get('links', 16)} links, 200 explored at insert; the schema has {HNSW_LINKS}): one insert at a time in feed
order, every stored extra coordinate rewritten whenever M grows; queries [q, 0] (Euclidean order =
inner-product order). The explicit Φ (Φ = the corpus' maximum norm, fixed before feeding: h = 0 below) and no
transform are built the same way, one insert at a time, on the same vectors; {data['queries']:,} users'
recall vectors as queries; truth = exact inner product. recall@10 explores 10 / 100 / 200 / 500 (Vespa's
targetHits 10 + exploreAdditionalHits 0 / 90 / 190 / 490), recall@100 explores {EXPLORE_AT_100:,}
(newsrec's 20 × hits).

{chr(10).join(sections)}
**Vespa's published figures** (recall@10 in %, 400k Cohere wikipedia-22-12-simple paragraphs, 768-d,
max-links-per-node 48, 200 explored at insert, 10k queries; "Announcing Maximum Inner Product Search",
<https://blog.vespa.ai/announcing-maximum-inner-product-search/>, 2023-07-03, source
vespa-engine/blog `_posts/2023-07-03-announcing-maximum-inner-product-search.md`):

{_published_table()}

{_verdict(data["sizes"][-1])}

{_headroom_section(data["headroom"])}"""


def _size_section(entry: dict, queries: int) -> str:
    rows = [[name] + [f"{r:.4f}" for r in m["recall_at_10"]] + [f"{m['recall_at_100']:.4f}", f"{m['build_s']:.0f} s"]
            for name, m in entry["variants"].items()]
    low, median, high = entry["norms"]
    columns = ["indexed as, feed order"] + [f"recall@10, explore {ef}" for ef in EXPLORE_AT_10] + \
        [f"recall@100, explore {EXPLORE_AT_100:,}", "build"]
    return (f"**{entry['size']:,} news** ({entry['source']}; norms {low:.2f} / {median:.2f} / {high:.2f} "
            f"min / median / max):\n\n{table(columns, rows)}\n")


def _published_table() -> str:
    rows = [[f"Vespa dotproduct, {order}"] + [f"{v:.1f}" for v in values] for order, values in VESPA_PUBLISHED.items()]
    return table(["Vespa, feed order"] + [f"recall@10, explore {ef}" for ef in EXPLORE_AT_10], rows)


def _verdict(entry: dict) -> str:
    """What the largest size shows, stated from its numbers: Vespa's dotproduct vs the explicit Φ in the
    same feed order (the running maximum's cost), and the explicit Φ across orders (the order's)."""
    found = entry["variants"]

    def pair(name: str) -> str:
        return f"{found[name]['recall_at_10'][2]:.4f} / {found[name]['recall_at_100']:.4f}"

    same_order = "; ".join(f"{order}: {pair(f'Vespa dotproduct (simulated), {order}')} vs "
                           f"{pair(f'explicit Φ (newsrec), {order}')}" for order in ORDERS)
    change = [found[f"Vespa dotproduct (simulated), {o}"]["recall_at_100"] -
              found[f"explicit Φ (newsrec), {o}"]["recall_at_100"] for o in ORDERS]
    explicit = [found[f"explicit Φ (newsrec), {o}"]["recall_at_100"] for o in ORDERS]
    running_cost, order_effect = max(abs(c) for c in change), max(explicit) - min(explicit)
    larger = ("neither moves it by more than 0.005" if max(order_effect, running_cost) <= 0.005 else
              "the feed order matters more" if order_effect > running_cost else "the running maximum matters more")
    return (f"At {entry['size']:,} news, recall@10 (explore 200) / recall@100 (explore {EXPLORE_AT_100:,}), Vespa's "
            f"dotproduct vs the explicit Φ fed in the same order — {same_order}. Fed by descending norm, M is final "
            f"from the first insert, so the stored vectors and the graph are the explicit Φ's. The running maximum "
            f"changes recall@100 by {' / '.join(f'{c:+.4f}' for c in change)} ({' / '.join(ORDERS)}); the feed order "
            f"moves the explicit Φ's by {order_effect:.4f}: here {larger}.")


def _headroom_section(study: dict) -> str:
    rows = []
    for headroom, found in study["recall_at_100"].items():
        refeed, fit = study["refeeds"][headroom], study["held_out"]["fit"][headroom]
        rows.append([f"{float(headroom):.2f}", " / ".join(f"{r:.4f}" for r in found), f"{refeed['mean_refeeds']:.2f}",
                     f"{refeed['share_without']:.0%}", f"{fit:.0%}"])
    held = study["held_out"]
    return f"""**Headroom above Φ** (Φ = (1 + h) × the maximum news norm at the first feed, so that later news fit
under it without re-feeding every news vector; `newsrec-feed --phi-headroom H`): recall@100 of the
embedded index's own build (`build_hnsw`, one batch) at {study['size']:,} news with explore {EXPLORE_AT_100:,}, for two
random orders of the news (their spread is the build's own noise);
re-feeds when the same news arrive in {study['feeds']} equal feeds in random order (200 random histories; when
a feed does not fit, Φ grows to (1 + h) × its maximum and every news vector is re-fed); and the share of the
{held['share']:.0%} largest-norm news that fit when they are held back from the first feed (they need
h = {held['needed_headroom']:.2f} to all fit).

{table(["h", f"recall@100, explore {EXPLORE_AT_100:,}, two orders", f"re-feeds of all news in {study['feeds']} feeds (mean)",
        "histories with no re-feed", f"held-out top {held['share']:.0%} that fit"], rows)}

{_default_note(study)} Not measured: a larger Φ makes every distance larger and closeness
(1 / (1 + distance)) flatter, which shifts `closeness × category CTR` toward the CTR; it stays put as long
as Φ does."""


def _default_note(study: dict) -> str:
    """newsrec's default headroom against this study's numbers."""
    recalls = {float(h): found for h, found in study["recall_at_100"].items()}
    spread = max(max(found) - min(found) for found in recalls.values())
    cost = np.mean(recalls[DEFAULT_PHI_HEADROOM]) - np.mean(recalls[0.0]) if DEFAULT_PHI_HEADROOM in recalls else None
    free = [float(h) for h, r in study["refeeds"].items() if r["mean_refeeds"] == 0]
    smallest = f"the smallest h with no re-feed here is {min(free):g}" if free else "every h measured here re-feeds"
    change = f"; its recall@100 differs from h = 0 by {cost:+.4f} (spread between the two orders: up to {spread:.4f})" \
        if cost is not None else ""
    return f"newsrec's default is h = {DEFAULT_PHI_HEADROOM:g} (`pipeline/transforms.py`): {smallest}{change}."


if __name__ == "__main__":
    row_main(__doc__, run, render)
