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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from feed.backend import FeedReport
from feed.connect import Target, choose_transform, open_backend, state_dir
from feed.feeding import embed_corpus, feed_corpus
from feed.journal import feed_identity, start_journals, verify_sample
from feed.state import read_state, write_state
from pipeline.checkpoint import checkpoint_exists
from pipeline.mind import MindDataset, read_mind
from pipeline.mind_checks import BadRowLimit
from pipeline.training import TrainConfig, train
from pipeline.transforms import EuclideanTransform

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
    backend = open_backend(target, feeding=True)
    if target.is_vespa:
        backend.preflight()  # a wrong endpoint fails here, before any document
    log(f"feeding {backend.description}")
    corpus = embed_corpus(dataset, options.model_dir, options.device, progress=progress)
    log(f"embedded {len(dataset.news)} news in {corpus.seconds['news']:.1f}s and {len(dataset.users)} users "
        f"in {corpus.seconds['users']:.1f}s")
    directory = state_dir(target, options.state_dir)
    state = backend.state if target.is_local else read_state(directory)
    transform, note = choose_transform(corpus.news_vectors, dataset.news.ids, state)
    log(f"Euclidean transform: {note}")
    journals = _journals(backend, target, options, directory, transform, dataset, log)
    fed_state: dict = {}  # filled once the reports are in; stored on a clean exit (see _writing)
    with _writing(backend, target, directory, fed_state):
        reports = feed_corpus(corpus, transform, backend, log, journals)
        fed_state.update(_fed_state(state, transform, dataset, reports, options, backend.description))
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


def _journals(backend, target: Target, options: FeedOptions, directory: Path, transform: EuclideanTransform,
              dataset: MindDataset, log: Callable[[str], None]) -> dict[str, Path] | None:
    """Vespa: the resume journals, bound to this feed's identity; on --resume, checked and sampled first."""
    if not target.is_vespa:
        if options.resume:
            log(f"--resume: {backend.description} is written whole by every feed; nothing to resume")
        return None
    identity = feed_identity(target.endpoint, options.model_dir, transform.max_norm, dataset)
    journals = start_journals(directory, identity, options.resume)
    if options.resume:
        checked = verify_sample(backend, journals)
        log(f"resume: the journals in {directory} belong to this endpoint, application, model, Φ and corpus, "
            f"and the {checked} journaled documents sampled are at the endpoint")
    return journals


@contextmanager
def _writing(backend, target: Target, directory: Path, state: dict) -> Iterator[None]:
    """Where the feed's state goes once it is complete: the embedded index commits it with the documents, in
    one generation (all or nothing: a crash leaves the previous index); a Vespa feed writes it to the state
    directory after the last document (atomically; nothing when `state` stayed empty)."""
    if target.is_local:
        with backend.transaction(state):
            yield
        return
    yield
    if state:
        write_state(directory, state)


def _fed_state(state: dict, transform: EuclideanTransform, dataset: MindDataset, reports: dict[str, FeedReport],
               options: FeedOptions, backend: str) -> dict:
    """Φ and the news ids fed under it, for later feeds: only news this feed (or a resumed one) got stored;
    {} when none was (the earlier state still describes the index)."""
    news = reports["news"]
    if news.ok + news.already_fed == 0:
        return {}
    failed = {doc_id.rsplit("::", 1)[-1] for doc_id, _, _ in news.failed}
    fed = set(state.get("news_ids", [])) | {news_id for news_id in dataset.news.ids if news_id not in failed}
    return {"max_norm": transform.max_norm, "news_ids": sorted(fed), "model": str(options.model_dir),
            "backend": backend}


def _read(mind_dir: str, options: FeedOptions, log: Callable[[str], None], progress: bool) -> MindDataset:
    dataset = read_mind(mind_dir, on_error="skip" if options.skip_bad_rows else "raise", progress=progress,
                        max_bad_rows=options.max_bad_rows, drop_unknown_ids=options.drop_unknown_ids)
    if options.skip_bad_rows or options.drop_unknown_ids:
        log(f"read {mind_dir}: {dataset.report.summary()}")
    return dataset


def _example_user(dataset: MindDataset, histories: list) -> str | None:
    return next((user for user, history in zip(dataset.users, histories) if len(history)), None)
