"""How many HNSW candidates to explore for a recall budget (placeholder until calibrated by bench/bench_ann.py)."""
from __future__ import annotations

import math

FACTOR = 20
VESPA_FACTOR = 20.0


def explore(recall_budget: int, corpus_size: int | None = None) -> int:
    """Candidates to explore: 20 x the budget, at most the corpus."""
    explored = max(recall_budget, math.ceil(recall_budget * FACTOR))
    return explored if corpus_size is None else max(1, min(explored, corpus_size))
