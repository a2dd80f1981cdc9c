"""The main job as one library call: MIND directory in, every news item and user fed, a summary out.

    summary = run_feed("mind-demo", Target(endpoint="http://localhost:8080"), FeedOptions())
    summary.fed["news"], summary.success, summary.seconds["total"]

Stages, in order: read the MIND directory; train a model when the model directory holds none; open the
backend; embed every news item and user (`feed.feeding.embed_corpus`); choose Φ consistent with the
feed's state (`feed.connect.choose_transform`); check against schemas/ and feed (`feed_corpus`); record
the state. Progress lines go to `log`; the counts come back in the `FeedSummary`. `newsrec-feed`, the
benchmarks and the walkthrough runner call this function.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from feed.backend import FeedReport
from feed.connect import Target, choose_transform, open_backend, state_dir
from feed.feeding import embed_corpus, feed_corpus
from feed.state import read_state, write_state
from pipeline.checkpoint import checkpoint_exists
from pipeline.mind import MindDataset, read_mind
from pipeline.mind_checks import BadRowLimit
from pipeline.training import TrainConfig, train

DEFAULT_MODEL_DIR = "newsrec-model"


@dataclass(frozen=True)
class FeedOptions:
    model_dir: str = DEFAULT_MODEL_DIR  # checkpoint of `newsrec train`; a UniRec model is trained there if missing
    state_dir: str | None = None  # Φ, counts, resume journals [default: the index dir, or ./newsrec-feed-state]
    resume: bool = False  # skip documents an interrupted earlier feed already wrote
    device: str = "auto"
    skip_bad_rows: bool = False  # leave out bad MIND rows (and repair text), counted; see pipeline/mind.py
    max_bad_rows: BadRowLimit | str = BadRowLimit()  # with skip_bad_rows: most bad rows per file ("N" or "P%")
    drop_unknown_ids: bool = False  # leave out news ids no news.tsv defines, counted


@dataclass(frozen=True)
class FeedSummary:
    backend: str  # the backend's description (says "not Vespa" for the embedded index)
    news: int  # news items in the MIND directory
    users: int  # users in the MIND directory
    fed: dict[str, int]  # document type -> documents acknowledged (this run, plus earlier ones on --resume)
    reports: dict[str, FeedReport]  # document type -> sent / ok / failed (with ids and messages) / retries
    transform: str  # the Φ chosen, and why
    trained: bool  # a model was trained first
    example_user: str | None  # a user with a history, to try `newsrec recommend` with
    seconds: dict[str, float]  # news, users (embedding) and total

    @property
    def failed(self) -> int:
        return sum(len(report.failed) for report in self.reports.values())

    @property
    def success(self) -> bool:
        return self.failed == 0


def run_feed(mind_dir: str, target: Target = Target(), options: FeedOptions = FeedOptions(),
             log: Callable[[str], None] = print, progress: bool = False,
             dataset: MindDataset | None = None) -> FeedSummary:
    """Embed every news item and user of `mind_dir` (or of `dataset`, when the caller has read it) with the model
    in `options.model_dir` (trained first when missing), transform, and feed `target`. Failed documents are in
    the summary, never dropped."""
    started = time.perf_counter()
    dataset = dataset or _read(mind_dir, options, log, progress)
    trained = train_if_missing(mind_dir, options.model_dir, dataset, log, progress)
    backend = open_backend(target)
    log(f"feeding {backend.description}")
    corpus = embed_corpus(dataset, options.model_dir, options.device, progress=progress)
    log(f"embedded {len(dataset.news)} news in {corpus.seconds['news']:.1f}s and {len(dataset.users)} users "
        f"in {corpus.seconds['users']:.1f}s")
    directory = state_dir(target, options.state_dir)
    transform, note = choose_transform(corpus.news_vectors, dataset.news.ids, read_state(directory))
    log(f"Euclidean transform: {note}")
    reports = feed_corpus(corpus, transform, backend, log,
                          journal_dir=directory if options.resume or target.is_vespa else None,
                          resume=options.resume)
    write_state(directory, {"max_norm": transform.max_norm, "news_ids": dataset.news.ids,
                            "model": str(options.model_dir), "backend": backend.description})
    return FeedSummary(backend.description, len(dataset.news), len(dataset.users),
                       {doctype: report.ok + report.already_fed for doctype, report in reports.items()}, reports,
                       note, trained, _example_user(dataset, corpus.user_history),
                       {**corpus.seconds, "total": time.perf_counter() - started})


def train_if_missing(mind_dir: str, model_dir: str, dataset: MindDataset, log: Callable[[str], None],
                     progress: bool = False) -> bool:
    """Train the default model (UniRec) into `model_dir` unless a checkpoint is there; True if it trained."""
    if checkpoint_exists(model_dir):
        return False
    log(f"no trained model in {model_dir}/: training UniRec first "
        f"(the same as `newsrec train {mind_dir} --out {model_dir}`)")
    train(mind_dir, model_dir, TrainConfig(), log=log, progress=progress, dataset=dataset)
    return True


def _read(mind_dir: str, options: FeedOptions, log: Callable[[str], None], progress: bool) -> MindDataset:
    dataset = read_mind(mind_dir, on_error="skip" if options.skip_bad_rows else "raise", progress=progress,
                        max_bad_rows=options.max_bad_rows, drop_unknown_ids=options.drop_unknown_ids)
    if options.skip_bad_rows or options.drop_unknown_ids:
        log(f"read {mind_dir}: {dataset.report.summary()}")
    return dataset


def _example_user(dataset: MindDataset, histories: list) -> str | None:
    return next((user for user, history in zip(dataset.users, histories) if len(history)), None)
