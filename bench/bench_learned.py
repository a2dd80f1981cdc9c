"""The learned ranker's figures (issue #32): the best hand-set combination against LightGBM binary and lambdarank,
through the replay, on worlds v3 and v2 small; feature importance; latency per query.

    python bench/bench_learned.py world MIND_DIR MODEL INDEX NAME W   # one world (W: the live row's recall window)
    python bench/run.py learned                                      # both worlds (small), then BENCHMARKS.md

For each world: one replay logs the features the service computed at each impression's time for the five days
before dev and for dev (feed/replay.py, `--log-hours 120`), serving dev by the live profile whose weights are
fitted on the last 24 h (logistic regression: the best hand-set combination, as served in issue #31). Two rankers
are trained on the log's rows before dev (feed/ranker_job.py; the last train day validates). Their dev figures are
their predictions over the logged dev rows: a ranker's scores do not change any feature (the stream's impressions
and clicks are the log's), so these are the figures serving them gives; the better one is then installed in the index
(a new generation) and the replay run again serving it, which must give the same figures to the last digit.
Every figure is streaming: labelled so wherever it appears.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from newsrec.bench.common import OUT, ROOT, table
from newsrec.feed import ranking
from newsrec.feed.replay import STREAMING_LABEL, ReplayConfig, read_log, stream_metrics

RESULTS = ROOT / "bench" / "results"
LOG_HOURS = 120.0  # five days before dev: day 1 warms the counters up (and fits the appeal), days 2-6 are logged
OBJECTIVES = ("binary", "lambdarank")
METRICS = ("auc", "mrr", "ndcg5", "ndcg10")


def world(mind_dir: str, model_dir: str, index_dir: str, name: str, window_hours: float, scratch: Path,
          served_impressions: int = 0) -> dict:
    """The rows of one world (module docstring); the second replay serves the first `served_impressions` of dev
    (0: all of them; negative: no second replay)."""
    from newsrec.feed.ranker_job import train_from_replay
    from newsrec.feed.replay_job import run_replay
    from newsrec.pipeline.learned_ranker import Ranker, importance

    config = ReplayConfig(window_hours=window_hours, log_hours=LOG_HOURS)
    index = Path(shutil.copytree(index_dir, scratch / "index"))
    model = Path(model_dir)  # not copied: its cache/ of news vectors sits beside it (the rankers go to scratch)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    started = time.perf_counter()
    hand = run_replay(mind_dir, str(model), str(index), str(scratch / "logged"), config, log=log, progress=True)
    logged_seconds = time.perf_counter() - started
    saved, rows = read_log(scratch / "logged")
    dev = rows["impression"] >= saved["fingerprint"]["start"]
    result = {"world": name, "label": STREAMING_LABEL, "window_hours": window_hours,
              "hand-set": {**_pick(hand["metrics"]), "weights": hand["weights"]}, "replay seconds": logged_seconds,
              "rows": {"train (days 2-6)": int((~dev).sum()), "dev": int(dev.sum())}, "rankers": {}}
    for objective in OBJECTIVES:
        started = time.perf_counter()
        header = train_from_replay(scratch / "logged", model, objective, scratch / f"ranker-{objective}", log=log)
        ranker = Ranker.load(header["directory"])
        scores = ranker.predict(rows["terms"][dev])
        result["rankers"][objective] = {
            **_pick(stream_metrics(rows["impression"][dev], rows["labels"][dev], scores)),
            "trees": header["rounds"], "validation auc": header["validation_auc"],
            "train seconds": time.perf_counter() - started, "importance (gain)": importance(ranker)}
    best = max(OBJECTIVES, key=lambda o: result["rankers"][o]["auc"])
    from newsrec.feed.local_backend import LocalBackend

    result["generation"] = LocalBackend(index).install_ranker(scratch / f"ranker-{best}")  # before latency's queries
    result["latency"] = latency(index, rows, saved)
    from newsrec.bench.bench_live import oracles

    result["oracles"] = oracles(mind_dir)
    if served_impressions < 0:  # no second replay: the figures are the logged-feature predictions
        result["served"] = {"objective": best, "not served": "the second replay was not run for this world"}
        return result
    result["served"] = served(mind_dir, model, index, scratch, replace(config, max_scored=served_impressions), best,
                              log)
    first = np.unique(rows["impression"][dev])[:served_impressions or None]
    same = np.isin(rows["impression"], first)
    ranker = Ranker.load(scratch / f"ranker-{best}")
    logged = stream_metrics(rows["impression"][same], rows["labels"][same], ranker.predict(rows["terms"][same]))
    result["served"]["logged-feature prediction on the same impressions"] = _pick(logged)
    result["served"]["impressions"] = int(len(first))
    return result


def served(mind_dir: str, model: Path, index: Path, scratch: Path, config: ReplayConfig, objective: str, log) -> dict:
    """The replay run again serving the better ranker, installed in the index (a new generation, nothing re-fed)."""
    from newsrec.feed.replay_job import run_replay

    started = time.perf_counter()
    report = run_replay(mind_dir, str(model), str(index), str(scratch / "served"),
                        replace(config, learned=True), log=log, progress=True)  # the same log window: the same appeal
    return {"objective": objective, **_pick(report["metrics"]),
            "offline check (served - LightGBM over the logged features)": report["offline_check"]["max_metric_difference"],
            "seconds": time.perf_counter() - started}


def latency(index_dir: Path, rows: dict, saved: dict, queries: int = 300, repeats: int = 3) -> dict:
    """Per query on the embedded index: the live features of one impression's candidates under the live profile
    (hand-set weights) and under the learned profile (its features, then LightGBM), side by side (median of
    `repeats` passes over the same `queries` impressions)."""
    from newsrec.feed.local_backend import LocalBackend
    from newsrec.feed.replay import LearnedQuery

    index = LocalBackend(index_dir)
    rng = np.random.default_rng(0)
    ids = index._news_order  # noqa: SLF001 (the bench reads the index's own order)
    vector = np.append(rng.normal(size=index._vectors.shape[1] - 1), 0.0)  # noqa: SLF001
    query = LearnedQuery(vector, {"news": 0.04, "sports": 0.05}, {"news": 0.5}, {"Q1": 0.2}, 20)
    inputs = {"decay_origin": 1.5e9, "decay_rate": 3e-5, **saved["weights"]}
    picks = [rng.choice(len(ids), size=37, replace=False) for _ in range(queries)]
    timings = {}
    for profile, learned in (("live", None), ("learned", query)):
        passes = []
        for _ in range(repeats):
            started = time.perf_counter()
            for pick in picks:
                index.live_features(vector, [ids[i] for i in pick], 1_573_900_000, inputs, learned, profile)
            passes.append((time.perf_counter() - started) / queries)
        timings[profile] = float(np.median(passes)) * 1000
    return {"candidates": 37, "queries": queries, "ms per query, live (hand-set)": timings["live"],
            "ms per query, learned": timings["learned"], "learned / live": timings["learned"] / timings["live"]}


def _pick(metrics: dict) -> dict:
    return {k: float(metrics[k]) for k in METRICS}


# ------------------------------------------------------------------------------------ the row of bench/run.py

def run(quick: bool) -> dict:
    """Both worlds (small; tiny when quick), prepared as bench_live prepares them, W as the live row chose it."""
    from newsrec.bench.bench_live import WORLDS, prepared
    from newsrec.bench.common import machine

    live = json.loads((RESULTS / "live.json").read_text()) if (RESULTS / "live.json").is_file() else {}
    size = "tiny" if quick else "small"
    root = OUT / ("quick" if quick else "") / "live"
    result = {"machine": machine(), "size": size, "worlds": {}}
    for name in WORLDS:
        mind, model, index = prepared(name, size, root)
        window = live.get("ladder", {}).get(name, {}).get("window_hours", 24.0) if not quick else 24.0
        with tempfile.TemporaryDirectory() as scratch:
            result["worlds"][name] = world(mind, model, index, f"{name} {size}", window, Path(scratch))
    result["plot"] = importance_plot(result, quick)
    return result


def importance_plot(data: dict, quick: bool) -> str:
    """Gain per feature of each world's binary ranker, as horizontal bars (bench/plots/learned_importance.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from newsrec.bench.common import PLOTS

    names = list(ranking.LEARNED_FEATURES)
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    worlds = list(data["worlds"])
    height = 0.8 / max(len(worlds), 1)
    for k, name in enumerate(worlds):
        gains = data["worlds"][name]["rankers"]["binary"]["importance (gain)"]
        total = sum(gains.values()) or 1.0
        axes.barh(np.arange(len(names)) + k * height, [gains[n] / total for n in names], height, label=f"world {name}")
    axes.set_yticks(np.arange(len(names)) + height * (len(worlds) - 1) / 2, names)
    axes.invert_yaxis()
    axes.set_xlabel("share of the total gain (LightGBM binary)")
    axes.set_title("Learned ranker: feature importance")
    axes.legend(fontsize=8)
    figure.tight_layout()
    directory = OUT / "quick" / "plots" if quick else PLOTS
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "learned_importance.png"
    figure.savefig(path)
    plt.close(figure)
    return str(path.relative_to(ROOT))


def _f(value, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render(data: dict) -> str:
    rows, checks, speed = [], [], []
    for name, w in data["worlds"].items():
        hand = w["hand-set"]
        rows.append([name, "best hand-set: live profile, weights by logistic regression (served)",
                     *(_f(hand[k]) for k in ("auc", "mrr", "ndcg10")), "—"])
        for objective in OBJECTIVES:
            r = w["rankers"][objective]
            rows.append([name, f"LightGBM {objective} ({r['trees']} trees)", *(_f(r[k]) for k in ("auc", "mrr", "ndcg10")),
                         f"{r['auc'] - hand['auc']:+.4f}"])
        rows.append([name, "+ UNBERT fused", "not through the replay: ~4.6M cross-encoder pairs, days on this CPU; "
                     "the fusion is measured on the funnel (UNBERT section)", "", "", ""])
        for label in ("time-blind oracle (no fresh component)", "oracle"):
            o = w["oracles"].get(label)
            if o:
                rows.append([name, f"{label} (offline, planted)", _f(o["auc"]), _f(o["mrr"]), _f(o["ndcg10"]), ""])
        s = w["served"]
        if "not served" in s:
            checks.append([name, s["objective"], "— (not served: " + s["not served"] + ")", "—", "—", "—",
                           f"{w['replay seconds']:.0f} / —", f"{w['rows']['train (days 2-6)']:,} / {w['rows']['dev']:,}"])
            lat = w["latency"]
            speed.append([name, _f(lat["ms per query, live (hand-set)"], 3), _f(lat["ms per query, learned"], 3),
                          f"{lat['learned / live']:.2f}×"])
            continue
        logged = s.get("logged-feature prediction on the same impressions", {}).get(
            "auc", w["rankers"][s["objective"]]["auc"])  # all of dev served: the ranker's row
        checks.append([name, s["objective"], f"{s.get('impressions', w['rows']['dev']):,}", _f(s["auc"]), _f(logged),
                       f"{s['offline check (served - LightGBM over the logged features)']:.1e}",
                       f"{w['replay seconds']:.0f} / {s['seconds']:.0f}",
                       f"{w['rows']['train (days 2-6)']:,} / {w['rows']['dev']:,}"])
        lat = w["latency"]
        speed.append([name, _f(lat["ms per query, live (hand-set)"], 3), _f(lat["ms per query, learned"], 3),
                      f"{lat['learned / live']:.2f}×"])
    return f"""## Learned ranking: LightGBM over causally logged features (worlds v3 and v2, {data['size']})

`python3 bench/run.py learned` (bench/bench_learned.py; one world: `python3 bench/bench_learned.py world ...`)

{STREAMING_LABEL}. One replay per world logs the features the service computed at each impression's time
(feed/ranking.py LEARNED_FEATURES: the live terms, recall closeness, decayed impressions, category CTR, category and
entity shares of the history, history length) over the five days before dev and dev, serving dev by the live
profile with weights fitted on the last 24 h (the best hand-set combination). LightGBM rankers train on the days
before the last train day, which validates (early stopping); their dev figures are their predictions over the
logged dev rows, and the better one is then served through a second replay (below: equal to the last digit).

{table(["world", "row", "AUC", "MRR", "nDCG@10", "AUC vs hand-set"], rows)}

Served through the replay (the ranker installed in the index as a new generation, nothing re-fed; the learned
profile's second phase computed by the embedded index with LightGBM's predict):

{table(["world", "served ranker", "dev impressions served", "served AUC", "logged-feature prediction AUC",
        "served − its offline check", "replay seconds (logged / served)", "rows (train / dev)"], checks)}

Latency per query on the embedded index (37 candidates: the live features, then the hand-set weights or the ranker):

{table(["world", "live ms", "learned ms", "learned / live"], speed)}

Feature importance (share of the total gain of the binary ranker): ![importance]({data.get('plot', '')})"""


def assemble() -> int:
    """The run.py row from `world` runs of v3 and v2 small (each run alone, one after the other, as run() would)."""
    from newsrec.bench.bench_live import WORLDS
    from newsrec.bench.common import machine

    worlds = {name: json.loads((RESULTS / f"learned-{name}-small.json").read_text()) for name in WORLDS
              if (RESULTS / f"learned-{name}-small.json").is_file()}
    data = {"machine": machine(), "size": "small", "worlds": worlds}
    data["plot"] = importance_plot(data, quick=False)
    data["seconds"] = round(sum(w["replay seconds"] + w["served"].get("seconds", 0) for w in worlds.values()), 1)
    data["quick"] = False
    (RESULTS / "learned.json").write_text(json.dumps(data, indent=1) + "\n")
    print(render(data))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("world")
    for name in ("mind_dir", "model_dir", "index_dir", "name"):
        one.add_argument(name)
    one.add_argument("window_hours", type=float)
    one.add_argument("--served-impressions", type=int, default=0, help="dev impressions the second replay serves")
    sub.add_parser("assemble", help="bench/results/learned.json (the run.py row) from the worlds' files")
    args = parser.parse_args(argv)
    if args.what == "assemble":
        return assemble()
    with tempfile.TemporaryDirectory() as scratch:
        result = world(args.mind_dir, args.model_dir, args.index_dir, args.name, args.window_hours, Path(scratch),
                       args.served_impressions)
    out = RESULTS / f"learned-{args.name.replace(' ', '-')}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "oracles"}, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
