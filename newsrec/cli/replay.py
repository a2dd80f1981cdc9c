"""`newsrec replay`: a split's impressions played in time order through the embedded index (feed/replay.py)."""
from __future__ import annotations

import json
from dataclasses import replace

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
@click.option("--state", "state_dir", default="newsrec-replay", show_default=True,
              help="The replay's checkpoints: rerun the same command to resume after a crash.")
@click.option("--half-life", type=click.FloatRange(min=0.01), default=ReplayConfig().decay.half_life_hours,
              show_default=True, help="Hours: half-life of the decayed click and impression counters.")
@click.option("--window", type=click.FloatRange(min=0.0), default=ReplayConfig().window_hours, show_default=True,
              help="Hours: recall searches the news published within this window before the impression (0: all).")
@click.option("--max-impressions", type=click.IntRange(min=0), default=0,
              help="Stop after this many impressions of the split (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@device_option
def replay_command(mind_dir: str, split: str, model_dir: str, index_dir: str, endpoint: str | None, state_dir: str,
                   half_life: float, window: float, max_impressions: int, as_json: bool, device: str) -> None:
    """Play SPLIT's impressions in time order through the serving path, causally: each is ranked by the live
    profile at its own time, then its clicks are written back (counters by partial updates, the user's
    history and vectors). Reports streaming AUC/MRR/nDCG and Recall@100, and their offline check.

    \b
    Example:
      newsrec replay mind-demo --model newsrec-model --index newsrec-index
    """
    from newsrec.feed.replay_job import run_replay

    config = replace(ReplayConfig(split=split, max_scored=max_impressions, window_hours=window or None),
                     decay=DecayConfig(half_life_hours=half_life))
    result = run_replay(mind_dir, model_dir, index_dir, state_dir, config, device,
                        log=lambda line: echo(line, err=True), endpoint=endpoint, progress=True)
    echo(json.dumps(result, indent=1) if as_json else format_replay(result, split))
