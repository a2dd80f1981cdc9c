"""Data commands: generate MIND-format data, check a MIND directory, score baselines and prediction files."""
from __future__ import annotations

import time
from pathlib import Path

import click

from newsrec.cli.base import (CONTEXT, COUNT, MindReading, NewsrecCommand, echo, metrics_json_option, read_dataset,
                              read_options, require_labelled)
from newsrec.cli.output import format_dataset, format_recall_oracle, format_statistics, format_table, to_json
from newsrec.pipeline import baselines as scorers
from newsrec.pipeline.baselines import decomposition_rows, generate_with_oracle
from newsrec.pipeline.demo_data import SIZES, WORLDS, config_for
from newsrec.pipeline.leaderboard import score_files


@click.command("demo-data", cls=NewsrecCommand, context_settings=CONTEXT)
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--size", type=click.Choice(list(SIZES)), default="tiny", show_default=True,
              help="tiny: seconds, for tests; medium: 5k users, 20k train / 8k dev impressions (the probe worlds' "
                   "size); small: MIND-small-like (~50k news, 50k users, 157k train impressions); large: "
                   "MIND-large-like (~161k news, 1M users, 2.2M train impressions; ~2 GB, for benchmarks).")
@click.option("--seed", type=COUNT, default=0, show_default=True)
@click.option("--world", type=click.Choice(list(WORLDS)), default="v3", show_default=True,
              help="v3: world v2 whose impressions show only news already published at their time (real news is "
                   "never shown before it exists; v2 showed 38.5% of small's dev candidates before). v2: entities, "
                   "several and drifting interests, freshness, the oracle decomposed (pipeline/world_v2.py); "
                   "v1: the first world (1-4 fixed favourite topics), for comparison. probe-*: one seed model's "
                   "premise each on a neutral base (order: UniRec/FUM's order; max: several interests; pairs: FUM's "
                   "word pairs; match: UNBERT's word match), with what a history can reveal "
                   "(pipeline/world_probes.py).")
def demo_data(out_dir: str, size: str, seed: int, world: str) -> None:
    """Generate MIND-format data with a planted ground truth; print the oracle dev metrics.

    \b
    Example:
      newsrec demo-data mind-demo --size small --seed 0
    """

    started = time.perf_counter()
    summary, oracle = generate_with_oracle(out_dir, config_for(size, seed, world))
    echo(f"wrote {out_dir} ({size}, world {world}, seed {seed}) in {time.perf_counter() - started:.1f}s: "
         f"{summary['news']} news, {summary['train_impressions']} train / {summary['dev_impressions']} dev "
         f"impressions, dev CTR {summary['dev_ctr']:.3f}, "
         f"{summary['dev_candidates_unseen_in_train']:.0%} of dev candidates unseen in train, "
         f"{summary['shown_before_published']:.1%} of dev candidate rows shown before their publication")
    echo(format_statistics(summary["statistics"]))
    echo(format_table([("oracle (dev)", oracle), *decomposition_rows(summary)]))
    for name, bound in summary.get("bounds", {}).items():  # probe worlds
        echo(f"{name}: AUC {bound['auc']:.4f}" if isinstance(bound, dict) else f"{name}: {bound:+.4f}")
    if "recall_oracle" in summary:
        echo(format_recall_oracle(summary["recall_oracle"]))


@click.command(cls=NewsrecCommand, context_settings=CONTEXT)
@click.argument("mind_dir", type=click.Path())
@read_options
def inspect(mind_dir: str, reading: MindReading) -> None:
    """Read and check a MIND directory; print what it holds.

    \b
    Example:
      newsrec inspect ~/data/MINDsmall
    """
    started = time.perf_counter()
    dataset = read_dataset(mind_dir, reading)
    echo(format_dataset(mind_dir, dataset, time.perf_counter() - started))


@click.command(cls=NewsrecCommand, context_settings=CONTEXT)
@click.argument("mind_dir", type=click.Path())
@click.option("--split", default="dev", show_default=True, help="Labelled split to score.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Also write each baseline's leaderboard prediction file here.")
@click.option("--seed", type=COUNT, default=0, show_default=True, help="Seed of the random baseline.")
@metrics_json_option
@read_options
def baselines(mind_dir: str, split: str, out_dir: str | None, seed: int, as_json: bool, reading: MindReading) -> None:
    """Score the random, popularity and (for generated data) oracle baselines.

    \b
    Example:
      newsrec baselines mind-demo --out baselines
      newsrec score mind-demo/dev/truth.txt baselines/popularity.txt
    """

    dataset = read_dataset(mind_dir, reading, progress=not as_json)
    require_labelled(dataset, mind_dir, split)
    results = scorers.evaluate_baselines(dataset, split, seed)
    files = scorers.write_predictions(results, dataset.splits[split], out_dir) if out_dir else []
    planted = scorers.planted_summary(mind_dir) if split == "dev" else None  # the oracle decomposed (world v2)
    if as_json:
        echo(to_json({**{r.name: r.metrics.as_dict() for r in results}, **scorers.planted_truth(planted)}))
        return
    target = dataset.splits[split]
    echo(f"{split} of {mind_dir}: {target.num_impressions} impressions, {len(target.candidates)} candidates")
    echo(format_table([(r.name, r.metrics) for r in results] + scorers.decomposition_rows(planted)))
    if files:
        echo(f"prediction files: {', '.join(str(path) for path in files)}")


@click.command(cls=NewsrecCommand, context_settings=CONTEXT)
@click.argument("truth", type=click.Path())
@click.argument("prediction", type=click.Path())
@metrics_json_option
def score(truth: str, prediction: str, as_json: bool) -> None:
    """Score a leaderboard prediction file against a truth file, as the MIND leaderboard does.

    TRUTH has lines `ImpId [l1,l2,...]` (labels 0/1); PREDICTION has lines `ImpId [r1,r2,...]`
    (rank 1 = best, candidates in the impression's order).

    \b
    Example:
      newsrec score mind-demo/dev/truth.txt baselines/popularity.txt --json
    """

    metrics = score_files(truth, prediction)
    echo(to_json(metrics.as_dict()) if as_json else format_table([(Path(prediction).name, metrics)]))
