"""Maximum inner product search as Euclidean nearest neighbour (Bachrach et al. 2014, §3.1).

News vector r (D) -> [r, sqrt(Φ² − |r|²)] with one Φ ≥ every news norm, fixed before feeding; query
vector q -> [q, 0]. Then |q' − r'|² = |q|² + Φ² − 2 q·r, so the Euclidean nearest neighbours of q' are
exactly the news with the largest inner product q·r, whatever the feed order.

Vespa's built-in `dotproduct` metric does the same transformation with a *running* maximum norm M (from
1.0) that it applies on the fly: every distance computed while the graph is built uses the current M for
every node, already-inserted ones included, and queries are scored by the exact inner product.
`bench/bench_mips.py` simulates it and compares it with this explicit Φ on the same vectors.

Headroom: `fit(..., headroom=h)` sets Φ = (1 + h) × the largest norm, so that news fed later with norms up to
Φ fit without changing Φ (measured in BENCHMARKS.md, "MIPS"). News whose norm exceeds the stored Φ cannot be
represented (the square root would be of a negative number): `needs_retransform` says so, and
`newsrec-feed` (`feed.connect.choose_transform`) then re-transforms and re-writes every news vector with the
larger Φ, because Φ enters every news vector's extra coordinate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


DEFAULT_PHI_HEADROOM = 0.5  # Φ = 1.5 × the largest news norm of the first feed (BENCHMARKS.md, "MIPS")


@dataclass(frozen=True)
class EuclideanTransform:
    max_norm: float  # Φ

    @staticmethod
    def fit(news_vectors: np.ndarray, headroom: float = 0.0) -> "EuclideanTransform":
        """Φ = (1 + headroom) × the largest norm of `news_vectors` (N, D)."""
        if headroom < 0:
            raise ValueError(f"headroom must be ≥ 0 (Φ below the largest norm cannot hold it), got {headroom}")
        norms = np.linalg.norm(np.asarray(news_vectors, dtype=np.float64), axis=1)
        return EuclideanTransform(float((1.0 + headroom) * norms.max(initial=0.0)))

    def news(self, vectors: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, D + 1) float32: [r, sqrt(Φ² − |r|²)]."""
        vectors = np.asarray(vectors, dtype=np.float64)
        squared = np.einsum("nd,nd->n", vectors, vectors)
        if squared.size and squared.max() > self.max_norm ** 2 * (1 + 1e-9):
            raise ValueError(f"a news vector has norm {np.sqrt(squared.max()):.6g} > Φ = {self.max_norm:.6g}; "
                             "re-transform the corpus with the larger Φ")
        extra = np.sqrt(np.clip(self.max_norm ** 2 - squared, 0.0, None))
        return np.concatenate([vectors, extra[:, None]], axis=1).astype(np.float32)

    def query(self, vectors: np.ndarray) -> np.ndarray:
        """(B, D) -> (B, D + 1) float32: [q, 0]."""
        vectors = np.asarray(vectors, dtype=np.float32)
        return np.concatenate([vectors, np.zeros((len(vectors), 1), dtype=np.float32)], axis=1)

    def needs_retransform(self, new_vectors: np.ndarray) -> bool:
        """True when a vector's norm exceeds Φ: the corpus must be re-transformed with a larger Φ."""
        norms = np.linalg.norm(np.asarray(new_vectors, dtype=np.float64), axis=1)
        return bool(norms.size and norms.max() > self.max_norm)


def running_max_transform(vectors_in_feed_order: np.ndarray, initial_max_norm: float = 1.0) -> np.ndarray:
    """Each vector transformed once with the running maximum norm at its own position (from
    `initial_max_norm`) and never updated afterwards. This is *not* what Vespa's `dotproduct` metric does
    (Vespa recomputes every node's extra coordinate with the current maximum; `bench/bench_mips.py`
    simulates that): it is a frozen-at-insert variant, kept only while bench/bench_ann.py still has its
    "running max, feed order" rows."""
    vectors = np.asarray(vectors_in_feed_order, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    running = np.maximum.accumulate(np.maximum(norms, initial_max_norm))
    extra = np.sqrt(np.clip(running ** 2 - norms ** 2, 0.0, None))
    return np.concatenate([vectors, extra[:, None]], axis=1).astype(np.float32)


def no_transform(vectors: np.ndarray) -> np.ndarray:
    """Plain vectors with a zero extra coordinate: Euclidean NN on raw vectors (not MIPS)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return np.concatenate([vectors, np.zeros((len(vectors), 1), dtype=np.float32)], axis=1)
