"""`newsrec replay`: a split's impressions played in time order through the serving path, causally.

The stream is every impression of the splits up to and including the replayed one (train, then dev), in time
order (ties: split order, then file order); impression number `seq` (1, 2, ...) is its place in it. For each
impression at time t, in order:

1. News seen for the first time (a candidate, or an item of the history) are published at t: the publication time
   is estimated causally as the first sighting (MIND has none).
2. Scored impressions (those of the replayed split, and of the `fit_hours` before it, which fit the weights) ask the
   index, at time t: the live profile's features of the candidates (u_ra · r, the decayed smoothed CTR, the age,
   the appeal; `now` = t) and the Recall@K retrieval: the K news nearest to the user's recall vector among the
   news published by t (and within the recall window W).
3. The outcome is written back: the news counters by conditional partial updates (feed/live.py: an impression
   applied twice counts once), the user's clicks appended to their history; the user's vectors are recomputed by
   the user encoder from that history before the user's next scored impression.

An impression never sees its own labels; it sees every earlier impression's. Its figures are streaming figures,
not comparable to an offline evaluation that sees no labels of the day at all: every report says so.

Phases: the stream before the fit window only writes back. At the fit window's start the content appeal
(pipeline/appeal.py) is fitted on the counts so far and assigned to every news item; at the replayed split's start
the live profile's weights are fitted (logistic regression of the clicks on the four terms of the fit window's
impressions) and served from then on. Both use only what came before them.

Checkpoints every `checkpoint_every` impressions: the index's counters first (the embedded index saves its live
columns; Vespa has them already, acknowledged), then the replay's own state (position, users' clicks, first
sightings, weights, the log of scored rows) in the state directory, atomically; a replay killed anywhere resumes
from its last checkpoint, and the impressions it re-sends fail their condition (counted as already applied).
"""
from __future__ import annotations

import io
import json
import time as clock
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from newsrec.feed import ranking
from newsrec.feed.backend import FeedReport
from newsrec.feed.profiles import FEATURE_LOG, LEARNED, LIVE
from newsrec.feed.live import DecayConfig, condition_refused, impression_updates, publish_updates, reset_updates, sequence_numbers
from newsrec.feed.state import exclusive, write_atomically
from newsrec.pipeline.appeal import fit_appeal
from newsrec.pipeline.errors import NewsrecError
from newsrec.pipeline.mind import entity_ids
from newsrec.pipeline.metrics import per_impression_metrics, recall_from_ranks
from newsrec.pipeline.progress import progress_bar

STATE_FILE = "replay.json"
STREAMING_LABEL = ("streaming (causal): each impression is scored with the counters and histories of every earlier "
                   "impression, never its own labels; not comparable to offline figures, which see none of the day's")


class ReplayError(NewsrecError):
    """A replay that cannot start or resume (state of another stream, an index without the news, a failed write)."""


@dataclass(frozen=True)
class ReplayConfig:
    split: str = "dev"
    decay: DecayConfig = DecayConfig()
    window_hours: float | None = 48.0  # recall: news published within W hours before the impression (None: all)
    recall_k: int = 100
    fit_hours: float = 24.0  # the hours before the split whose impressions fit the live profile's weights
    log_hours: float = 24.0  # the hours before the split whose impressions are scored and logged (>= fit_hours):
    # a learned ranker's training rows (newsrec train-ranker); the content appeal is fitted at their start
    learned: bool = False  # the split is served by the index's learned ranker (its learned profile)
    checkpoint_every: int = 5_000  # impressions between checkpoints
    max_scored: int = 0  # stop after this many scored impressions of the split (0: all; tests and quick runs)


@dataclass(frozen=True)
class LearnedQuery:
    """What a query of the learned profile sends beside the live profile's inputs: the user's recall vector (for
    closeness), the categories' decayed CTRs at the query's time, the shares of the user's history per category
    and per entity, and the history's length (feed/ranking.py `learned_features`)."""

    recall_vector: np.ndarray  # (D + 1,) [r, 0]
    category_ctrs: dict[str, float]
    user_categories: dict[str, float]
    user_entities: dict[str, float]
    history_length: int
    model_version: str | None = None  # the two-tower model the vectors come from (rank profile learned checks it)


class LiveServing(Protocol):
    """What the replay asks of an index (the embedded one, or Vespa through feed/vespa_backend.py)."""

    def update(self, updates, doctype: str, report: FeedReport) -> None: ...

    def live_features(self, ranking_vector: np.ndarray, news_ids: list[str], now: int,
                      inputs: dict[str, float], learned: LearnedQuery | None = None,
                      profile: str = LIVE) -> dict[str, np.ndarray]: ...

    def nearest_news(self, query_vector, k: int, published: tuple[int, int] | None = None) -> list[str]: ...

    def checkpoint(self) -> None: ...


# ----------------------------------------------------------------------------------------------- the stream

@dataclass(frozen=True, eq=False)
class Stream:
    """The impressions of the splits up to the replayed one, in time order, as CSR arrays over news rows."""

    split: np.ndarray  # (I,) split number of each impression
    impression_ids: np.ndarray  # (I,) as in its file
    user: np.ndarray  # (I,) int
    time: np.ndarray  # (I,) int64 epoch seconds
    history_offsets: np.ndarray  # (I + 1,)
    history: np.ndarray
    candidate_offsets: np.ndarray  # (I + 1,)
    candidates: np.ndarray
    labels: np.ndarray
    splits: tuple[str, ...]
    start: int  # first impression of the replayed split
    fit_start: int  # first impression of the fit window
    log_start: int = -1  # first impression scored and logged (-1: fit_start)

    @property
    def scored_from(self) -> int:
        return self.fit_start if self.log_start < 0 else self.log_start

    def __len__(self) -> int:
        return len(self.time)

    def candidates_of(self, i: int) -> slice:
        return slice(self.candidate_offsets[i], self.candidate_offsets[i + 1])

    def history_of(self, i: int) -> np.ndarray:
        return self.history[self.history_offsets[i]:self.history_offsets[i + 1]]


def build_stream(dataset, split: str, fit_hours: float, log_hours: float | None = None) -> Stream:
    """Every impression of the splits up to `split` (in the dataset's order), sorted by time; the fit window's and
    the logged window's first impressions (`log_hours` at least `fit_hours`)."""
    names = list(dataset.splits)
    if split not in names:
        raise ReplayError(f"{dataset.root} has no {split} split (it has {', '.join(names)})")
    names = names[:names.index(split) + 1]
    parts = [dataset.splits[name] for name in names]
    if not all(part.labelled for part in parts):
        raise ReplayError("a replay needs labels: every split up to the replayed one must be labelled")
    split_of = np.concatenate([np.full(p.num_impressions, s) for s, p in enumerate(parts)])
    times = np.concatenate([p.time for p in parts])
    rows = np.concatenate([np.arange(p.num_impressions) for p in parts])
    order = np.lexsort((rows, split_of, times))
    history, history_offsets = _csr([(p.history, p.history_offsets) for p in parts], split_of, rows, order)
    candidates, candidate_offsets = _csr([(p.candidates, p.candidate_offsets) for p in parts], split_of, rows, order)
    labels, _ = _csr([(p.labels, p.candidate_offsets) for p in parts], split_of, rows, order)
    time = times[order]
    start = int(np.argmax(split_of[order] == len(parts) - 1)) if len(order) else 0
    split_start_time = time[start] if len(time) else 0
    fit_start = min(int(np.searchsorted(time, split_start_time - fit_hours * 3600, side="left")), start)
    log_start = fit_start
    if log_hours is not None:
        log_start = min(int(np.searchsorted(time, split_start_time - log_hours * 3600, side="left")), fit_start)
    return Stream(split_of[order], np.concatenate([p.impression_ids for p in parts])[order],
                  np.concatenate([p.user_index for p in parts])[order].astype(np.int64), time, history_offsets,
                  history, candidate_offsets, candidates, labels, tuple(names), start, fit_start, log_start)


def _csr(parts, split_of, rows, order) -> tuple[np.ndarray, np.ndarray]:
    """The rows of CSR arrays of several splits, in `order`."""
    lengths = np.concatenate([np.diff(offsets) for _, offsets in parts])
    starts = np.concatenate([offsets[:-1] + shift for (_, offsets), shift in
                             zip(parts, np.cumsum([0] + [len(v) for v, _ in parts[:-1]]))])
    values = np.concatenate([v for v, _ in parts])
    lengths, starts = lengths[order], starts[order]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return values[index], offsets


@dataclass(frozen=True, eq=False)
class NewsMeta:
    """What the learned profile's features read of each news row: its category and its entities."""

    category: np.ndarray  # (N,) int into categories
    categories: list[str]
    entities: list[tuple[str, ...]]
    model_version: str | None = None  # the two-tower model of the replay's vectors

    @classmethod
    def of(cls, news, model_version: str | None = None) -> "NewsMeta":
        return cls(np.asarray(news.category, dtype=np.int64), list(news.categories), entity_ids(news), model_version)

    def learned_query(self, recall_vector: np.ndarray, history: np.ndarray, category_ctrs: dict[str, float]):
        """The learned profile's query inputs for a user with this history (LearnedQuery)."""
        return LearnedQuery(np.append(recall_vector, 0.0), category_ctrs,
                            ranking.history_shares([(self.categories[self.category[n]],) for n in history]),
                            ranking.history_shares([self.entities[n] for n in history]), len(history),
                            self.model_version)


class CategoryCounts:
    """Per category, the stream's decayed click and impression sums (stored the way the news counters are:
    each event adds exp(rate (t - origin))), and their smoothed CTR at a time."""

    def __init__(self, meta: NewsMeta, decay: DecayConfig):
        self.meta, self.decay = meta, decay
        self.clicks = np.zeros(len(meta.categories))
        self.shown = np.zeros(len(meta.categories))

    def add(self, rows: np.ndarray, labels: np.ndarray, t: float) -> None:
        weight = float(ranking.event_weight(t, self.decay.origin, self.decay.rate))
        categories = self.meta.category[rows]
        np.add.at(self.shown, categories, weight)
        np.add.at(self.clicks, categories[labels == 1], weight)

    def rebuild(self, stream: "Stream", position: int) -> None:
        """The sums over the stream's impressions before `position` (a resume)."""
        done = slice(0, stream.candidate_offsets[position])
        rows = stream.candidates[done]
        time = np.repeat(stream.time[:position], np.diff(stream.candidate_offsets[:position + 1])).astype(np.float64)
        weight = ranking.event_weight(time, self.decay.origin, self.decay.rate)
        categories = self.meta.category[rows]
        size = len(self.meta.categories)
        self.shown = np.bincount(categories, weights=weight, minlength=size).astype(np.float64)
        self.clicks = np.bincount(categories, weights=weight * (stream.labels[done] == 1), minlength=size)

    def ctrs(self, t: float) -> dict[str, float]:
        factor = float(ranking.decay(t, self.decay.origin, self.decay.rate))
        ctr = ranking.smoothed_ctr(self.clicks * factor, self.shown * factor)
        return {name: float(c) for name, c in zip(self.meta.categories, ctr)}


# ------------------------------------------------------------------------------------------------ user state

class Users:
    """Each user's clicks in the stream so far (after the history their impressions carry), and their vectors,
    recomputed lazily by the user encoder (`encode(histories) -> (ranking (B, D), recall (B, D))`)."""

    def __init__(self, encode: Callable[[list[np.ndarray]], tuple[np.ndarray, np.ndarray]]):
        self.encode = encode
        self.clicks: dict[int, list[int]] = {}
        self.vectors: dict[int, tuple[np.ndarray, np.ndarray, bytes]] = {}  # user -> (ranking, recall, its history)

    def history(self, user: int, logged: np.ndarray) -> np.ndarray:
        """The impression's history column, then the stream's clicks not in it, oldest first."""
        known = set(logged.tolist())
        extra = [n for n in self.clicks.get(user, []) if n not in known]
        return np.concatenate([logged, np.asarray(extra, dtype=logged.dtype)]) if extra else logged

    def vectors_for(self, users: list[int], histories: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """The users' vectors for these histories: cached where the history did not change, else encoded (all the
        stale ones in one batch)."""
        stale = [i for i, (u, h) in enumerate(zip(users, histories))
                 if u not in self.vectors or self.vectors[u][2] != h.tobytes()]
        if stale:
            ranking, recall = self.encode([histories[i] for i in stale])
            for j, i in enumerate(stale):
                self.vectors[users[i]] = (ranking[j], recall[j], histories[i].tobytes())
        return [self.vectors[u][:2] for u in users]

    def add_clicks(self, user: int, news: np.ndarray) -> None:
        if len(news):
            self.clicks.setdefault(user, []).extend(int(n) for n in news)


# ------------------------------------------------------------------------------------------------- the replay

@dataclass
class ReplayLog:
    """What the scored impressions produced: their candidate rows' terms and labels, and the clicked items'
    ranks in the Recall@K retrieval (K when not retrieved)."""

    impression: list[np.ndarray] = field(default_factory=list)  # (rows,) stream impression of each row
    time: list[np.ndarray] = field(default_factory=list)  # (rows,) its impression's time
    terms: list[np.ndarray] = field(default_factory=list)  # (rows, F) ranking.LEARNED_FEATURES (LIVE_TERMS first)
    labels: list[np.ndarray] = field(default_factory=list)
    served: list[np.ndarray] = field(default_factory=list)  # (rows,) the score the index served
    recall_impression: list[np.ndarray] = field(default_factory=list)  # (clicks,)
    recall_rank: list[np.ndarray] = field(default_factory=list)  # (clicks,)

    def arrays(self) -> dict[str, np.ndarray]:
        def joined(parts, width=None):
            if parts:
                return np.concatenate(parts)
            return np.zeros((0, width) if width else 0)
        return {"impression": joined(self.impression).astype(np.int64), "time": joined(self.time).astype(np.int64),
                "terms": joined(self.terms, len(ranking.LEARNED_FEATURES)),
                "labels": joined(self.labels).astype(np.int8), "served": joined(self.served),
                "recall_impression": joined(self.recall_impression).astype(np.int64),
                "recall_rank": joined(self.recall_rank).astype(np.int64)}


@dataclass
class ReplayState:
    position: int = 0  # impressions done
    weights: dict = field(default_factory=lambda: dict(ranking.LIVE_DEFAULTS))
    appeal: dict | None = None
    published: np.ndarray | None = None  # (N,) first sighting, 0 = not yet
    log_parts: list[str] = field(default_factory=list)
    already_applied: int = 0  # updates refused by their condition on resume (applied before the crash)
    scored: int = 0


def replay(stream: Stream, news_ids: list[str], news_vectors: np.ndarray, users: Users, index: LiveServing,
           state_dir: Path, config: ReplayConfig, meta: NewsMeta, on_impression: Callable[[int], None] | None = None,
           log: Callable[[str], None] = print, progress: bool = False) -> dict:
    """Play `stream` through `index` (module docstring); returns the report (`report`). Resumes from the state in
    `state_dir` when it holds one for the same stream and configuration. With `progress`, the impressions played
    so far are reported (pipeline/progress.py)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(state_dir, 1.0, ReplayError):
        state, part = _open_state(state_dir, stream, news_ids, config, users)
        if state.position == 0:
            _reset(index, news_ids, log)
        started = clock.perf_counter()
        session = _Session(stream, news_ids, news_vectors, users, index, config, state, part, state_dir, meta)
        end = _end(stream, config)
        reporter = progress_bar("replaying impressions", end, "impression", progress and end > state.position)
        if reporter is not None:
            reporter.update(state.position)
        for i in range(state.position, end):
            session.impression(i)
            state.position = i + 1
            if reporter is not None:
                reporter.update(1)
            if on_impression is not None:
                on_impression(i)
            if state.position % config.checkpoint_every == 0:
                part = _checkpoint(state_dir, index, state, part, stream, config, users)
                session.part = part
        _checkpoint(state_dir, index, state, part, stream, config, users)
        if reporter is not None:
            reporter.close()
        seconds = clock.perf_counter() - started
    return report(state_dir, stream, config, seconds)


def _end(stream: Stream, config: ReplayConfig) -> int:
    if not config.max_scored:
        return len(stream)
    return min(len(stream), stream.start + config.max_scored)


class _Session:
    def __init__(self, stream, news_ids, news_vectors, users, index, config, state, part, state_dir, meta):
        self.stream, self.news_ids, self.vectors, self.users = stream, news_ids, news_vectors, users
        self.index, self.config, self.state, self.part = index, config, state, part
        self.state_dir, self.meta = state_dir, meta
        self.seen = state.published
        self.categories = CategoryCounts(meta, config.decay)
        self.categories.rebuild(stream, state.position)

    def impression(self, i: int) -> None:
        stream, state = self.stream, self.state
        t = int(stream.time[i])
        rows = stream.candidates[stream.candidates_of(i)]
        labels = stream.labels[stream.candidates_of(i)]
        logged_history = stream.history_of(i)
        if i == stream.scored_from and state.appeal is None:
            self._fit_appeal(i)
        if i == stream.start and state.scored == 0 and stream.start > stream.fit_start:
            self._fit_weights()
        new = np.unique(np.concatenate([rows, logged_history]))
        new = new[self.seen[new] == 0]
        self.seen[new] = t
        publish, count = sequence_numbers(i)
        if len(new):
            self._write(i, publish_updates([self.news_ids[n] for n in new], t, publish))
        if i >= stream.scored_from:
            self._score(i, t, rows, labels, logged_history)
        self._write(i, impression_updates([self.news_ids[n] for n in rows], labels, t, count, self.config.decay))
        self.categories.add(rows, labels, t)
        self.users.add_clicks(int(stream.user[i]), rows[labels == 1])

    def _write(self, i: int, updates: list[dict]) -> None:
        """Send updates; those refused by their condition were applied before a crash (counted), any other
        failure stops the replay."""
        result = FeedReport()
        self.index.update(updates, "news", result)
        refused = [f for f in result.failed if condition_refused(f[1], f[2])]
        self.state.already_applied += len(refused)
        if len(refused) != len(result.failed):
            stream = self.stream
            raise ReplayError(f"impression {stream.impression_ids[i]} of {stream.splits[stream.split[i]]}: "
                              f"{result.summary()}")

    def _score(self, i: int, t: int, rows: np.ndarray, labels: np.ndarray, logged_history: np.ndarray) -> None:
        user = int(self.stream.user[i])
        history = self.users.history(user, logged_history)
        (ranking_vector, recall_vector), = self.users.vectors_for([user], [history])
        ids = [self.news_ids[n] for n in rows]
        inputs = {**self.config.decay.inputs(), **self.state.weights}
        query = self.meta.learned_query(recall_vector, history, self.categories.ctrs(t))
        profile = LEARNED if self.config.learned and i >= self.stream.start else FEATURE_LOG
        features = self.index.live_features(np.append(ranking_vector, 0.0), ids, t, inputs, query, profile)
        self.part.impression.append(np.full(len(rows), i))
        self.part.time.append(np.full(len(rows), t))
        self.part.terms.append(features["features"])
        self.part.labels.append(labels.copy())
        served = features["learned_score" if profile == LEARNED else "live_score"]
        self.part.served.append(np.asarray(served, dtype=np.float64))
        if i >= self.stream.start:
            self.state.scored += 1
            self._recall(i, t, recall_vector, rows[labels == 1])

    def _recall(self, i: int, t: int, recall_vector: np.ndarray, clicked: np.ndarray) -> None:
        window = self.config.window_hours
        after = 0 if window is None else int(t - window * 3600)
        found = self.index.nearest_news(np.append(recall_vector, 0.0), self.config.recall_k, (after, t))
        position = {news_id: r for r, news_id in enumerate(found)}
        ranks = np.array([position.get(self.news_ids[n], self.config.recall_k) for n in clicked], dtype=np.int64)
        self.part.recall_impression.append(np.full(len(clicked), i))
        self.part.recall_rank.append(ranks)

    def _fit_appeal(self, i: int) -> None:
        """Content appeal from the counts of the stream before impression i, assigned to every news item."""
        stream = self.stream
        done = slice(0, stream.candidate_offsets[i])
        clicks = np.bincount(stream.candidates[done], weights=stream.labels[done] == 1, minlength=len(self.news_ids))
        shown = np.bincount(stream.candidates[done], minlength=len(self.news_ids))
        model = fit_appeal(self.vectors, clicks, shown)
        self.state.appeal = model.to_dict()
        appeal = model.predict(self.vectors)
        result = FeedReport()
        self.index.update([{"update": f"id:news:news::{news_id}", "fields": {"appeal": {"assign": float(a)}}}
                           for news_id, a in zip(self.news_ids, appeal)], "news", result)
        if not result.success:
            raise ReplayError(f"assigning the appeal: {result.summary()}")

    def _fit_weights(self) -> None:
        """The live profile's weights: logistic regression of the fit window's clicks on the four terms."""
        arrays = _log_arrays(self.part, self.state, self.state_dir)
        window = arrays["impression"] >= self.stream.fit_start
        live = arrays["terms"][window][:, :len(ranking.LIVE_TERMS)]
        self.state.weights = fit_weights(live, arrays["labels"][window])


def fit_weights(terms: np.ndarray, labels: np.ndarray, columns: tuple[int, ...] = (0, 1, 2, 3)) -> dict:
    """Weights of ranking.LIVE_WEIGHTS (0 for the columns left out) from a logistic regression of the labels on
    the chosen terms (scikit-learn, L2, C = 1)."""
    from sklearn.linear_model import LogisticRegression

    weights = {name: 0.0 for name in ranking.LIVE_WEIGHTS}
    if len(labels) == 0 or labels.min() == labels.max():
        return dict(ranking.LIVE_DEFAULTS)
    model = LogisticRegression(max_iter=1000).fit(terms[:, columns], labels)
    for c, w in zip(columns, model.coef_[0]):
        weights[ranking.LIVE_WEIGHTS[c]] = float(w)
    return weights


def _reset(index: LiveServing, news_ids: list[str], log) -> None:
    result = FeedReport()
    index.update(list(reset_updates(news_ids)), "news", result)
    if not result.success:
        raise ReplayError(f"resetting the live fields of the news: {result.summary()}")
    log(f"replay: live fields of {len(news_ids):,} news reset")


# ------------------------------------------------------------------------------------------------ checkpoints

def _fingerprint(stream: Stream, news_ids: list[str], config: ReplayConfig) -> dict:
    return {"impressions": len(stream), "start": stream.start, "news": len(news_ids), "splits": list(stream.splits),
            "first": int(stream.time[0]) if len(stream) else 0, "config": json.loads(json.dumps(asdict(config)))}


def _open_state(state_dir: Path, stream: Stream, news_ids, config: ReplayConfig, users: Users):
    path = state_dir / STATE_FILE
    if not path.exists():
        return ReplayState(published=np.zeros(len(news_ids), dtype=np.int64)), ReplayLog()
    saved = json.loads(path.read_text())
    if saved["fingerprint"] != _fingerprint(stream, news_ids, config):
        raise ReplayError(f"{path} holds a replay of another stream or configuration; use another --state "
                          "directory, or remove it to start over")
    with np.load(state_dir / saved["arrays"]) as arrays:
        published = arrays["published"].copy()
        for user, start, stop in zip(*(arrays[k] for k in ("click_users", "click_starts", "click_stops"))):
            users.clicks[int(user)] = arrays["clicks"][start:stop].tolist()
    state = ReplayState(saved["position"], saved["weights"], saved["appeal"], published, saved["log_parts"],
                        saved["already_applied"], saved["scored"])
    return state, ReplayLog()


def _checkpoint(state_dir: Path, index: LiveServing, state: ReplayState, part: ReplayLog, stream, config,
                users: Users) -> ReplayLog:
    """The index's counters first, then this part of the log, then the state that names it (atomically)."""
    index.checkpoint()
    tag = f"{state.position:09d}"
    if part.impression or part.recall_impression:
        _save_npz(state_dir / f"log-{tag}.npz", part.arrays())
        state.log_parts = [*state.log_parts, f"log-{tag}.npz"]
    _save_npz(state_dir / f"state-{tag}.npz", {"published": state.published, **_user_arrays(users)})
    saved = {"fingerprint": _fingerprint(stream, [None] * len(state.published), config), "position": state.position,
             "weights": state.weights, "appeal": state.appeal, "log_parts": state.log_parts,
             "already_applied": state.already_applied, "scored": state.scored, "arrays": f"state-{tag}.npz"}
    write_atomically(state_dir / STATE_FILE, json.dumps(saved, indent=1).encode())
    for old in state_dir.glob("state-*.npz"):
        if old.name != f"state-{tag}.npz":
            old.unlink(missing_ok=True)
    return ReplayLog()


def _user_arrays(users: Users) -> dict[str, np.ndarray]:
    """The users' stream clicks as CSR arrays."""
    keys = sorted(users.clicks)
    lengths = [len(users.clicks[u]) for u in keys]
    stops = np.cumsum(lengths, dtype=np.int64)
    return {"click_users": np.asarray(keys, dtype=np.int64), "click_starts": stops - np.asarray(lengths, dtype=np.int64),
            "click_stops": stops, "clicks": np.asarray([n for u in keys for n in users.clicks[u]], dtype=np.int64)}


def _save_npz(path: Path, arrays: dict) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomically(path, buffer.getvalue())


def _log_arrays(part: ReplayLog, state: ReplayState, state_dir: Path | None) -> dict[str, np.ndarray]:
    pieces = []
    if state_dir is not None:
        for name in state.log_parts:
            with np.load(state_dir / name) as saved:
                pieces.append({k: saved[k] for k in saved.files})
    pieces.append(part.arrays())
    return {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}


# ------------------------------------------------------------------------------------------------ the report

def read_log(state_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    saved = json.loads((state_dir / STATE_FILE).read_text())
    state = ReplayState(log_parts=saved["log_parts"])
    return saved, _log_arrays(ReplayLog(), state, state_dir)


def report(state_dir: Path, stream: Stream, config: ReplayConfig, seconds: float | None = None) -> dict:
    """The replayed split's streaming metrics (ranking by the served score, Recall@K) from the log."""
    saved, log = read_log(state_dir)
    scored = log["impression"] >= stream.start
    metrics = stream_metrics(log["impression"][scored], log["labels"][scored], log["served"][scored])
    ranks_kept = log["recall_impression"] >= stream.start
    recall = recall_by_impression(log["recall_impression"][ranks_kept], log["recall_rank"][ranks_kept],
                                  config.recall_k)
    return {"label": STREAMING_LABEL, "split": config.split, "impressions": int(saved["scored"]),
            "weights": saved["weights"], "metrics": metrics, f"recall@{config.recall_k}": recall,
            "already_applied_on_resume": saved["already_applied"], "seconds": seconds}


def stream_metrics(impression: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> dict:
    """AUC, MRR, nDCG@5/10 of rows grouped by impression (rows of one impression are contiguous)."""
    if len(impression) == 0:
        return {}
    starts = np.flatnonzero(np.concatenate([[True], impression[1:] != impression[:-1]]))
    offsets = np.concatenate([starts, [len(impression)]])
    return per_impression_metrics(labels, scores, offsets).mean().as_dict()


def recall_by_impression(impression: np.ndarray, ranks: np.ndarray, k: int) -> float:
    if len(impression) == 0:
        return float("nan")
    starts = np.flatnonzero(np.concatenate([[True], impression[1:] != impression[:-1]]))
    offsets = np.concatenate([starts, [len(impression)]])
    return recall_from_ranks(ranks, offsets, k)[0]
