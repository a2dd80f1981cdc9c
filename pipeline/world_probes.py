"""Probe worlds: each plants one premise of a seed model on a neutral base, so that a model built on the premise
has something to find that a mean of news vectors cannot (issue #34).

The base is world v1's news (`demo_data._plant_news`: topics, texts, an appeal everyone shares) and its impression
sampler; what a probe changes is who clicked what before the log and the user part of the click logit:

- **probe-order** (UniRec's and FUM's order encodings): every user moves from an old topic A to a new topic B, and
  the move finishes late in the history window: the latest `late_share` of the history is B, everything before is A.
  The logit gives B `new_weight` and A only `old_weight`, so the history's recent part matters more than its bulk.
  A mean of the history's news vectors sees about 70% A and 30% B and cannot tell which one is new.

The parameters are fixed here, before any model runs on a probe (planted.json records them). Beside the oracle (the
planted probabilities), planted.json gives what a history can reveal (`bounds`): a logistic regression fit on the
train impressions over features estimable from each user's history alone, evaluated on dev like a model:
- **mean bound**: the appeal and the candidate topic's share of the history (what a mean of news vectors dotted
  with the candidate's gives, for news that differ by topic);
- **premise bound**: the same plus the premise's feature (probe-order: the topic's share of the latest `recent`
  clicks). The attainable gain is premise bound − mean bound; "gap to the oracle" reads against the premise bound.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from newsrec.pipeline import demo_vocab
from newsrec.pipeline.metrics import per_impression_metrics

PROBES = ("probe-order",)


@dataclass(frozen=True)
class ProbeOrder:
    """probe-order's planted parameters (fixed before any model ran on it)."""

    click_bias: float = -3.4
    appeal_weight: float = 1.0  # the neutral base: the news's appeal (quality), the same for every user
    new_weight: float = 2.5  # the topic the user moved to
    old_weight: float = 0.3  # the topic the user left
    late_share: float = 0.3  # the latest share of the history, in the new topic
    late_days: int = 1  # the new topic's clicks are on the last history days
    min_history: int = 4
    recent: int = 5  # premise bound: the topic shares of the latest clicks


@dataclass(frozen=True, eq=False)
class ProbeUsers:
    """Like demo_data.PlantedUsers (the writer reads interest, activity, history, ids), with each user's topics."""

    interest: np.ndarray  # (U, T) the user part of the logit per topic
    activity: np.ndarray  # (U,) sums to 1
    history: list[np.ndarray]  # per user, news indices, oldest first
    ids: list[str]
    old: np.ndarray  # (U,) topic A
    new: np.ndarray  # (U,) topic B


def plant_users(config, probe: ProbeOrder, news, rng: np.random.Generator) -> ProbeUsers:
    """Every user: topics A (old) and B (new), drawn by how much each topic publishes before the log; a history of
    A's news before the last `late_days` history days, then B's on them."""
    topics = len(demo_vocab.TOPICS)
    late = config.history_days - probe.late_days
    early_news = [np.flatnonzero((news.topic == t) & (news.day < late)) for t in range(topics)]
    late_news = [np.flatnonzero((news.topic == t) & (news.day >= late) & (news.day < config.history_days))
                 for t in range(topics)]
    usable = np.array([len(e) > 0 and len(n) > 0 for e, n in zip(early_news, late_news)])
    weights = np.array([len(e) for e in early_news], dtype=np.float64) * usable
    old = rng.choice(topics, size=config.num_users, p=weights / weights.sum())
    new = np.array([rng.choice(topics, p=_normalized(weights, np.arange(topics) != a)) for a in old])
    lengths = np.clip(np.round(rng.lognormal(np.log(config.median_history), 0.8, config.num_users)),
                      probe.min_history, config.max_history).astype(np.int64)
    history = []
    for a, b, length in zip(old.tolist(), new.tolist(), lengths.tolist()):
        recent = max(1, round(probe.late_share * length))
        clicks = np.concatenate([rng.choice(early_news[a], size=length - recent), rng.choice(late_news[b], size=recent)])
        _, first = np.unique(clicks, return_index=True)
        kept = clicks[np.sort(first)]
        history.append(kept[np.lexsort((rng.random(len(kept)), news.day[kept]))].astype(np.int32))  # oldest first
    interest = np.zeros((config.num_users, topics))
    interest[np.arange(config.num_users), old] = probe.old_weight
    interest[np.arange(config.num_users), new] = probe.new_weight
    activity = rng.lognormal(0.0, 1.0, config.num_users)
    ids = [f"U{u}" for u in rng.permutation(config.num_users) + 1_001]
    return ProbeUsers(interest, activity / activity.sum(), history, ids, old, new)


def _normalized(weights: np.ndarray, keep: np.ndarray) -> np.ndarray:
    kept = weights * keep
    return kept / kept.sum()


def logits(probe: ProbeOrder, news, users: ProbeUsers, user: np.ndarray, impression_of: np.ndarray,
           candidates: np.ndarray) -> np.ndarray:
    """The planted click logit of each candidate row."""
    return (probe.click_bias + users.interest[user[impression_of], news.topic[candidates]]
            + probe.appeal_weight * news.quality[candidates])


def planted_truth(probe: ProbeOrder, news, users: ProbeUsers, train, dev) -> dict:
    """planted.json's probe entries: the parameters, and the oracle and both bounds on dev (AUC, MRR, nDCG@10)."""
    oracle = _metrics(dev, dev.probability)
    mean_bound, premise_bound = (_bound(probe, news, users, train, dev, premise) for premise in (False, True))
    return {"probe": {"name": "probe-order", "parameters": asdict(probe)},
            "bounds": {"oracle": oracle, "mean bound (history estimable)": mean_bound,
                       "premise bound (history estimable)": premise_bound,
                       "attainable gain (AUC)": premise_bound["auc"] - mean_bound["auc"]}}


def history_features(probe: ProbeOrder, news, users: ProbeUsers, impressions, premise: bool) -> np.ndarray:
    """(C, F) features of every candidate row from its user's history alone: appeal, the topic's share of the
    history, and with `premise` its share of the latest `recent` clicks."""
    topics = len(demo_vocab.TOPICS)
    share, recent = np.zeros((len(users.history), topics)), np.zeros((len(users.history), topics))
    for u, clicks in enumerate(users.history):
        if len(clicks):
            share[u] = np.bincount(news.topic[clicks], minlength=topics) / len(clicks)
            latest = clicks[-probe.recent:]
            recent[u] = np.bincount(news.topic[latest], minlength=topics) / len(latest)
    impression_of = np.repeat(np.arange(len(impressions.day)), np.diff(impressions.offsets))
    user, topic = impressions.user[impression_of], news.topic[impressions.candidates]
    columns = [news.quality[impressions.candidates], share[user, topic]]
    if premise:
        columns.append(recent[user, topic])
    return np.stack(columns, axis=1)


def _bound(probe: ProbeOrder, news, users: ProbeUsers, train, dev, premise: bool) -> dict:
    fit = LogisticRegression(C=10.0, max_iter=1000).fit(history_features(probe, news, users, train, premise),
                                                        train.labels)
    return _metrics(dev, fit.decision_function(history_features(probe, news, users, dev, premise)))


def _metrics(impressions, scores: np.ndarray) -> dict:
    mean = per_impression_metrics(impressions.labels, scores, impressions.offsets).mean()
    return {"auc": float(mean.auc), "mrr": float(mean.mrr), "ndcg10": float(mean.ndcg10)}
