"""The live service's figures (issue #31): which real-time CTR, the recall window W, counter updates per second,
and the replay's ladder.

    python bench/bench_live.py ctr MIND_DIR                 # CTR forms, causal, on the stream's dev rows
    python bench/bench_live.py updates                      # counter updates/s into the embedded index
    python bench/bench_live.py ladder MIND_DIR MODEL INDEX STATE NAME  # the W curve, the replay, its ladder
    python bench/bench_live.py endpoint MIND_DIR MODEL INDEX  # the replay through HTTP = the embedded one

Every figure is causal: a row's CTR counts only earlier impressions (feed/replay_job.py `_sums_before`), and is
labelled streaming where it appears. Results go to bench/results/live-*.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from newsrec.bench.common import ROOT
from newsrec.feed import ranking
from newsrec.feed.replay import STREAMING_LABEL, build_stream, stream_metrics

RESULTS = ROOT / "bench" / "results"
HALF_LIVES = (1.0, 3.0, 6.0, 12.0, 24.0, 48.0)
WINDOWS = (6.0, 12.0, 24.0, 48.0)


# ------------------------------------------------------------------------------------------------- CTR forms

def ctr_forms(mind_dir: str) -> dict:
    """AUC of each CTR form alone on the dev rows of the stream (every earlier impression counted, never the
    row's own): cumulative, exponentially decayed (half-lives), windowed (last W hours), each smoothed towards
    the profile's prior (1 click in 25 impressions)."""
    from newsrec.feed.replay_job import _sums_before
    from newsrec.pipeline.mind import read_mind

    stream = build_stream(read_mind(mind_dir), "dev", 0.0)
    row_impression = np.repeat(np.arange(len(stream)), np.diff(stream.candidate_offsets))
    news = stream.candidates.astype(np.int64)
    clicked = (stream.labels == 1).astype(np.float64)
    t = stream.time[row_impression].astype(np.float64)
    dev = row_impression >= stream.start
    forms = {"cumulative": _sums_before(news, row_impression, clicked, np.ones_like(clicked))}
    for hours in HALF_LIVES:
        rate = np.log(2) / (hours * 3600)
        weight = np.exp(rate * (t - t[0]))
        c, s = _sums_before(news, row_impression, clicked * weight, weight)
        forms[f"decayed, half-life {hours:g} h"] = (c / weight, s / weight)  # decayed to the row's own time
    for hours in WINDOWS:
        forms[f"windowed, last {hours:g} h"] = _windowed(news, row_impression, t, clicked, hours * 3600)
    result = {}
    for name, (clicks, shown) in forms.items():
        ctr = ranking.ctr(clicks, shown)
        result[name] = stream_metrics(row_impression[dev], stream.labels[dev], np.log(ctr[dev]))["auc"]
    clicks, shown = forms["decayed, half-life 6 h"]
    prior_ctr = ranking.CTR_PRIOR_CLICKS / ranking.CTR_PRIOR_IMPRESSIONS
    priors = {}
    for weight in (1.0, 5.0, 25.0, 100.0, 400.0):  # the prior's strength, in impressions (the profile's: 25)
        ctr = (clicks[dev] + prior_ctr * weight) / (shown[dev] + weight)
        priors[f"prior worth {weight:g} impressions"] = stream_metrics(row_impression[dev], stream.labels[dev],
                                                                       np.log(ctr))["auc"]
    return {"label": STREAMING_LABEL, "mind_dir": mind_dir, "auc_of_ctr_alone": result,
            "decayed 6 h, prior strength": priors}


def _windowed(news, impression, t, clicked, window_s):
    """Sums over earlier impressions within `window_s` before the row (same news item), by two prefix sums."""
    order = np.lexsort((impression, news))
    key_news, key_t = news[order], t[order]
    sums = []
    for values in (clicked, np.ones_like(clicked)):
        prefix = np.concatenate([[0.0], np.cumsum(values[order])])
        here = np.arange(len(order))  # rows before this one in (news, impression) order: prefix[here]
        first = _first_at_or_after(key_news, key_t, key_t - window_s)
        out = np.empty(len(order))
        out[order] = prefix[here] - prefix[first]
        sums.append(out)
    return sums


def _first_at_or_after(news, t, since):
    """For each row (sorted by news, then time), the first row of the same news item with time > since."""
    span = float(t.max() - t.min() + 1) if len(t) else 1.0
    combined = news * (span * 4) + (t - t.min())
    return np.searchsorted(combined, news * (span * 4) + (since - t.min()), side="right")


# ------------------------------------------------------------------------------------------------ throughput

def update_throughput(news: int = 50_000, impressions: int = 20_000, candidates: int = 37, repeats: int = 3) -> dict:
    """Counter updates per second into the embedded index's live columns (conditional partial updates in
    Vespa's JSON format, built, parsed and applied), as the replay sends them (one call per impression) and in
    calls of 1,000 impressions; beside the generic document path (a new generation per call) on 20 impressions."""
    import tempfile

    from newsrec.feed.backend import FeedReport
    from newsrec.feed.live import DecayConfig, LiveStore, impression_updates

    rng = np.random.default_rng(0)
    ids = [f"N{i}" for i in range(news)]
    decay = DecayConfig(origin=1.5e9)
    shown = np.stack([rng.choice(news, candidates, replace=False) for _ in range(impressions)])  # distinct per impression
    labels = (rng.random((impressions, candidates)) < 0.04).astype(np.int8)
    built = [impression_updates([ids[n] for n in shown[i]], labels[i], int(1.5e9 + i), 2 * i + 2, decay)
             for i in range(impressions)]
    rows = {}
    for name, batch in (("one call per impression", 1), ("calls of 1,000 impressions", 1000)):
        times = []
        for _ in range(repeats):
            live = LiveStore.from_documents(ids, [{}] * news)
            report = FeedReport()
            started = time.perf_counter()
            for start in range(0, impressions, batch):
                live.apply([u for b in built[start:start + batch] for u in b], report)
            times.append(time.perf_counter() - started)
            assert report.ok == impressions * candidates and not report.failed
        rows[name] = impressions * candidates / float(np.median(times))
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        live.save(Path(directory) / "live.npz", "g1")
        rows["checkpoint (save, fsync) seconds"] = time.perf_counter() - started
    build = time.perf_counter()
    for i in range(min(impressions, 2000)):
        impression_updates([ids[n] for n in shown[i]], labels[i], int(1.5e9 + i), 2 * i + 2, decay)
    rows["building the updates (per second)"] = min(impressions, 2000) * candidates / (time.perf_counter() - build)
    return {"news": news, "updates": impressions * candidates, "updates_per_second": rows}


def new_story_latency(news: int = 50_000, stories: int = 20) -> dict:
    """Seconds from feeding one new story into an embedded index of `news` news (a put, committed as a new
    generation, the story appended to the graph) and publishing it (a conditional partial update) until a query
    for the news published in the last hour finds it first by its own vector; the same put of a story the index
    holds (which rebuilds the graph) beside it."""
    import tempfile

    from newsrec.feed.backend import FeedReport
    from newsrec.feed.documents import news_document
    from newsrec.feed.live import publish_updates
    from newsrec.feed.local_backend import LocalBackend

    rng = np.random.default_rng(5)
    now = int(1.5e9)

    def story(i: int, vector: np.ndarray) -> dict:
        return news_document(f"N{i}", "c", "s", "t", "", "u", 20191101, 0, 0, vector.tolist() + [0.0])

    def unit(size: int) -> np.ndarray:
        vector = rng.normal(size=(size, 64))
        return vector / np.linalg.norm(vector, axis=1, keepdims=True) / 2

    with tempfile.TemporaryDirectory() as directory:
        index = LocalBackend(Path(directory) / "index")
        index.feed([story(i, v) for i, v in enumerate(unit(news))], "news", FeedReport())
        index.update([u for i in range(news) for u in publish_updates([f"N{i}"], now - 86_400, 1)], "news",
                     FeedReport())
        seconds, found = [], 0
        for n, vector in enumerate(unit(stories)):
            started = time.perf_counter()
            index.feed([story(news + n, vector)], "news", FeedReport())
            index.update(publish_updates([f"N{news + n}"], now, 2 * (news + n) + 1), "news", FeedReport())
            nearest = index.nearest_news(np.append(vector, 0.0), 1, (now - 3600, now))
            seconds.append(time.perf_counter() - started)
            found += nearest == [f"N{news + n}"]
        started = time.perf_counter()
        index.feed([story(0, unit(1)[0])], "news", FeedReport())  # a story it holds, put again: a rebuild
        rebuild = time.perf_counter() - started
    return {"news": news, "stories": stories, "found first": found, "median seconds": float(np.median(seconds)),
            "max seconds": float(np.max(seconds)), "put of a held story (rebuild) seconds": rebuild}


def server_update_throughput(news: int = 2_000, impressions: int = 300, candidates: int = 37) -> dict:
    """Counter updates per second into the contract server (newsrec/contract_server/, single-threaded Python, NOT
    Vespa: it bounds both clients), with the project's feeder (feed/vespa_feed.py `update_all`, pyvespa, 8 in
    flight) and with `vespa feed` (the Go CLI, a JSONL of the same kind of updates), side by side; each run's
    updates all acknowledged, conditions included."""
    import subprocess
    import tempfile

    from newsrec.bench.bench_feed_http import documents, start_server
    from newsrec.feed.backend import FeedReport
    from newsrec.feed.live import DecayConfig, impression_updates
    from newsrec.feed.vespa_backend import JsonlFeedFile, VespaBackend

    rng = np.random.default_rng(1)
    decay = DecayConfig(origin=1.5e9)

    def updates(first: int) -> list[dict]:
        return [u for i in range(first, first + impressions)
                for u in impression_updates([f"N{n}" for n in rng.choice(news, candidates, replace=False)],
                                            (rng.random(candidates) < 0.04).astype(np.int8), int(1.5e9 + i),
                                            2 * i + 2, decay)]
    process, url = start_server()
    try:
        backend = VespaBackend(url)
        report = FeedReport()
        backend.feed(documents(news), "news", report)
        assert report.success, report.summary()
        rows = {}
        batch = updates(0)
        report, started = FeedReport(), time.perf_counter()
        backend.update(batch, "news", report)
        rows["newsrec feeder (pyvespa, 8 in flight)"] = report.ok / (time.perf_counter() - started)
        assert report.ok == len(batch), report.summary()
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "updates.jsonl"
            batch = updates(impressions)
            JsonlFeedFile(path).update(batch, "news", FeedReport())
            started = time.perf_counter()
            result = subprocess.run(["vespa", "feed", "--target", url, str(path)], capture_output=True, text=True,
                                    env={**os.environ, "VESPA_CLI_HOME": str(Path(directory) / "home")})
            seconds = time.perf_counter() - started
            codes = json.loads(result.stdout)["http.response.code.counts"] if result.stdout.strip() else {}
            ok, refused = int(codes.get("200", 0)), int(codes.get("412", 0))
            rows["vespa feed (Go CLI)"] = (ok + refused) / seconds
        # every update counted exactly once: each adds 1 impression (a retried one refused by its condition)
        held = backend.news([f"N{n}" for n in range(news)])
        counted = sum(hit.fields["impressions"] for hit in held) - sum(d["fields"]["impressions"] for d in documents(news))
        if counted != 2 * len(batch):
            raise SystemExit(f"the counters hold {counted} impressions, {2 * len(batch)} were sent: no ratio")
        return {"updates": len(batch), "updates_per_second": rows, "vespa feed 412 (applied, retried)": refused,
                "counted once": True,
                "note": "the contract server, not Vespa: single-threaded Python, it bounds both clients"}
    finally:
        process.terminate()
        process.wait()


QUERY_SECONDS = 60.0  # each latency run's queries stop after this long


def query_latency_under_updates(news: int = 20_000, queries: int = 1_000, rates=(10_000, 50_000, 0)) -> dict:
    """The replay's queries to the embedded index (live features of 37 candidates, and the windowed Recall@100
    search), p50 / p99 idle and while another thread streams counter updates into the same index: as fast as it
    can (0) and paced at a rate (updates/s)."""
    import tempfile

    from newsrec.feed.backend import FeedReport
    from newsrec.feed.documents import news_document
    from newsrec.feed.live import publish_updates
    from newsrec.feed.local_backend import LocalBackend

    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory() as directory:
        index = LocalBackend(Path(directory) / "index")
        vectors = rng.normal(size=(news, 64)) / 8
        index.feed([news_document(f"N{i}", "c", "s", "t", "", "u", 20191101, 0, 0, v.tolist() + [0.0])
                    for i, v in enumerate(vectors)], "news", FeedReport())
        ids = [f"N{i}" for i in range(news)]
        with index.live_session():
            ages = rng.integers(0, 86_400 * 3, news)  # published over the 3 days before "now"
            index.update([u for n, news_id in enumerate(ids) for u in publish_updates([news_id], int(1.5e9 - ages[n]), 1)],
                         "news", FeedReport())
            result = {"news": news, "queries": queries, "idle": _latencies(index, ids, queries, None)}
            for rate in rates:
                name = f"while streaming {rate:,} updates/s" if rate else "while streaming as fast as it can"
                result[name] = _latencies(index, ids, queries, rate)
    return result


def _latencies(index, ids: list[str], queries: int, rate: float | None) -> dict:
    """p50/p95/p99 of `queries` queries, with a writer thread (None: none; else its rate, 0 = unpaced)."""
    import threading

    from newsrec.feed.backend import FeedReport
    from newsrec.feed.live import DecayConfig, impression_updates

    decay, rng = DecayConfig(origin=1.5e9), np.random.default_rng(4)
    stop, applied = threading.Event(), [0]

    def stream() -> None:
        writer_rng, started = np.random.default_rng(3), time.perf_counter()  # its own generator (a lock)
        i = int(index.live_column("live_seq").max()) // 2 + 1  # sequence numbers after the earlier runs' (conditions)
        while not stop.is_set():
            report = FeedReport()
            index.update(impression_updates([ids[n] for n in writer_rng.choice(len(ids), 37, replace=False)],
                                            np.zeros(37, np.int8), int(1.5e9), 2 * i, decay), "news", report)
            applied[0] += report.ok
            i += 1
            if rate:
                time.sleep(max(0.0, applied[0] / rate - (time.perf_counter() - started)))
    writer = threading.Thread(target=stream) if rate is not None else None
    if writer:
        writer.start()
    times, started = [], time.perf_counter()
    for _ in range(queries):
        if time.perf_counter() - started > QUERY_SECONDS:  # an unpaced writer thread can starve them (the GIL)
            break
        begin = time.perf_counter()
        chosen = [ids[n] for n in rng.choice(len(ids), 37, replace=False)]
        index.live_features(np.append(rng.normal(size=64), 0.0), chosen, int(1.5e9), decay.inputs())
        index.nearest_news(np.append(rng.normal(size=64), 0.0), 100, (int(1.5e9) - 48 * 3600, int(1.5e9)))
        times.append(time.perf_counter() - begin)
    seconds = time.perf_counter() - started
    if writer:
        stop.set()
        writer.join()
    p50, p95, p99 = np.percentile(np.array(times) * 1000, [50, 95, 99]).tolist()
    return {"p50 ms": p50, "p95 ms": p95, "p99 ms": p99, "updates/s meanwhile": applied[0] / seconds,
            "queries": len(times), "seconds": seconds}


# ------------------------------------------------------------------------------------------ the ladder, W

LADDER = (("two-tower (time-blind recall over all news)", None),
          ("+ recency at recall (window W)", None),
          ("+ real-time CTR", (0, 1)),
          ("+ appeal", (0, 1, 3)),
          ("+ recency term = learned combination (served)", (0, 1, 3, 2)))
POOLS = ("all news (time-blind)", "published by t", *(f"published within {w:g} h" for w in (6, 12, 24, 48, 72)))


def recall_curve(stream, vectors, users, sample: int = 2_000, k: int = 100, seed: int = 0) -> dict:
    """Recall@k of the user's recall vector over several pools of news, exact top-k by inner product, on a seeded
    sample of the split's impressions (vectors from the history as the replay sees it): the pool being all news
    (what the time-blind index searches), the news published by t, or within W hours before t."""
    from newsrec.feed.replay_job import _first_sightings, user_vectors
    from newsrec.pipeline.metrics import recall_from_ranks

    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(np.arange(stream.start, len(stream)), min(sample, len(stream) - stream.start),
                                replace=False))
    recall = user_vectors(stream, users, chosen)[1]
    published = _first_sightings(stream, vectors.shape[0])
    scores = recall @ vectors.T  # (sample, N)
    ranks = {pool: [] for pool in POOLS}
    counts = []
    for row, i in enumerate(chosen):
        t = stream.time[i]
        clicked = stream.candidates[stream.candidates_of(i)][stream.labels[stream.candidates_of(i)] == 1]
        counts.append(len(clicked))
        for pool in POOLS:
            allowed = _pool(pool, published, t)
            candidates = np.flatnonzero(allowed)
            top = candidates[np.argsort(-scores[row, candidates], kind="stable")[:k]]
            position = {n: r for r, n in enumerate(top.tolist())}
            ranks[pool].extend(position.get(int(n), k) for n in clicked)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return {pool: recall_from_ranks(np.array(r), offsets, k)[0] for pool, r in ranks.items()} | {
        "sample": len(chosen), "k": k}


def _pool(pool: str, published: np.ndarray, t: float) -> np.ndarray:
    if pool == POOLS[0]:
        return np.ones(len(published), dtype=bool)
    if pool == POOLS[1]:
        return published <= t
    hours = float(pool.split()[2])
    return (published <= t) & (published > t - hours * 3600)


def ladder(mind_dir: str, model_dir: str, index_dir: str, state_dir: str, name: str) -> dict:
    """W from the recall curve, then the replay with it, then the ladder from the replay's log (each rung's weights
    fitted on the fit window's rows, as the served ones), the oracles from planted.json."""
    from dataclasses import replace as with_values

    from newsrec.feed.replay import ReplayConfig, Users, read_log
    from newsrec.feed.replay_job import Encoder, run_replay
    from newsrec.pipeline.encoding import encode_dataset
    from newsrec.pipeline.mind import read_mind

    dataset = read_mind(mind_dir)
    encoded = encode_dataset(model_dir, dataset)
    config = ReplayConfig()
    stream = build_stream(dataset, config.split, config.fit_hours)
    vectors = encoded.news_matrix.double().cpu().numpy()
    started = time.perf_counter()
    curve = recall_curve(stream, vectors, Users(Encoder(encoded)))
    windows = {float(pool.split()[2]): value for pool, value in curve.items() if pool.startswith("published within")}
    best = max(windows.values())
    window = min(w for w, value in windows.items() if value >= best - 0.002)  # the shortest within 0.002 of the best
    curve_seconds = time.perf_counter() - started
    config = with_values(config, window_hours=window)
    result = run_replay(mind_dir, model_dir, index_dir, state_dir, config, log=lambda line: print(line, file=sys.stderr),
                        progress=True)
    saved, log = read_log(Path(state_dir))
    return {"label": STREAMING_LABEL, "world": name, "recall_curve": curve, "window_hours": window,
            "curve_seconds": curve_seconds, "replay": result,
            "ladder": ladder_rows(log, stream.start, curve[POOLS[0]], result),
            "phi_headroom": phi_headroom(stream, vectors),
            "oracles": oracles(mind_dir)}


def ladder_rows(log: dict, start: int, time_blind_recall: float, result: dict) -> list[dict]:
    from newsrec.feed.replay import fit_weights

    fit = log["impression"] < start
    dev = ~fit
    rows = []
    for label, columns in LADDER:
        if columns is None:
            weights = dict.fromkeys(ranking.LIVE_WEIGHTS, 0.0) | {"w_user": 1.0}
        else:
            weights = fit_weights(log["terms"][fit], log["labels"][fit], columns)
        w = np.array([weights[n] for n in ranking.LIVE_WEIGHTS])
        metrics = stream_metrics(log["impression"][dev], log["labels"][dev], log["terms"][dev] @ w)
        recall = time_blind_recall if label.startswith("two-tower") else result["recall@100"]
        rows.append({"row": label, **{k: metrics[k] for k in ("auc", "mrr", "ndcg5", "ndcg10")},
                     "recall@100 over all news": recall, "weights": weights})
    served = result["metrics"]
    assert abs(rows[-1]["auc"] - served["auc"]) < 1e-9, (rows[-1], served)  # the last rung is what was served
    return rows


def phi_headroom(stream, vectors: np.ndarray, headrooms=(0.0, 0.1, 0.5)) -> dict:
    """Continuous ingestion against Φ: Φ set from the news seen before the replayed split (as a feed before it
    would), then the share of the news first seen during the split whose norm exceeds (1 + H) Φ (each such story
    would need Φ grown, i.e. every news vector re-fed)."""
    from newsrec.feed.replay_job import _first_sightings

    published = _first_sightings(stream, vectors.shape[0])
    split_start = stream.time[stream.start]
    norms = np.linalg.norm(vectors, axis=1)
    before, during = norms[published < split_start], norms[(published >= split_start) & np.isfinite(published)]
    phi = float(before.max())
    return {"news before the split": int(len(before)), "news first seen in the split": int(len(during)),
            **{f"share over (1 + {h:g}) x phi": float((during > (1 + h) * phi).mean()) for h in headrooms},
            "largest new norm / phi": float(during.max() / phi) if len(during) else None}


def oracles(mind_dir: str) -> dict:
    """The planted oracle on dev (full logit), the time-blind oracle (the logit without its time component,
    `fresh`), and the recall oracle over all news, from the generator's world (planted.json)."""
    from newsrec.pipeline import world_v2
    from newsrec.pipeline.baselines import planted_summary
    from newsrec.pipeline.demo_data import DemoConfig, plant
    from newsrec.pipeline.metrics import ranking_metrics

    summary = planted_summary(mind_dir)
    if not summary or summary.get("world") not in ("v2", "v3"):
        return {}
    planted = plant(DemoConfig(**summary["config"]))
    parts = world_v2.chunked_components(world_v2.WorldV2(), planted.news, planted.users,
                                        *world_v2.impression_rows(planted.dev))
    full = sum(parts.values())
    blind = full - parts["fresh"]
    dev = planted.dev
    return {"oracle": ranking_metrics(dev.labels, full, dev.offsets).as_dict(),
            "time-blind oracle (no fresh component)": ranking_metrics(dev.labels, blind, dev.offsets).as_dict(),
            "recall oracle, all news, R@100": summary["recall_oracle"].get("all news", {}).get("100")
            if isinstance(summary.get("recall_oracle"), dict) else None}


def endpoint_agreement(mind_dir: str, model_dir: str, index_dir: str, scored: int = 60) -> dict:
    """The same replay through Vespa's HTTP API (the contract server, fed by newsrec-feed --endpoint) and through
    the embedded index (a copy of `index_dir`): the same figures, or this exits without them."""
    import shutil
    import subprocess
    import tempfile
    from dataclasses import replace as with_values

    from newsrec.bench.bench_feed_http import start_server
    from newsrec.feed.replay import ReplayConfig
    from newsrec.feed.replay_job import run_replay

    config = with_values(ReplayConfig(), max_scored=scored)
    process, url = start_server()
    try:
        with tempfile.TemporaryDirectory() as directory:
            fed = subprocess.run([sys.executable, "-m", "newsrec", "feed", mind_dir, "--model", model_dir,
                                  "--endpoint", url, "--state", f"{directory}/feed-state"], capture_output=True,
                                 text=True)
            if fed.returncode != 0:
                raise SystemExit(f"feeding the contract server failed: {fed.stderr[-2000:]}")
            started = time.perf_counter()
            through_http = run_replay(mind_dir, model_dir, "", f"{directory}/http", config, endpoint=url,
                                      log=lambda _: None)
            http_seconds = time.perf_counter() - started
            index = shutil.copytree(index_dir, f"{directory}/index")
            started = time.perf_counter()
            embedded = run_replay(mind_dir, model_dir, index, f"{directory}/embedded", config, log=lambda _: None)
            embedded_seconds = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait()
    same = through_http["metrics"] == embedded["metrics"] and through_http["recall@100"] == embedded["recall@100"]
    if not same:
        raise SystemExit(f"the replays disagree: {through_http['metrics']} against {embedded['metrics']}")
    return {"scored impressions": scored, "metrics (both)": embedded["metrics"], "recall@100 (both)":
            embedded["recall@100"], "seconds through HTTP": http_seconds, "seconds embedded": embedded_seconds}


# ------------------------------------------------------------------------------------ the row of bench/run.py

WORLDS = ("v3", "v2")


def prepared(world: str, size: str, root: Path) -> tuple[str, str, str]:
    """(MIND dir, model dir, index dir) of `demo-data --size size --world world` under `root`: generated, a
    mean-pool two-tower trained (2 epochs) and fed to an embedded index, each step skipped when already done."""
    import subprocess

    mind, model, index = root / f"{world}-{size}", root / f"{world}-meanpool", root / f"{world}-index"
    steps = [(mind / "planted.json", ["demo-data", str(mind), "--size", size, "--world", world]),
             (model / "model.pt", ["train", str(mind), "--out", str(model), "--model", "meanpool", "--epochs",
                                   "1" if size == "tiny" else "2"]),
             (index / "CURRENT", ["feed", str(mind), "--model", str(model), "--index", str(index)])]
    for done, command in steps:
        if not done.exists():
            subprocess.run([sys.executable, "-m", "newsrec", *command], check=True)
    return str(mind), str(model), str(index)


def run(quick: bool) -> dict:
    """Every part on generated data: the CTR forms and the ladder on worlds v3 and v2 (small; tiny when quick),
    the update throughput and query latency, and the replay through HTTP against the embedded one (tiny)."""
    import shutil
    import tempfile

    from newsrec.bench.common import OUT, machine

    root = OUT / ("quick" if quick else "") / "live"
    size = "tiny" if quick else "small"
    result = {"machine": machine(), "size": size, "ctr": {}, "ladder": {}}
    for world in WORLDS:
        mind, model, index = prepared(world, size, root)
        result["ctr"][world] = ctr_forms(mind)
        with tempfile.TemporaryDirectory() as scratch:
            copy = shutil.copytree(index, f"{scratch}/index")
            result["ladder"][world] = ladder(mind, model, copy, f"{scratch}/state", f"{world} {size}")
    result["updates"] = update_throughput(*((5_000, 2_000) if quick else ()))
    result["contract server"] = server_update_throughput(*((300, 40) if quick else ()))
    result["queries"] = query_latency_under_updates(*((2_000, 200) if quick else ()))
    result["new stories"] = new_story_latency(*((5_000, 5) if quick else ()))
    result["endpoint"] = endpoint_agreement(*prepared("v3", "tiny", OUT / "quick" / "live"))
    return result


def render(data: dict) -> str:
    return "\n\n".join([_render_ladder(data), _render_ctr(data), _render_speed(data)])


def _f(value, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _render_ladder(data: dict) -> str:
    rows = []
    for world, ladder_data in data["ladder"].items():
        for row in ladder_data["ladder"]:
            rows.append([f"{world}", row["row"], _f(row["auc"]), _f(row["mrr"]), _f(row["ndcg10"]),
                         _f(row["recall@100 over all news"])])
        oracles = ladder_data["oracles"]
        for name in ("oracle", "time-blind oracle (no fresh component)"):
            if name in oracles:
                o = oracles[name]
                rows.append([world, f"{name} (offline, planted)", _f(o["auc"]), _f(o["mrr"]), _f(o["ndcg10"]),
                             _f(oracles.get("recall oracle, all news, R@100")) if name == "oracle" else "—"])
    first = next(iter(data["ladder"].values()))
    curve = [[world, *(_f(d["recall_curve"][pool]) for pool in POOLS)] for world, d in data["ladder"].items()]
    checks = [[world, f'{d["replay"]["offline_check"]["max_term_difference"]:.1e}',
               f'{d["replay"]["offline_check"]["max_metric_difference"]:.1e}', f"{d['replay']['seconds']:.0f}",
               f"{d['window_hours']:g} h", json.dumps({k: round(v, 3) for k, v in d["replay"]["weights"].items()})]
              for world, d in data["ladder"].items()]
    from newsrec.bench.common import table

    return f"""## The live service: the replay's ladder (worlds v3 and v2, {data['size']})

`python3 bench/run.py live` (bench/bench_live.py; parts: `python3 bench/bench_live.py ladder|ctr|updates|endpoint`)

{STREAMING_LABEL}. `newsrec replay` plays train then dev in time order through the embedded index (feed/replay.py):
each dev impression ranked by the live profile at its own time, its clicks written back (counters by conditional
partial updates, the user's history and vectors), the weights of each rung fitted by logistic regression on the
{first['replay'].get('fit_impressions', 'last 24 h of train')} impressions before dev (causal), the two-tower a
mean-pool model trained 2 epochs on train. Recall@100 is over all news: the time-blind row searches every news item
of the index (today's served query); the others the news published within W of the impression (W chosen from the
curve below: the shortest window within 0.002 of the best). Oracles: the planted click logit (offline), and without
its time component (fresh).

{table(["world", "row", "AUC", "MRR", "nDCG@10", "Recall@100 over all news"], rows)}

Recall@100 of the user's recall vector by pool (exact top-100, {first['recall_curve']['sample']:,} sampled dev
impressions):

{table(["world", *POOLS], curve)}

The replay against its offline computation (every term recomputed from the stream alone, vectorised) and its cost:

{table(["world", "largest term difference", "largest metric difference", "replay seconds", "W", "weights served"],
       checks)}

{_render_alone(data.get("replay alone"))}"""


def _render_alone(alone: dict | None) -> str:
    """The replay timed on its own (the ladder's replays ran beside other benchmarks)."""
    if not alone:
        return "The replay alone: not timed."
    return (f"The replay of world {alone['world']} {alone['size']}'s dev split timed alone (`{alone['command']}`, nothing "
            f"else running): {alone['wall seconds']:.0f} s from start to report ({alone['replay seconds']:.0f} s playing "
            f"{alone['impressions played']:,} impressions; target ≤ 600 s), peak RSS "
            f"{alone['peak rss kib'] / 2**20:.1f} GiB; the same figures (AUC {alone['auc']:.4f}, Recall@100 "
            f"{alone['recall@100']:.4f}). The ladder's replay seconds above ran beside other benchmarks.")


def _render_ctr(data: dict) -> str:
    from newsrec.bench.common import table

    names = list(next(iter(data["ctr"].values()))["auc_of_ctr_alone"])
    rows = [[name, *(_f(data["ctr"][w]["auc_of_ctr_alone"][name]) for w in data["ctr"])] for name in names]
    priors = list(next(iter(data["ctr"].values()))["decayed 6 h, prior strength"])
    rows += [[f"decayed 6 h, {p}", *(_f(data["ctr"][w]["decayed 6 h, prior strength"][p]) for w in data["ctr"])]
             for p in priors]
    return f"""### Which real-time CTR

Dev AUC of the CTR alone (log of the smoothed CTR as the score; each row counts only earlier impressions), on the
replay's stream. The live profile uses the decayed form with a 6 h half-life and base's prior (1 click in 25
impressions): the best half-life on v3, within 0.0002 of 12 h on v2; a stronger prior scores up to 0.002 higher
alone and is left for the learned ranker (the prior is the one the `ctr` of every profile shares).

{table(["CTR form", *(f"world {w}" for w in data["ctr"])], rows)}"""


def _render_speed(data: dict) -> str:
    from newsrec.bench.common import table

    updates, server, queries = data["updates"], data["contract server"], data["queries"]
    rates = updates["updates_per_second"]
    rows = [[f"embedded index, {name}", f"{rates[name]:,.0f}"] for name in
            ("one call per impression", "calls of 1,000 impressions")]
    rows += [[f"contract server, {name}", f"{value:,.0f}"] for name, value in server["updates_per_second"].items()]
    latency = [[name, _f(v["p50 ms"], 2), _f(v["p99 ms"], 2), f"{v['updates/s meanwhile']:,.0f}",
                f"{v.get('queries', queries['queries']):,} in {v.get('seconds', 0):.0f} s"]
               for name, v in queries.items() if isinstance(v, dict)]
    endpoint = data.get("endpoint") or {}
    fresh = data.get("new stories")
    stories = ("New stories: not measured." if not fresh else
               f"A new story, fed into the embedded index of {fresh['news']:,} news (a put committed as a new generation, "
               f"the story appended to the graph) and published (a partial update), is found by the next query for the "
               f"last hour's news: {fresh['found first']} of {fresh['stories']} first by their own vector, "
               f"{fresh['median seconds'] * 1000:,.0f} ms median from the put to the answer (at most "
               f"{fresh['max seconds'] * 1000:,.0f} ms); a put of a story the index holds rebuilds the graph "
               f"({fresh['put of a held story (rebuild) seconds']:.1f} s).")
    return f"""### Counter updates, queries while they stream, the replay over HTTP

Counter updates per second (conditional partial updates in Vespa's JSON format, {updates['news']:,} news; target
≥ 50,000/s into the embedded index); saving the embedded index's live columns (a checkpoint) takes
{rates['checkpoint (save, fsync) seconds'] * 1000:.0f} ms. The contract server is single-threaded Python, not Vespa: it
bounds both of its clients.

{table(["target, client", "updates / s"], rows)}

The replay's queries to the embedded index ({queries['news']:,} news: live features of 37 candidates and the windowed
Recall@100 search), idle and while another thread of the same process streams counter updates into it, paced or
as fast as it can (each run stops after {QUERY_SECONDS:.0f} s of queries). Both threads share Python's GIL: the
replay itself is one thread, and a real deployment writes from other processes (Vespa: other machines).

{table(["", "p50 ms", "p99 ms", "updates / s meanwhile", "queries"], latency)}

{stories}

The same replay (world v3 tiny, {endpoint.get('scored impressions', '—')} scored dev impressions) through Vespa's HTTP API
(the contract server) and through the embedded index: equal figures (AUC {_f((endpoint.get('metrics (both)') or {}).get('auc'))},
Recall@100 {_f(endpoint.get('recall@100 (both)'))}), {_f(endpoint.get('seconds through HTTP'), 0)} s against
{_f(endpoint.get('seconds embedded'), 0)} s."""


# --------------------------------------------------------------------------------------------------- main

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    ctr = sub.add_parser("ctr")
    ctr.add_argument("mind_dir")
    ctr.add_argument("--name", default=None)
    sub.add_parser("updates")
    agree = sub.add_parser("endpoint")
    for name in ("mind_dir", "model_dir", "index_dir"):
        agree.add_argument(name)
    run = sub.add_parser("ladder")
    for name in ("mind_dir", "model_dir", "index_dir", "state_dir", "name"):
        run.add_argument(name)
    args = parser.parse_args(argv)
    if args.what == "endpoint":
        result = endpoint_agreement(args.mind_dir, args.model_dir, args.index_dir)
        (RESULTS / "live-endpoint.json").write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1))
        return 0
    if args.what == "ladder":
        result = ladder(args.mind_dir, args.model_dir, args.index_dir, args.state_dir, args.name)
        out = RESULTS / f"live-ladder-{args.name}.json"
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result["ladder"], indent=1))
        print(f"wrote {out}", file=sys.stderr)
        return 0
    if args.what == "ctr":
        result = ctr_forms(args.mind_dir)
        name = args.name or Path(args.mind_dir).name
    else:
        result = {"embedded": update_throughput(), "contract server": server_update_throughput(),
                  "queries": query_latency_under_updates()}
        name = "updates"
    out = RESULTS / f"live-{args.what}-{name}.json" if args.what == "ctr" else RESULTS / "live-updates.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
