"""The model table: every model trained on generated MIND-small-sized data, evaluated on dev, next to
the oracle (the planted click probabilities). CPU is fine; it picks CUDA when present.

    python bench/model_table.py                 # demo-data small (world v2: the table's world), seed 0, into bench/out/small-v2/
    python bench/model_table.py --world v1      # the first world, into bench/out/small/ (as before world v2)
    python bench/model_table.py --size medium --world v3 --seeds 3   # world v3 (only published news shown)
    python bench/model_table.py --size tiny     # a quick look
    python bench/model_table.py --seeds 3 --models meanpool,unirec   # mean ± 95% interval over training seeds and
                                                # the paired difference against mean-pool, seed by seed
    python bench/model_table.py --models meanpool,recallnet@meanpool  # Recallnet on mean-pool's checkpoint
                                                # (plain `recallnet`: on UniRec's, as bench/bench_recallnet.py)

Prints a markdown table (and writes table.json beside the data). Recall is by exact maximum inner
product over the dev-day pool (every dev candidate) and over all news. On world v2 the table ends with
the oracle decomposed (each planted effect added in turn) and the recall oracle (the planted top-K), and
a column gives each row's AUC on the entity impressions (a candidate names an entity the user follows),
beside the planted topic and entity components alone there.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from newsrec.pipeline.baselines import (ENTITY_SPLIT, decomposition_rows, entity_split, oracle_scores, planted_summary,
                                        premise_split)
from newsrec.pipeline.demo_data import config_for, generate
from newsrec.pipeline.world_probes import PREMISE_ROWS, PROBES
from newsrec.pipeline.evaluation import evaluate_model, evaluate_scores, popularity_evaluation
from newsrec.pipeline.intervals import paired_interval, t_interval
from newsrec.pipeline.metrics import per_impression_metrics
from newsrec.pipeline.mind import read_mind
from newsrec.pipeline.models.registry import MODELS
from newsrec.pipeline.training import TrainConfig, train


# (ranking, recall) epochs where CPU time forbids the default, by size: FUM reads words (hours an epoch on small);
# on the probes' size every model trains the same epochs
EPOCHS = {"small": {"fum": (2, 1)}, "large": {"fum": (2, 1)}}
BASELINE = "meanpool"  # the paired comparisons of --seeds are against this row
BASES = {"recallnet": "unirec"}  # a model trained on top of another's checkpoint (MODEL@BASE picks another base)
# rows that are not results when trained on CPU: far below their paper's budget (bench/gpu_probe_match.sh on a GPU)
NOT_A_RESULT = {"unbert": "unbert (not a result: CPU budget)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=["tiny", "medium", "small"])
    parser.add_argument("--world", default="v2", choices=["v2", "v3", "v1", *PROBES])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--recall-epochs", type=int, default=2)
    parser.add_argument("--out", default="bench/out")
    parser.add_argument("--reuse", action="store_true", help="keep checkpoints already trained by an earlier run")
    parser.add_argument("--seeds", type=int, default=1,
                        help="training seeds per model (same data); 2 or more: mean ± 95%% interval per row and the "
                             f"paired difference against {BASELINE}")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated models to train")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if any(part not in MODELS for part in m.split("@"))]
    if unknown:
        parser.error(f"unknown models {unknown}: choose from {', '.join(MODELS)}")
    root = Path(args.out) / (args.size if args.world == "v1" else f"{args.size}-{args.world}")
    mind = root / "mind"
    if not (mind / "dev" / "truth.txt").is_file():
        generate(mind, config_for(args.size, 0, args.world))
    dataset = read_mind(mind)
    entity = entity_split(mind)  # world v2: where a candidate names an entity the user follows
    # evaluate_model's splits: world v2's entity impressions; a probe's premise rows (where its premise decides)
    splits = {"impression_splits": {ENTITY_SPLIT: entity[0]} if entity else {},
              "row_splits": premise_split(mind, dataset)}
    if args.seeds > 1:
        seeded = {seed: trained_rows(models, seed, root, mind, dataset, splits, args)[0] for seed in range(args.seeds)}
        bounds = (planted_summary(mind) or {}).get("bounds", {})
        oracle = evaluate_scores("oracle", dataset, "dev", oracle_scores(dataset, "dev"), **splits)
        print(seed_markdown(seeded) + "".join(f"\n| {name} | {b['auc']:.4f} |" if isinstance(b, dict) else
                                              f"\n| {name} | {b:+.4f} |" for name, b in bounds.items())
              + "".join(f"\n| oracle, {name} | {m.auc:.4f} |" for name, m in oracle.splits.items()
                        if name in splits["row_splits"]))
        (root / f"seeds-{args.seeds}.json").write_text(json.dumps(
            {"world": args.world, "size": args.size, "models": models, "bounds": bounds,
             "epochs": {m: epochs_of(m.partition("@")[0], args) for m in models},
             "seeds": {s: [asdict(r) for r in rows] for s, rows in seeded.items()},
             "summary": seed_summary(seeded), "oracle": asdict(oracle)}, indent=1))
        return
    rows, timings = trained_rows(models, 0, root, mind, dataset, splits, args)
    rows.append(popularity_evaluation(dataset))
    rows.append(evaluate_scores("oracle", dataset, "dev", oracle_scores(dataset, "dev"), **splits))
    planted = planted_summary(mind) or {}
    entity_oracle = entity_oracle_rows(dataset, entity)
    print(markdown(rows, planted, entity_oracle))
    (root / "table.json").write_text(json.dumps({"rows": [asdict(r) for r in rows], "timings": timings,
                                                 "world": args.world, "epochs": {m: epochs_of(m, args) for m in MODELS},
                                                 "entity_oracle": {k: asdict(v) for k, v in entity_oracle.items()},
                                                 **{k: planted[k] for k in
                                                 ("oracle_decomposition", "recall_oracle") if k in planted}},
                                                indent=1))
    print(json.dumps(timings, indent=1))


def trained_rows(models: list[str], seed: int, root: Path, mind: Path, dataset, splits: dict, args) -> tuple[list, dict]:
    """Every model trained with `seed` (seed 0 in runs/MODEL, as before seeds; others in runs/MODEL-seedS, beside
    it: one cache of the news vectors for all) and evaluated: (rows, timings)."""
    rows, timings = [], {}
    for spec in models:
        model_dir, summary = trained(spec, seed, root, mind, dataset, args)
        timings[spec] = {"train_seconds": sum(e["seconds"] for s in summary["stages"] for e in s["epochs"]),
                         "impressions_per_s": [round(e["impressions_per_s"]) for s in summary["stages"]
                                               for e in s["epochs"]]}
        rows += model_rows(spec, model_dir, dataset, splits)
    return rows, timings


def trained(spec: str, seed: int, root: Path, mind: Path, dataset, args) -> tuple[Path, dict]:
    """(checkpoint directory, training report) of MODEL or MODEL@BASE, trained unless --reuse finds it; a base
    (BASES, or the one named) is trained first, with the same seed."""
    model, _, base = spec.partition("@")
    base = base or BASES.get(model, "")
    model_dir = root / "runs" / (spec if seed == 0 else f"{spec}-seed{seed}")
    summary = trained_summary(model_dir) if args.reuse else None
    if summary is None:
        base_dir = trained(base, seed, root, mind, dataset, args)[0] if base else None
        epochs, recall_epochs = epochs_of(model, args)
        summary = train(mind, model_dir, TrainConfig(model=model, epochs=epochs, recall_epochs=recall_epochs,
                                                     seed=seed, base=str(base_dir or "")), dataset=dataset)
    return model_dir, summary


SEED_METRICS = {"AUC": lambda r: r.ranking.auc, "MRR": lambda r: r.ranking.mrr, "nDCG@10": lambda r: r.ranking.ndcg10,
                "R@100 day": lambda r: r.recall.get("dev-day pool", {}).get(100, float("nan")),
                "AUC premise rows": lambda r: r.splits[PREMISE_ROWS].auc if PREMISE_ROWS in r.splits else float("nan")}
DELTAS = ("AUC", "R@100 day", "AUC premise rows")  # the paired differences the table shows


def seed_summary(seeded: dict[int, list]) -> dict:
    """Per row: each metric's mean ± 95% interval over the seeds, and the paired difference against BASELINE's row
    of the same seed (when it was trained)."""
    names = [row.model for row in seeded[0]]
    by_name = {name: [next(r for r in rows if r.model == name) for rows in seeded.values()] for name in names}
    summary = {}
    for name, runs in by_name.items():
        metrics = {metric: get for metric, get in SEED_METRICS.items() if not np.isnan(get(runs[0]))}
        entry = {metric: asdict(t_interval([get(r) for r in runs])) for metric, get in metrics.items()}
        if BASELINE in by_name and name != BASELINE:
            entry["paired vs " + BASELINE] = {metric: asdict(paired_interval([get(r) for r in runs],
                                                                               [get(r) for r in by_name[BASELINE]]))
                                              for metric, get in metrics.items()}
        summary[name] = entry
    return summary


def seed_markdown(seeded: dict[int, list]) -> str:
    """The --seeds table: mean ± half-width of the 95% interval; the paired AUC and R@100 differences against
    BASELINE, marked * where the interval excludes 0."""
    summary = seed_summary(seeded)
    shown = [m for m in SEED_METRICS if m in next(iter(summary.values()))]
    deltas = [m for m in DELTAS if m in shown]
    lines = [f"{len(seeded)} seeds, 95% Student's t intervals",
             "| model | " + " | ".join(shown + [f"Δ{m} vs mean-pool" for m in deltas]) + " |",
             "|---|" + "---|" * (len(shown) + len(deltas))]
    for name, entry in summary.items():
        cells = [_interval_text(entry[m]) if m in entry else "—" for m in shown]  # e.g. no recall: UNBERT
        paired = entry.get("paired vs " + BASELINE, {})
        deltas_cells = [_interval_text(paired[m], mark=True) if m in paired else "—" for m in deltas]
        lines.append(f"| {name} | " + " | ".join(cells + deltas_cells) + " |")
    return "\n".join(lines)


def _interval_text(entry: dict, mark: bool = False) -> str:
    low, high = entry["mean"] - entry["half_width"], entry["mean"] + entry["half_width"]
    star = "*" if mark and (low > 0 or high < 0) else ""
    return f"{entry['mean']:+.4f} ± {entry['half_width']:.4f}{star}" if mark else f"{entry['mean']:.4f} ± {entry['half_width']:.4f}"


def epochs_of(model: str, args) -> tuple[int, int]:
    """(ranking, recall) epochs of `model` at args.size."""
    return EPOCHS.get(args.size, {}).get(model, (args.epochs, args.recall_epochs))


def model_rows(model: str, model_dir: Path, dataset, splits: dict) -> list:
    """The model's row; UniRec also with all its recall bases and with its ranking vector as the recall query; FUM
    (whose recall query is its user vector) also with its trained bases serving recall, top P and all; a model on a
    base is named with it (its ranking is the base's)."""
    if model.partition("@")[0] in BASES:
        base = model.partition("@")[2] or BASES[model]
        return [evaluate_model(model_dir, dataset, name=f"{model.partition('@')[0]} (on {base})",
                               **splits)]
    if model == "unirec":
        return [evaluate_model(model_dir, dataset, name="unirec (top-P)", **splits),
                evaluate_model(model_dir, dataset, top_p=0, name="unirec (all bases)", **splits),
                evaluate_model(model_dir, dataset, name="unirec (ranking vector as recall)", **splits,
                               recall_by_ranking=True)]
    if model == "fum":
        return [evaluate_model(model_dir, dataset, name="fum (user vector as recall)", **splits),
                evaluate_model(model_dir, dataset, top_p=5, name="fum (bases, top-P)", **splits),
                evaluate_model(model_dir, dataset, top_p=0, name="fum (all bases)", **splits)]
    name = NOT_A_RESULT.get(model, model) if trained_on(model_dir) == "cpu" else model
    return [evaluate_model(model_dir, dataset, name=name, **splits)]


def entity_oracle_rows(dataset, entity) -> dict:
    """Ranking metrics of the planted topic and entity components alone on the entity impressions."""
    if not entity:
        return {}
    mask, parts = entity
    dev = dataset.splits["dev"]
    return {name: per_impression_metrics(dev.labels, scores, dev.candidate_offsets).mean(mask)
            for name, scores in parts.items()}


def trained_on(model_dir: Path) -> str:
    """The device a checkpoint was trained on ("cpu", "cuda", ...)."""
    return (trained_summary(model_dir) or {}).get("device", "cpu")


def trained_summary(model_dir: Path) -> dict | None:
    """The training report inside an existing checkpoint (to resume an interrupted table run)."""
    from newsrec.pipeline.checkpoint import checkpoint_exists, load_checkpoint

    return load_checkpoint(model_dir).training if checkpoint_exists(model_dir) else None


def markdown(rows, planted: dict | None = None, entity_oracle: dict | None = None) -> str:
    entity = any(ENTITY_SPLIT in row.splits for row in rows)
    extra = " AUC entity imp. |" if entity else ""
    head = ("| model | AUC | MRR | nDCG@5 | nDCG@10 | AUC cold news |" + extra +
            " R@100 day | R@1000 day | R@100 all | R@1000 all |\n|---|---|---|---|---|---|" + ("---|" if entity else "")
            + "---|---|---|---|")
    lines = [head]
    dash = " — |" if entity else ""
    for row in rows:
        r = row.ranking
        day, every = row.recall.get("dev-day pool", {}), row.recall.get("all news", {})
        recall = [f"{pool.get(k):.4f}" if pool else "—" for pool in (day, every) for k in (100, 1000)]
        cell = f" {row.splits[ENTITY_SPLIT].auc:.4f} |" if ENTITY_SPLIT in row.splits else dash
        lines.append(f"| {row.model} | {r.auc:.4f} | {r.mrr:.4f} | {r.ndcg5:.4f} | {r.ndcg10:.4f} | "
                     f"{row.splits['cold news'].auc:.4f} |{cell} " + " | ".join(recall) + " |")
    for name, m in (entity_oracle or {}).items():
        lines.append(f"| oracle: {name} alone, on the entity impressions only | — | — | — | — | — | {m.auc:.4f} | "
                     "— | — | — | — |")
    for name, m in decomposition_rows(planted):
        lines.append(f"| {name} | {m.auc:.4f} | {m.mrr:.4f} | {m.ndcg5:.4f} | {m.ndcg10:.4f} | — |{dash} — | — | — | — |")
    recall = (planted or {}).get("recall_oracle")
    if recall:
        cells = [f"{recall[pool].get(str(k), recall[pool].get(k, float('nan'))):.4f}"
                 for pool in ("dev-day pool", "all news") for k in (100, 1000)]
        lines.append(f"| recall oracle (planted top-K, {recall['impressions']:,} dev impressions) | — | — | — | — | — |"
                     f"{dash} " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
