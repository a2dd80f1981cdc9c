"""`newsrec train-ranker`: a learned ranker from the features a replay logged (feed/replay.py), written beside the
checkpoint and, when asked, installed in an embedded index as a new generation (nothing re-fed).

The training rows are the replay's logged rows before its split (the days it logged, `--log-hours`): each
impression's candidates with the features the service computed at the impression's time, never later. The split's
own rows are never read here: they are what the ranker is measured on.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from newsrec.feed import ranking
from newsrec.feed.local_backend import LocalBackend
from newsrec.feed.replay import STATE_FILE, ReplayError, read_log
from newsrec.pipeline.checkpoint import model_version
from newsrec.pipeline.learned_ranker import RankerConfig, train_ranker

RANKER_DIR = "ranker"


def training_rows(state_dir: Path) -> dict[str, np.ndarray]:
    """The logged rows before the replayed split: features (rows, F), labels, impression, time (each row's
    impression time), in stream order."""
    if not (state_dir / STATE_FILE).is_file():
        raise ReplayError(f"{state_dir}: no replay state (run `newsrec replay ... --state {state_dir}` first)")
    saved, log = read_log(state_dir)
    start = saved["fingerprint"]["start"]
    before = log["impression"] < start
    if "time" not in log:
        raise ReplayError(f"{state_dir}: a replay of an older newsrec (no row times); replay again")
    return {"features": log["terms"][before], "labels": log["labels"][before],
            "impression": log["impression"][before], "time": log["time"][before]}


def train_from_replay(state_dir: Path, model_dir: Path, objective: str, out_dir: Path | None = None,
                      index_dir: str | None = None, config: RankerConfig | None = None,
                      log: Callable[[str], None] = print) -> dict:
    """Train (binary or lambdarank), save to `out_dir` (default MODEL/ranker), install in `index_dir` if given;
    returns the header with the directory and, when installed, the generation."""
    rows = training_rows(state_dir)
    if len(rows["labels"]) == 0:
        raise ReplayError(f"{state_dir}: the replay logged no rows before its split (replay with --log-hours 120)")
    config = config or RankerConfig(objective=objective)
    log(f"train-ranker: {len(rows['labels']):,} rows of {len(np.unique(rows['impression'])):,} impressions, "
        f"{len(ranking.LEARNED_FEATURES)} features, objective {config.objective}")
    ranker = train_ranker(rows["features"], rows["labels"], rows["impression"], rows["time"],
                          ranking.LEARNED_FEATURES, config, model_version(model_dir), source=str(state_dir))
    directory = ranker.save(out_dir or model_dir / RANKER_DIR)
    header = {**ranker.header, "directory": str(directory)}
    if index_dir:
        header["generation"] = LocalBackend(index_dir).install_ranker(directory)
        log(f"train-ranker: installed in {index_dir} (generation {header['generation']})")
    return json.loads(json.dumps(header))
