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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from newsrec.feed.backend import FeedReport, FeedState, FeedTarget
from newsrec.feed.connect import Target, choose_transform, open_backend, state_dir
from newsrec.feed.documents import category_ctr_document
from newsrec.feed.feeding import Corpus, category_ctrs, embed_corpus, feed_corpus, news_documents, user_documents
from newsrec.feed.journal import feed_identity, start_journals, verify_journals
from newsrec.feed.reranking import reranker_inputs
from newsrec.pipeline.checkpoint import checkpoint_exists, model_version
from newsrec.pipeline.mind import MindDataset, read_mind
from newsrec.pipeline.mind_checks import BadRowLimit
from newsrec.pipeline.training import TrainConfig, train
from newsrec.pipeline.transforms import DEFAULT_PHI_HEADROOM, EuclideanTransform

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
    phi_headroom: float = DEFAULT_PHI_HEADROOM  # a Φ set by this feed is (1 + headroom) × the largest news norm
    reranker: str | None = None  # an UNBERT checkpoint: documents carry its tokens, the index its ONNX model


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
    backend.preflight()  # a wrong endpoint fails here, before any document
    log(f"feeding {backend.description}")
    corpus = embed_corpus(dataset, options.model_dir, options.device, progress=progress)
    log(f"embedded {len(dataset.news)} news in {corpus.seconds['news']:.1f}s and {len(dataset.users)} users "
        f"in {corpus.seconds['users']:.1f}s")
    if options.reranker:
        corpus = _with_reranker(corpus, options.reranker, log)
    with backend.feed_state(state_dir(target, options.state_dir)) as store:
        note, reports = _feed_locked(store, backend, options, corpus, log, progress)
    return FeedSummary(backend.description, len(dataset.news), len(dataset.users),
                       {doctype: report.ok + report.already_fed for doctype, report in reports.items()}, reports,
                       note, trained, _example_user(dataset, corpus.user_history),
                       {**corpus.seconds, "total": time.perf_counter() - started})


def _feed_locked(store: FeedState, backend: FeedTarget, options: FeedOptions, corpus: Corpus,
                 log: Callable[[str], None], progress: bool = False) -> tuple[str, dict[str, FeedReport]]:
    """Under the writer lock: Φ from the state as it is now, the journals, the documents, the new state."""
    state, dataset = store.state(), corpus.dataset
    transform, note = choose_transform(corpus.news_vectors, dataset.news.ids, state, options.phi_headroom)
    log(f"Euclidean transform: {note}")
    journals = _journals(backend, options, store.directory, corpus, transform, log)
    store.begin(_fed_state(state, transform, dataset, None, options, backend.description))
    if corpus.reranker is not None and (todo := backend.install_reranker(corpus.reranker.onnx, options.reranker)):
        log(todo)
    reports = feed_corpus(corpus, transform, backend, log, journals, progress)
    store.finish(_fed_state(state, transform, dataset, reports, options, backend.description))
    return note, reports


def _with_reranker(corpus: Corpus, reranker: str, log: Callable[[str], None]) -> Corpus:
    """The corpus with the re-ranker's title and history pieces and its exported model."""

    started = time.perf_counter()
    inputs = reranker_inputs(corpus.dataset, reranker, corpus.user_history)
    log(f"re-ranker {reranker}: word pieces of {len(inputs.title_tokens)} titles and {len(inputs.history_tokens)} "
        f"histories, ONNX export (|onnxruntime - torch| <= {inputs.parity:.1e}) in {time.perf_counter() - started:.1f}s")
    return replace(corpus, reranker=inputs)


def train_if_missing(mind_dir: str, model_dir: str, dataset: MindDataset, log: Callable[[str], None],
                     progress: bool = False) -> bool:
    """Train the default model (UniRec) into `model_dir` unless a checkpoint is there; True if it trained."""
    if checkpoint_exists(model_dir):
        return False
    log(f"no trained model in {model_dir}/: training UniRec first "
        f"(the same as `newsrec train {mind_dir} --out {model_dir}`)")
    train(mind_dir, model_dir, TrainConfig(), log=log, progress=progress, dataset=dataset)
    return True


def _journals(backend: FeedTarget, options: FeedOptions, directory: Path, corpus: Corpus,
              transform: EuclideanTransform, log: Callable[[str], None]) -> dict[str, Path] | None:
    """A resumable target (Vespa): the resume journals, bound to this feed's identity; on --resume, checked and
    sampled first."""
    if not backend.resumable:
        if options.resume:
            log(f"--resume: {backend.description} is written whole by every feed; nothing to resume")
        return None
    identity = feed_identity(backend.location, options.model_dir, transform.max_norm, corpus.dataset)
    journals = start_journals(directory, identity, options.resume)
    if options.resume:
        documents = {"category_ctr": lambda: [category_ctr_document(category_ctrs(corpus))],
                     "news": lambda: news_documents(corpus, transform),
                     "user": lambda: user_documents(corpus, transform)}
        found, checked = verify_journals(backend, journals, documents)
        log(f"resume: the journals in {directory} belong to this endpoint, application, model, Φ and corpus; all "
            f"{found} journaled documents are at the endpoint (ids visited), and the {checked} sampled are there as "
            "this feed writes them")
    return journals


def _fed_state(state: dict, transform: EuclideanTransform, dataset: MindDataset,
               reports: dict[str, FeedReport] | None, options: FeedOptions, backend: str) -> dict:
    """Φ and the news ids fed under it, for later feeds. Before feeding (`reports` None): every news id of this
    corpus may end up fed. After: only news that got stored; {} when none was (the earlier state still holds)."""
    fed = set(dataset.news.ids)
    if reports is not None:
        news = reports["news"]
        if news.ok + news.already_fed == 0:
            return {}
        fed -= {doc_id.rsplit("::", 1)[-1] for doc_id, _, _ in news.failed}
    return {"max_norm": transform.max_norm, "news_ids": sorted(fed | set(state.get("news_ids", []))),
            "model": str(options.model_dir), "model_version": model_version(options.model_dir), "backend": backend}


def _read(mind_dir: str, options: FeedOptions, log: Callable[[str], None], progress: bool) -> MindDataset:
    dataset = read_mind(mind_dir, on_error="skip" if options.skip_bad_rows else "raise", progress=progress,
                        max_bad_rows=options.max_bad_rows, drop_unknown_ids=options.drop_unknown_ids)
    if dataset.layout_note:
        log(f"{mind_dir}: {dataset.layout_note}")
    if options.skip_bad_rows or options.drop_unknown_ids:
        log(f"read {mind_dir}: {dataset.report.summary()}")
    return dataset


def _example_user(dataset: MindDataset, histories: list) -> str | None:
    return next((user for user, history in zip(dataset.users, histories) if len(history)), None)
