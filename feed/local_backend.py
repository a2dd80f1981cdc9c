"""The embedded default index: what newsrec serves from when no Vespa endpoint is given. It is NOT Vespa.

A directory (default `./newsrec-index`) holding generations (feed/index_store.py: each feed writes a new one
and switches to it atomically; readers open one, checked against its manifest) of a document store (JSON lines
+ numpy vectors) and an HNSW graph over the transformed news embeddings (faiss `IndexHNSWFlat`, Euclidean,
32 links, 200 neighbours explored at insert: the settings of schemas/news.sd); in memory, a BM25 index over
title and abstract (bm25s, k1 = 1.2, b = 0.75 as Vespa's bm25 feature). Ranking follows the rank profiles, through
feed/ranking.py (the one copy of their math, shared with the HTTP contract server):
- recommendation: the funnel of feed/funnel.py, as the application's UserProfileSearcher asks Vespa: the
  graph search explores E nearest neighbours of the recall vector (E follows the recall budget R and the
  corpus size, feed/exploration.py; at least hits + offset), read news and filters applied during graph
  search (exact search when the filter keeps < 2% of the news, as Vespa's approximate-threshold, and when
  the allowed news are no more than the graph search would explore, E / share kept: there exact search reads
  fewer vectors; Vespa, between 2% and its filter-first-threshold of 30%, uses its filter-first graph
  heuristic instead, so filtered results here are at least as near as Vespa's); first
  phase closeness = 1 / (1 + distance) over the E; second phase ranking_score = user_ranking · embedding
  on the best R; then the page at `offset`.
- bm25: bm25(title) + bm25(abstract) over news matching any query term;
  personalized_search adds personalization_weight · ranking_score.
- popularity (fallback for unknown users): 100 · the smoothed CTR, (clicks + 1) / (impressions + 25).
Tokenization is bm25s' (lowercased words), not Vespa's linguistics, so BM25 values can differ
slightly from Vespa's; the vector math is the same.
"""
from __future__ import annotations

import io
import itertools
import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from newsrec.feed import ranking as expressions
from newsrec.feed.backend import UPDATE_OPERATIONS, BackendError, FeedReport, Hit, Recommendations
from newsrec.feed.exploration import exact_is_cheaper
from newsrec.feed.funnel import MAX_RECALL_BUDGET, budgets
from newsrec.feed.live import LIVE_FILE, LiveStore, is_live_update
from newsrec.feed.index_store import REBUILD, Generation, IndexDamagedError, IndexFormatError, IndexStore
from newsrec.feed.profiles import (CLOSENESS, DEFAULT_RECOMMENDATION, FALLBACK, FEATURE_LOG, LEARNED, LIVE,
                                   LIVE_ATTRIBUTES, RERANKER, recommendation_profiles, with_derived)
from newsrec.feed.profiles import profile as profile_row
from newsrec.feed.queries import (FILTER_FIELDS, QueryError, require_group_field, require_hits, require_offset,
                                  require_profile, require_sort, safe_value)
from newsrec.feed.reranking import RerankError, field_widths, fuse, global_phase, require_rerank_budget
from newsrec.feed.schema import SchemaMismatchError, check_document, load_schemas
from newsrec.feed.user_table import UserTable
from newsrec.pipeline.learned_ranker import (HEADER_FILE, MODEL_FILE, VESPA_FILE, Ranker, RankerError,
                                             RankerMismatchError)

DEFAULT_INDEX_DIR = "newsrec-index"
HNSW_LINKS = 32
HNSW_EXPLORE_AT_INSERT = 200
APPROXIMATE_THRESHOLD = 0.02
VECTOR_FIELDS = {"news": ("embedding",), "user": ("recall_embedding", "ranking_embedding"), "category_ctr": ()}
GRAPH_FILE = "news.hnsw.faiss"
RERANKER_FILE = "unbert.onnx"  # the re-ranker's exported model, part of the generation (Vespa: models/ of the package)
# the learned ranker's files (pipeline/learned_ranker.py), part of the generation (Vespa: models/ranker.json)
RANKER_FILES = {HEADER_FILE: "ranker.header.json", MODEL_FILE: "ranker.model.txt", VESPA_FILE: "ranker.lightgbm.json"}
_SERVED = ("_generation", "docs", "_index", "_bm25", "_news_order", "_news_fields", "_columns", "_vectors",
           "_position", "_live", "_reranker_model", "_reranker", "_ranker_files", "_ranker")


class LocalBackend:
    """The embedded index in `directory`, opened at its committed generation (feed/index_store.py): a consistent
    snapshot, whatever feeds run meanwhile. A damaged index raises IndexDamagedError, one in the layout of an
    older newsrec IndexFormatError, unless `replace_unreadable` (for a full re-feed: it then opens as empty, and
    the feed's commit replaces it). Feeds wait up to `lock_timeout` s for another writer (then IndexLockedError);
    `on_step` is for crash tests (see IndexStore)."""

    def __init__(self, directory: str | Path = DEFAULT_INDEX_DIR, lock_timeout: float = 60.0,
                 on_step: Callable[[str], None] | None = None, replace_unreadable: bool = False):
        self.directory = Path(directory)
        self.description = (f"embedded default index in {self.directory} (not Vespa: faiss HNSW + bm25s BM25, "
                            "same ranking math as the rank profiles)")
        self.schemas = load_schemas()
        self._store = IndexStore(self.directory, lock_timeout, on_step)
        self._replace_unreadable = replace_unreadable
        self._live_session = False
        self._staged: set[str] | None = None  # document types fed in the open transaction; None outside one
        self._open(*self._read_current())

    @property
    def state(self) -> dict:
        """The meta of the served generation: what the feed stored with it (Φ "max_norm", "news_ids", "model",
        "backend") and the "<doctype>_count"s; {} before the first feed."""
        return dict(self._generation.meta)

    # ------------------------------------------------------------------------------- feeding

    def feed(self, documents: Iterable[dict], doctype: str, report: FeedReport, journal=None) -> None:
        """Upsert documents (a put replaces the whole document, as in Vespa) and re-index. Inside `transaction()`
        they join its generation; outside, the call is a transaction of its own. Either way nothing is visible
        on disk before the commit, so an interrupted feed leaves the previous index and re-running it is the
        resume (`journal` is accepted for the common interface and not needed)."""
        if self._staged is None:
            with self.transaction():
                self.feed(documents, doctype, report)
            return
        store = self.docs[doctype]
        replaced, put = False, set()  # a document held before was put again (else new ones only: appended)
        for document in documents:
            report.sent += 1
            try:
                local_id = _local_id(document["id"], doctype)
                check_document(self.schemas[doctype], document)
                replaced |= local_id in store
                put.add(local_id)
                store[local_id] = document["fields"]  # users: UserTable.put, which checks the widths
            except (SchemaMismatchError, BackendError) as error:
                report.failed.append((document.get("id", "?"), 400, str(error)))
                continue
            report.ok += 1
        self._staged.add(doctype)
        if doctype == "news" and self.docs["news"]:
            if replaced or self._index is None or not self._news_order:
                kept = self._live
                self._build_news_index()
                self._live = kept.carried_to(self._news_order, self._news_fields, put)  # a put resets its fields
            else:
                self._append_news()

    def install_reranker(self, onnx: bytes, source: str) -> None:
        """Inside `transaction()` (`feed_state`): the re-ranker's ONNX model joins the generation (its rank profile
        is served from then on); nothing for the user to do."""
        if self._staged is None:
            raise BackendError(f"{self.directory}: install the re-ranker inside a feed's transaction")
        self._reranker_model, self._reranker = onnx, None
        self._staged.add(RERANKER_FILE)
        self._staged_meta = {"reranker": source}
        return None

    def install_ranker(self, directory: str | Path) -> str:
        """A new generation serving the learned ranker in `directory` (pipeline/learned_ranker.py): documents, graph
        and live fields carried over, so that swapping rankers needs no re-feed. Refused (RankerMismatchError) when
        the ranker reads other features or was trained on another model's vectors than the news were fed with.
        Returns the new generation's name."""
        ranker = Ranker.load(directory)
        ranker.require(expressions.LEARNED_FEATURES, self.state.get("model_version"), str(directory))
        files = {name: (Path(directory) / name).read_bytes() for name in RANKER_FILES}
        with self.transaction({"ranker": {"model_version": ranker.model_version, "objective":
                                          ranker.header["objective"], "source": str(directory),
                                          "model_sha256": ranker.header["files"][MODEL_FILE]}}):
            self._ranker_files, self._ranker = files, None
            self._staged.add("ranker")
        return self._generation.name

    def ranker(self) -> Ranker:
        """The generation's learned ranker (RankerError when it has none), checked against the fed model."""
        if self._ranker is None:
            if not self._ranker_files:
                raise RankerError(f"{self.directory} serves no learned ranker, which rank profile learned needs: "
                                  "install one with `newsrec train-ranker ... --index DIR`")
            ranker = Ranker.from_files(self._ranker_files, f"{self.directory} (its ranker)")
            ranker.require(expressions.LEARNED_FEATURES, self.state.get("model_version"), str(self.directory))
            self._ranker = ranker
        return self._ranker

    def update(self, updates: Iterable[dict], doctype: str, report: FeedReport) -> None:
        """Partial updates (feed.backend.FeedTarget.update), applied as Vespa applies them: assign replaces a
        field's value, increment / decrement add to a number; a document not held, an unknown field, another
        operation or a value of the wrong type fails that update (counted, with its id), the others apply. Inside
        `transaction()` they join its generation; outside, the call is a transaction of its own."""
        if self._staged is None:
            updates = list(updates)
            if doctype == "news" and all(is_live_update(update) for update in updates):
                self._update_live(updates, report)
                return
            with self.transaction():
                self.update(updates, doctype, report)
            return
        store, changed = self.docs[doctype], []
        for update in updates:
            report.sent += 1
            try:
                local_id = _local_id(update.get("update", ""), doctype)
                fields = store.get(local_id)
                if fields is None:
                    raise UpdateError(412, f"document {update['update']} does not exist (nothing updated)")
                updated = {**fields, **applied(fields, update.get("fields"), update["update"])}
                check_document(self.schemas[doctype], {"id": update["update"], "fields": updated})
            except UpdateError as error:
                report.failed.append((str(update.get("update", "?")), error.status, str(error)))
                continue
            except (SchemaMismatchError, BackendError) as error:
                report.failed.append((str(update.get("update", "?")), 400, str(error)))
                continue
            store[local_id] = updated  # a new dict: the committed generation keeps its own
            changed.append(update.get("fields", {}))
            report.ok += 1
        self._staged.add(doctype)
        if doctype == "news" and changed:
            self._refresh_news(rebuild_graph=any("embedding" in fields for fields in changed))

    def _update_live(self, updates: list[dict], report: FeedReport) -> None:
        """Updates of live fields only (feed/live.py), outside a feed: applied in place to the live columns, then
        saved atomically before the call returns (in a `live_session`, at its checkpoints), under the writer
        lock. Conditions (`news.live_seq < S`) are evaluated as Vespa's test-and-set: 412 when they do not hold."""
        if self._live_session:
            self._live.apply(updates, report)
            return
        with self._store.locked():
            if self._store.pointer() != self._generation.pointer:  # another feed committed since this was opened
                self._open(*self._read_current())
            self._live.apply(updates, report)
            self.save_live()

    @contextmanager
    def live_session(self) -> Iterator["LocalBackend"]:
        """Hold the writer lock while a stream of live updates runs (the replay): updates apply in memory at once
        (visible to the next query), and reach disk at each `save_live()` (the writer's checkpoint) and at the end."""
        with self._store.locked():
            if self._store.pointer() != self._generation.pointer:
                self._open(*self._read_current())
            self._live_session = True
            try:
                yield self
                self.save_live()
            finally:
                self._live_session = False

    def save_live(self) -> None:
        """Write the live columns atomically, bound to the served generation (a later feed supersedes them)."""
        if self._news_order:
            self._live.save(self.directory / LIVE_FILE, self._generation.name)

    def live_column(self, name: str) -> np.ndarray:
        """(N,) one live field (feed/live.py LIVE_FIELDS) over the news rows, in the index's news order."""
        return self._live.columns[name]

    def news_rows(self, news_ids: list[str]) -> np.ndarray:
        """The rows of these news ids (BackendError naming the first not held)."""
        try:
            return np.fromiter((self._live.row[news_id] for news_id in news_ids), dtype=np.int64, count=len(news_ids))
        except KeyError as error:
            raise BackendError(f"news {error.args[0]} is not in {self.directory}") from None

    def _refresh_news(self, rebuild_graph: bool) -> None:
        """After updates of news: their rows, counts and cached columns from the documents (the graph only when an
        embedding changed)."""
        if rebuild_graph:
            self._build_news_index()
            return
        self._news_fields = [self.docs["news"][i] for i in self._news_order]
        self._columns, self._bm25 = {}, None
        self._live = LiveStore.from_documents(self._news_order, self._news_fields)

    # the feed's side (feed.backend.FeedTarget): an index is written whole, its state committed with it

    resumable = False  # every feed writes a whole new generation: re-running an interrupted one is its resume

    @property
    def location(self) -> str:
        return str(self.directory)

    def preflight(self) -> None:
        """Nothing to check before feeding: the directory is created by the first commit."""

    @contextmanager
    def feed_state(self, directory: Path | None = None, lock_timeout_s: float = 60.0) -> Iterator["IndexState"]:
        """The feed's state is committed with its documents, in one generation: a transaction (its writer lock),
        committed when the block ends cleanly. `directory` and the timeout are the index's own."""
        values: dict = {}
        with self.transaction(values):
            yield IndexState(self, values)

    @contextmanager
    def transaction(self, state: dict | None = None) -> Iterator["LocalBackend"]:
        """Every `feed` in the block stages into one new generation, starting from the documents of the current
        one; on a clean exit it is committed (written, fsynced, switched to atomically) with `state` merged into
        its meta; on an exception nothing becomes visible. Holds the writer lock for the whole block."""
        if self._staged is not None:
            raise BackendError(f"{self.directory}: a transaction is already open on this index")
        with self._store.locked():
            if self._store.pointer() != self._generation.pointer:  # another feed committed since this was opened
                self._open(*self._read_current())
            saved = {name: getattr(self, name) for name in _SERVED}
            self.docs = {doctype: documents.copy() for doctype, documents in self.docs.items()}
            self._staged = set()
            try:
                yield self
                self._commit(state or {})
            except BaseException:
                if self._generation is saved["_generation"]:  # not committed: serve the committed generation
                    for name, value in saved.items():
                        setattr(self, name, value)
                raise
            finally:
                self._staged = None

    def _commit(self, state: dict) -> None:
        import faiss

        staged = sorted(set(self._staged or ()) - {RERANKER_FILE, "ranker"})
        written = {name: data for doctype in staged for name, data in _document_files(doctype, self.docs[doctype])}
        if RERANKER_FILE in (self._staged or ()):
            written[RERANKER_FILE] = self._reranker_model
            state = {**state, **self._staged_meta}
        if "ranker" in (self._staged or ()):
            written.update({RANKER_FILES[name]: data for name, data in self._ranker_files.items()})
            if self._news_order:
                written[LIVE_FILE] = self._live.to_bytes(None)  # the newest counters, bound to the new generation
        if "news" in staged and self._index is not None:
            written[GRAPH_FILE] = faiss.serialize_index(self._index).tobytes()
            written[LIVE_FILE] = self._live.to_bytes(None)  # the live fields as of this commit, in the generation
        superseded = set(_legacy_user_files()) if "user" in staged else set()  # an older layout's user files
        carried = [name for name in self._generation.entries if name not in written and name not in superseded]
        meta = {**self._generation.meta, **state, **{f"{doctype}_count": len(self.docs[doctype]) for doctype in staged}}
        self._generation = self._store.commit(self._generation, written, carried, meta)
        for name in _legacy_files(self.directory):  # an index of the older layout, now replaced
            (self.directory / name).unlink(missing_ok=True)

    # ------------------------------------------------------------------------------- loading

    def follow(self) -> bool:
        """Serve the committed generation if a feed committed since this one was opened (what a long-running
        reader such as the web page calls before answering; a command opens the index anew each run). True when it
        changed. Outside a transaction only."""
        if self._staged is not None or self._store.pointer() == self._generation.pointer:
            return False
        self._open(*self._read_current())
        return True

    def _read_current(self) -> tuple[Generation, dict[str, bytes]]:
        try:
            generation, files = self._store.read()
            if generation.name is None and _legacy_files(self.directory):
                raise IndexFormatError(f"{self.directory} holds an index written by an older newsrec (files "
                                       f"without generations, which cannot be checked for a torn write): {REBUILD}")
        except (IndexDamagedError, IndexFormatError):
            if not self._replace_unreadable:
                raise
            return Generation(), {}
        return generation, files

    def _open(self, generation: Generation, files: dict[str, bytes]) -> None:
        """Serve `generation`, whose verified file contents are `files`."""
        self._generation = generation
        self.docs = _read_documents(files)
        self._index, self._bm25, self._news_order, self._news_fields, self._position = None, None, [], [], {}
        self._columns = {}
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._live = LiveStore.from_documents([], [])
        self._reranker_model, self._reranker = files.get(RERANKER_FILE), None  # the session opens on first use
        self._ranker_files = {name: files[stored] for name, stored in RANKER_FILES.items() if stored in files}
        self._ranker = None  # loaded on first use
        if self.docs["news"]:
            self._build_news_index(graph=files.get(GRAPH_FILE), live=files.get(LIVE_FILE))

    # ------------------------------------------------------------------------------- indexes

    def _build_news_index(self, graph: bytes | None = None, live: bytes | None = None) -> None:
        """The news rows, their vectors and the HNSW graph: read from `graph` (a committed one), else built; the
        live fields from the newest of: the columns saved beside the index for this generation, the generation's
        own copy (`live`), the documents."""
        import faiss

        self._news_order = list(self.docs["news"])
        self._news_fields = [self.docs["news"][i] for i in self._news_order]
        self._columns = {}  # a new dict: a rolled-back transaction restores the old one with its rows
        self._vectors = np.asarray([f["embedding"]["values"] for f in self._news_fields], dtype=np.float32)
        if graph is not None:
            self._index = faiss.deserialize_index(np.frombuffer(graph, dtype=np.uint8))
        else:
            self._index = build_hnsw(self._vectors)
        self._position = {news_id: i for i, news_id in enumerate(self._news_order)}
        self._live = (LiveStore.load(self.directory / LIVE_FILE, self._news_order, self._generation.name)
                      or LiveStore.from_bytes(live, self._news_order)
                      or LiveStore.from_documents(self._news_order, self._news_fields))
        self._bm25 = None  # built on first search

    def _append_news(self) -> None:
        """News fed that the index did not hold: their rows appended, their vectors inserted into a copy of the
        graph (the committed generation keeps its own), the live fields of the others kept: a new story is served
        without rebuilding the graph over every news item (a put of a held document rebuilds it)."""
        import faiss

        added = [news_id for news_id in self.docs["news"] if news_id not in self._position]
        if not added:
            return
        fields = [self.docs["news"][i] for i in added]
        vectors = np.asarray([f["embedding"]["values"] for f in fields], dtype=np.float32)
        index = faiss.clone_index(self._index)
        index.add(vectors)
        start = len(self._news_order)
        self._news_order = self._news_order + added
        self._news_fields = self._news_fields + fields
        self._vectors = np.concatenate([self._vectors, vectors])
        self._index, self._columns, self._bm25 = index, {}, None
        self._position = {**self._position, **{news_id: start + i for i, news_id in enumerate(added)}}
        self._live = self._live.extended(added, fields)

    def _text_indexes(self):
        """One BM25 index per text field; None for a field without a single indexable word (bm25s cannot
        index an empty vocabulary: e.g. every abstract empty)."""
        if self._bm25 is None:
            import bm25s

            self._bm25 = []
            for field in ("title", "abstract"):
                texts = [f.get(field, "") or "" for f in self._news_fields]
                tokens = bm25s.tokenize(texts, stopwords=None, show_progress=False)
                retriever = bm25s.BM25(k1=1.2, b=0.75) if tokens.vocab else None
                if retriever is not None:
                    retriever.index(tokens, show_progress=False)
                self._bm25.append(retriever)
        return self._bm25

    # ------------------------------------------------------------------------------- queries

    def _require_news(self) -> None:
        if self._index is None:
            raise BackendError(f"{self.directory}: the index holds no news; run `newsrec-feed MIND_DIR` first")

    def _allowed(self, filters: dict[str, str] | None, exclude: Iterable[str] = ()) -> np.ndarray:
        allowed = np.ones(len(self._news_order), dtype=bool)
        for field, value in (filters or {}).items():
            if field not in FILTER_FIELDS:
                raise QueryError(f"cannot filter on {field!r}; filterable fields: {', '.join(FILTER_FIELDS)}")
            allowed &= self._column(field, lowered=True) == value.lower()
        for news_id in exclude:
            if news_id in self._position:
                allowed[self._position[news_id]] = False
        return allowed

    def _column(self, field: str, lowered: bool = False) -> np.ndarray:
        """(N,) the values of a filter or grouping field over the news rows (lower-cased: what filters compare),
        made on first use and kept until the news change: a filter is one vectorized comparison."""
        key = (field, lowered)
        if key not in self._columns:
            values = [f.get(field) or "" for f in self._news_fields]
            self._columns[key] = np.array([v.lower() for v in values] if lowered else values, dtype=str)
        return self._columns[key]

    def nearest(self, query: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, squared distances) of up to k allowed news nearest to `query` (D + 1), exploring k graph
        candidates (faiss efSearch; Vespa's targetHits), more under a filter. Exact search instead where the
        filter keeps < 2% of the news (Vespa's approximate-threshold) or where it costs less than the graph search
        (feed/exploration.py exact_is_cheaper, measured by bench/bench_ann_cost.py)."""
        query = np.asarray(query, dtype=np.float32)
        if query.shape != (self._vectors.shape[1],):
            raise QueryError(f"query vector has {query.size} values; the index's vectors have {self._vectors.shape[1]}")
        query = query[None, :]
        kept = int(allowed.sum())
        if kept == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if kept < APPROXIMATE_THRESHOLD * len(allowed) or exact_is_cheaper(kept, graph_exploration(k, allowed)):
            import faiss

            # exact, one pass of faiss's scan (the distances the graph computes): a few rows gathered, else the
            # graph's own flat storage (rows in order) scanned in place, the others skipped by a bitmap (gathering
            # costs more once over 1 row in 8 is allowed: 1M and 161k news, one thread)
            if kept * 8 <= len(allowed):
                rows = np.flatnonzero(allowed)
                distances, found = faiss.knn(query, self._vectors[rows], min(k, kept))
                return rows[found[0]], distances[0]
            bitmap = np.packbits(allowed, bitorder="little")  # alive until the search returns
            selector = None if kept == len(allowed) else faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
            distances, rows = faiss.downcast_index(self._index.storage).search(
                query, min(k, kept), params=faiss.SearchParameters(sel=selector))
        else:
            distances, rows = graph_search(self._index, query, k, allowed)
        keep = rows[0] >= 0
        return rows[0][keep], distances[0][keep]

    def recommend(self, user_id: str, hits: int = 10, filters: dict[str, str] | None = None,
                  ranking: str = DEFAULT_RECOMMENDATION, offset: int = 0, recall_budget: int | None = None,
                  rerank_budget: int | None = None) -> Recommendations:
        """The page of `hits` at `offset` of the funnel's ranking (feed/funnel.py) for the user; the recall
        budget R (the candidates the second phase re-ranks) is the default unless given. Ranking `unbert`: the
        re-ranker then re-scores the best N (`rerank_budget`, default the profile's rerank-count). A user not held
        gets the popular news, marked as the fallback; a malformed id is a QueryError (as Vespa's 400)."""
        safe_value("user id", user_id)
        profile = require_profile(ranking)
        if profile.global_phase:
            self.reranker()  # an index without one is named before any user is looked at
        require_hits(hits)
        require_offset(offset)
        funnel = budgets(recall_budget)
        self._require_news()
        user = self.docs["user"].get(user_id)
        if user is None or "recall_embedding" not in user:
            return Recommendations(user_id, self.popular(hits, filters, offset), FALLBACK)
        rows, squared = self.nearest(np.asarray(user["recall_embedding"]["values"]),
                                     funnel.explored(hits, offset, self.news_count),
                                     self._allowed(filters, user.get("has_read_items", [])))
        features = self._features(rows, expressions.closeness(np.sqrt(squared)), user)  # (E,) each
        relevance, order = profile.rank(features, funnel.recall)
        if profile.global_phase:
            relevance, order = self._global_phase(rows, relevance, order, features["recommendation_score"], user,
                                                  user_id, rerank_budget)
        page = order[offset:offset + hits]  # Hits only for the page: E can be thousands
        shown = {name: features[name] for name in profile.match_features}
        return Recommendations(user_id, [self._hit(rows[i], float(relevance[i]),
                                                   {name: float(values[i]) for name, values in shown.items()})
                                         for i in page])

    @property
    def news_count(self) -> int:
        return len(self._news_order)

    def _features(self, rows: np.ndarray, closeness: np.ndarray, user: dict) -> dict[str, np.ndarray]:
        """The rank features of the candidates, (E,) each, as Vespa names them: closeness (the first phase),
        ranking_score (u_ra · r), the smoothed ctr, the category's CTR from the global category_ctr document (0 for
        a category missing there), and the schema's functions of them (feed/profiles.py `with_derived`;
        query(popularity_weight) keeps its default 0: recommendation_score = ranking_score), the live profile's
        attributes from the live columns at `now` = the clock's whole second, its inputs at their defaults."""
        ranking_vector = np.asarray(user["ranking_embedding"]["values"], dtype=np.float32)
        live = self._live.columns
        return with_derived({
            CLOSENESS: closeness, "ranking_score": expressions.ranking_score(self._vectors[rows], ranking_vector),
            "ctr": self._ctr(rows), "category_ctr": self._category_ctr(rows),
            "now": np.full(len(rows), float(int(time.time()))),
            **{feature: live[feature[len("attribute("):-1]][rows].astype(np.float64) for feature in LIVE_ATTRIBUTES}})

    def _category_ctr(self, rows: np.ndarray) -> np.ndarray:
        """(K,) the CTR of each news item's category in the global category_ctr document (0 for one missing there):
        feed/ranking.py `category_ctr` once per category, then indexed by the rows' category codes (kept with the
        filter columns, so a query costs no loop over its candidates)."""
        if "category codes" not in self._columns:
            self._columns["category codes"] = np.unique(self._column("category"), return_inverse=True)
        names, codes = self._columns["category codes"]
        ctrs = self.docs["category_ctr"].get("global", {}).get("ctrs", {}).get("cells", {})
        return expressions.category_ctr(names.tolist(), ctrs)[codes[rows]]

    def _global_phase(self, rows: np.ndarray, relevance: np.ndarray, order: np.ndarray, two_tower: np.ndarray,
                      user: dict, user_id: str, rerank_budget: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Rank profile unbert's global phase: the best N's two-tower scores (recommendation_score) fused with the
        re-ranker's (feed/reranking.py `fuse`), Vespa's rescaling below."""
        budget = require_rerank_budget(rerank_budget)
        if "history_tokens" not in user:
            raise RerankError(f"user {user_id} has no history_tokens: feed with a re-ranker (newsrec-feed --reranker)")
        top = order[:budget]
        untokenized = next((row for row in rows[top] if "title_tokens" not in self._news_fields[row]), None)
        if untokenized is not None:  # scored as an empty title it would sink: refused, named
            raise RerankError(f"news {self._news_order[untokenized]} has no title_tokens: feed it with the re-ranker "
                              "(newsrec-feed --reranker)")
        titles = np.array([self._news_fields[row]["title_tokens"]["values"] for row in rows[top]], dtype=np.int64)
        scores = self.reranker().scores(titles, np.asarray(user["history_tokens"]["values"], dtype=np.int64))
        return global_phase(relevance, order, fuse(two_tower[top], scores))

    def rank_profiles(self) -> tuple[str, ...]:
        """The recommendation profiles this index can serve: unbert only with an installed re-ranker."""
        return tuple(name for name in recommendation_profiles()
                     if profile_row(name).global_phase != "reranker" or self._reranker_model is not None)

    def reranker(self):
        """The installed re-ranker (onnxruntime over the generation's model), opened on first use."""
        if self._reranker is None:
            if self._reranker_model is None:
                raise RerankError(f"{self.directory} has no re-ranker, which rank profile {RERANKER} needs: feed "
                                  "it with `newsrec-feed MIND_DIR --reranker DIR` (an UNBERT checkpoint)")
            from newsrec.pipeline.reranker import OnnxReranker

            title_width, history_width = field_widths()
            self._reranker = OnnxReranker(self._reranker_model, title_width, history_width,
                                          name=f"{self.directory}/{RERANKER_FILE}")
        return self._reranker

    def nearest_news(self, query_vector, k: int, published: tuple[int, int] | None = None) -> list[str]:
        """Ids of the k nearest news to a transformed query vector (the `recall` profile's retrieval); with
        `published` = (after, until), only news with after < published <= until (the recency window; exact search
        when it keeps few news, as everywhere: `nearest`)."""
        self._require_news()
        explored = budgets(min(k, MAX_RECALL_BUDGET)).explored(k, 0, self.news_count)
        allowed = self._allowed(None)
        if published is not None:
            column = self._live.columns["published"]
            allowed &= (column > published[0]) & (column <= published[1]) & (column > 0)
        rows, _ = self.nearest(np.asarray(query_vector), explored, allowed)
        return [self._news_order[row] for row in rows[:k]]

    def live_features(self, ranking_vector, news_ids: list[str], now: int, inputs: dict[str, float],
                      learned=None, profile: str = LIVE) -> dict:
        """The live profile's match-features of these news at time `now` (Vespa: its `now` set per query), in the
        order given: ranking_score, live_ctr, age_hours, appeal and live_score (feed/ranking.py). With `learned`
        (feed/replay.py LearnedQuery) also "features", (N, F) ranking.LEARNED_FEATURES; with profile "learned"
        also "learned_score", the generation's learned ranker over them (the learned profile's second phase)."""
        rows = self.news_rows(news_ids)
        live = self._live.columns
        origin, rate = inputs.get("decay_origin", 0.0), inputs.get("decay_rate", 0.0)
        features = {"ranking_score": expressions.ranking_score(self._vectors[rows].astype(np.float64),
                                                               np.asarray(ranking_vector, dtype=np.float64)),
                    "live_ctr": expressions.live_ctr(live["clicks_decayed"][rows], live["impressions_decayed"][rows],
                                                     now, origin, rate),
                    "age_hours": expressions.age_hours(live["published"][rows], now),
                    "appeal": live["appeal"][rows].astype(np.float64)}
        features["live_score"] = expressions.live_score(*features.values(), inputs)
        if profile not in (LIVE, FEATURE_LOG, LEARNED):
            raise QueryError(f"rank profile {profile}: {LIVE}, {FEATURE_LOG} or {LEARNED}")
        if learned is None:
            if profile != LIVE:
                raise QueryError(f"rank profile {profile} needs the learned features' inputs")
            return features
        features["features"] = self._learned_features(rows, features, now, origin, rate, learned)
        if profile == LEARNED:
            fed = self.state.get("model_version")
            if learned.model_version and fed and learned.model_version != fed:
                raise RankerMismatchError(f"{self.directory}: the query's vectors come from model "
                                          f"{learned.model_version}, the news were fed with model {fed}")
            features["learned_score"] = self.ranker().predict(features["features"])
        return features

    def _learned_features(self, rows: np.ndarray, live: dict, now: int, origin: float, rate: float,
                          learned) -> np.ndarray:
        """(N, F): the learned profile's functions over these rows (feed/ranking.py learned_features)."""
        terms = expressions.live_terms(live["ranking_score"], live["live_ctr"], live["age_hours"], live["appeal"])
        recall = np.asarray(learned.recall_vector, dtype=np.float64)
        closeness = expressions.closeness(expressions.euclidean_distance(self._vectors[rows].astype(np.float64), recall))
        shown = expressions.decayed_count(self._live.columns["impressions_decayed"][rows], now, origin, rate)
        fields = [self._news_fields[row] for row in rows]
        categories = [(f.get("category"),) for f in fields]
        entities = [f.get("entities", ()) for f in fields]
        return expressions.learned_features(terms, closeness, shown,
                                            expressions.label_match(categories, learned.category_ctrs),
                                            expressions.label_match(categories, learned.user_categories),
                                            expressions.label_match(entities, learned.user_entities),
                                            learned.history_length)

    def checkpoint(self) -> None:
        """What a stream writer calls before it records its position: the live columns durable (`save_live`)."""
        self.save_live()

    def popular(self, hits: int = 10, filters: dict[str, str] | None = None, offset: int = 0) -> list[Hit]:
        """The popularity profile without text: 100 · (clicks + 1) / (impressions + 25) (the prior for news never
        shown); the page of `hits` at `offset`."""
        require_hits(hits)
        require_offset(offset)
        self._require_news()
        ctr = self._ctr(np.arange(len(self._news_order)))
        relevance = expressions.popularity(0.0, ctr)  # no query text: nativeRank is 0
        rows = np.flatnonzero(self._allowed(filters))
        best = rows[np.argsort(-relevance[rows], kind="stable")[offset:offset + hits]]
        return [self._hit(row, relevance[row], {"ctr": float(ctr[row])}) for row in best]

    def user_ids(self, limit: int = 20) -> list[str]:
        """Up to `limit` user ids of the index, in feed order."""
        return list(itertools.islice(self.docs["user"], max(0, limit)))

    def read_items(self, user_id: str) -> list[str] | None:
        """The news the user has read, oldest first (has_read_items); None for a user not in the index."""
        user = self.docs["user"].get(user_id)
        return None if user is None else list(user.get("has_read_items", []))

    def news(self, news_ids: list[str]) -> list[Hit]:
        """The news documents with these ids, in the order given (relevance 0); ids not in the index left out."""
        self._require_news()
        return [self._hit(self._position[n], 0.0, {}) for n in news_ids if n in self._position]

    def _ctr(self, rows: np.ndarray) -> np.ndarray:
        """The `ctr` function of the news at `rows`: (K,) -> (K,) float64."""
        return expressions.ctr(self._live.columns["clicks"][rows], self._live.columns["impressions"][rows])

    def search(self, text: str | None, hits: int = 10, user_id: str | None = None,
               filters: dict[str, str] | None = None, sort: str | None = None,
               personalization_weight: float = 1.0) -> list[Hit]:
        """bm25 (personalized_search with a user) over the news matching the text (all news without text);
        sort="date": newest first, ties by news id (YQL `order by date desc, news_id asc`)."""
        require_hits(hits)
        self._require_news()
        text_score, matched = self._match(text, filters)  # (N,), (N,) over all news
        score, ranking_score = text_score, None
        if user_id is not None:
            user = self.docs["user"].get(user_id)
            if user is None:
                raise BackendError(f"unknown user {user_id!r}: not in {self.directory}")
            ranking_score = expressions.ranking_score(self._vectors, np.asarray(user["ranking_embedding"]["values"],
                                                                             dtype=np.float32))
            score = expressions.personalized_search(text_score, ranking_score, personalization_weight)
        rows = np.flatnonzero(matched)
        if sort is None:
            best = rows[np.argsort(-score[rows], kind="stable")[:hits]]
        else:
            best = np.array(self._sorted_rows(rows, sort)[:hits], dtype=np.int64)
        return [self._hit(row, float(score[row]), {"text_score": float(text_score[row])} if ranking_score is None else
                          {"text_score": float(text_score[row]), "ranking_score": float(ranking_score[row])})
                for row in best]

    def group_counts(self, field: str, text: str | None = None,
                     filters: dict[str, str] | None = None) -> list[tuple[str, int]]:
        """(value, matches) per value of `field`, most matches first (ties by value), like
        `all(group(field) order(-count()) each(output(count())))`."""
        require_group_field(field)
        self._require_news()
        _, matched = self._match(text, filters)
        values, counts = np.unique(self._column(field)[matched], return_counts=True)  # values ascending
        return [(str(values[i]), int(counts[i])) for i in np.argsort(-counts, kind="stable")]

    def _match(self, text: str | None, filters: dict[str, str] | None) -> tuple[np.ndarray, np.ndarray]:
        """(bm25(title) + bm25(abstract), matched): news with any query term, or every news item without text."""
        allowed = self._allowed(filters)
        if not text:
            return np.zeros(len(self._news_order), dtype=np.float32), allowed
        import bm25s

        tokens = bm25s.tokenize([text], stopwords=None, show_progress=False, return_ids=False)[0]
        if not tokens:  # bm25s keeps words of 2+ letters or digits; its get_scores([]) raises IndexError
            raise QueryError(f"nothing to search for in {text[:80]!r}: the embedded index's BM25 matches words "
                             "of two or more letters or digits")
        scores = [index.get_scores(tokens) for index in self._text_indexes() if index is not None]
        text_score = sum(scores) if scores else np.zeros(len(self._news_order), dtype=np.float32)
        return text_score, (text_score > 0) & allowed

    def _sorted_rows(self, rows: np.ndarray, sort: str) -> list[int]:
        require_sort(sort)
        return sorted(rows.tolist(), key=lambda row: (-self._news_fields[row][sort], self._news_order[row]))

    def ranking_scores(self, ranking_vector, news_ids: list[str]) -> list[float]:
        self._require_news()
        missing = [n for n in news_ids if n not in self._position]
        if missing:
            raise BackendError(f"news {missing[0]} is not in {self.directory} ({len(missing)} missing)")
        rows = np.fromiter((self._position[n] for n in news_ids), dtype=np.int64, count=len(news_ids))
        return expressions.ranking_score(self._vectors[rows], np.asarray(ranking_vector, dtype=np.float32)).tolist()

    def rerank_scores(self, history_tokens, news_ids: list[str]) -> list[float]:
        """The re-ranker's score of each news id against a history's pieces (query(history_tokens)), in order: the
        global phase of ranking unbert without the funnel around it (evaluation's serving path)."""
        self._require_news()
        missing = [n for n in news_ids if n not in self._position]
        if missing:
            raise BackendError(f"news {missing[0]} is not in {self.directory} ({len(missing)} missing)")
        fields = [self._news_fields[self._position[n]] for n in news_ids]
        if any("title_tokens" not in f for f in fields):
            raise RerankError(f"{self.directory}: news without title_tokens: feed with a re-ranker (--reranker)")
        titles = np.array([f["title_tokens"]["values"] for f in fields], dtype=np.int64).reshape(len(fields), -1)
        return self.reranker().scores(titles, np.asarray(history_tokens, dtype=np.int64)).tolist()

    def _hit(self, row: int, relevance: float, features: dict) -> Hit:
        fields = {k: v for k, v in self._news_fields[row].items() if k not in ("embedding", "title_tokens")}
        fields.update({name: column[row].item() for name, column in self._live.columns.items()
                       if name in fields or column[row] != 0})  # set by a feed or by a live update
        return Hit(self._news_order[row], float(relevance), {**fields, "matchfeatures": features})


def graph_search(index, queries: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(squared distances, rows) (Q, k) of the k allowed news nearest to each query (Q, D + 1) in the HNSW graph,
    exploring k candidates (Vespa's targetHits), more under a filter; rows -1 where fewer were found."""
    import faiss

    selector = None if allowed.all() else faiss.IDSelectorBatch(np.flatnonzero(allowed).astype(np.int64))
    params = faiss.SearchParametersHNSW(sel=selector, efSearch=graph_exploration(k, allowed))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)


def graph_exploration(k: int, allowed: np.ndarray) -> int:
    """Graph candidates a search for k allowed news explores (faiss efSearch; Vespa's targetHits), never beyond
    the corpus. A filter hides most graph nodes: explore 1 / (share allowed) times more, or the search stops
    before it reaches the allowed neighbours (category filter on the tiny demo data: recall@10 0.46 -> 1.00)."""
    share = allowed.mean() if len(allowed) else 1.0
    return max(k, min(len(allowed), int(k / share))) if share > 0 else k


def build_hnsw(vectors: np.ndarray, first_batch: int = 10, growth: float = 1.1):
    """faiss HNSW over (N, D + 1) MIPS-transformed vectors with the schema's settings (32 links, 200 explored at
    insert), the news inserted by descending norm of v (their first D coordinates), in consecutive batches growing
    from `first_batch` rows by `growth` (73 batches at 100k news, 97 at 1M: the largest norms one small batch at a
    time, the bulk in large ones, which keep the build parallel), then renumbered so that graph ids are rows. One
    faiss `add` shuffles its rows (a random insert order); fed largest norms first, the graph finds the top 100 by
    inner product exploring far fewer candidates: bench/bench_ann_cost.py, 161k news, recall@100 0.99 at efSearch
    200 against 4,800 (BENCHMARKS.md "Recall cost: graph against exact")."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_LINKS, faiss.METRIC_L2)
    index.hnsw.efConstruction = HNSW_EXPLORE_AT_INSERT
    head = vectors[:, :-1]
    inserted = np.argsort(-np.einsum("nd,nd->n", head, head), kind="stable")
    start, size = 0, float(first_batch)
    while start < len(inserted):
        index.add(vectors[inserted[start:start + int(size)]])
        start, size = start + int(size), size * growth
    index.permute_entries(np.argsort(inserted))  # graph id r holds row r
    return index


class UpdateError(BackendError):
    """A partial update that cannot be applied, with the HTTP status Vespa answers it with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def applied(fields: dict, operations, document_id: str) -> dict:
    """The fields a partial update sets: {field: new value} from {field: {"assign": v} | {"increment": n} |
    {"decrement": n}} over the document's `fields`."""
    if not isinstance(operations, dict) or not operations:
        raise UpdateError(400, f"update of {document_id}: expected {{\"fields\": {{field: {{operation: value}}}}}}")
    values = {}
    for field, operation in operations.items():
        if not isinstance(operation, dict) or len(operation) != 1 or next(iter(operation)) not in UPDATE_OPERATIONS:
            raise UpdateError(400, f"update of {document_id}: field {field!r}: one of {', '.join(UPDATE_OPERATIONS)} "
                                   f"expected, got {str(operation)[:80]}")
        (name, value), = operation.items()
        if name == "assign":
            values[field] = value
            continue
        current = fields.get(field, 0)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, current)):
            raise UpdateError(400, f"update of {document_id}: {name} needs numbers; field {field!r} is "
                                   f"{type(current).__name__}, the operand {type(value).__name__}")
        values[field] = current + value if name == "increment" else current - value
    return values


class IndexState:
    """The embedded index's feed state: the served generation's, and what the commit records with the documents."""

    def __init__(self, backend: "LocalBackend", values: dict):
        self.backend, self.values, self.directory = backend, values, backend.directory

    def state(self) -> dict:
        return self.backend.state  # the current generation: the transaction has reopened the latest one

    def begin(self, values: dict) -> None:
        pass  # all or nothing: nothing is visible before the commit

    def finish(self, values: dict) -> None:
        self.values.update(values)  # committed with the documents when the transaction ends


def _local_id(document_id: str, doctype: str) -> str:
    prefix = f"id:news:{doctype}::"
    if not document_id.startswith(prefix) or len(document_id) == len(prefix):
        raise BackendError(f"document id {document_id!r} is not of the form {prefix}<id>")
    return document_id[len(prefix):]


def _document_files(doctype: str, documents) -> list[tuple[str, bytes]]:
    """The files of one document type: users as columns (feed/user_table.py); the others as `<doctype>.jsonl`
    (id and plain fields per line) and one `<doctype>.<field>.npy` (rows in the same order) per vector field."""
    if isinstance(documents, UserTable):
        return documents.files()
    plain, vectors = [], {field: [] for field in VECTOR_FIELDS[doctype]}
    for local_id, stored in documents.items():
        fields = dict(stored)
        for field in VECTOR_FIELDS[doctype]:
            vectors[field].append(fields.pop(field)["values"])
        plain.append({"id": local_id, "fields": fields})
    files = [(f"{doctype}.jsonl", "".join(json.dumps(row) + "\n" for row in plain).encode("utf-8"))]
    for field, rows in vectors.items():
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(rows, dtype=np.float32))
        files.append((f"{doctype}.{field}.npy", buffer.getvalue()))
    return files


def _read_documents(files: dict[str, bytes]) -> dict:
    """The documents of every type whose files are in `files` (the inverse of `_document_files`); users of
    an index written before the columns were introduced (user.jsonl) are read into columns."""
    docs: dict = {doctype: {} for doctype in VECTOR_FIELDS}
    docs["user"] = UserTable.from_files(files) if UserTable.holds(files) else UserTable()
    for doctype, fields in VECTOR_FIELDS.items():
        if f"{doctype}.jsonl" not in files:
            continue
        rows = [json.loads(line) for line in files[f"{doctype}.jsonl"].decode("utf-8").splitlines()]
        vectors = {field: np.load(io.BytesIO(files[f"{doctype}.{field}.npy"])) for field in fields}
        for i, row in enumerate(rows):
            document = {**row["fields"], **{f: {"values": vectors[f][i].tolist()} for f in fields}}
            docs[doctype][row["id"]] = document
    return docs


def _legacy_user_files() -> list[str]:
    return ["user.jsonl", *(f"user.{field}.npy" for field in VECTOR_FIELDS["user"])]


def _legacy_files(directory: Path) -> list[str]:
    """The files an index of the older layout (no generations) holds directly in `directory`."""
    names = [GRAPH_FILE] + [name for doctype, fields in VECTOR_FIELDS.items()
                            for name in (f"{doctype}.jsonl", *(f"{doctype}.{field}.npy" for field in fields))]
    return [name for name in names if (directory / name).is_file()]
