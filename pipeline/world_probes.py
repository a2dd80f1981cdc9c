"""Probe worlds: each plants one premise of a seed model on a neutral base, so that a model built on the premise
has something to find that a mean of news vectors cannot (issue #34).

The base is world v1's news (`demo_data._plant_news`: topics, texts, an appeal everyone shares) and its impression
sampler; a probe changes who clicked what before the log, the user part of the click logit and, for the word
probes, adds planted words to the titles:

- **probe-order** (UniRec's and FUM's order encodings): every user moves from an old topic A to a new topic B, and
  the move finishes late in the history window: the latest `late_share` of the history is B, everything before is A.
  The logit gives B `new_weight` and A only `old_weight`. A mean of the history sees mostly A and cannot tell which
  topic is new.
- **probe-max** (several interests: UniRec's bases, Recallnet): the marker words come in two families (A and B,
  `marker_words` each) and a marked news item carries one of each; a user has `interests` interests, each an (A, B)
  pair of words, no word in two interests. A candidate gets the best interest's match (`word_weight` for each of
  its two words the interest has), the maximum over interests, not their sum: the A word of one interest with the
  B word of another (a crossing) counts as one match, not two. A mean of the history adds an A part and a B part,
  so it counts two.
- **probe-pairs** (FUM's word interactions across clicked news): a marked news item carries one word of
  `marker_words`, or (`paired_share`) two different ones; a user likes one pair of them together and neither alone
  (`lone_weight` < 0); their history holds news with the first word alone and other news with the second alone,
  never both in one news item. A mean of the history's words rewards each word alone as well, and the pair no
  more than its complement.
- **probe-match** (UNBERT's word-level matching of the candidate with the history): histories are clicks at
  random, but half of each on one entity (a story the user follows closely); a candidate that names the entity
  of any one earlier click gets `premise_weight`, however often that entity was clicked. A mean of the history
  weighs each entity by its share of the clicks: the followed story far above one read once (and a news vector
  of a fixed size holds the user's entities only approximately).

In probe-max and probe-pairs `marked_share` of the news carry marker words (`MARKERS`, added to the title), and the
rest of a history (beyond the planted clicks) is unmarked news, so the marked words of a history are the planted
ones. The parameters are fixed here before any model runs on a probe (planted.json records them).
Beside the oracle (the planted probabilities), planted.json gives what a history can reveal (`bounds`): a logistic
regression fit on the train impressions over features estimable from each user's history alone, evaluated on dev
like a model:
- **mean bound**: the appeal and the additive overlap of the candidate with the history (the candidate topic's
  share of the history, and for the word probes the history frequency of each of its markers): what a mean of news
  vectors dotted with the candidate's gives;
- **premise bound**: the same plus the premise's feature (order: the topic's share of the latest `recent` clicks;
  max: the best single click's match with the candidate, 2 for both its words, 1 for either, 0; pairs: whether both
  of the candidate's words are in the history, each in some click, or one; match: whether some click names the
  candidate's entity; the mean bound has that entity's share of the history). The attainable gain is premise
  bound − mean bound; "gap to the oracle" reads against the premise bound.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression

from newsrec.pipeline import demo_vocab
from newsrec.pipeline.metrics import per_impression_metrics

ENTITY_COLUMN = 2  # the entity's column in the base news's text choices (demo_data.TEXT_PARTS)
ENTITIES_PER_TOPIC = 100  # entity ids: topic * 100 + the topic's entity (as demo_data's synthetic Wikidata ids)
ENTITY_KEYS = 1_000 * ENTITIES_PER_TOPIC  # probe-match: a (user, entity) key is user * ENTITY_KEYS + entity
MARKERS = ("amber", "basalt", "cobalt", "delta", "ember", "fjord", "granite", "harbor", "indigo", "juniper")
NO_MARKER = -1


@dataclass(frozen=True)
class ProbeParameters:
    """A probe's planted parameters (fixed before any model ran on it)."""

    click_bias: float = -3.4
    appeal_weight: float = 1.0  # the neutral base: the news's appeal (quality), the same for every user
    premise_weight: float = 2.5  # what the premise adds to a relevant candidate's logit
    min_history: int = 4
    # probe-order
    old_weight: float = 0.3  # the topic the user left
    late_share: float = 0.3  # the latest share of the history, in the new topic
    late_days: int = 1  # the new topic's clicks are on the last history days
    recent: int = 5  # premise bound: the topic shares of the latest clicks
    # probe-max and probe-pairs
    marked_share: float = 0.5  # news carrying marker words
    marker_words: int = 4  # probe-pairs: the words of the pairs; probe-max: the words of each family
    paired_share: float = 0.5  # probe-pairs: marked news carrying two words (the rest carry one)
    interests: int = 3  # probe-max: interests per user
    word_weight: float = 1.5  # probe-max: each of an interest's two words; the candidate gets the best interest's sum
    lone_weight: float = -1.0  # probe-pairs: one word of the pair without the other (premise_weight: both)
    clicks_per_part: int = 3  # probe-max: clicks per interest; probe-pairs: clicks per word of the pair
    # probe-match
    habit_share: float = 0.5  # the share of a history on one entity; every entity clicked counts the same


@dataclass(frozen=True, eq=False)
class ProbeUsers:
    """What demo_data's writer reads (history, ids, activity), with what each user was planted (`planted`)."""

    activity: np.ndarray  # (U,) sums to 1
    history: list[np.ndarray]  # per user, news indices, oldest first
    ids: list[str]
    planted: dict = field(default_factory=dict)  # name -> (U, ...) array (probe-match: sorted (user, entity) keys)


@dataclass(frozen=True, eq=False)
class ProbeNews:
    """The base news and each one's marker words ((N, 2), NO_MARKER where none)."""

    base: object  # demo_data.PlantedNews
    markers: np.ndarray

    def __getattr__(self, name):  # topic, text, quality, day, life, ids, has_abstract: the base's
        if name == "base":  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.base, name)


def plant(name: str, config, base_news, rng: np.random.Generator) -> tuple[ProbeNews, ProbeUsers]:
    """The probe's news (the base with markers) and users."""
    p = ProbeParameters()
    markers = _markers(name, p, len(base_news.day), rng)
    news = ProbeNews(base_news, markers)
    planting = {"probe-order": _order_users, "probe-max": _max_users, "probe-pairs": _pairs_users,
                "probe-match": _match_users}[name]
    histories, planted = planting(config, p, news, rng)
    activity = rng.lognormal(0.0, 1.0, config.num_users)
    ids = [f"U{u}" for u in rng.permutation(config.num_users) + 1_001]
    return news, ProbeUsers(activity / activity.sum(), histories, ids, planted)


PROBES = ("probe-order", "probe-max", "probe-pairs", "probe-match")


def _markers(name: str, p: ProbeParameters, count: int, rng: np.random.Generator) -> np.ndarray:
    """Each news item's marker words ((N, 2) into MARKERS): probe-pairs two different words of the first
    `marker_words`; probe-max one of family A (the first `marker_words`) and one of family B (the next)."""
    markers = np.full((count, 2), NO_MARKER, dtype=np.int64)
    if name in ("probe-order", "probe-match"):
        return markers
    marked = rng.random(count) < p.marked_share
    first = rng.integers(0, p.marker_words, count)
    if name == "probe-pairs":  # `paired_share` of the marked news carry a second word, the rest one word
        second = np.where(rng.random(count) < p.paired_share,
                          (first + rng.integers(1, p.marker_words, count)) % p.marker_words, NO_MARKER)
    else:
        second = p.marker_words + rng.integers(0, p.marker_words, count)
    markers[marked, 0], markers[marked, 1] = first[marked], second[marked]
    return markers


def _history_pool(config, news):
    return np.flatnonzero(news.day < config.history_days)


def _ordered(clicks: np.ndarray, news, rng: np.random.Generator) -> np.ndarray:
    """Each item once, oldest first (by day, at random within a day)."""
    _, first = np.unique(clicks, return_index=True)
    kept = clicks[np.sort(first)]
    return kept[np.lexsort((rng.random(len(kept)), news.day[kept]))].astype(np.int32)


def _lengths(config, p: ProbeParameters, rng: np.random.Generator) -> np.ndarray:
    return np.clip(np.round(rng.lognormal(np.log(config.median_history), 0.8, config.num_users)),
                   p.min_history, config.max_history).astype(np.int64)


def _order_users(config, p: ProbeParameters, news, rng):
    """Topics A (old) and B (new) by how much each publishes; A's news before the last `late_days` history days,
    then B's on them."""
    topics = len(demo_vocab.TOPICS)
    late = config.history_days - p.late_days
    early = [np.flatnonzero((news.topic == t) & (news.day < late)) for t in range(topics)]
    later = [np.flatnonzero((news.topic == t) & (news.day >= late) & (news.day < config.history_days))
             for t in range(topics)]
    weights = np.array([len(e) * (len(e) > 0 and len(n) > 0) for e, n in zip(early, later)], dtype=np.float64)
    old = rng.choice(topics, size=config.num_users, p=weights / weights.sum())
    new = np.array([rng.choice(topics, p=_normalized(weights * (np.arange(topics) != a))) for a in old])
    history = []
    for a, b, length in zip(old.tolist(), new.tolist(), _lengths(config, p, rng).tolist()):
        recent = max(1, round(p.late_share * length))
        clicks = np.concatenate([rng.choice(early[a], size=length - recent), rng.choice(later[b], size=recent)])
        history.append(_ordered(clicks, news, rng))
    return history, {"old": old, "new": new}


def _with_rest(planted: np.ndarray, unmarked: np.ndarray, length: int, news, rng) -> np.ndarray:
    """The planted clicks and, up to `length`, unmarked history news."""
    rest = rng.choice(unmarked, size=max(0, length - len(planted)))
    return _ordered(np.concatenate([planted, rest]), news, rng)


def _max_users(config, p: ProbeParameters, news, rng):
    """`interests` (A, B) word pairs, no word in two; `clicks_per_part` clicks on news carrying each pair."""
    pool = _history_pool(config, news)
    marked, unmarked = pool[news.markers[pool, 0] != NO_MARKER], pool[news.markers[pool, 0] == NO_MARKER]
    cells = {cell: marked[(news.markers[marked, 0] == cell[0]) & (news.markers[marked, 1] == cell[1])]
             for cell in {tuple(c) for c in news.markers[marked].tolist()}}
    first = np.stack([rng.permutation(p.marker_words)[:p.interests] for _ in range(config.num_users)])
    second = np.stack([p.marker_words + rng.permutation(p.marker_words)[:p.interests]
                       for _ in range(config.num_users)])
    history = []
    for a, b, length in zip(first.tolist(), second.tolist(), _lengths(config, p, rng).tolist()):
        planted = np.concatenate([rng.choice(cells[cell], size=p.clicks_per_part) for cell in zip(a, b)])
        history.append(_with_rest(planted, unmarked, length, news, rng))
    return history, {"first": first, "second": second}


def _pairs_users(config, p: ProbeParameters, news, rng):
    """A pair (a, b) of words; `clicks_per_part` history news carrying a alone and as many carrying b alone."""
    pool = _history_pool(config, news)
    unmarked = pool[news.markers[pool, 0] == NO_MARKER]
    first = rng.integers(0, p.marker_words, config.num_users)
    second = (first + rng.integers(1, p.marker_words, config.num_users)) % p.marker_words
    alone = [pool[(news.markers[pool, 0] == m) & (news.markers[pool, 1] == NO_MARKER)] for m in range(p.marker_words)]
    history = []
    for a, b, length in zip(first.tolist(), second.tolist(), _lengths(config, p, rng).tolist()):
        planted = np.concatenate([rng.choice(alone[a], size=p.clicks_per_part, replace=False),
                                  rng.choice(alone[b], size=p.clicks_per_part, replace=False)])
        history.append(_with_rest(planted, unmarked, length, news, rng))
    return history, {"first": first, "second": second}


def _match_users(config, p: ProbeParameters, news, rng):
    """`habit_share` of each history on one entity (the story the user follows closely), the rest at random from
    the history days; what the user follows is the entities of their clicks (`follows`: the sorted keys
    user * ENTITY_KEYS + entity), each worth the same however often it was clicked."""
    pool = _history_pool(config, news)
    entity = entity_ids(news)
    history = []
    for length in _lengths(config, p, rng).tolist():
        habit = round(p.habit_share * length)
        same = pool[entity[pool] == entity[rng.choice(pool)]]
        history.append(_ordered(np.concatenate([rng.choice(same, size=habit), rng.choice(pool, size=length - habit)]),
                                news, rng))
    follows = np.unique(np.concatenate([u * ENTITY_KEYS + entity[clicks] for u, clicks in enumerate(history)]))
    return history, {"follows": follows}


def entity_ids(news) -> np.ndarray:
    """(N,) each news item's entity (the one its title names)."""
    return news.topic.astype(np.int64) * ENTITIES_PER_TOPIC + news.text[:, ENTITY_COLUMN]


def _follows(users: "ProbeUsers", user: np.ndarray, entity: np.ndarray) -> np.ndarray:
    return np.isin(user.astype(np.int64) * ENTITY_KEYS + entity, users.planted["follows"])


def _normalized(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


def logits(name: str, news: ProbeNews, users: ProbeUsers, user: np.ndarray, impression_of: np.ndarray,
           candidates: np.ndarray) -> np.ndarray:
    """The planted click logit of each candidate row: the base (bias, appeal) and the premise's part."""
    p = ProbeParameters()
    u, topic, marks = user[impression_of], news.topic[candidates], news.markers[candidates]
    planted = users.planted
    if name == "probe-order":
        user_part = p.premise_weight * (topic == planted["new"][u]) + p.old_weight * (topic == planted["old"][u])
    elif name == "probe-max":  # the best interest's match (both words, one, none), not the sum over interests
        per_interest = p.word_weight * ((planted["first"][u] == marks[:, :1]).astype(np.float64)
                                        + (planted["second"][u] == marks[:, 1:]))  # (C, interests)
        user_part = per_interest.max(axis=1)
    elif name == "probe-match":  # the candidate names the entity of some earlier click
        user_part = p.premise_weight * _follows(users, u, entity_ids(news)[candidates])
    else:
        first = (marks == planted["first"][u][:, None]).any(axis=1)
        second = (marks == planted["second"][u][:, None]).any(axis=1)
        user_part = p.premise_weight * (first & second) + p.lone_weight * (first ^ second)
    return p.click_bias + p.appeal_weight * news.quality[candidates] + user_part


PREMISE_ROWS = "premise rows"  # the split of the candidate rows where the premise decides (premise_rows)


def premise_rows(name: str, news: ProbeNews, users: ProbeUsers, impressions) -> np.ndarray:
    """(C,) the candidate rows whose planted user part the premise decides, where a model without it errs: the
    user's old or new topic (order); a word of an interest (max: full matches, crossings, one word); a word of the
    pair (pairs: the pair against one word alone); an entity the user clicked (match: followed closely or once)."""
    impression_of = np.repeat(np.arange(len(impressions.day)), np.diff(impressions.offsets))
    u, candidates = impressions.user[impression_of], impressions.candidates
    topic, marks, planted = news.topic[candidates], news.markers[candidates], users.planted
    if name == "probe-order":
        return (topic == planted["old"][u]) | (topic == planted["new"][u])
    if name == "probe-match":
        return _follows(users, u, entity_ids(news)[candidates])
    words = np.concatenate([planted[part][u].reshape(len(u), -1) for part in ("first", "second")], axis=1)
    return ((marks[:, :, None] == words[:, None, :]) & (marks[:, :, None] != NO_MARKER)).any(axis=(1, 2))


def title_with_markers(title: str, markers: np.ndarray) -> str:
    """The base title, with the news's marker words after it ("... , amber and cobalt")."""
    words = [MARKERS[m] for m in markers.tolist() if m != NO_MARKER]
    return title if not words else f"{title}, {' and '.join(words)}"


def planted_truth(name: str, news: ProbeNews, users: ProbeUsers, train, dev) -> dict:
    """planted.json's probe entries: the parameters, and the oracle and both bounds on dev (AUC, MRR, nDCG@10)."""
    oracle = _metrics(dev, dev.probability)
    mean_bound, premise_bound = (_bound(name, news, users, train, dev, premise) for premise in (False, True))
    return {"probe": {"name": name, "parameters": asdict(ProbeParameters())},
            "bounds": {"oracle": oracle, "mean bound (history estimable)": mean_bound,
                       "premise bound (history estimable)": premise_bound,
                       "attainable gain (AUC)": premise_bound["auc"] - mean_bound["auc"]}}


def history_features(name: str, news: ProbeNews, users: ProbeUsers, impressions, premise: bool) -> np.ndarray:
    """(C, F) features of every candidate row from its user's history alone: the appeal and the additive overlap
    (topic share; each marker's history frequency), and with `premise` the premise's feature."""
    p = ProbeParameters()
    impression_of = np.repeat(np.arange(len(impressions.day)), np.diff(impressions.offsets))
    user, candidates = impressions.user[impression_of], impressions.candidates
    topic, marks = news.topic[candidates], news.markers[candidates]
    profile = _profiles(p, news, users.history)
    columns = [news.quality[candidates], profile["topic share"][user, topic]]
    if name == "probe-match":  # the candidate's entity's share of the history; with the premise, whether it is there
        share = _entity_share(news, users.history, user, entity_ids(news)[candidates])
        return np.stack(columns + [share] + ([(share > 0).astype(np.float64)] if premise else []), axis=1)
    if name != "probe-order":
        frequency = np.where(marks == NO_MARKER, 0.0, profile["marker share"][user[:, None], np.maximum(marks, 0)])
        columns.append(frequency.sum(axis=1))
    if premise:
        columns += _premise_features(name, profile, user, topic, marks)
    return np.stack(columns, axis=1)


def _premise_features(name, profile, user, topic, marks) -> list[np.ndarray]:
    if name == "probe-order":
        return [profile["recent topic share"][user, topic]]
    known = (marks != NO_MARKER) & (profile["marker share"][user[:, None], np.maximum(marks, 0)] > 0)
    if name == "probe-max":  # the best single click's match: 2 (both words), 1 (either), 0
        cell = np.maximum(marks[:, 0], 0) * len(MARKERS) + np.maximum(marks[:, 1], 0)
        both = (marks[:, 0] != NO_MARKER) & (profile["cell share"][user, cell] > 0)
        return [np.where(both, 2.0, known.any(axis=1).astype(np.float64))]
    # probe-pairs: whether both words are in the history (each in some click), or one
    return [(known[:, 0] & known[:, 1]).astype(np.float64), (known[:, 0] ^ known[:, 1]).astype(np.float64)]


def _entity_share(news, histories: list[np.ndarray], user: np.ndarray, entity: np.ndarray) -> np.ndarray:
    """Per row, the share of the user's history clicks that name `entity` (histories are never empty here)."""
    ids = entity_ids(news)
    keys, counts = np.unique(np.concatenate([u * ENTITY_KEYS + ids[c] for u, c in enumerate(histories)]),
                             return_counts=True)
    wanted = user.astype(np.int64) * ENTITY_KEYS + entity
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    lengths = np.array([len(c) for c in histories])
    return np.where(keys[at] == wanted, counts[at], 0) / lengths[user]


def _profiles(p: ProbeParameters, news: ProbeNews, histories: list[np.ndarray]) -> dict:
    """Per user, from the history alone: topic shares, the latest clicks' topic shares, marker shares (a news item
    counts once per marker), and (first, second marker) cell shares."""
    topics, users = len(demo_vocab.TOPICS), len(histories)
    out = {"topic share": np.zeros((users, topics)), "recent topic share": np.zeros((users, topics)),
           "marker share": np.zeros((users, len(MARKERS))), "cell share": np.zeros((users, len(MARKERS) ** 2))}
    for u, clicks in enumerate(histories):
        if not len(clicks):
            continue
        out["topic share"][u] = np.bincount(news.topic[clicks], minlength=topics) / len(clicks)
        latest = clicks[-p.recent:]
        out["recent topic share"][u] = np.bincount(news.topic[latest], minlength=topics) / len(latest)
        marks = news.markers[clicks]
        out["marker share"][u] = np.bincount(marks[marks != NO_MARKER], minlength=len(MARKERS)) / len(clicks)
        both = (marks != NO_MARKER).all(axis=1)
        cells = marks[both, 0] * len(MARKERS) + marks[both, 1]
        out["cell share"][u] = np.bincount(cells, minlength=len(MARKERS) ** 2) / len(clicks)
    return out


def _bound(name: str, news: ProbeNews, users: ProbeUsers, train, dev, premise: bool) -> dict:
    fit = LogisticRegression(C=10.0, max_iter=1000).fit(history_features(name, news, users, train, premise),
                                                        train.labels)
    return _metrics(dev, fit.decision_function(history_features(name, news, users, dev, premise)))


def _metrics(impressions, scores: np.ndarray) -> dict:
    mean = per_impression_metrics(impressions.labels, scores, impressions.offsets).mean()
    return {"auc": float(mean.auc), "mrr": float(mean.mrr), "ndcg10": float(mean.ndcg10)}
