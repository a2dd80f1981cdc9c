"""The replay's job: read MIND, load the model, open the index, play the stream (feed/replay.py), check it.

    newsrec replay mind-demo --model newsrec-model --index newsrec-index --state newsrec-replay

The user encoder runs here (torch): each user's vectors are recomputed from their history when it changed.
`offline_check` recomputes every logged term and the metrics from the stream alone, vectorised (no index, no
update, users encoded in large batches), and states the largest difference.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from newsrec.feed import ranking
from newsrec.feed.local_backend import LocalBackend
from newsrec.feed.replay import (NewsMeta, ReplayConfig, ReplayError, Stream, Users, build_stream, read_log,
                                 replay, stream_metrics)
from newsrec.feed.vespa_backend import VespaBackend
from newsrec.pipeline.appeal import AppealModel
from newsrec.pipeline.checkpoint import model_version
from newsrec.pipeline.encoding import encode_dataset
from newsrec.pipeline.inference import encode_users
from newsrec.pipeline.mind import Behaviors, read_mind


SCORE_ROWS = 1 << 18  # candidate rows scored at a time by the offline check (two (rows, D) float64: 256 MiB)


@dataclass(frozen=True, eq=False)
class Encoder:
    """The checkpoint's user encoder over its news matrix: histories -> (ranking (B, D), recall (B, D))."""

    encoded: object  # pipeline.encoding.EncodedDataset

    def __call__(self, histories: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    
        behaviors = _histories_as_behaviors(histories)
        users = np.zeros(len(histories), dtype=np.int64)  # vocabulary row 0: no per-user embedding is read
        ranking_vectors, recall = encode_users(self.encoded.checkpoint.model, self.encoded.news_matrix, behaviors,
                                               np.arange(len(histories)), users, self.encoded.checkpoint.max_history,
                                               self.encoded.device, features=self.encoded.features)
        return ranking_vectors.double().cpu().numpy(), recall.double().cpu().numpy()


def _histories_as_behaviors(histories: list[np.ndarray]):

    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    history = np.concatenate(histories).astype(np.int32) if len(histories) else np.zeros(0, np.int32)
    empty = np.zeros(len(histories) + 1, dtype=np.int64)
    return Behaviors("replay", "(replay)", np.arange(len(histories)), np.zeros(len(histories), np.int32),
                     np.zeros(len(histories), np.int64), offsets, history, empty, np.zeros(0, np.int32),
                     np.zeros(0, np.int8))


def run_replay(mind_dir: str, model_dir: str, index_dir: str, state_dir: str, config: ReplayConfig,
               device: str = "auto", log: Callable[[str], None] = print,
               on_impression: Callable[[int], None] | None = None, endpoint: str | None = None,
               progress: bool = False, feed_endpoint: str | None = None) -> dict:
    """Replay `config.split` of `mind_dir` through the embedded index in `index_dir`, or Vespa at `endpoint` (fed by
    newsrec-feed with the same model; its partial updates go to the feed cluster at `feed_endpoint`, default
    `endpoint`); returns the report, with the offline check."""

    dataset = read_mind(mind_dir)
    encoded = encode_dataset(model_dir, dataset, device)
    stream = build_stream(dataset, config.split, config.fit_hours, config.log_hours)
    if config.decay.origin == 0.0 and len(stream):
        config = replace(config, decay=replace(config.decay, origin=float(stream.time[0])))
    news_ids = list(dataset.news.ids)
    if endpoint:
        index = VespaBackend(endpoint, feed_url=feed_endpoint)  # a news item it lacks fails the reset's condition
        session = nullcontext(index)
    else:
        index = LocalBackend(index_dir)
        if index.news_count == 0:
            raise ReplayError(f"{index_dir} holds no news: feed it first (newsrec-feed {mind_dir} --model {model_dir})")
        index.news_rows(news_ids)  # every news item of the dataset must be held
        session = index.live_session()
    vectors = encoded.news_matrix.double().cpu().numpy()
    users = Users(Encoder(encoded))
    log(f"replay: {len(stream):,} impressions ({', '.join(stream.splits)}), {config.split} from impression "
        f"{stream.start + 1:,}, weights fitted on the {stream.start - stream.fit_start:,} before it; into "
        f"{index.description}")
    with session:
        ranker = index.ranker() if config.learned and not endpoint else None  # refused now, not at the split
        result = replay(stream, news_ids, vectors, users, index, Path(state_dir), config, NewsMeta.of(dataset.news, model_version(model_dir)),
                        on_impression, log, progress=progress)
    result["offline_check"] = offline_check(stream, vectors, Users(Encoder(encoded)), Path(state_dir), config, ranker)
    return result


def offline_check(stream: Stream, vectors: np.ndarray, users: Users, state_dir: Path, config: ReplayConfig,
                  ranker=None) -> dict:
    """Every logged live term recomputed from the stream alone (first sightings by np.minimum.at, decayed counts by
    cumulative sums per news item, user vectors from the reconstructed histories encoded in batches, the appeal
    from the saved model), then the metrics; the largest differences against the replay's. Served by a learned
    `ranker`: the metrics of its predictions over the logged features (the served scores' own check)."""
    saved, log = read_log(state_dir)
    impressions = np.unique(log["impression"])
    terms = offline_terms(stream, vectors, users, impressions, config, AppealModel.from_dict(saved["appeal"]))
    scored = log["impression"] >= stream.start
    weights = np.array([saved["weights"][name] for name in ranking.LIVE_WEIGHTS])
    offline_scores = (ranker.predict(log["terms"][scored]) if ranker is not None else terms[scored] @ weights)
    offline_metrics = stream_metrics(log["impression"][scored], log["labels"][scored], offline_scores)
    served = stream_metrics(log["impression"][scored], log["labels"][scored], log["served"][scored])
    live = log["terms"][:, :len(ranking.LIVE_TERMS)]
    return {"max_term_difference": float(np.abs(terms - live).max()) if len(terms) else 0.0,
            "max_metric_difference": max((abs(offline_metrics[k] - served[k]) for k in ("auc", "mrr", "ndcg5",
                                                                                        "ndcg10")), default=0.0),
            "offline_metrics": offline_metrics}


def offline_terms(stream: Stream, vectors: np.ndarray, users: Users, impressions: np.ndarray, config: ReplayConfig,
                  appeal: AppealModel) -> np.ndarray:
    """(rows, 4) the live terms of the candidates of `impressions` (ascending), computed without the index."""
    lengths = np.diff(stream.candidate_offsets)
    impression_of_row = np.repeat(np.arange(len(stream)), lengths)
    news = stream.candidates.astype(np.int64)
    time = stream.time[impression_of_row].astype(np.float64)
    published = _first_sightings(stream, vectors.shape[0])
    decay = config.decay
    weight = ranking.event_weight(time, decay.origin, decay.rate)
    clicks_before, shown_before = _sums_before(news, impression_of_row, weight * (stream.labels == 1), weight)
    wanted = np.isin(impression_of_row, impressions)
    rows = np.flatnonzero(wanted)
    ranking_vectors = user_vectors(stream, users, impressions)[0]
    owner = np.searchsorted(impressions, impression_of_row[rows])
    score = np.empty(len(rows))
    for start in range(0, len(rows), SCORE_ROWS):  # (rows, D) temporaries a chunk at a time: bounded memory
        part = slice(start, start + SCORE_ROWS)
        score[part] = np.einsum("rd,rd->r", vectors[news[rows[part]]], ranking_vectors[owner[part]])
    ctr = ranking.live_ctr(clicks_before[rows], shown_before[rows], time[rows], decay.origin, decay.rate)
    age = ranking.age_hours(published[news[rows]], time[rows])
    return ranking.live_terms(score, ctr, age, appeal.predict(vectors[news[rows]]))


def _first_sightings(stream: Stream, size: int) -> np.ndarray:
    """Each news item's first time in the stream, as a candidate or in a history (inf when never)."""
    first = np.full(size, np.inf)
    np.minimum.at(first, stream.candidates, stream.time[np.repeat(np.arange(len(stream)),
                                                                  np.diff(stream.candidate_offsets))])
    np.minimum.at(first, stream.history, stream.time[np.repeat(np.arange(len(stream)), np.diff(stream.history_offsets))])
    return first


def _sums_before(news: np.ndarray, impression: np.ndarray, clicks: np.ndarray, shown: np.ndarray):
    """Per row, the sums of `clicks` and `shown` over earlier impressions' rows of the same news item (a news item
    appears at most once per impression, so "earlier rows of the news" = "earlier impressions")."""
    order = np.lexsort((impression, news))
    sums = []
    for values in (clicks, shown):
        ordered = values[order]
        cumulative = np.cumsum(ordered) - ordered
        starts = np.flatnonzero(np.concatenate([[True], news[order][1:] != news[order][:-1]]))
        group_start = np.repeat(cumulative[starts], np.diff(np.concatenate([starts, [len(order)]])))
        out = np.empty(len(values))
        out[order] = cumulative - group_start
        sums.append(out)
    return sums


def user_vectors(stream: Stream, users: Users, impressions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ranking, recall), (len(impressions), D) each, from each impression's history plus the user's earlier stream
    clicks (`impressions` ascending)."""
    histories = []
    clicks: dict[int, list[int]] = {}
    wanted = set(impressions.tolist())
    for i in range(int(impressions.max()) + 1 if len(impressions) else 0):
        user = int(stream.user[i])
        if i in wanted:
            logged = stream.history_of(i)
            known = set(logged.tolist())
            extra = [n for n in clicks.get(user, []) if n not in known]
            histories.append(np.concatenate([logged, np.asarray(extra, dtype=logged.dtype)]) if extra else logged)
        rows = stream.candidates[stream.candidates_of(i)]
        clicked = rows[stream.labels[stream.candidates_of(i)] == 1]
        if len(clicked):
            clicks.setdefault(user, []).extend(int(n) for n in clicked)
    out = [users.encode(histories[start:start + 512]) for start in range(0, len(histories), 512)]
    if not out:
        return np.zeros((0, 0)), np.zeros((0, 0))
    return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])
