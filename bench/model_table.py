"""The model table: every model trained on generated MIND-small-sized data, evaluated on dev, next to
the oracle (the planted click probabilities). CPU is fine; it picks CUDA when present.

    python bench/model_table.py                 # demo-data small (world v2), seed 0, into bench/out/small-v2/
    python bench/model_table.py --world v1      # the first world, into bench/out/small/ (as before world v2)
    python bench/model_table.py --size tiny     # a quick look

Prints a markdown table (and writes table.json beside the data). Recall is by exact maximum inner
product over the dev-day pool (every dev candidate) and over all news. On world v2 the table ends with
the oracle decomposed (each planted effect added in turn) and the recall oracle (the planted top-K).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from pipeline.baselines import decomposition_rows, oracle_scores, planted_summary
from pipeline.demo_data import config_for, generate
from pipeline.evaluation import evaluate_model, evaluate_scores, popularity_evaluation
from pipeline.mind import read_mind
from pipeline.models.registry import MODELS
from pipeline.training import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=["tiny", "small"])
    parser.add_argument("--world", default="v2", choices=["v2", "v1"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--recall-epochs", type=int, default=2)
    parser.add_argument("--out", default="bench/out")
    parser.add_argument("--reuse", action="store_true", help="keep checkpoints already trained by an earlier run")
    args = parser.parse_args()
    root = Path(args.out) / (args.size if args.world == "v1" else f"{args.size}-{args.world}")
    mind = root / "mind"
    if not (mind / "dev" / "truth.txt").is_file():
        generate(mind, config_for(args.size, 0, args.world))
    dataset = read_mind(mind)
    rows, timings = [], {}
    for model in MODELS:
        summary = trained_summary(root / "runs" / model) if args.reuse else None
        if summary is None:
            summary = train(mind, root / "runs" / model, TrainConfig(model=model, epochs=args.epochs,
                                                                     recall_epochs=args.recall_epochs), dataset=dataset)
        timings[model] = {"train_seconds": sum(e["seconds"] for s in summary["stages"] for e in s["epochs"]),
                          "impressions_per_s": [round(e["impressions_per_s"]) for s in summary["stages"]
                                                for e in s["epochs"]]}
        rows.append(evaluate_model(root / "runs" / model, dataset, name=f"{model} (top-P)" if model == "unirec" else model))
        if model == "unirec":
            rows.append(evaluate_model(root / "runs" / model, dataset, top_p=0, name="unirec (all bases)"))
    rows.append(popularity_evaluation(dataset))
    rows.append(evaluate_scores("oracle", dataset, "dev", oracle_scores(dataset, "dev")))
    planted = planted_summary(mind) or {}
    print(markdown(rows, planted))
    (root / "table.json").write_text(json.dumps({"rows": [asdict(r) for r in rows], "timings": timings,
                                                 "world": args.world, **{k: planted[k] for k in
                                                 ("oracle_decomposition", "recall_oracle") if k in planted}},
                                                indent=1))
    print(json.dumps(timings, indent=1))


def trained_summary(model_dir: Path) -> dict | None:
    """The training report inside an existing checkpoint (to resume an interrupted table run)."""
    from pipeline.checkpoint import checkpoint_exists, load_checkpoint

    return load_checkpoint(model_dir).training if checkpoint_exists(model_dir) else None


def markdown(rows, planted: dict | None = None) -> str:
    head = ("| model | AUC | MRR | nDCG@5 | nDCG@10 | AUC cold news | R@100 day | R@1000 day | R@100 all | R@1000 all |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for row in rows:
        r = row.ranking
        day, every = row.recall.get("dev-day pool", {}), row.recall.get("all news", {})
        recall = [f"{pool.get(k):.4f}" if pool else "—" for pool in (day, every) for k in (100, 1000)]
        lines.append(f"| {row.model} | {r.auc:.4f} | {r.mrr:.4f} | {r.ndcg5:.4f} | {r.ndcg10:.4f} | "
                     f"{row.splits['cold news'].auc:.4f} | " + " | ".join(recall) + " |")
    for name, m in decomposition_rows(planted):
        lines.append(f"| {name} | {m.auc:.4f} | {m.mrr:.4f} | {m.ndcg5:.4f} | {m.ndcg10:.4f} | — | — | — | — | — |")
    recall = (planted or {}).get("recall_oracle")
    if recall:
        cells = [f"{recall[pool].get(str(k), recall[pool].get(k, float('nan'))):.4f}"
                 for pool in ("dev-day pool", "all news") for k in (100, 1000)]
        lines.append(f"| recall oracle (planted top-K, {recall['impressions']:,} dev impressions) | — | — | — | — | — | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
