"""ANN recall@100 against exact maximum inner product: the explicit Euclidean transform (global Φ)
vs Vespa's running-maximum transform in feed order vs no transform, with the embedded index's HNSW
(faiss, 16 links, 200 explored at insert as in schemas/news.sd; at query time newsrec explores
max(200, 20 x hits) = 2000 candidates for 100 hits, like Vespa's hnsw.exploreAdditionalHits = 1900).

    python bench/bench_ann.py --model bench/out/small/runs/unirec --mind bench/out/small/mind
    python bench/bench_ann.py --synthetic 100000

Queries are user recall vectors (model) or Gaussian vectors (synthetic); news vectors have spread-out
norms, which is what makes the transform matter.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from feed.local_backend import build_hnsw
from pipeline.inference import top_k_inner_product
from pipeline.transforms import EuclideanTransform, no_transform, running_max_transform


def model_vectors(model_dir: str, mind_dir: str, queries: int) -> tuple[np.ndarray, np.ndarray]:
    from feed.feeding import embed_corpus
    from pipeline.mind import read_mind
    from pathlib import Path

    corpus = embed_corpus(read_mind(mind_dir), model_dir, "auto", Path(model_dir).parent / "cache")
    users = corpus.user_recall[np.random.default_rng(0).permutation(len(corpus.user_recall))[:queries]]
    return corpus.news_vectors, users


def synthetic_vectors(count: int, queries: int, dim: int = 64, topics: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Topic-clustered news vectors with spread-out norms; users mix two topics."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(topics, dim))
    news = (centers[rng.integers(0, topics, count)] + 0.5 * rng.normal(size=(count, dim)))
    news *= rng.lognormal(0.0, 0.3, size=(count, 1))
    users = centers[rng.integers(0, topics, queries)] + centers[rng.integers(0, topics, queries)]
    return news.astype(np.float32), (users + 0.3 * rng.normal(size=(queries, dim))).astype(np.float32)


def recall_at_100(indexed: np.ndarray, queries: np.ndarray, exact: np.ndarray, ef_search: int) -> tuple[float, float]:
    import faiss

    index = build_hnsw(indexed)
    index.hnsw.efSearch = ef_search
    started = time.perf_counter()
    _, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), 100)
    qps = len(queries) / (time.perf_counter() - started)
    overlap = [len(set(found[i]) & set(exact[i])) / 100 for i in range(len(queries))]
    return float(np.mean(overlap)), qps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--mind")
    parser.add_argument("--synthetic", type=int, default=0, help="number of generated news vectors instead")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--ef-search", type=int, default=2000, help="graph candidates explored (newsrec: 20 x 100)")
    args = parser.parse_args()
    news, users = (synthetic_vectors(args.synthetic, args.queries) if args.synthetic
                   else model_vectors(args.model, args.mind, args.queries))
    exact = top_k_inner_product(torch.from_numpy(users), torch.from_numpy(news), 100, np.arange(len(news)))
    norms = np.linalg.norm(news, axis=1)
    print(f"{len(news)} news vectors (norm min {norms.min():.3f}, median {np.median(norms):.3f}, max {norms.max():.3f}), "
          f"{len(users)} queries, efSearch {args.ef_search}")
    query = EuclideanTransform(1.0).query(users)
    variants = {
        "explicit transform, global Φ (newsrec)": EuclideanTransform.fit(news).news(news),
        "running max, feed order as given (Vespa dotproduct)": running_max_transform(news),
        "running max, feed order by ascending norm": _in_order(running_max_transform, news, np.argsort(norms)),
        "no transform (Euclidean on raw vectors)": no_transform(news),
    }
    for name, indexed in variants.items():
        recall, qps = recall_at_100(indexed, query, exact, args.ef_search)
        print(f"  {name:<55} recall@100 {recall:.4f}   {qps:8.0f} queries/s")


def _in_order(transform, news: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Transform in the given feed order, then put rows back in their original positions."""
    out = np.empty((len(news), news.shape[1] + 1), dtype=np.float32)
    out[order] = transform(news[order])
    return out


if __name__ == "__main__":
    main()
