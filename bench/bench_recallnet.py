"""Recallnet's retrieval key (issue 17) against the other recall vectors: UniRec's bases (top P and all), mean-pool's
and FUM's user vectors, and the planted recall oracle; Recall@{100, 200, 500, 1000} over the dev-day pool and over
all news, exactly (maximum inner product, every dev impression) and through an HNSW graph of each pool's news, as
the embedded index serves (the Euclidean transform, the funnel's exploration for a recall budget R = K; on the
recall oracle's 1,000 seeded dev impressions, beside exact search on the same ones); the critic's ablations, each
reward removed (exact only); training time.

    python3 bench/run.py recallnet        # world v2 small: trains the bases when bench/out/small-v2 lacks them
    python3 bench/bench_recallnet.py --quick

Bases (world v2 small, `bench/out/small-v2/runs`, as bench/model_table.py trains them): UniRec (3 + 2 epochs) is
Recallnet's base (its news vectors and ranking vector); mean-pool (3 epochs); FUM when runs/fum exists (the model
table's, 2 + 1 epochs; not trained here: hours on 2 cores). Every Recallnet variant trains here, from the same
UniRec checkpoint and seed: `newsrec train MIND --model recallnet --from runs/unirec` (evaluator 3 epochs, actor
2), with `--model-option` for the ablations. Quick: tiny data, 1 + 1 epochs.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from newsrec.bench.common import OUT, machine, row_main, table
from newsrec.pipeline.evaluation import RECALL_KS as KS

SMALL = OUT / "small-v2"
POOLS = ("dev-day pool", "all news")
SAMPLE = 1000  # the recall oracle's seeded dev impressions (pipeline/world_v2.py: recall_oracle)
VARIANTS = {  # row -> Recallnet model options
    "recallnet": (),
    "recallnet − evaluator (validator + referencer)": (("evaluator_weight", "0"),),
    "recallnet − validator (evaluator + referencer)": (("validator_weight", "0"),),
    "recallnet − referencer (evaluator + validator)": (("referencer_weight", "0"),),
    "recallnet, inner-product referencer": (("similarity", "inner"),),
}


def setup(quick: bool) -> tuple[Path, Path, tuple[int, int]]:
    """(mind dir, runs dir, (ranking epochs, recall epochs)); data and bases made when missing."""
    from newsrec.pipeline.demo_data import config_for, generate
    from newsrec.pipeline.training import TrainConfig, train

    root = OUT / "quick" / "tiny-v2" if quick else SMALL
    epochs = (1, 1) if quick else (3, 2)
    mind, runs = root / "mind", root / "runs"
    if not (mind / "dev" / "truth.txt").is_file():
        generate(mind, config_for("tiny" if quick else "small", 0, "v2"))
    for base in ("unirec", "meanpool"):
        if not (runs / base / "model.pt").is_file():
            train(mind, runs / base, TrainConfig(model=base, epochs=epochs[0], recall_epochs=epochs[1]),
                  log=lambda _: None)
    return mind, runs, epochs


def run(quick: bool) -> dict:
    from newsrec.pipeline.mind import read_mind

    mind, runs, epochs = setup(quick)
    dataset = read_mind(mind)
    sample = np.sort(np.random.default_rng(0).permutation(dataset.splits["dev"].num_impressions)[:SAMPLE])
    rows, graphs, training = [], {}, {}
    bases = [("unirec (top-P bases)", runs / "unirec", None), ("unirec (all bases)", runs / "unirec", 0),
             ("meanpool", runs / "meanpool", None)]
    if (runs / "fum" / "model.pt").is_file():
        bases.append(("fum (user vector)", runs / "fum", None))
    for name, model_dir, top_p in bases:
        rows.append(recall_row(name, model_dir, dataset, sample, graphs, top_p))
    for name, options in VARIANTS.items():
        model_dir = runs / ("recallnet" + "".join(f"-{k}={v}" for k, v in options))
        training[name] = train_variant(mind, runs / "unirec", model_dir, options, epochs, dataset)
        rows.append(recall_row(name, model_dir, dataset, sample, graphs, None, through_graph=not options))
    planted = json.loads((mind / "planted.json").read_text()).get("recall_oracle", {})
    return {"machine": machine(), "data": str(mind.relative_to(OUT.parent.parent)), "epochs": epochs,
            "impressions": dataset.splits["dev"].num_impressions, "sample": len(sample),
            "pool_sizes": {"dev-day pool": int(len(np.unique(dataset.splits["dev"].candidates))),
                           "all news": len(dataset.news)},
            "rows": rows, "oracle": planted, "training": training}


def train_variant(mind: Path, base: Path, model_dir: Path, options, epochs, dataset) -> dict:
    """Train the variant, or keep its checkpoint when one trained with the same settings is there (an
    interrupted or extended run); the figures come from the checkpoint's own training report either way."""
    from newsrec.pipeline.checkpoint import checkpoint_exists, load_checkpoint
    from newsrec.pipeline.training import TrainConfig, train

    config = TrainConfig(model="recallnet", base=str(base), epochs=epochs[0], recall_epochs=epochs[1],
                         model_options=options)
    summary = load_checkpoint(model_dir).training if checkpoint_exists(model_dir) else None
    same = summary is not None and _plain(summary["train_config"]) == _plain(dataclasses.asdict(config))
    if not same:
        summary = train(mind, model_dir, config, log=lambda _: None, dataset=dataset)
    stages = {s["stage"]: s for s in summary["stages"]}
    return {"stage_seconds": {k: sum(e["seconds"] for e in s["epochs"]) for k, s in stages.items()},
            "impressions_per_s": {k: [round(e["impressions_per_s"]) for e in s["epochs"]] for k, s in stages.items()},
            "valid_evaluator_auc": stages["evaluator"]["best_metric"],
            "valid_recall@100": [e["valid_recall@100"] for e in stages["recall"]["epochs"]],
            "best_actor_epoch": stages["recall"]["best_epoch"]}


def _plain(values: dict) -> dict:
    return json.loads(json.dumps(values))


def recall_row(name: str, model_dir: Path, dataset, sample: np.ndarray, graphs: dict, top_p: int | None,
               through_graph: bool = True) -> dict:
    """Recall@K of the model's recall vectors: exact over every dev impression; exact and (unless not
    `through_graph`) through an HNSW graph over each pool's news, on the sampled impressions."""
    from newsrec.pipeline.evaluation import recall_pools, score_split
    from newsrec.pipeline.inference import top_k_inner_product

    _, scored = score_split(model_dir, dataset, "dev", "cpu", top_p)
    dev = dataset.splits["dev"]
    news, users = scored.news_matrix.numpy(), scored.recall_users.numpy()
    row = {"name": name, "exact": {}, "exact_sample": {}, "ann_sample": {}}
    for pool, rows in recall_pools(dataset, "dev").items():
        top = top_k_inner_product(scored.recall_users, scored.news_matrix, max(KS), rows)
        row["exact"][pool] = recall(top, dev, np.arange(dev.num_impressions))
        row["exact_sample"][pool] = recall(top[sample], dev, sample)
        if through_graph:
            key = (str(model_dir), pool)
            graph = graphs[key] if key in graphs else graphs.setdefault(key, Graph(news, rows))
            row["ann_sample"][pool] = {k: recall(graph.search(users[sample], k), dev, sample, (k,))[k] for k in KS}
    return row


def recall(top: np.ndarray, behaviors, impressions: np.ndarray, ks=KS) -> dict[int, float]:
    from newsrec.pipeline.features import clicked_sets
    from newsrec.pipeline.metrics import recall_at_k

    clicked_offsets, clicked = clicked_sets(behaviors, impressions)
    return {k: recall_at_k(top[:, :k], clicked_offsets, clicked)[0] for k in ks}


class Graph:
    """The embedded index's nearest-neighbour path over one pool's news (an index of the day's news, or of all):
    the Euclidean (MIPS) transform, the same faiss HNSW settings, the funnel's exploration E for a recall
    budget R = K (feed/funnel.py), of which phase 1 keeps the best R."""

    def __init__(self, news: np.ndarray, rows: np.ndarray):
        from newsrec.feed.local_backend import build_hnsw
        from newsrec.pipeline.transforms import EuclideanTransform

        self.rows = rows
        self.transform = EuclideanTransform.fit(news[rows])
        self.index = build_hnsw(self.transform.news(news[rows]))

    def search(self, queries: np.ndarray, recall_budget: int) -> np.ndarray:
        """(Q, R) news rows, best first; -1 where the graph found fewer (never a click)."""
        from newsrec.feed.funnel import budgets
        from newsrec.feed.local_backend import graph_search

        explored = budgets(recall_budget).explored(corpus_size=len(self.rows))
        _, found = graph_search(self.index, self.transform.query(queries), explored, np.ones(len(self.rows), bool))
        found = found[:, :recall_budget]
        return np.where(found >= 0, self.rows[np.maximum(found, 0)], -1)


def render(data: dict) -> str:
    header = ["recall vector"] + [f"R@{k} {'day' if p == 'dev-day pool' else 'all'}" for p in POOLS for k in KS]
    exact = [[r["name"]] + [_at(r['exact'][p], k) for p in POOLS for k in KS] for r in data["rows"]]
    sample = [[r["name"]] + [f"{_at(r['ann_sample'][p], k)} / {_at(r['exact_sample'][p], k)}"
                             for p in POOLS for k in KS] for r in data["rows"] if r["ann_sample"]]
    oracle = data.get("oracle", {})
    if oracle:
        sample.append(["recall oracle (planted top-K)"] + [f"— / {_at(oracle[p], k)}" for p in POOLS for k in KS])
    training = [[name, f"{t['stage_seconds']['evaluator']:.0f}", f"{t['stage_seconds']['recall']:.0f}",
                 " / ".join(f"{v:,}" for v in t["impressions_per_s"]["evaluator"] + t["impressions_per_s"]["recall"]), f"{t['valid_evaluator_auc']:.4f}",
                 " → ".join(f"{v:.4f}" for v in t["valid_recall@100"])] for name, t in data["training"].items()]
    sizes, epochs = data["pool_sizes"], data["epochs"]
    return "\n".join([
        "## Recallnet: the critic-trained retrieval key against the other recall vectors", "",
        "`python3 bench/run.py recallnet` (`bench/bench_recallnet.py`)", "",
        f"Data: {data['data']} ({data['impressions']:,} dev impressions; pools: dev-day {sizes['dev-day pool']:,} news, "
        f"all {sizes['all news']:,}). Bases {epochs[0]} + {epochs[1]} epochs; every Recallnet trained from the UniRec "
        f"checkpoint (its news vectors), evaluator {epochs[0]} epochs, actor {epochs[1]}.", "",
        "Exact maximum inner product, every dev impression:", "", table(header, exact), "",
        f"Through an HNSW graph / exact, on the recall oracle's {data['sample']:,} seeded dev impressions: one graph "
        "per pool (the day's news, or all), with the embedded index's settings, the Euclidean transform and the "
        "funnel's exploration for a recall budget R = K (phase 1's best R of E explored); the ablations exact only:",
        "", table(header, sample), "",
        "Training on this CPU (seconds of the training loops, validation excluded; train impressions per second, "
        "each epoch; the evaluator's best validation AUC; the actor's validation Recall@100 by epoch, the best kept):",
        "", table(["variant", "evaluator s", "actor s", "impressions/s", "evaluator valid AUC", "actor valid R@100"],
                  training)] + ([""] + [data["note"]] if data.get("note") else []))


def _at(values: dict, k: int) -> str:
    """Recall@K from a row made now (int keys) or read back from JSON (str keys); "—" where K exceeds the pool."""
    value = values.get(k, values.get(str(k)))
    return "—" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    row_main(__doc__, run, render)
