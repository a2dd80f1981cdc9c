"""World v2 of `newsrec demo-data`, and world v3 (the default): v2 shown only once published.

The click logit of user u for news n at time t is a sum of named components, each one effect that a
seed model targets (`COMPONENTS`, in the order the oracle decomposition adds them):

    logit(u, n, t) = bias + topic + entity + interests + drift + fresh + wording + residual

- topic: one primary topic per user, weight ~ U(2.0, 3.5); half of it spills over to the other
  subcategories of the same category (v1's favourite-topic effect, for one topic).
- entity (entities and words): a user follows 0-4 named entities (Poisson(1.5), capped), weight
  ~ U(2.0, 3.5) (as strong as a topic) whenever the news names the entity. 100 invented cross-topic entities (60 people,
  40 organisations; `pipeline/data/demo_world.json`) each appear in 2-4 topics of different
  categories; 35% of news name one of them, the rest one of their topic's entities. Half of the
  followed entities are cross-topic, half belong to the user's own topics. The name is in the title
  (every headline template names the entity), in most abstracts and in the entity JSON columns: a
  word-level signal (FUM, UNBERT) that a topic profile cannot carry.
- interests: 0-5 further topics (Poisson(1.5), capped), weights ~ U(0.5, 2.5): several interests
  with unequal weights, the weak ones rare in a history (UniRec's bases, Recallnet's key).
- drift: half of the users move from an old topic A to a new topic B (weight ~ U(2.0, 3.5)): the
  weight moves linearly from A to B, starting in the first half of the history window and taking a
  quarter to a half of it (small: 7 days of history), so old clicks say A and recent ones B (attention over an ordered history can see it, a mean cannot).
- fresh: stories rise and fade: 0.8 · exp(-age / 10 h) for everyone, plus a trending bump
  b · (age / 12 h) · exp(1 - age / 12 h) with b ~ N(0, 0.6) per story (popular for a day, then gone).
  Ages are in hours from a publication second drawn within the publication day; an impression before
  a same-day story's publication counts it as just published (age 0; world v3 never shows one).
- wording: the appeal of the headline template and of the subject phrase (v1's readable appeal).
- residual: ε ~ N(0, 0.15) per story, the part no model can see.

Histories (MIND: the clicks before the log, oldest first) are drawn from the history days with the
components a user has at that moment (topic, interests, drift at the click's day, entities), news
within a group ∝ exp(wording + residual): sigmoid(x) is taken as exp(x) there (exact for rare
clicks) so that whole groups can be drawn at once; freshness is left out of histories. Impressions and
labels use the exact logit, as in v1 (`demo_data._draw_impressions`).

World v3 is this world, parameters and all, with one rule v2 lacks: an impression at time t shows only
news published by t (`demo_data._Published`; an impression that would have fewer than 2 is moved later,
to its day's 2nd publication). Real news is never shown before it exists, and 38.5% of v2 small's dev
candidate rows were (v2 draws candidates from all news live that day, whatever their publication second;
`shown_before_published` in `planted.json`, 0 in v3). Its parameters are v2's below, committed before
any model ran on v3.

The planted truth in `planted.json`: the oracle decomposed (dev ranking metrics of each component alone
and added in turn; every dev impression up to 100,000, a seeded sample beyond: large) and the recall
oracle (Recall@K of the planted top-K over the dev-day pool and over all news, on a seeded sample of
1,000 dev impressions, the standard error of such a mean being about 0.01; v3: the dev-day pool of an
impression holds only the news published by its time).

MIND statistics kept (printed by `demo-data`, in `planted.json`): dev CTR ≈ 4% (the bias), ~76% of
dev candidates unseen in train (v1's publishing schedule: news live one or two days), history lengths
lognormal with median 18 capped at 120 and 2.4% empty (MIND: ~2.4% of impressions have an empty
history), candidates per impression median 24 / mean 37 / max 300, v1's titles and abstracts, MIND's
categories and subcategories. Parameters were set from these statistics and the effect sizes above
before any model was run on world v2, and are not tuned toward or against a model afterwards: the git
history of this file is the record.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace

import numpy as np

from newsrec.pipeline import demo_vocab
from newsrec.pipeline.metrics import concatenate, per_impression_metrics, recall_from_ranks

COMPONENTS = ("topic", "entity", "interests", "drift", "fresh", "wording")  # + residual = the full logit
HOURS_PER_DAY = 24.0
PEOPLE, ORGANISATIONS = 60, 40


@dataclass(frozen=True)
class WorldV2:
    """The effect parameters of world v2 (sizes and MIND statistics come from `DemoConfig`)."""
    click_bias: float = -5.2
    empty_history_fraction: float = 0.024
    primary_low: float = 2.0
    primary_high: float = 3.5
    follow_mean: float = 1.5
    follow_max: int = 4
    follow_low: float = 2.0
    follow_high: float = 3.5
    follow_cross_topic: float = 0.5  # share of followed entities drawn from the cross-topic pool
    cross_topic_share: float = 0.35  # share of news naming a cross-topic entity
    home_topics_low: int = 2
    home_topics_high: int = 4
    interests_mean: float = 1.5
    interests_max: int = 5
    interest_low: float = 0.5
    interest_high: float = 2.5
    drift_fraction: float = 0.5
    drift_low: float = 2.0
    drift_high: float = 3.5
    drift_start_share: float = 0.5  # the move starts within the first half of the history window...
    drift_days_low_share: float = 0.25  # ...and takes a quarter to a half of the window
    drift_days_high_share: float = 0.5
    fresh_boost: float = 0.8
    fresh_hours: float = 10.0
    buzz_sd: float = 0.6
    buzz_peak_hours: float = 12.0
    template_appeal_sd: float = 0.35
    subject_appeal_sd: float = 0.35
    residual_appeal_sd: float = 0.15


@dataclass(frozen=True)
class Entity:
    label: str
    kind: str  # MIND entity type: P person, O organisation, ...
    wikidata: str  # synthetic, not a real Wikidata item
    topics: tuple[int, ...]  # the topics whose news may name it


@dataclass(frozen=True, eq=False)
class News:
    topic: np.ndarray  # (N,) int32
    entity: np.ndarray  # (N,) int32 into `entities`
    text: np.ndarray  # (N, len(demo_data.TEXT_PARTS)) chosen template / phrase of each part
    has_abstract: np.ndarray  # (N,) bool
    wording: np.ndarray  # (N,) template + subject appeal
    residual: np.ndarray  # (N,) ε
    buzz: np.ndarray  # (N,) trending strength b
    day: np.ndarray  # (N,) int32, 0 = first history day
    published: np.ndarray  # (N,) float64 publication time in days since day 0
    life: np.ndarray  # (N,) int32 days live
    ids: list[str]
    entities: tuple[Entity, ...]

    def entity_of(self, n: int) -> tuple[str, str, str]:
        entity = self.entities[self.entity[n]]
        return entity.label, entity.kind, entity.wikidata


@dataclass(frozen=True, eq=False)
class Users:
    primary: np.ndarray  # (U,) topic
    primary_weight: np.ndarray  # (U,)
    follows: np.ndarray  # (U, follow_max) entity ids, -1 = none
    follow_weight: np.ndarray  # (U, follow_max), 0 where none
    interests: np.ndarray  # (U, interests_max) topics, -1 = none
    interest_weight: np.ndarray  # (U, interests_max)
    drift_from: np.ndarray  # (U,) topic A (-1 = no drift)
    drift_to: np.ndarray  # (U,) topic B
    drift_weight: np.ndarray  # (U,) 0 = no drift
    drift_start: np.ndarray  # (U,) day the move starts
    drift_days: np.ndarray  # (U,) days the move takes
    activity: np.ndarray  # (U,) sums to 1
    history: list[np.ndarray]  # per user, news indices, oldest first
    ids: list[str]


# ------------------------------------------------------------------------------ planting

def plant_news(config, world: WorldV2, rng: np.random.Generator, part_sizes: np.ndarray) -> News:
    topics = demo_vocab.TOPICS
    entities, topic_entities, cross_by_topic = _entities(world, rng)
    logged_days = config.train_days + 1
    per_day = [config.news_per_history_day] * config.history_days + [config.news_per_logged_day] * logged_days
    day = np.repeat(np.arange(len(per_day), dtype=np.int32), per_day)
    topic = rng.choice(len(topics), size=len(day), p=rng.dirichlet(np.full(len(topics), 2.0))).astype(np.int32)
    life = np.where(rng.random(len(day)) < config.two_day_life_fraction, 2, 1).astype(np.int32)
    text = (rng.random((len(day), part_sizes.shape[1])) * part_sizes[topic]).astype(np.int64)
    entity = np.array([topic_entities[t][i] for t, i in zip(topic.tolist(), text[:, 2].tolist())], dtype=np.int32)
    cross = rng.random(len(day)) < world.cross_topic_share
    for n in np.flatnonzero(cross):
        pool = cross_by_topic[int(topic[n])]
        if pool:
            entity[n] = pool[int(rng.integers(len(pool)))]
    template_appeal = rng.normal(0.0, world.template_appeal_sd, part_sizes[0, 0])
    subject_appeal = rng.normal(0.0, world.subject_appeal_sd, (len(topics), part_sizes.max()))
    wording = template_appeal[text[:, 0]] + subject_appeal[topic, text[:, 3]]
    return News(topic=topic, entity=entity, text=text, has_abstract=rng.random(len(day)) >= config.empty_abstract_fraction,
                wording=wording, residual=rng.normal(0.0, world.residual_appeal_sd, len(day)),
                buzz=rng.normal(0.0, world.buzz_sd, len(day)), day=day, published=day + rng.random(len(day)),
                life=life, ids=[f"N{n}" for n in rng.permutation(len(day)) + 10_001], entities=entities)


@functools.lru_cache(maxsize=None)
def _names() -> dict:
    return json.loads(demo_vocab.data_file("demo_world.json").read_text(encoding="utf-8"))


def _entities(world: WorldV2, rng: np.random.Generator):
    """(every entity, per topic its own entity ids, per topic the cross-topic entity ids it may name)."""
    topics = demo_vocab.TOPICS
    entities, topic_entities = [], []
    for t, topic in enumerate(topics):
        topic_entities.append([len(entities) + i for i in range(len(topic.entities))])
        entities.extend(Entity(label, kind, f"Q{90_000_000 + t * 100 + i}", (t,))
                        for i, (label, kind) in enumerate(topic.entities))
    names = _names()
    people = rng.permutation([f"{a} {b}" for a in names["first_names"] for b in names["last_names"]])[:PEOPLE]
    organisations = rng.permutation([f"{a} {b}" for a in names["organisation_stems"]
                                     for b in names["organisation_kinds"]])[:ORGANISATIONS]
    categories = np.array([t.category for t in topics])
    cross_by_topic: list[list[int]] = [[] for _ in topics]
    for g, (label, kind) in enumerate([(p, "P") for p in people] + [(o, "O") for o in organisations]):
        home = _home_topics(categories, int(rng.integers(world.home_topics_low, world.home_topics_high + 1)), rng)
        for t in home:
            cross_by_topic[t].append(len(entities))
        entities.append(Entity(str(label), kind, f"Q{91_000_000 + g}", home))
    return tuple(entities), topic_entities, cross_by_topic


def _home_topics(categories: np.ndarray, count: int, rng: np.random.Generator) -> tuple[int, ...]:
    """`count` topics of distinct categories."""
    chosen: list[int] = []
    for t in rng.permutation(len(categories)).tolist():
        if categories[t] not in categories[chosen]:
            chosen.append(t)
        if len(chosen) == count:
            break
    return tuple(sorted(chosen))


def plant_users(config, world: WorldV2, news: News, rng: np.random.Generator) -> Users:
    users, topics = config.num_users, len(demo_vocab.TOPICS)
    order = np.argsort(rng.random((users, topics)), axis=1)  # distinct topics per user
    primary = order[:, 0]
    count = np.minimum(rng.poisson(world.interests_mean, users), world.interests_max)
    interests = np.where(np.arange(world.interests_max) < count[:, None], order[:, 1:1 + world.interests_max], -1)
    interest_weight = np.where(interests >= 0, rng.uniform(world.interest_low, world.interest_high, interests.shape), 0.0)
    drifting = rng.random(users) < world.drift_fraction
    drift_from = np.where(drifting, order[:, 1 + world.interests_max], -1)
    drift_to = np.where(drifting, order[:, 2 + world.interests_max], -1)
    follows = _follows(world, news, primary, interests, rng)
    activity = rng.lognormal(0.0, 1.0, users)
    partial = Users(
        primary=primary, primary_weight=rng.uniform(world.primary_low, world.primary_high, users),
        follows=follows, follow_weight=np.where(follows >= 0, rng.uniform(world.follow_low, world.follow_high,
                                                                          follows.shape), 0.0),
        interests=interests, interest_weight=interest_weight, drift_from=drift_from, drift_to=drift_to,
        drift_weight=np.where(drifting, rng.uniform(world.drift_low, world.drift_high, users), 0.0),
        drift_start=rng.uniform(0.0, world.drift_start_share * config.history_days, users),
        drift_days=rng.uniform(world.drift_days_low_share, world.drift_days_high_share, users) * config.history_days,
        activity=activity / activity.sum(), history=[], ids=[f"U{u}" for u in rng.permutation(users) + 1_001])
    partial.history.extend(_histories(config, world, news, partial, rng))
    return partial


def _follows(world: WorldV2, news: News, primary: np.ndarray, interests: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """(U, follow_max) followed entity ids (-1 = none): cross-topic ones, or entities of the user's own topics
    (primary or further interests); a repeated pick is dropped."""
    users, slots = len(primary), world.follow_max
    first_cross = sum(len(t.entities) for t in demo_vocab.TOPICS)
    sizes = np.array([len(t.entities) for t in demo_vocab.TOPICS])
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    count = np.minimum(rng.poisson(world.follow_mean, users), slots)
    mine = np.concatenate([primary[:, None], interests], axis=1)  # (U, 1 + K), -1 pads
    which = (rng.random((users, slots)) * (mine >= 0).sum(axis=1, keepdims=True)).astype(np.int64)
    topic = np.take_along_axis(mine, which, axis=1)  # (U, slots): valid entries come first in `mine`
    own = firsts[topic] + (rng.random((users, slots)) * sizes[topic]).astype(np.int64)
    cross = first_cross + rng.integers(0, len(news.entities) - first_cross, (users, slots))
    follows = np.where(rng.random((users, slots)) < world.follow_cross_topic, cross, own)
    follows = np.where(np.arange(slots) < count[:, None], follows, -1)
    follows.sort(axis=1)
    repeated = np.zeros_like(follows, dtype=bool)
    repeated[:, 1:] = (follows[:, 1:] == follows[:, :-1]) & (follows[:, 1:] >= 0)
    return np.where(repeated, -1, follows)


# ------------------------------------------------------------------------------ the logit

def components(world: WorldV2, news: News, users: Users, user: np.ndarray, item: np.ndarray,
               time: np.ndarray) -> dict[str, np.ndarray]:
    """Every component of the logit for the rows (user[i], item[i] at `time[i]` days since day 0)."""
    topic = news.topic[item]
    categories = _categories()
    primary = users.primary[user]
    spill = (categories[topic] == categories[primary]) & (topic != primary)
    weight = users.primary_weight[user]
    result = {"topic": np.where(topic == primary, weight, np.where(spill, weight / 2, 0.0))}
    result["entity"] = _slot_sum(users.follows, users.follow_weight, user, news.entity[item])
    result["interests"] = _slot_sum(users.interests, users.interest_weight, user, topic)
    moved = drift_share(users, user, time)
    result["drift"] = users.drift_weight[user] * ((1 - moved) * (topic == users.drift_from[user])
                                                  + moved * (topic == users.drift_to[user]))
    age = np.maximum(0.0, time - news.published[item]) * HOURS_PER_DAY
    peak = age / world.buzz_peak_hours
    result["fresh"] = world.fresh_boost * np.exp(-age / world.fresh_hours) + news.buzz[item] * peak * np.exp(1 - peak)
    result["wording"] = news.wording[item]
    result["residual"] = news.residual[item]
    return result


def _slot_sum(chosen: np.ndarray, weight: np.ndarray, user: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Σ_k weight[user, k] · (chosen[user, k] == value), one slot at a time: the same additions in the same
    order as a (rows, slots) product summed along its rows, without the (rows, slots) temporaries."""
    total = weight[:, 0][user] * (chosen[:, 0][user] == value)
    for k in range(1, chosen.shape[1]):
        total += weight[:, k][user] * (chosen[:, k][user] == value)
    return total


CHUNK_ROWS = 1_000_000  # rows per components() call: bounded temporaries at MIND-large scale


def logit(world: WorldV2, news: News, users: Users, user: np.ndarray, item: np.ndarray,
          time: np.ndarray) -> np.ndarray:
    """The full click logit of every row (user[i], item[i] at time[i])."""
    return impression_logits(world, news, users, user, time, np.arange(len(item)), item)


def impression_logits(world: WorldV2, news: News, users: Users, user: np.ndarray, time: np.ndarray,
                      impression_of: np.ndarray, item: np.ndarray) -> np.ndarray:
    """The full logit of every candidate row (`impression_of` row -> impression with `user` and `time`),
    CHUNK_ROWS at a time: no per-component array over all rows (MIND-large: 82M train rows)."""
    result = np.empty(len(item))
    for start in range(0, len(item), CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        owner = impression_of[rows]
        parts = components(world, news, users, user[owner], item[rows], time[owner])
        result[rows] = world.click_bias + sum(parts.values())
    return result


def chunked_components(world: WorldV2, news: News, users: Users, user: np.ndarray, item: np.ndarray,
                       time: np.ndarray) -> dict[str, np.ndarray]:
    """`components` of many rows, CHUNK_ROWS at a time."""
    result = {name: np.empty(len(user)) for name in (*COMPONENTS, "residual")}
    for start in range(0, len(user), CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        for name, values in components(world, news, users, user[rows], item[rows], time[rows]).items():
            result[name][rows] = values
    return result


def drift_share(users: Users, user: np.ndarray, time: np.ndarray) -> np.ndarray:
    """How far each user has moved from topic A to topic B at `time` (0 before, 1 after)."""
    return np.clip((time - users.drift_start[user]) / users.drift_days[user], 0.0, 1.0)


@functools.lru_cache(maxsize=None)
def _categories() -> np.ndarray:
    names = sorted({t.category for t in demo_vocab.TOPICS})
    return np.array([names.index(t.category) for t in demo_vocab.TOPICS])


def topic_logits(users: Users, user: np.ndarray, time: np.ndarray) -> np.ndarray:
    """(rows, T): the topic-level part of the logit (topic, interests, drift) of each row's user at `time`."""
    topics = len(demo_vocab.TOPICS)
    rows = np.arange(len(user))
    categories = _categories()
    primary, weight = users.primary[user], users.primary_weight[user]
    result = np.where(categories[None, :] == categories[primary][:, None], weight[:, None] / 2, 0.0)
    result[rows, primary] = weight
    for k in range(users.interests.shape[1]):
        has = users.interests[user, k] >= 0
        result[rows[has], users.interests[user[has], k]] += users.interest_weight[user[has], k]
    moved = drift_share(users, user, time)
    has = users.drift_weight[user] > 0
    drift = users.drift_weight[user]
    result[rows[has], users.drift_from[user[has]]] += (drift * (1 - moved))[has]
    result[rows[has], users.drift_to[user[has]]] += (drift * moved)[has]
    assert result.shape == (len(user), topics)
    return result


# ------------------------------------------------------------------------------ histories

def _histories(config, world: WorldV2, news: News, users: Users, rng: np.random.Generator) -> list[np.ndarray]:
    """Each user's clicks before the log, oldest first (see the module docstring)."""
    count = config.num_users
    lengths = np.minimum(np.round(rng.lognormal(np.log(config.median_history), 0.8, count)),
                         config.max_history).astype(np.int64)
    lengths[rng.random(count) < world.empty_history_fraction] = 0
    user = np.repeat(np.arange(count), lengths)
    day = rng.integers(0, config.history_days, len(user))
    groups = _Groups(news, config.history_days)
    clicked = np.empty(len(user), dtype=np.int64)
    for rows in _slices(len(user), 50_000):  # the random draws' order: fixed (the world depends on it)
        clicked[rows] = groups.draw(users, user[rows], day[rows], rng)
    order = np.lexsort((rng.random(len(clicked)), news.published[clicked], user))  # oldest first
    user, clicked = user[order], clicked[order]
    _, first = np.unique(user * len(news.day) + clicked, return_index=True)  # each item once per user
    first.sort()
    user, clicked = user[first], clicked[first].astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(user, minlength=count))])
    return [clicked[offsets[u]:offsets[u + 1]] for u in range(count)]


class _Groups:
    """History news grouped by (day, topic, entity), with cumulative exp(wording + residual) to draw within
    a group in one searchsorted."""

    def __init__(self, news: News, days: int):
        self.topics, self.entities = len(demo_vocab.TOPICS), len(news.entities)
        old = np.flatnonzero(news.day < days)
        key = (news.day[old].astype(np.int64) * self.topics + news.topic[old]) * self.entities + news.entity[old]
        order = np.argsort(key, kind="stable")
        self.items, self.key = old[order], key[order]
        weight = np.exp(news.wording[self.items] + news.residual[self.items])
        self.cumulative = np.concatenate([[0.0], np.cumsum(weight)])
        self.topic_mass = np.zeros((days, self.topics))  # (days, T): Σ weight of the day's news per topic
        np.add.at(self.topic_mass, (news.day[old], news.topic[old]), weight[np.argsort(order)])
        self.entity_mass = np.zeros((days, self.entities, self.topics))  # (days, E, T): the same per entity
        np.add.at(self.entity_mass, (news.day[old], news.entity[old], news.topic[old]), weight[np.argsort(order)])

    def draw(self, users: Users, user: np.ndarray, day: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One history click per row: a topic group (plain) or a (followed entity, topic) group, ∝ its mass."""
        uniform = rng.random(len(user))  # the group draws, one per row
        pick = np.concatenate([np.empty(0, np.int64)] + [self._group(users, user[rows], day[rows], uniform[rows])
                               for rows in _slices(len(user), GROUP_ROWS)])
        plain = pick < self.topics  # < T: topic `pick`; else follow slot and topic of pick - T
        slot, topic = np.divmod(np.where(plain, pick, pick - self.topics), self.topics)
        entity = np.where(plain, 0, users.follows[user, np.where(plain, 0, slot)])
        first = (day.astype(np.int64) * self.topics + topic) * self.entities
        start = np.searchsorted(self.key, np.where(plain, first, first + entity))
        end = np.searchsorted(self.key, np.where(plain, first + self.entities, first + entity + 1))
        low, high = self.cumulative[start], self.cumulative[end]
        found = np.searchsorted(self.cumulative, low + rng.random(len(user)) * (high - low), side="right") - 1
        return self.items[np.clip(found, start, np.maximum(end - 1, start))]

    def _group(self, users: Users, user: np.ndarray, day: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """Each row's group among T topics then F × T (followed entity, topic) pairs, ∝ its mass: the first
        group whose running sum of masses reaches uniform × the row's total. A follow slot's T masses are
        only computed for the rows that fill it: an empty slot's masses are 0 and leave the running sum
        where it was (a plateau), so the sums, and the draws, are those of the whole (rows, (1 + F) × T) row."""
        topics, slots = self.topics, users.follows.shape[1]
        topical = np.exp(topic_logits(users, user, day + 0.5))  # (C, T)
        cumulative = np.cumsum(topical * self.topic_mass[day], axis=1)  # (C, T)
        running = cumulative[:, -1].copy()
        filled = []  # per slot: (rows that fill it, running sum before it, (rows, T) running sums through it)
        for k in range(slots):
            rows = np.flatnonzero(users.follows[user, k] >= 0)
            followed = users.follows[user[rows], k]
            mass = np.expm1(users.follow_weight[user[rows], k])[:, None] * topical[rows] \
                * self.entity_mass[day[rows], followed]
            mass[:, 0] += running[rows]
            filled.append((rows, running.copy(), np.cumsum(mass, axis=1, out=mass)))
            running[rows] = mass[:, -1]
        draw = uniform * running
        below = (cumulative < draw[:, None]).sum(axis=1)  # groups whose running sum is below the draw
        for rows, before, sums in filled:
            plateau = topics * (before < draw)
            plateau[rows] = (sums < draw[rows, None]).sum(axis=1)
            below += plateau
        return np.minimum(below, (1 + slots) * topics - 1)


GROUP_ROWS = 8_192  # rows per block of group draws: a few MiB; the draws do not depend on it


def _slices(total: int, size: int) -> list[slice]:
    return [slice(start, start + size) for start in range(0, total, size)]


@dataclass(frozen=True, eq=False)
class Pool:
    """A pool of news with what `pool_logits` reads of each, gathered once for every block of users."""
    items: np.ndarray  # (P,) news indices, sorted
    topic: np.ndarray
    published: np.ndarray
    buzz: np.ndarray
    static: np.ndarray  # wording + residual
    by_entity: np.ndarray  # pool columns grouped by entity...
    entity_starts: np.ndarray  # ...entity e's columns: by_entity[entity_starts[e]:entity_starts[e + 1]]

    @classmethod
    def of(cls, news: News, items: np.ndarray) -> Pool:
        entity = news.entity[items]
        by_entity = np.argsort(entity, kind="stable")
        starts = np.searchsorted(entity[by_entity], np.arange(len(news.entities) + 1))
        return cls(items, news.topic[items], news.published[items], news.buzz[items],
                   news.wording[items] + news.residual[items], by_entity, starts)


def pool_logits(world: WorldV2, news: News, users: Users, user: np.ndarray, time: np.ndarray,
                pool: np.ndarray | Pool) -> np.ndarray:
    """(C, P): the full logit of each user (at its `time`) for every news of `pool`; the same sum as
    `logit`, computed per user over a whole pool (the recall oracle's hot loop): in place, and the entity
    weight added only where the news names a followed entity."""
    pool = pool if isinstance(pool, Pool) else Pool.of(news, pool)
    logits = topic_logits(users, user, time)[:, pool.topic]  # (C, P): topic + interests + drift
    rows, cols, weight = _followed_cells(users, user, pool)
    logits[rows, cols] += weight  # a user follows an entity once: no cell twice
    age = np.subtract(time[:, None], pool.published[None, :])
    np.maximum(age, 0.0, out=age)
    age *= HOURS_PER_DAY
    peak = age / world.buzz_peak_hours
    fresh = np.divide(age, -world.fresh_hours, out=age)
    np.exp(fresh, out=fresh)
    fresh *= world.fresh_boost
    bump = np.subtract(1.0, peak)
    np.exp(bump, out=bump)
    peak *= pool.buzz[None, :]
    peak *= bump
    fresh += peak  # fresh_boost · exp(-age / fresh_hours) + buzz · peak · exp(1 - peak)
    logits += world.click_bias
    logits += fresh
    logits += pool.static[None, :]
    return logits


def _followed_cells(users: Users, user: np.ndarray, pool: Pool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, pool columns, weight) of every (user, news) cell where the news names an entity the user follows."""
    row, slot = np.nonzero(users.follows[user] >= 0)
    entity = users.follows[user[row], slot]
    first, counts = pool.entity_starts[entity], np.diff(pool.entity_starts)[entity]
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return (np.repeat(row, counts), pool.by_entity[np.repeat(first, counts) + within],
            np.repeat(users.follow_weight[user[row], slot], counts))


# ------------------------------------------------------------------------------ the planted truth

RECALL_KS = (100, 200, 500, 1000)  # as pipeline/evaluation.py
RECALL_SAMPLE = 1_000  # dev impressions the recall oracle is measured on (seeded sample)
POOL_CELLS = 250_000  # (users × pool) logits per block of the recall oracle: 2 MiB of float64


def planted_truth(world: WorldV2, news: News, users: Users, train, dev, published_only: bool = False) -> dict:
    """The oracle decomposed on dev (each component alone and cumulatively) and the recall oracle
    (`published_only`, world v3: over a dev-day pool of the news published by each impression's time)."""
    return {"oracle_decomposition": decomposition(world, news, users, dev),
            "recall_oracle": recall_oracle(world, news, users, train, dev, published_only=published_only)}


DECOMPOSITION_SAMPLE = 100_000  # dev impressions the decomposition is measured on: all of tiny and small


def decomposition(world: WorldV2, news: News, users: Users, dev, sample: int = DECOMPOSITION_SAMPLE) -> dict:
    """Dev ranking metrics of each planted component alone, of the components added in `COMPONENTS`
    order, and of the full logit (+ residual: the planted probability's own order); on every dev
    impression up to `sample`, else on a seeded sample of that many (large: 100,000 of 376,471).
    Computed DECOMPOSITION_BLOCK impressions at a time (per-impression metrics do not depend on the
    blocks): temporaries stay a few MiB instead of one array per component over every row."""

    if len(dev.day) > sample:
        dev = _subset(dev, np.sort(np.random.default_rng(0).permutation(len(dev.day))[:sample]))
    names = [*COMPONENTS, *(f"+ {name}" for name in COMPONENTS[1:]), "full (+ residual)"]
    blocks: dict[str, list] = {name: [] for name in names}
    for start in range(0, len(dev.day), DECOMPOSITION_BLOCK):
        block = _block(dev, start, start + DECOMPOSITION_BLOCK)
        parts = components(world, news, users, *impression_rows(block))
        scores = {name: parts[name] for name in COMPONENTS}
        total = parts[COMPONENTS[0]]
        for name in COMPONENTS[1:]:
            total = scores[f"+ {name}"] = total + parts[name]
        scores["full (+ residual)"] = total + parts["residual"]
        for name in names:
            blocks[name].append(per_impression_metrics(block.labels, scores[name], block.offsets))
    means = {name: concatenate(blocks[name]).mean().as_dict() for name in names}
    cumulative = {COMPONENTS[0]: means[COMPONENTS[0]], **{name: means[name] for name in names[len(COMPONENTS):]}}
    return {"alone": {name: means[name] for name in COMPONENTS}, "cumulative": cumulative}


DECOMPOSITION_BLOCK = 5_000  # dev impressions per block of the decomposition (~180,000 candidate rows)


def _block(impressions, start: int, stop: int):
    """Impressions start:stop (contiguous) with their candidate rows, same layout."""
    first, last = impressions.offsets[start], impressions.offsets[min(stop, len(impressions.day))]
    return replace(impressions, day=impressions.day[start:stop], seconds=impressions.seconds[start:stop],
                   user=impressions.user[start:stop], offsets=impressions.offsets[start:stop + 1] - first,
                   candidates=impressions.candidates[first:last], probability=impressions.probability[first:last],
                   labels=impressions.labels[first:last])


def entity_impressions(news: News, users: Users, impressions) -> np.ndarray:
    """(I,) bool: impressions with a candidate that names an entity the user follows (where the entity
    component moves the ranking; a model's AUC there says whether it caught the entity interest)."""
    user, item, _ = impression_rows(impressions)
    followed = (users.follows[user] == news.entity[item][:, None]).any(axis=1)
    owner = np.repeat(np.arange(len(impressions.day)), np.diff(impressions.offsets))
    return np.bincount(owner, weights=followed, minlength=len(impressions.day)) > 0


def _subset(impressions, chosen: np.ndarray):
    """The impressions `chosen` (sorted indices) with their candidate rows, same layout."""
    lengths = np.diff(impressions.offsets)[chosen]
    rows = np.concatenate([np.arange(impressions.offsets[i], impressions.offsets[i + 1]) for i in chosen])
    return replace(impressions, day=impressions.day[chosen], seconds=impressions.seconds[chosen],
                   user=impressions.user[chosen], offsets=np.concatenate([[0], np.cumsum(lengths)]),
                   candidates=impressions.candidates[rows], probability=impressions.probability[rows],
                   labels=impressions.labels[rows])


def impression_rows(impressions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, item, time in days) of every candidate row."""
    owner = np.repeat(np.arange(len(impressions.day)), np.diff(impressions.offsets))
    time = impressions.day[owner] + impressions.seconds[owner] / 86_400
    return impressions.user[owner], impressions.candidates.astype(np.int64), time


def recall_oracle(world: WorldV2, news: News, users: Users, train, dev, sample: int = RECALL_SAMPLE,
                  published_only: bool = False) -> dict:
    """Recall@K of the planted top-K (by the full logit at the impression's time) over the dev-day pool and
    over all news, on a seeded sample of dev impressions, as pipeline/evaluation.py measures recall: a
    click is in the top K when fewer than K news of the pool have a higher logit (logits have no ties:
    every news item has its own continuous residual), so no list is sorted. `published_only` (world v3,
    whose impressions show only published news): each impression's dev-day pool is the dev-day news
    published by its time (the others get logit -inf, so they never outrank a click); the all-news pool
    and the K reported (K ≤ the whole pool's size) are as in v2."""

    chosen = np.sort(np.random.default_rng(0).permutation(len(dev.day))[:sample])
    labels_of = [dev.candidates[dev.offsets[i]:dev.offsets[i + 1]][dev.labels[dev.offsets[i]:dev.offsets[i + 1]] == 1]
                 for i in chosen]
    clicked_offsets = np.concatenate([[0], np.cumsum([len(c) for c in labels_of])])
    clicked = np.concatenate(labels_of).astype(np.int64)
    time = dev.day[chosen] + dev.seconds[chosen] / 86_400
    result = {"impressions": int(len(chosen))}
    for name, items in (("dev-day pool", _mask_of(len(news.day), dev.candidates)),
                        ("all news", _all_news(news, users, train, dev))):
        pool = Pool.of(news, items)
        step = max(16, POOL_CELLS // len(items))  # users per (users, pool) logit block
        published = published_only and name == "dev-day pool"
        ranks = np.concatenate([_clicked_ranks(world, news, users, dev.user[chosen[i:i + step]], time[i:i + step],
                                               pool, clicked_offsets[i:i + step + 1], clicked, published)
                                for i in range(0, len(chosen), step)])
        result[name] = {k: recall_from_ranks(ranks, clicked_offsets, k)[0] for k in RECALL_KS if k <= len(items)}
    return result


def _clicked_ranks(world, news, users, user, time, pool, clicked_offsets, clicked,
                   published_only: bool = False) -> np.ndarray:
    """0-based rank in the pool (by the full logit) of each click of these impressions (CSR); `published_only`:
    in the pool of the news published by each impression's time."""
    logits = pool_logits(world, news, users, user, time, pool)  # (C, P)
    if published_only:
        logits[pool.published[None, :] > time[:, None]] = -np.inf
    rows = slice(clicked_offsets[0], clicked_offsets[-1])
    query = np.repeat(np.arange(len(user)), np.diff(clicked_offsets))
    own = logits[query, np.searchsorted(pool.items, clicked[rows])]
    return (logits[query] > own[:, None]).sum(axis=1)


def _mask_of(size: int, *indices: np.ndarray) -> np.ndarray:
    """The sorted distinct values of `indices` (all in [0, size)): a mask, not np.unique over every row."""
    seen = np.zeros(size, dtype=bool)
    for values in indices:
        seen[values] = True
    return np.flatnonzero(seen)


def _all_news(news: News, users: Users, train, dev) -> np.ndarray:
    """Every news item the written news.tsv files hold: candidates and the histories of logged users."""
    logged = _mask_of(len(users.ids), train.user, dev.user)
    return _mask_of(len(news.day), train.candidates, dev.candidates, *(users.history[u] for u in logged.tolist()))
