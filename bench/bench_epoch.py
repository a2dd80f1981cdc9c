"""One full training epoch at MIND-large scale on this CPU: UniRec's two stages (ranking, then recall), each
over every training impression of `demo-data --size large`, in a fresh process with its time, throughput and
peak resident memory; set beside the projection that the large row made from 200k impressions.

    python3 bench/run.py epoch          # ~95 min on 2 cores; generates demo-data large (~2 GB) when missing
    python3 bench/run.py --quick epoch  # the same on small

The LM vectors stand in as in the large row (random arrays of the real shape in the LM cache: the LM is the
embedding and CPU rows' subject); everything else is `newsrec train`'s code path (`pipeline.training.train`).
The child's log goes to bench/out/epoch.log while it runs.
"""
from __future__ import annotations

import json

from newsrec.bench.bench_large import TRAIN, dataset
from newsrec.bench.common import OUT, ROOT, child_peak, machine, row_main, table

GIB = 24


def run(quick: bool) -> dict:
    size = "small" if quick else "large"
    model = OUT / "epoch" / size / "runs" / "unirec"
    train = child_peak(TRAIN, str(dataset(size)), str(model), "0", log=OUT / "epoch.log")
    return {"machine": machine(), "size": size, "train": train}


def render(data: dict) -> str:
    train = data["train"]
    rows = [[e["stage"], f"{e['seconds'] / 60:,.1f} min", f"{e['impressions_per_s']:,.0f}", f"{e['samples']:,}",
             _projection(e["stage"]) if data["size"] == "large" else ""] for e in train["epochs"]]
    trained = train["train_impressions"] * 0.9
    return f"""## One full training epoch at MIND-large scale (CPU)

`python3 bench/run.py epoch` (`bench/bench_epoch.py`)

`newsrec train`'s code path on `demo-data --size {data['size']}` ({train['train_impressions']:,} train
impressions: {trained:,.0f} trained on, 10% held out to validate), one epoch of each UniRec stage in a fresh
process, LM vectors stood in as in the large row. Reading MIND took {train['read_seconds']:,.0f} s; training
and validating both stages {train['seconds'] / 60:,.1f} min; the process peaked at
**{train['peak_mib'] / 1024:.2f} GiB** of the machine's {GIB} GiB (the whole dataset in memory; batches
are built from index arrays per step){_large_peak() if data['size'] == 'large' else ''}.{(" " + data["note"]) if data.get("note") else ""}

{table(["stage", "epoch time (training steps)", "impressions/s", "samples", "projected from 200k (large row)"],
       rows)}"""


def _large_train() -> dict | None:
    """The large row's training stage (200k impressions), when it was measured (bench/results/large.json)."""
    path = ROOT / "bench" / "results" / "large.json"
    return json.loads(path.read_text())["sizes"]["large"]["train"] if path.is_file() else None


def _large_peak() -> str:
    large = _large_train()
    return "" if large is None else f"; the large row's 200k-impression epoch peaked at {large['peak_mib'] / 1024:.2f} GiB"


def _projection(stage: str) -> str:
    """The large row's projection for this stage."""
    large = _large_train()
    if large is None:
        return "n/a"
    epoch = next((e for e in large["epochs"] if e["stage"] == stage), None)
    if epoch is None:
        return "n/a"
    return f"{large['train_impressions'] * 0.9 / epoch['impressions_per_s'] / 60:,.0f} min"


if __name__ == "__main__":
    row_main(__doc__, run, render)
