"""`newsrec replay`: a split's impressions played in time order through the embedded index (feed/replay.py)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click

from newsrec.cli.base import CONTEXT, DEFAULT_MODEL_DIR, NewsrecCommand, device_option, echo
from newsrec.cli.output import format_replay
from newsrec.feed.live import DecayConfig
from newsrec.feed.replay import ReplayConfig


@click.command("replay", cls=NewsrecCommand, context_settings=CONTEXT)
@click.argument("mind_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--split", default="dev", show_default=True, help="The split replayed (the earlier ones warm it up).")
@click.option("--model", "model_dir", default=DEFAULT_MODEL_DIR, show_default=True,
              help="The checkpoint the index was fed with (its user encoder refreshes users after their clicks).")
@click.option("--index", "index_dir", default="newsrec-index", show_default=True,
              help="The embedded index, fed by newsrec-feed with the same model; its live fields are reset.")
@click.option("--endpoint", default=None,
              help="Vespa endpoint URL instead of the embedded index (fed by newsrec-feed with the same model).")
@click.option("--feed-endpoint", default=None,
              help="Vespa's feed cluster (document/v1: the partial updates) [default: --endpoint].")
@click.option("--state", "state_dir", default="newsrec-replay", show_default=True,
              help="The replay's checkpoints: rerun the same command to resume after a crash.")
@click.option("--half-life", type=click.FloatRange(min=0.01), default=ReplayConfig().decay.half_life_hours,
              show_default=True, help="Hours: half-life of the decayed click and impression counters.")
@click.option("--window", type=click.FloatRange(min=0.0), default=ReplayConfig().window_hours, show_default=True,
              help="Hours: recall searches the news published within this window before the impression (0: all).")
@click.option("--max-impressions", type=click.IntRange(min=0), default=0,
              help="Stop after this many impressions of the split (0: all).")
@click.option("--log-hours", type=click.FloatRange(min=0.0), default=ReplayConfig().log_hours, show_default=True,
              help="Hours before the split whose impressions are scored and their features logged (a learned "
                   "ranker's training rows: e.g. 120 for five days).")
@click.option("--learned", is_flag=True,
              help="Serve the split by the index's learned ranker (newsrec train-ranker --index) instead of the "
                   "live profile's weights.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@device_option
def replay_command(mind_dir: str, split: str, model_dir: str, index_dir: str, endpoint: str | None,
                   feed_endpoint: str | None, state_dir: str,
                   half_life: float, window: float, max_impressions: int, log_hours: float, learned: bool,
                   as_json: bool, device: str) -> None:
    """Play SPLIT's impressions in time order through the serving path, causally: each is ranked by the live
    profile at its own time, then its clicks are written back (counters by partial updates, the user's
    history and vectors). Reports streaming AUC/MRR/nDCG and Recall@100, and their offline check.

    \b
    Example:
      newsrec replay mind-demo --model newsrec-model --index newsrec-index
    """
    from newsrec.feed.replay_job import run_replay

    config = replace(ReplayConfig(split=split, max_scored=max_impressions, window_hours=window or None,
                                  log_hours=max(log_hours, ReplayConfig().fit_hours), learned=learned),
                     decay=DecayConfig(half_life_hours=half_life))
    result = run_replay(mind_dir, model_dir, index_dir, state_dir, config, device,
                        log=lambda line: echo(line, err=True), endpoint=endpoint, progress=True,
                        feed_endpoint=feed_endpoint)
    echo(json.dumps(result, indent=1) if as_json else format_replay(result, split))


@click.command("train-ranker", cls=NewsrecCommand, context_settings=CONTEXT)
@click.argument("state_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--model", "model_dir", default=DEFAULT_MODEL_DIR, show_default=True,
              help="The checkpoint the replay ran with: the ranker is written to MODEL/ranker and carries its version.")
@click.option("--objective", type=click.Choice(["binary", "lambdarank"]), default="binary", show_default=True,
              help="LightGBM's objective: P(click) per candidate, or the order of an impression's candidates.")
@click.option("--out", "out_dir", default=None, help="Where to write the ranker (default: MODEL/ranker).")
@click.option("--index", "index_dir", default=None,
              help="Install the ranker in this embedded index too (a new generation; nothing is re-fed).")
@click.option("--json", "as_json", is_flag=True, help="Print the ranker's header as JSON.")
def train_ranker_command(state_dir: str, model_dir: str, objective: str, out_dir: str | None, index_dir: str | None,
                         as_json: bool) -> None:
    """Train a gradient-boosted ranker (LightGBM) on the features a replay logged (newsrec replay --log-hours N)
    before its split: every day but the last trains, the last validates. Writes header.json, model.txt and
    lightgbm.json (the file Vespa's lightgbm() reads: `newsrec app build --ranker DIR`).

    \b
    Example:
      newsrec replay mind-demo --log-hours 120 --state newsrec-replay
      newsrec train-ranker newsrec-replay --model newsrec-model --index newsrec-index
    """
    from newsrec.feed.ranker_job import train_from_replay

    header = train_from_replay(Path(state_dir), Path(model_dir), objective, Path(out_dir) if out_dir else None,
                               index_dir, log=lambda line: echo(line, err=True))
    echo(json.dumps(header, indent=1) if as_json else
         f"ranker ({objective}) written to {header['directory']}: {header['rounds']} trees, validation AUC "
         f"{header['validation_auc']:.4f} on {header['rows']['validation']:,} rows of the last logged day")
