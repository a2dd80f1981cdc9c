"""The ranking funnel's budgets: how many candidates each phase hands to the next.

    HNSW graph ──explores E──▶ phase 1: closeness ──best R──▶ phase 2: u_ra · r ──best G──▶ global phase
                 (totalTargetHits)                (total-rerank-count)            (rerank-count)

- `recall` R, the recall budget: the candidates phase 1 hands to the second phase, which re-ranks all of
  them with the user's ranking vector. Independent of `hits` and `offset`, so page 2 comes from the same
  candidates as page 1.
- E = `explored(...)` ≥ R: the nearest-neighbour candidates the graph search explores and exposes to
  the cheap first phase (closeness). It follows R and grows with the corpus (feed/exploration.py:
  max(10 R, base(N))), and is at least hits + offset, so every page has hits. The application's searcher
  follows N too: it counts the news (at most once a minute) and takes the same law (Exploration.java, checked
  against Python's by tests/fixtures/exploration.json), unless a request sets `recall_exploration`; a failed count
  explores VESPA_EXPLORATION, base(N) for about 70,000 news. Queries newsrec builds itself in YQL (a recall
  vector given) without a corpus size explore VESPA_EXPLORATION as well.
- `global_rerank` G ≤ R: the hits the global phase re-ranks in the container (the cross-encoder's budget, in
  rank profile unbert; recommendation has no global phase).

One definition for every path, checked equal by tests/test_schema_agreement.py: schemas/news.sd (the
recommendation profile's `total-rerank-count` = R, unbert's global-phase `rerank-count` = G), the default query
profile (`recall_budget` = R, read by the application's UserProfileSearcher, whose fallback exploration is
VESPA_EXPLORATION),
feed/queries.py (the bodies newsrec sends) and the embedded index (feed/local_backend.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from newsrec.feed import exploration
from newsrec.pipeline.errors import NewsrecError

MAX_RECALL_BUDGET = 10_000  # UserProfileSearcher refuses more (a graph search of 10 x 10k is already slow)
MAX_EXPLORATION = 1_000_000  # recall_exploration's bound in UserProfileSearcher
VESPA_EXPLORATION = 4_000  # UserProfileSearcher's when it cannot count the news: base(N) near N = 70,000 news


class BudgetError(NewsrecError):
    """A recall budget that is not an integer in 1..MAX_RECALL_BUDGET, or a global budget above it."""


@dataclass(frozen=True)
class Budgets:
    recall: int = 100  # R: candidates re-ranked by the second phase
    global_rerank: int = 20  # G: hits re-ranked by the global phase

    def __post_init__(self):
        if isinstance(self.recall, bool) or not isinstance(self.recall, int) \
                or not 1 <= self.recall <= MAX_RECALL_BUDGET:
            raise BudgetError(f"recall budget must be an integer from 1 to {MAX_RECALL_BUDGET}, got {self.recall!r}")
        if not 1 <= self.global_rerank <= self.recall:
            raise BudgetError(f"global-phase budget {self.global_rerank} must be from 1 to the recall budget "
                              f"{self.recall}")

    def explored(self, hits: int = 0, offset: int = 0, corpus_size: int | None = None) -> int:
        """E: nearest-neighbour candidates to explore and expose to the first phase for a page at `offset`;
        `corpus_size` None (a YQL query to Vespa, whose size the query does not know) explores
        VESPA_EXPLORATION."""
        if corpus_size is None:
            return max(exploration.PER_HIT * self.recall, VESPA_EXPLORATION, hits + offset)
        return max(exploration.explore(self.recall, corpus_size), hits + offset)


DEFAULT = Budgets()


def budgets(recall: int | None = None) -> Budgets:
    """The default budgets, with the recall budget `recall` when given."""
    return DEFAULT if recall is None else Budgets(recall=recall, global_rerank=min(DEFAULT.global_rerank, recall))
