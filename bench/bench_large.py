"""The whole pipeline at MIND-large scale on this machine: train -> feed the embedded index -> open it and
recommend -> evaluate, each stage in a fresh process with its time and peak resident memory, plus user
embedding alone at 1M users; then the same stages at tiny and small for the curves against size.

    python3 bench/run.py large          # ~45 min on 2 cores; generates demo-data large (~2 GB) when missing
    python3 bench/run.py --quick large  # tiny and small only

What is real and what stands in (said again in BENCHMARKS):
- the data are `demo-data --size large` (161,000 news, 1M planted users of whom 732k appear, 2.2M train +
  376k dev impressions);
- the LM vectors are random arrays of the real shape (N, 2, 384) written into the LM cache: the LM itself
  runs at ~80 news/s on these 2 cores (33 min for 161k news: the embedding row's subject, and the GPU
  script's); every other step runs as `newsrec-feed` and `newsrec evaluate` run it, on those vectors;
- training runs one epoch per stage (UniRec: ranking, then recall) on the latest TRAIN_IMPRESSIONS train
  impressions (with the whole dataset in memory); a full epoch's time is projected from its throughput.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from newsrec.bench.common import OUT, child_peak, machine, plot, row_main, table
from newsrec.pipeline.demo_data import config_for, generate

TRAIN_IMPRESSIONS = {"tiny": 0, "small": 0, "large": 200_000}  # 0 = every train impression
GIB = 24  # this machine's memory, the budget

TRAIN = r"""
import json, sys, time
import numpy as np
from newsrec.pipeline.checkpoint import cache_dir_for
from newsrec.pipeline.mind import read_mind
from newsrec.pipeline.text_encoder import TextEncoderConfig, cache_path
from newsrec.pipeline.training import TrainConfig, train
base = hwm()
started = time.perf_counter()
dataset = read_mind(sys.argv[1])
read_s = time.perf_counter() - started
cache = cache_path(cache_dir_for(sys.argv[2]), TextEncoderConfig(), dataset.news.title, dataset.news.abstract)
cache.parent.mkdir(parents=True, exist_ok=True)
np.save(cache, np.random.default_rng(0).normal(size=(len(dataset.news), 2, 384)).astype(np.float32))
started = time.perf_counter()
report = train(sys.argv[1], sys.argv[2], TrainConfig(epochs=1, recall_epochs=1, max_impressions=int(sys.argv[3])),
               log=lambda line: print(line, file=sys.stderr), dataset=dataset)
epochs = [{"stage": s["stage"], **s["epochs"][0]} for s in report["stages"]]
print(json.dumps({"base_kib": base, "seconds": time.perf_counter() - started, "read_seconds": read_s,
                  "train_impressions": int(len(dataset.splits["train"].time)), "epochs": epochs, "peak_kib": hwm()}))
"""
FEED = r"""
import json, sys, time
from newsrec.feed.connect import Target
from newsrec.feed.job import FeedOptions, run_feed
base = hwm()
started = time.perf_counter()
summary = run_feed(sys.argv[1], Target(index_dir=sys.argv[3]), FeedOptions(model_dir=sys.argv[2], device="cpu"),
                   log=lambda line: print(line, file=sys.stderr))
assert summary.success, summary.reports
print(json.dumps({"base_kib": base, "seconds": time.perf_counter() - started, "news": summary.news,
                  "users": summary.users, "embed": summary.seconds, "peak_kib": hwm()}))
"""
OPEN = r"""
import json, sys, time
from newsrec.feed.local_backend import LocalBackend
base = hwm()
started = time.perf_counter()
backend = LocalBackend(sys.argv[1])
opened = time.perf_counter() - started
user = next(u for u in backend.docs["user"] if backend.docs["user"][u]["has_read_items"])
started = time.perf_counter()
hits = backend.recommend(user, hits=10).hits
print(json.dumps({"base_kib": base, "seconds": opened, "users": len(backend.docs["user"]),
                  "recommend_seconds": time.perf_counter() - started, "hits": len(hits), "peak_kib": hwm()}))
"""
EVALUATE = r"""
import json, sys, time
from newsrec.pipeline.evaluation import evaluate_model
from newsrec.pipeline.mind import read_mind
base = hwm()
started = time.perf_counter()
dataset = read_mind(sys.argv[1])
read_s = time.perf_counter() - started
evaluation = evaluate_model(sys.argv[2], dataset, "dev", "cpu")
print(json.dumps({"base_kib": base, "seconds": time.perf_counter() - started, "read_seconds": read_s,
                  "auc": evaluation.ranking.auc, "impressions": evaluation.ranking.impressions, "peak_kib": hwm()}))
"""
USERS = r"""
import json, sys, time
import numpy as np, torch
from newsrec.bench.bench_users import histories, model_and_news
from newsrec.pipeline.inference import encode_users
model, news = model_and_news(torch.device("cpu"))
behaviors = histories(int(sys.argv[1]))
impressions = np.arange(behaviors.num_impressions)
base = hwm()
started = time.perf_counter()
ranking, recall = encode_users(model, news, behaviors, impressions, np.zeros(len(impressions), np.int64), 50,
                               torch.device("cpu"))
print(json.dumps({"base_kib": base, "seconds": time.perf_counter() - started, "users": int(len(ranking)),
                  "outputs_mib": (ranking.numel() + recall.numel()) * 4 / 2**20, "peak_kib": hwm()}))
"""
STAGES = ("train", "feed", "open", "evaluate")


def dataset(size: str) -> Path:
    mind = OUT / size / "mind"
    if not (mind / "dev" / "behaviors.tsv").is_file():
        generate(mind, config_for(size, 0))
    return mind


def pipeline(size: str) -> dict:
    mind, work = dataset(size), OUT / "large-pipeline" / size
    shutil.rmtree(work, ignore_errors=True)
    model, index = work / "runs" / "unirec", work / "index"
    result = {"train": child_peak(TRAIN, str(mind), str(model), str(TRAIN_IMPRESSIONS[size]))}
    result["feed"] = child_peak(FEED, str(mind), str(model), str(index))
    result["open"] = child_peak(OPEN, str(index))
    result["evaluate"] = child_peak(EVALUATE, str(mind), str(model))
    shutil.rmtree(work, ignore_errors=True)
    return result


def run(quick: bool) -> dict:
    sizes = ("tiny", "small") if quick else ("tiny", "small", "large")
    data = {"machine": machine(), "sizes": {}}
    for size in sizes:
        data["sizes"][size] = pipeline(size)
        print(size, data["sizes"][size], flush=True)
    data["users_1m"] = child_peak(USERS, str(10_000 if quick else 1_000_000))
    return data


def render(data: dict) -> str:
    rows = []
    for size, stages in data["sizes"].items():
        train = stages["train"]
        rows.append([size, f"{stages['feed']['news']:,} / {stages['feed']['users']:,}",
                     *(_cell(stages[stage]) for stage in STAGES)])
    largest_size, largest = list(data["sizes"].items())[-1]
    peak = max(largest[stage]["peak_mib"] for stage in STAGES)
    train = largest["train"]
    epochs = "; ".join(f"{e['stage']} {e['impressions_per_s']:,.0f} impressions/s "
                       f"({e['seconds']:,.0f} s)" for e in train["epochs"])
    projected = "; ".join(f"{e['stage']} {train['train_impressions'] * 0.9 / e['impressions_per_s'] / 60:,.0f} min"
                          for e in train["epochs"])
    users = data["users_1m"]
    paths = _plots(data)
    return f"""## The whole pipeline at MIND-large scale, and its curves against size

`python3 bench/run.py large` (`bench/bench_large.py`; generates `demo-data --size large` when missing)

Each stage in a fresh process, as the CLI runs it: **train** (read MIND, one epoch of each UniRec stage),
**feed** (`newsrec-feed` into the embedded index: read, embed every news item and user, transform, build the
HNSW graph and write the generation), **open** (open the index and answer one recommendation), **evaluate**
(`newsrec evaluate` on dev: read, score every dev impression, Recall@K). Peak = the process's resident
high-water mark (its imports included). Stand-ins, said plainly: the LM vectors are random arrays of the
real shape (the LM runs at ~80 news/s here: 33 min for 161k news, see the embedding row; the GPU script
measures it), and at large the training epoch runs on the latest {TRAIN_IMPRESSIONS['large']:,} train
impressions (the whole dataset in memory).{(" " + data["note"]) if data.get("note") else ""}

{table(["size", "news / users", "train", "feed", "open + recommend", "evaluate"], rows)}

At {largest_size} the largest stage peaks at **{peak / 1024:.1f} GiB** of this machine's {GIB} GiB. Training at
{largest_size}: {epochs}; a full epoch over its {train['train_impressions'] * 0.9:,.0f} training impressions
(90%; 10% validate) projects to {projected} (measured end to end: the next row, "One full training epoch"). Memory does not grow with the number of batches
(batches are built from index arrays per step; freed heap returned every 50 steps). User embedding alone at
{users['users']:,} users (UniRec's user encoder over a 161k-news matrix, MIND's history lengths, chunks of 512,
written into the two output matrices of {users['outputs_mib']:,.0f} MiB): the process peaks at
**{users['peak_mib'] / 1024:.2f} GiB in all** (inputs, outputs, Python and torch included; target ≤ 3 GiB),
{users['seconds']:,.0f} s.

![time against size]({paths[0]}) ![peak memory against size]({paths[1]})"""


def _cell(stage: dict) -> str:
    return f"{stage['seconds']:,.1f} s, {stage['peak_mib'] / 1024:.2f} GiB"


def _plots(data: dict) -> tuple[str, str]:
    impressions = [s["evaluate"]["impressions"] for s in data["sizes"].values()]
    quick = data.get("quick", False)
    times = {stage: (impressions, [s[stage]["seconds"] for s in data["sizes"].values()]) for stage in STAGES}
    peaks = {stage: (impressions, [s[stage]["peak_mib"] for s in data["sizes"].values()]) for stage in STAGES}
    return (plot("pipeline_time", "Pipeline stages: time vs size (CPU)", "dev impressions evaluated", "seconds",
                 times, quick=quick),
            plot("pipeline_memory", "Pipeline stages: peak memory vs size", "dev impressions evaluated",
                 "peak MiB", peaks, quick=quick))


if __name__ == "__main__":
    row_main(__doc__, run, render)
