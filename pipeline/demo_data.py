"""`newsrec demo-data`: deterministic MIND-format data from a planted preference model.

Three worlds: v3 (the default), v2 (`pipeline/world_v2.py`: entities, several and drifting interests,
freshness, the oracle decomposed by effect) and v1 (`--world v1`, below, kept for comparison). v3 is
world v2 (the same `WorldV2` parameters, news, users, histories and logit) whose impressions only show
news already published at the impression's second (`_Published`): real news is never shown before it
exists, and 38.5% of v2 small's dev candidate rows were (v2 draws a story's publication second within
its day but its impressions from all news live that day). v3's parameters are v2's, committed before
any model ran on v3. All share the sizes, the publishing schedule, the vocabulary, the impression
sampler and the writers here; `--world v2` and `--world v1` write byte for byte what they wrote before.

The v1 planted model (everything below is drawn from one seeded numpy Generator):
- news: a topic (category, subcategory) from `pipeline.demo_vocab`, a publication day and a life of
  one or two days; title, abstract and entity are drawn from the topic's vocabulary, so text tells
  topics apart; the item's appeal q = appeal(headline template) + appeal(subject phrase) + ε,
  ε ~ N(0, σ_ε): most of it can be read from the headline, a little cannot;
- users: 1-4 favourite topics with weights w ~ U(w_lo, w_hi), half of w spilling over to the other
  subcategories of the same category; an activity level;
- click probability p(u, n) = sigmoid(bias + interest(u, topic(n)) + q(n));
- history: the user's clicks during the weeks before the log (fixed per user, oldest first, as in
  MIND), drawn from older news with the same preferences; some users have none;
- impressions: on each logged day, candidates drawn from the news live that day; labels ~ Bernoulli(p),
  redrawn until the impression has at least one click (this keeps p's order within an impression,
  so ranking by p is the Bayes-optimal ranking: the oracle).
The last logged day is `dev`, the days before it `train`: most dev candidates are new that day, so
they are unseen in train (cold start, as in MIND). `dev/click_probabilities.txt` holds p for every
dev candidate in leaderboard layout (`ImpId [p1,p2,...]`) and `dev/truth.txt` the labels.
"""
from __future__ import annotations

import calendar
import functools
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from newsrec.pipeline import demo_vocab, world_probes, world_v2
from newsrec.pipeline.background import Background
from newsrec.pipeline.leaderboard import write_leaderboard_file

FIRST_LOGGED_DAY = (2019, 11, 9)  # MIND's train week starts on 11/09/2019; dev is the day after it
PROBABILITIES_FILE = "click_probabilities.txt"
TRUTH_FILE = "truth.txt"


@dataclass(frozen=True)
class DemoConfig:
    num_users: int
    news_per_logged_day: int
    news_per_history_day: int
    history_days: int  # days before the log whose news only appear in histories
    train_days: int
    train_impressions: int
    dev_impressions: int
    seed: int = 0
    median_candidates: float = 24.0  # MIND: median 24, mean 37, max 300
    max_candidates: int = 300
    median_history: float = 18.0
    max_history: int = 120
    empty_history_fraction: float = 0.05
    two_day_life_fraction: float = 0.3  # MIND: 84.5% of news live less than two days
    click_bias: float = -4.6
    interest_low: float = 2.0
    interest_high: float = 3.5
    template_appeal_sd: float = 0.35
    subject_appeal_sd: float = 0.35
    residual_appeal_sd: float = 0.15
    empty_abstract_fraction: float = 0.08
    world: str = "v3"  # "v1": the planted model below; "v2": pipeline/world_v2.py; "v3": v2, only published news shown


SIZES = {
    "tiny": DemoConfig(num_users=400, news_per_logged_day=90, news_per_history_day=60, history_days=3,
                       train_days=6, train_impressions=2400, dev_impressions=800),
    # between tiny and small: enough dev impressions to separate models (AUC's standard error about 0.003) in
    # minutes of CPU training per model; the probe worlds' size (bench/model_table.py --size medium)
    "medium": DemoConfig(num_users=5_000, news_per_logged_day=600, news_per_history_day=400, history_days=5,
                         train_days=6, train_impressions=20_000, dev_impressions=8_000),
    "small": DemoConfig(num_users=50_000, news_per_logged_day=4_000, news_per_history_day=3_000,
                        history_days=7, train_days=6, train_impressions=156_965, dev_impressions=73_152),
    "large": DemoConfig(num_users=1_000_000, news_per_logged_day=13_000, news_per_history_day=10_000,
                        history_days=7, train_days=6, train_impressions=2_232_748, dev_impressions=376_471),
}


TEXT_PARTS = ("headline", "abstract", "entity", "subject", "action", "object", "detail")


@dataclass(frozen=True, eq=False)
class PlantedNews:
    topic: np.ndarray  # (N,) int32 into demo_vocab.TOPICS
    text: np.ndarray  # (N, len(TEXT_PARTS)) int64: chosen template / phrase of each part
    has_abstract: np.ndarray  # (N,) bool
    quality: np.ndarray  # (N,) float64: the appeal q
    day: np.ndarray  # (N,) int32, 0 = first history day
    life: np.ndarray  # (N,) int32 days live: 1 or 2
    ids: list[str]


@dataclass(frozen=True, eq=False)
class PlantedUsers:
    interest: np.ndarray  # (U, T) float64: interest(u, t) added to the click logit
    activity: np.ndarray  # (U,) float64, sums to 1
    history: list[np.ndarray]  # per user, news indices, oldest first
    ids: list[str]


@dataclass(frozen=True, eq=False)
class Impressions:
    day: np.ndarray  # (I,) int32
    seconds: np.ndarray  # (I,) int64 seconds into the day
    user: np.ndarray  # (I,) int32
    offsets: np.ndarray  # (I + 1,) int64
    candidates: np.ndarray  # (C,) int32
    probability: np.ndarray  # (C,) float64
    labels: np.ndarray  # (C,) int8


WORLDS = ("v3", "v2", "v1", *world_probes.PROBES)  # probes: one seed model's premise each (pipeline/world_probes.py)
WORLD_V2_FAMILY = ("v3", "v2")  # the worlds planted by pipeline/world_v2.py (v3: v2, impressions of published news)


@dataclass(frozen=True, eq=False)
class Planted:
    """Everything `generate` draws: the planted news and users and both logs (the news texts follow from
    the news: `news_texts`)."""
    config: DemoConfig
    news: object  # PlantedNews (v1) or world_v2.News
    users: object  # PlantedUsers (v1) or world_v2.Users
    train: Impressions
    dev: Impressions


def plant(config: DemoConfig) -> Planted:
    """Draw the world of `config` (news, users, train and dev impressions) without writing anything."""
    if config.world not in WORLDS:
        raise ValueError(f"unknown world {config.world!r}; choose one of {', '.join(WORLDS)}")
    rng = np.random.default_rng(config.seed)
    plant_world = (_plant_v2 if config.world in WORLD_V2_FAMILY else
                   _plant_probe if config.world in world_probes.PROBES else _plant_v1)
    news, users, logit_of = plant_world(config, rng)
    last_train_day = config.history_days + config.train_days - 1
    published_only = config.world == "v3"
    train = _draw_impressions(config, news, users.activity, rng, range(config.history_days, last_train_day + 1),
                              config.train_impressions, logit_of, published_only)
    dev = _draw_impressions(config, news, users.activity, rng, [last_train_day + 1], config.dev_impressions, logit_of,
                            published_only)
    return Planted(config, news, users, train, dev)


def news_texts(planted: Planted) -> list[tuple]:
    """(title, abstract, title_entities_json, abstract_entities_json) of every planted news item."""
    news = planted.news
    if planted.config.world in world_probes.PROBES:  # v1's texts, the marker words after the title
        return [(world_probes.title_with_markers(title, news.markers[n]), *rest)
                for n, (title, *rest) in enumerate(_news_texts(news))]
    return _news_texts(news, news.entity_of) if planted.config.world in WORLD_V2_FAMILY else _news_texts(news)


def generate(out_dir: str | Path, config: DemoConfig) -> dict:
    """Write `out_dir/{train,dev}/{news.tsv,behaviors.tsv}` and the dev truth; returns a summary."""
    planted = plant(config)
    news, users, train, dev = planted.news, planted.users, planted.train, planted.dev
    out = Path(out_dir)
    v2 = config.world in WORLD_V2_FAMILY  # v2's truth (numpy over the planted arrays) is computed beside the writing
    if config.world in world_probes.PROBES:
        truth_of, first = world_probes.planted_truth, config.world
        arguments = (news, users, train, dev)
    else:
        truth_of, first = (world_v2.planted_truth if v2 else _no_truth), world_v2.WorldV2()
        arguments = (news, users, train, dev, config.world == "v3")
    with Background(truth_of, first, *arguments, fork=v2) as truth:
        texts = news_texts(planted)
        for split, impressions in (("train", train), ("dev", dev)):
            _write_split(out / split, config, news, users, impressions, texts)
        dev_ids = list(range(1, len(dev.day) + 1))
        write_leaderboard_file(out / "dev" / TRUTH_FILE, dev_ids, dev.offsets, dev.labels)
        _write_probabilities(out / "dev" / PROBABILITIES_FILE, dev_ids, dev)
        summary = _summary(config, news, users, train, dev, texts)
        summary.update(truth.result())
    (out / "planted.json").write_text(json.dumps(_written(config, summary), indent=2) + "\n", encoding="utf-8")
    return summary


def _written(config: DemoConfig, summary: dict) -> dict:
    """What planted.json holds: the summary, less `shown_before_published` for world v2, whose planted.json
    is pinned byte for byte as committed before any model ran on it (the statistic is still returned and
    printed)."""
    return {k: v for k, v in summary.items() if k != "shown_before_published"} if config.world == "v2" else summary


def _no_truth(*_) -> dict:
    """World v1's planted truth beyond the written probabilities: none."""
    return {}


def _plant_probe(config: DemoConfig, rng: np.random.Generator):
    """World v1's news (with the probe's marker words); the probe's users and logit (pipeline/world_probes.py)."""
    news, users = world_probes.plant(config.world, config, _plant_news(config, rng), rng)

    def logit_of(user, day, seconds, impression_of, candidates):
        return world_probes.logits(config.world, news, users, user, impression_of, candidates)
    return news, users, logit_of


def _plant_v1(config: DemoConfig, rng: np.random.Generator):
    news = _plant_news(config, rng)
    users = _plant_users(config, news, rng)

    def logit_of(user, day, seconds, impression_of, candidates):
        return config.click_bias + users.interest[user[impression_of], news.topic[candidates]] + news.quality[candidates]
    return news, users, logit_of


def _plant_v2(config: DemoConfig, rng: np.random.Generator):
    world = world_v2.WorldV2()
    news = world_v2.plant_news(config, world, rng, _part_sizes())
    users = world_v2.plant_users(config, world, news, rng)

    def logit_of(user, day, seconds, impression_of, candidates):
        return world_v2.impression_logits(world, news, users, user, day + seconds / 86_400, impression_of, candidates)
    return news, users, logit_of


def generated_news_texts(config: DemoConfig) -> tuple[list[str], list[str]]:
    """(titles, abstracts) of the news `generate` would write for `config`, without any behaviours."""
    if config.world in world_probes.PROBES:  # the marker words are drawn after the news
        return tuple(map(list, zip(*[t[:2] for t in news_texts(plant(config))])))
    rng = np.random.default_rng(config.seed)
    if config.world in WORLD_V2_FAMILY:
        news = world_v2.plant_news(config, world_v2.WorldV2(), rng, _part_sizes())
        texts = _news_texts(news, news.entity_of)
    else:
        texts = _news_texts(_plant_news(config, rng))
    return [t[0] for t in texts], [t[1] for t in texts]


# ------------------------------------------------------------------------------ planted model

def _plant_news(config: DemoConfig, rng: np.random.Generator) -> PlantedNews:
    logged_days = config.train_days + 1
    per_day = [config.news_per_history_day] * config.history_days + [config.news_per_logged_day] * logged_days
    day = np.repeat(np.arange(len(per_day), dtype=np.int32), per_day)
    topic_weights = rng.dirichlet(np.full(len(demo_vocab.TOPICS), 2.0))  # some topics publish more
    topic = rng.choice(len(demo_vocab.TOPICS), size=len(day), p=topic_weights).astype(np.int32)
    life = np.where(rng.random(len(day)) < config.two_day_life_fraction, 2, 1).astype(np.int32)
    text = (rng.random((len(day), len(TEXT_PARTS))) * _part_sizes()[topic]).astype(np.int64)  # (N, parts)
    has_abstract = rng.random(len(day)) >= config.empty_abstract_fraction
    template_appeal = rng.normal(0.0, config.template_appeal_sd, len(demo_vocab.HEADLINE_TEMPLATES))
    subject_appeal = rng.normal(0.0, config.subject_appeal_sd, (len(demo_vocab.TOPICS), _part_sizes().max()))
    quality = (template_appeal[text[:, 0]] + subject_appeal[topic, text[:, TEXT_PARTS.index("subject")]]
               + rng.normal(0.0, config.residual_appeal_sd, len(day)))
    ids = [f"N{n}" for n in rng.permutation(len(day)) + 10_001]
    return PlantedNews(topic, text, has_abstract, quality, day, life, ids)


def _part_sizes() -> np.ndarray:
    """(T, parts): how many choices each topic offers for each text part."""
    return np.array([[len(demo_vocab.HEADLINE_TEMPLATES), len(demo_vocab.ABSTRACT_TEMPLATES), len(t.entities),
                      len(t.subjects), len(t.actions), len(t.objects), len(t.details)] for t in demo_vocab.TOPICS])


def _plant_users(config: DemoConfig, news: PlantedNews, rng: np.random.Generator) -> PlantedUsers:
    interest = _interests(config, rng)
    activity = rng.lognormal(0.0, 1.0, config.num_users)
    ids = [f"U{u}" for u in rng.permutation(config.num_users) + 1_001]
    history = _histories(config, news, interest, rng)
    return PlantedUsers(interest, activity / activity.sum(), history, ids)


def _interests(config: DemoConfig, rng: np.random.Generator) -> np.ndarray:
    topics = demo_vocab.TOPICS
    categories = np.array([t.category for t in topics])
    same_category = categories[:, None] == categories[None, :]  # (T, T)
    interest = np.zeros((config.num_users, len(topics)))
    favourites = np.minimum(1 + rng.poisson(1.0, config.num_users), 4)
    for user, count in enumerate(favourites):
        chosen = rng.choice(len(topics), size=count, replace=False)
        weights = rng.uniform(config.interest_low, config.interest_high, count)
        spill = (same_category[chosen] * (weights[:, None] / 2)).max(axis=0)  # (T,)
        interest[user] = np.maximum(interest[user], spill)
        interest[user, chosen] = weights
    return interest


def _histories(config: DemoConfig, news: PlantedNews, interest: np.ndarray,
               rng: np.random.Generator) -> list[np.ndarray]:
    """Clicks before the log: topic ~ how often the user would click it, news within topic ~ exp(quality)."""
    old = np.flatnonzero(news.day < config.history_days)
    lengths = np.minimum(np.round(rng.lognormal(np.log(config.median_history), 0.8, config.num_users)),
                         config.max_history).astype(np.int64)
    lengths[rng.random(config.num_users) < config.empty_history_fraction] = 0
    user_of_click = np.repeat(np.arange(config.num_users), lengths)
    topic_counts = np.bincount(news.topic[old], minlength=interest.shape[1])
    topic_click = topic_counts * _sigmoid(config.click_bias + interest)  # (U, T) expected clicks
    cumulative = np.cumsum(topic_click / topic_click.sum(axis=1, keepdims=True), axis=1)  # (U, T)
    draw = rng.random(len(user_of_click))
    topic = np.minimum((cumulative[user_of_click] < draw[:, None]).sum(axis=1), interest.shape[1] - 1)
    clicked = np.empty(len(user_of_click), dtype=np.int64)
    for t in range(interest.shape[1]):
        rows = np.flatnonzero(topic == t)
        members = old[news.topic[old] == t]
        if len(rows) == 0:
            continue
        weights = np.cumsum(np.exp(news.quality[members]))  # (members,) news within topic ~ exp(quality)
        clicked[rows] = members[np.searchsorted(weights, rng.random(len(rows)) * weights[-1], side="right")]
    order = np.lexsort((rng.random(len(clicked)), news.day[clicked], user_of_click))  # oldest first
    user_of_click, clicked = user_of_click[order], clicked[order]
    _, first = np.unique(user_of_click * len(news.day) + clicked, return_index=True)  # each item once per user
    first.sort()
    user_of_click, clicked = user_of_click[first], clicked[first].astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(user_of_click, minlength=config.num_users))])
    return [clicked[offsets[u]:offsets[u + 1]] for u in range(config.num_users)]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _draw_impressions(config: DemoConfig, news, activity: np.ndarray, rng: np.random.Generator, days, total: int,
                      logit_of, published_only: bool = False) -> Impressions:
    """Impressions on `days`: candidates among the news live that day, labels ~ Bernoulli(sigmoid(logit)) with
    at least one click per impression; `logit_of(user, day, seconds, impression_of, candidates)` gets the
    impressions' users, days and seconds and each candidate row's impression and news. `published_only`
    (world v3): only news published by the impression's second (`_Published`); v1 and v2 never enter it, so
    their random draws are those they always were."""
    days = list(days)
    day = np.sort(rng.choice(np.array(days, dtype=np.int32), size=total))
    seconds = rng.integers(0, 86_400, size=total)
    order = np.lexsort((seconds, day))
    day, seconds = day[order], seconds[order]
    live = {d: np.flatnonzero((news.day <= d) & (news.day + news.life > d)) for d in days}
    published = _Published.of(news, live) if published_only else None
    if published is not None:
        day, seconds = published.delay(day, seconds)
    user = rng.choice(config.num_users, size=total, p=activity).astype(np.int32)
    counts = np.clip(np.round(rng.lognormal(np.log(config.median_candidates), 0.9, total)), 2,
                     config.max_candidates).astype(np.int64)
    if published is None:
        counts = np.minimum(counts, np.array([len(live[d]) for d in day]))
        candidates = np.concatenate([rng.choice(live[d], size=c, replace=False) for d, c in zip(day, counts)])
    else:
        available = published.available(day, seconds)
        counts = np.minimum(counts, available)
        candidates = published.draw(rng, day, available, counts)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    impression_of = np.repeat(np.arange(total), counts)
    probability = _sigmoid(logit_of(user, day, seconds, impression_of, candidates))
    labels = _labels_with_a_click(probability, impression_of, total, rng)
    return Impressions(day, seconds, user, offsets, candidates.astype(np.int32), probability, labels)


@dataclass(frozen=True, eq=False)
class _Published:
    """World v3's candidate pools: each day's live news sorted by publication time, so that the news
    published by an impression's time t (days since day 0) are a prefix of its day's pool, found for every
    impression at once by searchsorted."""
    items: dict  # day -> the news live that day, by publication time
    published: dict  # day -> their publication times, ascending

    @classmethod
    def of(cls, news, live: dict) -> _Published:
        items = {d: pool[np.argsort(news.published[pool], kind="stable")] for d, pool in live.items()}
        return cls(items, {d: news.published[pool] for d, pool in items.items()})

    def available(self, day: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """(I,) how many of each impression's day's live news are published by its time (the clock of
        `world_v2.impression_rows`, so that the logit sees the same times)."""
        time = day + seconds / 86_400
        count = np.zeros(len(day), dtype=np.int64)
        for d, published in self.published.items():
            rows = np.flatnonzero(day == d)
            count[rows] = np.searchsorted(published, time[rows], side="right")
        return count

    def delay(self, day: np.ndarray, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(day, seconds), an impression with fewer than 2 published news moved later to the first whole second
        at or after the publication of its day's 2nd story (no draw: deterministic); sorted again."""
        short = np.flatnonzero(self.available(day, seconds) < 2)
        if len(short) == 0:
            return day, seconds
        second = np.array([self.published[d][min(1, len(self.published[d]) - 1)] for d in day[short].tolist()])
        later = np.ceil((second - day[short]) * 86_400).astype(np.int64)
        later += day[short] + later / 86_400 < second  # float rounding: never a second before it
        seconds = seconds.copy()
        seconds[short] = np.maximum(seconds[short], later)
        order = np.lexsort((seconds, day))
        return day[order], seconds[order]

    def draw(self, rng: np.random.Generator, day: np.ndarray, available: np.ndarray,
             counts: np.ndarray) -> np.ndarray:
        """Each impression's `counts` candidates without replacement among its `available` published news."""
        return np.concatenate([rng.choice(self.items[d][:k], size=c, replace=False)
                               for d, k, c in zip(day.tolist(), available.tolist(), counts.tolist())])


def shown_before_published(news, impressions: Impressions) -> float:
    """The share of candidate rows shown before their story's publication time (v1 news have no time of
    day: published at the start of their day, so never): v2 ≈ 0.385 on small dev, v3 0 by construction."""
    owner = np.repeat(np.arange(len(impressions.day)), np.diff(impressions.offsets))
    time = impressions.day[owner] + impressions.seconds[owner] / 86_400
    published = getattr(news, "published", news.day)
    return float(np.mean(published[impressions.candidates] > time)) if len(time) else 0.0


def _labels_with_a_click(probability, impression_of, total, rng) -> np.ndarray:
    """Bernoulli(p) labels, all redrawn for impressions without a click (rejection sampling)."""
    labels = (rng.random(len(probability)) < probability).astype(np.int8)
    clicks = np.bincount(impression_of, weights=labels, minlength=total)
    rows = np.flatnonzero(clicks[impression_of] == 0)  # rows of impressions still without a click
    for _ in range(100_000):
        if len(rows) == 0:
            return labels
        labels[rows] = rng.random(len(rows)) < probability[rows]
        done = np.unique(impression_of[rows[labels[rows] == 1]])
        rows = rows[~np.isin(impression_of[rows], done)]
    raise RuntimeError("could not draw a click for every impression; click probabilities are too low")


# --------------------------------------------------------------------------------------- text

def _news_texts(news, entity_of=None) -> list[tuple]:
    """(title, abstract, title_entities_json, abstract_entities_json) per news item; `entity_of(n)` gives
    news n's (label, type, wikidata), by default its topic's entity (v1)."""
    entity_of = entity_of or (lambda n: _topic_entity(int(news.topic[n]), int(news.text[n, 2])))
    return [_news_text(int(t), choice, bool(abstract), entity_of(n)) for n, (t, choice, abstract) in
            enumerate(zip(news.topic, news.text.tolist(), news.has_abstract))]


def _topic_entity(topic_index: int, entity: int) -> tuple[str, str, str]:
    label, entity_type = demo_vocab.TOPICS[topic_index].entities[entity]
    return label, entity_type, f"Q{90_000_000 + topic_index * 100 + entity}"  # synthetic ids, not real items


def _news_text(topic_index: int, choice: list[int], has_abstract: bool, entity: tuple[str, str, str]) -> tuple:
    topic = demo_vocab.TOPICS[topic_index]
    headline, abstract_template, _, subject, action, obj, detail = choice
    label, entity_type, wikidata = entity
    words = {"entity": label, "subject": topic.subjects[subject], "action": topic.actions[action],
             "object": topic.objects[obj], "detail": topic.details[detail]}
    title = _headline_case(demo_vocab.HEADLINE_TEMPLATES[headline].format(**words))
    abstract = _headline_case(demo_vocab.ABSTRACT_TEMPLATES[abstract_template].format(**words)) if has_abstract else ""
    return title, abstract, _entities_json(title, label, entity_type, wikidata), \
        _entities_json(abstract, label, entity_type, wikidata)


def _headline_case(text: str) -> str:
    return text[0].upper() + text[1:]


def _entities_json(text: str, label: str, entity_type: str, wikidata: str) -> str:
    offset = text.find(label)
    if offset < 0:
        return "[]"
    entity = {"Label": label, "Type": entity_type, "WikidataId": wikidata, "Confidence": 1.0,
              "OccurrenceOffsets": [offset], "SurfaceForms": [label]}
    return json.dumps([entity])


# ------------------------------------------------------------------------------------- writing

def _write_split(directory: Path, config: DemoConfig, news: PlantedNews, users: PlantedUsers,
                 impressions: Impressions, texts: list[tuple]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    histories = [users.history[u] for u in np.unique(impressions.user).tolist()]
    referenced = np.unique(np.concatenate([impressions.candidates] + histories))
    with (directory / "news.tsv").open("w", encoding="utf-8") as handle:
        for n in referenced:
            topic = demo_vocab.TOPICS[news.topic[n]]
            title, abstract, title_entities, abstract_entities = texts[n]
            url = f"https://news.example.com/{topic.category}/{topic.subcategory}/{news.ids[n].lower()}"
            handle.write("\t".join((news.ids[n], topic.category, topic.subcategory, title, abstract, url,
                                    title_entities, abstract_entities)) + "\n")
    # Strings made once: "N123-0" / "N123-1" per news (code = label * N + news), each user's joined history.
    token_of = [f"{news_id}-0" for news_id in news.ids] + [f"{news_id}-1" for news_id in news.ids]
    codes = (impressions.labels.astype(np.int64) * len(news.ids) + impressions.candidates).tolist()
    offsets = impressions.offsets.tolist()
    clicked_of: dict[int, str] = {}
    with (directory / "behaviors.tsv").open("w", encoding="utf-8") as handle:
        for i, user in enumerate(impressions.user.tolist()):
            tokens = " ".join(map(token_of.__getitem__, codes[offsets[i]:offsets[i + 1]]))
            clicked = clicked_of.get(user)
            if clicked is None:
                clicked = clicked_of[user] = " ".join(map(news.ids.__getitem__, users.history[user].tolist()))
            time = format_time(config, int(impressions.day[i]), int(impressions.seconds[i]))
            handle.write(f"{i + 1}\t{users.ids[user]}\t{time}\t{clicked}\t{tokens}\n")


def format_time(config: DemoConfig, day: int, seconds: int) -> str:
    """MIND's `M/D/YYYY h:MM:SS AM` clock for `day` (0 = first history day) and seconds into it."""
    extra_days, seconds = divmod(seconds, 86_400)
    hour, rest = divmod(seconds, 3_600)
    minute, second = divmod(rest, 60)
    suffix = "AM" if hour < 12 else "PM"
    return f"{_date(day + extra_days - config.history_days)} {hour % 12 or 12}:{minute:02d}:{second:02d} {suffix}"


@functools.lru_cache(maxsize=4096)
def _date(logged_day: int) -> str:
    """`M/D/YYYY` of the day `logged_day` days after FIRST_LOGGED_DAY (UTC)."""
    year, month, mday = __import__("time").gmtime(calendar.timegm(FIRST_LOGGED_DAY + (0, 0, 0))
                                                  + logged_day * 86_400)[:3]
    return f"{month}/{mday}/{year}"


def _write_probabilities(path: Path, impression_ids: list[int], impressions: Impressions) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i, impression_id in enumerate(impression_ids):
            row = impressions.probability[impressions.offsets[i]:impressions.offsets[i + 1]]
            handle.write(f"{impression_id} [{','.join(map('{:.6g}'.format, row.tolist()))}]\n")


def _summary(config: DemoConfig, news, users, train: Impressions, dev: Impressions, texts: list[tuple]) -> dict:
    train_candidates = set(train.candidates.tolist())
    dev_unique = np.unique(dev.candidates)
    history = np.array([len(users.history[u]) for u in np.concatenate([train.user, dev.user]).tolist()])
    title_words = np.array([len(t[0].split()) for t in texts])
    topics = demo_vocab.TOPICS
    return {
        "generator": "newsrec demo-data",
        "world": config.world,
        "statistics": {  # MIND: title 11.5 words on average, ~2.4% empty histories, CTR ~4%, ~76% cold dev news
            "title_words_mean": float(title_words.mean()),
            "history_length_median": float(np.median(history)), "history_length_mean": float(history.mean()),
            "empty_history_share": float(np.mean(history == 0)),
            "categories": len({t.category for t in topics}), "subcategories": len({t.subcategory for t in topics}),
            "candidates_median": float(np.median(np.diff(dev.offsets))),
            "candidates_mean": float(np.mean(np.diff(dev.offsets)))},
        "config": asdict(config),
        "news": int(len(news.topic)),
        "train_impressions": int(len(train.day)),
        "dev_impressions": int(len(dev.day)),
        "train_candidate_rows": int(len(train.candidates)),
        "dev_candidate_rows": int(len(dev.candidates)),
        "dev_distinct_candidates": int(len(dev_unique)),
        "dev_candidates_unseen_in_train": float(np.mean([c not in train_candidates for c in dev_unique.tolist()])),
        "shown_before_published": shown_before_published(news, dev),  # dev candidate rows; v3: 0
        "train_ctr": float(train.labels.mean()),
        "dev_ctr": float(dev.labels.mean()),
    }


def config_for(size: str, seed: int, world: str = "v3") -> DemoConfig:
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if world not in WORLDS:
        raise ValueError(f"unknown world {world!r}; choose one of {', '.join(WORLDS)}")
    return replace(SIZES[size], seed=seed, world=world)


def read_probabilities(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(impression ids, offsets, probabilities) of a `click_probabilities.txt` file."""
    ids, lengths, values = [], [0], []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            impression_id, row = line.split(maxsplit=1)
            probabilities = json.loads(row)
            ids.append(impression_id)
            lengths.append(len(probabilities))
            values.extend(probabilities)
    return ids, np.cumsum(lengths, dtype=np.int64), np.asarray(values, dtype=np.float64)
