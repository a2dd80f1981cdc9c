"""The embedding and feeding stages of the main job (`feed.job.run_feed` strings them together).

News: every row of every split's news.tsv, embedded once (batched, sorted by length for the LM,
CUDA + bf16 when present); clicks and impressions counted from *train* only; published = the second the news
was first seen in any behaviors.tsv, date its day (MIND has no publication time): a snapshot as of the end of the
splits read (the causal, impression-by-impression view is `newsrec replay`'s, feed/replay.py). Users: every user, with
the history of their latest impression (by time, over all splits): ranking and recall vectors from
indices into the news matrix, and that history as `has_read_items`. Documents carry the vectors
transformed by the Φ the feed chose (`feed.connect.choose_transform`) and are checked against
schemas/ before anything is sent.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from newsrec.feed import ranking
from newsrec.feed.backend import FeedReport
from newsrec.feed.documents import category_ctr_document, news_document, user_document
from newsrec.feed.reranking import RerankerInputs
from newsrec.feed.schema import SchemaMismatchError, check_document, load_schemas, tensor_size
from newsrec.pipeline.encoding import EncodedDataset, encode_dataset
from newsrec.pipeline.features import spans
from newsrec.pipeline.mind import MindDataset, entity_ids
from newsrec.pipeline.progress import tracked
from newsrec.pipeline.transforms import EuclideanTransform


@dataclass(frozen=True, eq=False)
class Corpus:
    dataset: MindDataset
    news_vectors: np.ndarray  # (N, D) float32, every news row
    user_ranking: np.ndarray  # (U, D) per dataset user
    user_recall: np.ndarray  # (U, D)
    user_history: "Histories"  # per user: news rows of the latest history
    clicks: np.ndarray  # (N,) train clicks
    impressions: np.ndarray  # (N,) train impressions
    first_seen: np.ndarray  # (N,) epoch seconds of the first sighting, 0 if never seen in behaviors
    seconds: dict  # timings: news embedding, user embedding
    reranker: RerankerInputs | None = None  # title and history pieces + the ONNX model, when fed with a re-ranker


def embed_corpus(dataset: MindDataset, model_dir: str | Path, device_name: str = "auto",
                 progress: bool = False) -> Corpus:
    """Every news item and user of `dataset` embedded by the checkpoint in `model_dir`."""
    encoded = encode_dataset(model_dir, dataset, device_name, progress=progress)
    started = time.perf_counter()
    ranking, recall, history = _embed_users(encoded)
    user_seconds = time.perf_counter() - started
    news_vectors = encoded.news_matrix.cpu().numpy()
    clicks, impressions = _train_counts(dataset)
    return Corpus(dataset, news_vectors, ranking, recall, history, clicks, impressions, _first_seen(dataset),
                  {"news": encoded.seconds, "users": user_seconds})


def _embed_users(encoded: EncodedDataset) -> tuple[np.ndarray, np.ndarray, "Histories"]:
    """Each user's vectors from the history of their latest impression over all splits (a later split wins:
    dev over train), computed split by split in chunks (pipeline.inference.encode_users) straight into the
    (U, D) outputs; the histories are kept as one CSR array, no object per user."""
    dataset = encoded.dataset
    split_of, impression_of = _latest_impressions(dataset)
    ranking = np.zeros((len(dataset.users), encoded.news_matrix.shape[1]), dtype=np.float32)
    recall = np.zeros_like(ranking)
    lengths = np.zeros(len(dataset.users), dtype=np.int64)
    winners = {}
    for s, (name, behaviors) in enumerate(dataset.splits.items()):
        users = np.flatnonzero(split_of == s)
        if len(users):
            winners[name] = users
            vectors = encoded.users(behaviors, impression_of[users])
            ranking[users], recall[users] = vectors.ranking.cpu().numpy(), vectors.recall.cpu().numpy()
            lengths[users] = np.diff(behaviors.history_offsets)[impression_of[users]]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    rows = np.zeros(offsets[-1], dtype=np.int32)
    for name, users in winners.items():
        behaviors = dataset.splits[name]
        source = spans(behaviors.history_offsets[impression_of[users]], lengths[users])
        rows[spans(offsets[users], lengths[users])] = behaviors.history[source]
    return ranking, recall, Histories(offsets, rows)


def _latest_impressions(dataset: MindDataset) -> tuple[np.ndarray, np.ndarray]:
    """(split number, impression) of each user's latest impression: the last by time (ties: the later row)
    within a split, a later split over an earlier one; split -1 for a user without impressions."""
    split_of = np.full(len(dataset.users), -1, dtype=np.int64)
    impression_of = np.zeros(len(dataset.users), dtype=np.int64)
    for s, behaviors in enumerate(dataset.splits.values()):
        order = np.argsort(behaviors.time, kind="stable")[::-1]  # latest first
        users, first = np.unique(behaviors.user_index[order], return_index=True)
        split_of[users], impression_of[users] = s, order[first]
    return split_of, impression_of


@dataclass(frozen=True, eq=False)
class Histories:
    """Each user's latest history (news rows, oldest first) in one CSR array: `histories[u]` is a view."""
    offsets: np.ndarray  # (U + 1,) int64
    rows: np.ndarray  # (clicks,) int32

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, user):
        if isinstance(user, slice):
            return [self[u] for u in range(*user.indices(len(self)))]
        return self.rows[self.offsets[user]:self.offsets[user + 1]]

    def __iter__(self):
        return (self[u] for u in range(len(self)))


def _train_counts(dataset: MindDataset) -> tuple[np.ndarray, np.ndarray]:
    train = dataset.splits["train"]
    size = len(dataset.news)
    return (np.bincount(train.candidates[train.labels == 1], minlength=size),
            np.bincount(train.candidates, minlength=size))


def _first_seen(dataset: MindDataset) -> np.ndarray:
    """(N,) epoch seconds of each news item's first sighting (a candidate, or in a history) in any split; 0 never."""
    first = np.full(len(dataset.news), np.iinfo(np.int64).max, dtype=np.int64)
    for behaviors in dataset.splits.values():
        np.minimum.at(first, behaviors.candidates, behaviors.time[behaviors.impression_of_candidate()])
        np.minimum.at(first, behaviors.history, np.repeat(behaviors.time, np.diff(behaviors.history_offsets)))
    return np.where(first < np.iinfo(np.int64).max, first, 0)


def day_number(seconds: np.ndarray) -> np.ndarray:
    """yyyymmdd of epoch seconds (0 stays 0): the `date` field."""
    days = np.asarray(seconds).astype("datetime64[s]").astype("datetime64[D]")
    return np.where(np.asarray(seconds) > 0, np.char.replace(np.datetime_as_string(days), "-", "").astype(np.int64), 0)


# ------------------------------------------------------------------------------------ documents

def news_documents(corpus: Corpus, transform: EuclideanTransform, order: np.ndarray | None = None) -> Iterator[dict]:
    """The news documents, in news.tsv order or in `order` (rows)."""
    news = corpus.dataset.news
    transformed = transform.news(corpus.news_vectors)
    titles = corpus.reranker.title_tokens if corpus.reranker else None
    dates = day_number(corpus.first_seen)
    entities = entity_ids(news)
    for row in (range(len(news.ids)) if order is None else order.tolist()):
        news_id = news.ids[row]
        yield news_document(news_id, news.categories[news.category[row]], news.subcategories[news.subcategory[row]],
                            news.title[row], news.abstract[row], news.url[row], int(dates[row]),
                            int(corpus.clicks[row]), int(corpus.impressions[row]), transformed[row],
                            None if titles is None else titles[row].tolist(), published=int(corpus.first_seen[row]),
                            entities=entities[row])


def largest_norm_first(vectors: np.ndarray) -> np.ndarray:
    """Rows by descending norm. An HNSW graph that inserts documents as they arrive (Vespa's) is built for inner
    products best this way: the MIPS study (docs/funnel.md, BENCHMARKS.md "MIPS") gives recall@100 1.0000 by
    descending norm against 0.71 in a random order, for the explicit Φ and for Vespa's `dotproduct` alike."""
    return np.argsort(-np.einsum("nd,nd->n", vectors, vectors), kind="stable")


def user_documents(corpus: Corpus, transform: EuclideanTransform) -> Iterator[dict]:
    ids = corpus.dataset.news.ids
    recall = transform.query(corpus.user_recall)
    ranking = transform.query(corpus.user_ranking)
    histories = corpus.reranker.history_tokens if corpus.reranker else None
    for row, user_id in enumerate(corpus.dataset.users):
        yield user_document(user_id, recall[row], ranking[row], [ids[n] for n in corpus.user_history[row].tolist()],
                            None if histories is None else histories[row].tolist())


def category_ctrs(corpus: Corpus) -> dict[str, float]:
    """Every category's train CTR, smoothed with the rank profiles' prior (a category never shown gets it)."""
    news = corpus.dataset.news
    clicks = np.bincount(news.category, weights=corpus.clicks, minlength=len(news.categories))
    shown = np.bincount(news.category, weights=corpus.impressions, minlength=len(news.categories))
    return dict(zip(news.categories, ranking.ctr(clicks, shown).tolist()))


def check_against_schemas(corpus: Corpus, transform: EuclideanTransform) -> None:
    """Before anything is sent: one document of each type checked field by field, dimensions included."""
    schemas = load_schemas()
    expected = tensor_size(schemas["news"].fields["embedding"])
    if corpus.news_vectors.shape[1] + 1 != expected:
        raise SchemaMismatchError(f"the model's dimension D = {corpus.news_vectors.shape[1]} gives "
                                  f"{corpus.news_vectors.shape[1] + 1}-d transformed vectors, but schemas/news.sd "
                                  f"declares embedding as {schemas['news'].fields['embedding']} (train with --dim "
                                  f"{expected - 1})")
    check_document(schemas["news"], next(news_documents(corpus, transform)))
    if len(corpus.dataset.users):
        check_document(schemas["user"], next(user_documents(corpus, transform)))
    check_document(schemas["category_ctr"], category_ctr_document(category_ctrs(corpus)))


def feed_corpus(corpus: Corpus, transform: EuclideanTransform, backend, log: Callable[[str], None] = print,
                journals: dict[str, Path] | None = None, progress: bool = False) -> dict[str, FeedReport]:
    """Feed category CTRs, news and users (vectors under `transform`); one report per document type. With
    journals (`feed.journal.start_journals`), acknowledged ids are appended and journaled ones skipped. With
    `progress`, the documents made so far are reported (pipeline/progress.py)."""
    check_against_schemas(corpus, transform)
    reports = {}
    dataset = corpus.dataset
    # a backend whose graph inserts in feed order (Vespa) gets the news largest norm first; the embedded index orders
    # its own build (feed/local_backend.py build_hnsw)
    news = (news_documents(corpus, transform, largest_norm_first(corpus.news_vectors))
            if getattr(backend, "graph_in_feed_order", False) else news_documents(corpus, transform))
    for doctype, documents, total in (("category_ctr", iter([category_ctr_document(category_ctrs(corpus))]), 1),
                                      ("news", news, len(dataset.news)),
                                      ("user", user_documents(corpus, transform), len(dataset.users))):
        documents = tracked(documents, f"feeding {doctype} documents", total, "doc", enabled=progress and total > 1)
        started = time.perf_counter()
        report = FeedReport()
        backend.feed(documents, doctype, report, journal=journals[doctype] if journals else None)
        seconds = time.perf_counter() - started
        log(f"{doctype}: {report.summary()} ({report.ok / max(seconds, 1e-9):.0f} documents/s)")
        reports[doctype] = report
    return reports
