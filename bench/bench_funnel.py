"""The ranking funnel through the serving path, per recall budget R (feed/funnel.py): phase 1's recall@R
against exact maximum inner product, the dev ranking metrics after phase 2 beside the same model's offline
metrics (every candidate scored: no funnel), and the latency of one `recommend` on the embedded index beside
the page-only funnel newsrec had before (R = hits = 10, as targetHits = hits).

    python3 bench/run.py funnel         # recorded in BENCHMARKS.md
    python3 bench/bench_funnel.py --quick

Data: `demo-data --size small` and the UniRec model of `bench/model_table.py --size small` when present in
bench/out/small (else the tiny data and a tiny model: --quick). Everything goes through `newsrec-feed`'s
library (run_feed) into an embedded index, and through `LocalBackend.recommend`.
"""
from __future__ import annotations

import tempfile
import time

import numpy as np

from newsrec.bench.common import OUT, machine, row_main, table, tiny_setup
from newsrec.feed.connect import Target
from newsrec.feed.funnel import DEFAULT, budgets
from newsrec.feed.job import FeedOptions, run_feed
from newsrec.feed.local_backend import LocalBackend
from newsrec.pipeline.metrics import ranking_metrics
from newsrec.pipeline.mind import read_mind

BUDGETS = [100, 200, 500, 1000]
BASELINE = 10  # the page-only funnel: R = hits
SMALL_MODEL, SMALL_MIND = OUT / "small" / "runs" / "unirec", OUT / "small" / "mind"


def data(quick: bool) -> tuple[str, str, str]:
    if not quick and (SMALL_MODEL / "model.pt").is_file():
        return str(SMALL_MIND), str(SMALL_MODEL), "demo-data --size small, UniRec of bench/model_table.py"
    mind, model = tiny_setup()
    return str(mind), str(model), "demo-data --size tiny, a 1 + 1 epoch UniRec (no small model in bench/out/small)"


class Served:
    """One fed index and the dev impressions whose user it holds."""

    def __init__(self, mind_dir: str, model_dir: str, index_dir: str, impressions: int):
        run_feed(mind_dir, Target(index_dir=index_dir), FeedOptions(model_dir=model_dir), log=lambda _: None)
        self.backend = LocalBackend(index_dir)
        dataset = read_mind(mind_dir)
        self.dev, self.news_ids, self.users = dataset.splits["dev"], dataset.news.ids, dataset.users
        known = [i for i in range(self.dev.num_impressions)
                 if self.users[self.dev.user_index[i]] in self.backend.docs["user"]]
        self.impressions = np.random.default_rng(0).permutation(known)[:impressions]

    def user(self, impression: int) -> tuple[str, dict]:
        user_id = self.users[self.dev.user_index[impression]]
        return user_id, self.backend.docs["user"][user_id]

    def served(self, user_id: str, recall_budget: int) -> dict[str, tuple[int, float]]:
        """news id -> (rank, relevance) of the first R + 400 served hits: the re-ranked R, then phase 1's order."""
        ranked, offset = {}, 0
        while offset < recall_budget + 400 and offset <= 1000:
            page = self.backend.recommend(user_id, 400, offset=offset, recall_budget=recall_budget).hits
            ranked.update({hit.news_id: (offset + i, hit.relevance) for i, hit in enumerate(page)})
            offset += 400
            if len(page) < 400:
                break
        return ranked

    def exact_top(self, user: dict, k: int) -> set[str]:
        """The k news of largest inner product with the recall vector, read news excluded (fewer if fewer)."""
        scores = self.backend._vectors @ np.asarray(user["recall_embedding"]["values"], dtype=np.float32)
        for news_id in user.get("has_read_items", []):
            if news_id in self.backend._position:
                scores[self.backend._position[news_id]] = -np.inf
        best = np.argsort(-scores, kind="stable")[:k]
        return {self.backend._news_order[row] for row in best[np.isfinite(scores[best])]}


def funnel_row(served: Served, recall_budget: int) -> dict:
    """Phase 1's recall@R and the dev metrics of the served ranking (candidates beyond the served list last)."""
    recalls, labels, scores, offsets = [], [], [], [0]
    for impression in served.impressions:
        user_id, user = served.user(impression)
        ranked = served.served(user_id, recall_budget)
        reranked = {n for n, (rank, _) in ranked.items() if rank < recall_budget}
        exact = served.exact_top(user, recall_budget)
        recalls.append(len(reranked & exact) / len(exact))
        candidates = [served.news_ids[n] for n in served.dev.candidates_of(impression)]
        scores.extend(-float(ranked.get(news_id, (1e9, 0))[0]) for news_id in candidates)  # served order
        labels.extend(served.dev.labels_of(impression).tolist())
        offsets.append(len(labels))
    metrics = ranking_metrics(np.array(labels), np.array(scores), np.array(offsets))
    return {"budget": recall_budget, "recall": float(np.mean(recalls)), **metrics.as_dict()}


def offline_metrics(served: Served) -> dict:
    """Every candidate scored by u_ra · r (the second phase's score with no funnel before it)."""
    labels, scores, offsets = [], [], [0]
    for impression in served.impressions:
        _, user = served.user(impression)
        rows = [served.backend._position[served.news_ids[n]] for n in served.dev.candidates_of(impression)]
        ranking = np.asarray(user["ranking_embedding"]["values"], dtype=np.float32)
        scores.extend((served.backend._vectors[rows] @ ranking).tolist())
        labels.extend(served.dev.labels_of(impression).tolist())
        offsets.append(len(labels))
    return ranking_metrics(np.array(labels), np.array(scores), np.array(offsets)).as_dict()


def latency_ms(served: Served, recall_budget: int, queries: int) -> float:
    """Median milliseconds of one 10-hit `recommend` with recall budget R, over `queries` users."""
    times = []
    for impression in served.impressions[:queries]:
        user_id, _ = served.user(impression)
        started = time.perf_counter()
        served.backend.recommend(user_id, 10, recall_budget=recall_budget).hits
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def brute_force_ms(served: Served, queries: int) -> float:
    """Median milliseconds of an exact inner product with every news vector (numpy), for scale."""
    vectors, times = served.backend._vectors, []
    for impression in served.impressions[:queries]:
        query = np.asarray(served.user(impression)[1]["recall_embedding"]["values"], dtype=np.float32)
        started = time.perf_counter()
        np.argpartition(-(vectors @ query), 100)[:100]
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def run(quick: bool) -> dict:
    mind_dir, model_dir, source = data(quick)
    impressions, queries = (100, 50) if quick else (1000, 200)
    with tempfile.TemporaryDirectory() as index:
        served = Served(mind_dir, model_dir, index, impressions)
        rows = [funnel_row(served, budget) for budget in [BASELINE, *BUDGETS]]
        latency = {budget: latency_ms(served, budget, queries) for budget in [BASELINE, *BUDGETS]}
        return {"machine": machine(), "source": source, "news": served.backend.news_count,
                "impressions": len(served.impressions), "queries": queries, "rows": rows,
                "offline": offline_metrics(served), "latency_ms": {str(k): v for k, v in latency.items()},
                "explored": {str(b): budgets(b).explored(10, 0, served.backend.news_count)
                             for b in [BASELINE, *BUDGETS]},
                "brute_force_ms": brute_force_ms(served, queries), "default": DEFAULT.recall}


def render(data: dict) -> str:
    latency, explored = data["latency_ms"], data["explored"]
    base = latency[str(BASELINE)]
    rows = []
    for row in data["rows"]:
        budget = str(row["budget"])
        name = f"{row['budget']:,}" + (" (R = hits, as before)" if row["budget"] == BASELINE else "") \
            + (" (default)" if row["budget"] == data["default"] else "")
        rows.append([name, f"{int(explored[budget]):,}", f"{row['recall']:.4f}", f"{row['auc']:.4f}",
                     f"{row['mrr']:.4f}", f"{row['ndcg10']:.4f}", f"{latency[budget]:.2f}",
                     f"{latency[budget] / base:.1f}×"])
    offline = data["offline"]
    rows.append(["no funnel (every candidate scored offline)", "", "", f"{offline['auc']:.4f}",
                 f"{offline['mrr']:.4f}", f"{offline['ndcg10']:.4f}", "", ""])
    return f"""## The ranking funnel: recall budget vs quality and latency

`python3 bench/run.py funnel`

Through the serving path (`newsrec-feed` into the embedded index, then `LocalBackend.recommend`) on
{data['source']}: {data['news']:,} news; {data['impressions']:,} dev impressions. Per recall budget R: the
neighbours explored (E, feed/exploration.py), phase 1's recall@R (the R best by closeness against the
exact top R by inner product, read news excluded), the dev metrics of the served ranking (the R re-ranked
by u_ra · r first, then the rest in first-phase order; candidates not served last), and the median
latency of one 10-hit `recommend` over {data['queries']} users, single process, against R = 10 (the
page-only re-ranking of before, here with the new exploration) in the same run. The served metrics are
bounded by what phase 1 retrieves: a candidate the recall vector does not bring within the served list
cannot be ranked by the second phase, whatever the ANN recall. For scale: an exact inner product with every news vector
(numpy) takes {data['brute_force_ms']:.2f} ms per query here.

{table(["recall budget R", "explored E", "phase-1 recall@R", "AUC", "MRR", "nDCG@10", "ms / query", "vs R = 10"],
       rows)}"""


if __name__ == "__main__":
    row_main(__doc__, run, render)
