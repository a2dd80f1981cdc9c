"""UNBERT in the funnel (issues 16 and 32): the two-tower model's ranking of each dev impression's candidates, then the
cross-encoder re-scoring its best N in the global phase, fused with the two-tower's score as rank profile unbert
serves it (normalize_linear of each, added), beside the other fusions measured on the same scores (the
cross-encoder's score in place of the two-tower's, as the profile did before issue 32; reciprocal_rank of each,
added) and the two-tower alone, through the serving path of the embedded index; per-query latency of `recommend`
for each N beside the funnel without re-ranking; UNBERT's training throughput beside the two-tower's.

    python3 bench/run.py unbert          # world v2 small; needs the three models below
    python3 bench/bench_unbert.py --quick

Models (world v2 small, the live service's, bench/out/live: `python3 bench/run.py live` prepares the data and the
two-tower): the two-tower is the live service's mean-pool (v2-meanpool); the re-ranker is trained on CPU by

    newsrec train bench/out/live/v2-small --out bench/out/live/v2-unbert --model unbert --epochs 1 --lr 5e-5 \\
        --batch-size 32 --max-impressions 600 --model-option title_tokens=24 --model-option history_tokens=64

(the latest 600 train impressions, one epoch: what fits this CPU beside the other rows; bench/gpu_unbert.sh trains on
every impression with the full budgets when a GPU is lent). Other models: NEWSREC_UNBERT_MIND,
NEWSREC_UNBERT_TWO_TOWER, NEWSREC_UNBERT_DIR. Everything is fed with `newsrec-feed --reranker` into an embedded
index; scores come from the index (`ranking_scores`, `rerank_scores`: the ONNX model on the fed word pieces) and are
checked against torch's. Quick: tiny data, a tiny UNBERT (one epoch on 200 impressions).
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

from newsrec.bench.common import OUT, machine, row_main, table, tiny_setup

BUDGETS = (10, 20)
SAMPLE = 300  # dev impressions measured (seeded); every candidate of each is scored by the two-tower
LATENCY_USERS = 30
SMALL = OUT / "live"
TRAIN_COMMAND = ("newsrec train bench/out/live/v2-small --out bench/out/live/v2-unbert --model unbert --epochs 1 "
                 "--lr 5e-5 --batch-size 32 --max-impressions 600 --model-option title_tokens=24 "
                 "--model-option history_tokens=64")


def setup(quick: bool):
    """(mind dir, two-tower dir, re-ranker dir)."""
    if not quick:
        reranker = Path(os.environ.get("NEWSREC_UNBERT_DIR", SMALL / "v2-unbert"))  # or bench/gpu_unbert.sh's model
        mind = Path(os.environ.get("NEWSREC_UNBERT_MIND", SMALL / "v2-small"))
        two_tower = Path(os.environ.get("NEWSREC_UNBERT_TWO_TOWER", SMALL / "v2-meanpool"))
        for path in (two_tower, reranker):
            if not (path / "model.pt").is_file():
                raise SystemExit(f"{path} has no model: see bench/bench_unbert.py (re-ranker: {TRAIN_COMMAND})")
        return mind, two_tower, reranker
    mind, two_tower = tiny_setup()
    reranker = OUT / "tiny" / "unbert"
    if not (reranker / "model.pt").is_file():
        from newsrec.pipeline.training import TrainConfig, train

        train(mind, reranker, TrainConfig(model="unbert", epochs=1, batch_size=32, learning_rate=5e-5,
                                          max_impressions=200, model_options=(("history_tokens", "64"),)),
              log=lambda _: None)
    return mind, two_tower, reranker


def run(quick: bool) -> dict:
    from newsrec.feed.job import FeedOptions, run_feed
    from newsrec.feed.connect import Target
    from newsrec.feed.local_backend import LocalBackend
    from newsrec.feed.serving_eval import evaluate_funnel
    from newsrec.pipeline.mind import read_mind

    mind, two_tower, reranker = setup(quick)
    dataset = read_mind(mind)
    index = OUT / ("quick" if quick else "") / "unbert-index"
    started = time.perf_counter()
    run_feed(str(mind), Target(index_dir=str(index)),
             FeedOptions(model_dir=str(two_tower), reranker=str(reranker)), log=lambda _: None,
             dataset=dataset)
    feed_seconds = time.perf_counter() - started
    backend = LocalBackend(index)
    started = time.perf_counter()
    funnel = evaluate_funnel(two_tower, reranker, dataset, backend, BUDGETS, sample=40 if quick else SAMPLE)
    evaluation_seconds = time.perf_counter() - started
    from newsrec.feed.reranking import FUSION
    from newsrec.pipeline.checkpoint import load_checkpoint

    kind = load_checkpoint(two_tower).kind
    return {"machine": machine(), "two_tower": kind, "reranker": _describe(reranker),
            "impressions": funnel.impressions, "pairs": funnel.pairs,
            "max_rerank_difference": funnel.max_rerank_difference, "served_fusion": FUSION,
            "rows": [_metrics(f"two-tower alone ({kind})", funnel.two_tower)] +
                    [{**_metrics(f"+ UNBERT over the best {n}, {fusion}", m), "fusion": fusion, "n": n}
                     for (fusion, n), m in sorted(funnel.fused.items(), key=lambda item: (item[0][1], item[0][0]))],
            "latency": latency(backend, dataset, 10 if quick else LATENCY_USERS),
            "training": training_throughput(mind, two_tower, reranker),
            "feed_seconds": feed_seconds, "evaluation_seconds": evaluation_seconds}


def _metrics(name: str, metrics) -> dict:
    return {"name": name, "auc": metrics.auc, "mrr": metrics.mrr, "ndcg5": metrics.ndcg5, "ndcg10": metrics.ndcg10}


def _describe(reranker) -> dict:
    from newsrec.pipeline.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(reranker)
    config, summary = checkpoint.model.config, checkpoint.training
    stage = summary.get("stages", [{}])[0]
    epochs = stage.get("epochs", [{}])
    return {"dir": str(reranker), "lm": f"{config.lm.get('model_type')} {config.lm.get('num_hidden_layers')} layers "
                                         f"× {config.lm.get('hidden_size')}",
            "title_tokens": config.title_tokens, "history_tokens": config.history_tokens,
            "train_config": summary.get("train_config", {}), "valid_auc": stage.get("best_metric"),
            "train_seconds": sum(e.get("seconds", 0.0) for e in epochs),
            "train_pairs": sum(e.get("samples", 0) for e in epochs)}


def latency(backend, dataset, users: int) -> list[dict]:
    """Median ms of one `recommend` (10 hits) without re-ranking and with UNBERT over the best N, per N."""
    chosen = [u for u in dataset.users if any(backend.docs["user"][u].get("history_tokens", {}).get("values", []))]
    chosen = chosen[:users]
    backend.recommend(chosen[0], ranking="unbert", rerank_budget=1)  # opens the ONNX session once

    def median_ms(**options) -> float:
        times = []
        for user in chosen:
            started = time.perf_counter()
            backend.recommend(user, hits=10, **options)
            times.append(time.perf_counter() - started)
        return 1000 * statistics.median(times)

    base = median_ms()
    rows = [{"name": "recommendation (no re-ranking)", "ms": base, "ratio": 1.0}]
    for n in BUDGETS:
        ms = median_ms(ranking="unbert", rerank_budget=n)
        rows.append({"name": f"unbert (fused), N = {n}", "ms": ms, "ratio": ms / base})
    return rows


def training_throughput(mind, two_tower, reranker, steps: int = 3) -> dict:
    """Training pairs (candidate, user) per second of one train step, UNBERT vs the two-tower, same rows."""
    import torch

    from newsrec.pipeline.checkpoint import load_checkpoint
    from newsrec.pipeline.features import make_batch, model_news_features
    from newsrec.pipeline.mind import read_mind
    from newsrec.pipeline.training import ranking_samples, train_step

    behaviors = read_mind(mind).splits["train"]
    result = {}
    for name, directory in (("two-tower", two_tower), ("unbert", reranker)):
        checkpoint = load_checkpoint(directory)
        model = checkpoint.model
        features = model_news_features(read_mind(mind).news, checkpoint.vocab, checkpoint.text, model.inputs(),
                                       torch.device("cpu"), checkpoint.cache_dir)
        impressions, candidates = ranking_samples(behaviors, np.arange(behaviors.num_impressions), 4,
                                                  np.random.default_rng(0))
        batch = make_batch(features, behaviors, impressions[:32], candidates[:32], np.zeros(32, np.int64),
                           checkpoint.max_history, torch.device("cpu"))
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-9)
        train_step(model, batch, optimizer)  # warm-up
        seconds = []
        for _ in range(steps):
            started = time.perf_counter()
            train_step(model, batch, optimizer)
            seconds.append(time.perf_counter() - started)
        result[name] = {"pairs_per_second": candidates[:32].size / statistics.median(seconds)}
    result["ratio"] = result["two-tower"]["pairs_per_second"] / result["unbert"]["pairs_per_second"]
    return result


def verdict(data: dict) -> str:
    """The finding: per N, each fusion's AUC, MRR and nDCG@10 against the two-tower alone's; whether the fusion
    served lowers any of them (then rank profile unbert stays off by default)."""
    alone = data["rows"][0]
    fused = [row for row in data["rows"][1:] if "fusion" in row]
    if not fused:
        return ""
    metrics = (("auc", "AUC"), ("mrr", "MRR"), ("ndcg10", "nDCG@10"))
    lines = [f"N = {row['n']}, {row['fusion']}: " + ", ".join(f"{label} {row[key] - alone[key]:+.4f}"
                                                              for key, label in metrics) for row in fused]
    served = [row for row in fused if row["fusion"] == data["served_fusion"]]
    lowered = sorted({label for row in served for key, label in metrics if row[key] < alone[key]})
    finding = (f"**Finding: the fusion served ({data['served_fusion']}) lowers {' and '.join(lowered)} against the "
               "two-tower alone**, so rank profile unbert stays off by default (`recommendation` is the default; "
               "`unbert` is served only when asked). Fusing instead of replacing removes most of the loss, but a "
               "cross-encoder this weak (validation AUC above) still moves worse news into the top places. "
               if lowered else f"The fusion served ({data['served_fusion']}) lowers none of the metrics. ")
    return finding + "Against the two-tower alone: " + "; ".join(lines) + "."


def render(data: dict) -> str:
    model = data["reranker"]
    rows = [[r["name"], f"{r['auc']:.4f}", f"{r['mrr']:.4f}", f"{r['ndcg5']:.4f}", f"{r['ndcg10']:.4f}"]
            for r in data["rows"]]
    latency_rows = [[r["name"], f"{r['ms']:.1f} ms", f"{r['ratio']:.1f}×"] for r in data["latency"]]
    training = data["training"]
    return f"""## UNBERT: the cross-encoder over the two-tower's best N

`python3 bench/run.py unbert` (`bench/bench_unbert.py`)

{data['impressions']} dev impressions of world v2 {'tiny (quick)' if data.get('quick') else 'small'} (seeded
sample), through the embedded index's serving path: the two-tower's served scores of every candidate, then
UNBERT's served scores (onnxruntime on the fed word pieces) of its best N, combined with the two-tower's by each
fusion (`{data.get('served_fusion', 'replace')}` is what rank profile unbert serves; `replace`: UNBERT's score alone,
the profile's global phase before issue 32; Vespa's normalizers as container-search computes them), the rest rescaled
below as Vespa's global phase does. Served UNBERT scores = torch's within {data['max_rerank_difference']:.1e} over
{data['pairs']:,} pairs. Re-ranker: {model['lm']}, {model['title_tokens']} title + {model['history_tokens']}
history word pieces, trained on the latest {model['train_config'].get('max_impressions') or 'all'} train impressions
({model['train_pairs']:,} clicks × {1 + model['train_config'].get('negatives', 4)} candidates, one epoch, lr
{model['train_config'].get('learning_rate')}, {model['train_seconds'] / 60:.0f} min on this CPU; validation AUC
{model['valid_auc'] if model['valid_auc'] is None else round(model['valid_auc'], 4)}).

{table(["ranking", "AUC", "MRR", "nDCG@5", "nDCG@10"], rows)}

{verdict(data)}

Latency of one `recommend` (10 hits; median over users; CPU, onnxruntime, batch = the N hits):

{table(["query", "median", "vs no re-ranking"], latency_rows)}

Training: {training['unbert']['pairs_per_second']:.1f} (candidate, user) pairs/s for UNBERT against
{training['two-tower']['pairs_per_second']:,.0f} for the two-tower on the same 32 × 5 rows
({training['ratio']:,.0f}× slower), one train step on this CPU.
"""


if __name__ == "__main__":
    row_main(__doc__, run, render)
