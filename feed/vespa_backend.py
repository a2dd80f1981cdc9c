"""The Vespa backend: feed through pyvespa's async document/v1 client (feed/vespa_feed.py does the
per-document retries, timeouts, verification and the resume journal), query /search/ (issue #5).

The application has two container clusters: queries (/search/ and the reader handler, /newsrec/v1/user/ID: one
user's history and vectors) at `url`, feeding (document/v1) at `feed_url` (the same URL where one endpoint serves
both, e.g. the contract server). Nothing a query or a page needs goes to document/v1.

Example:
    backend = VespaBackend("http://127.0.0.1:8080", feed_url="http://127.0.0.1:8081")
    backend.preflight()                      # the endpoints answer document/v1 and /search/ like Vespa
    report = FeedReport()
    backend.feed(news_documents, "news", report, journal=Path("news.journal"))
    page = backend.recommend("U123", hits=10, filters={"category": "sports"})  # page.hits; page.fallback
"""
from __future__ import annotations

import asyncio
import json
import logging
from contextlib import nullcontext
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit, urlunsplit

import httpr
import numpy as np
from requests.exceptions import HTTPError
from vespa.application import Vespa, VespaSync
from vespa.exceptions import VespaError
from vespa.retries import NO_RETRY

from newsrec.feed import ranking
from newsrec.feed.backend import BackendError, FeedReport, Hit, Recommendations
from newsrec.feed.funnel import MAX_RECALL_BUDGET, budgets
from newsrec.feed.queries import (MAX_LISTED, READER_PATH, RECOMMEND_PROFILES, embedding_size, group_body,
                                  mapped_tensor, popularity_body, query_inputs, recommend_body, require_vector,
                                  safe_value, search_body, user_profile_params)
from newsrec.feed.profiles import (DEFAULT_RECOMMENDATION, FALLBACK, FEATURE_LOG, LEARNED, LIVE, NOW,
                                   PERSONALIZED_SEARCH, POPULARITY, PROFILES, RECALL)
from newsrec.feed.schema import SchemaMismatchError, check_query_inputs, load_schemas
from newsrec.feed.state import directory_state
from newsrec.feed.vespa_feed import (FeedPolicy, FeedRun, feed_all, one_line, open_journal, parse_document_id,
                                     pending_documents, read_journal, stored, update_all, vespa_message)

log = logging.getLogger(__name__)

FEED_MODES = ("async", "sync")  # pyvespa's async client either way: async = HTTP/2 (h2c on http://), sync = HTTP/1.1
RANKING_SCORE_CHUNK = 200  # news ids per ranking_scores query (Vespa's default maxHits is 400)
PREFLIGHT_ID = "newsrec-preflight-probe"  # looked up (never written) to check document/v1 before a feed


def write_jsonl(documents: Iterable[dict], path: str | Path, append: bool = False) -> int:
    """Write documents as a `vespa feed` file (`{"put": "<full id>", "fields": {...}}` per line); returns the count."""
    count = 0
    with open(path, "a" if append else "w", encoding="utf-8") as out:
        for document in documents:
            parse_document_id(document["id"])
            out.write(json.dumps({"put": document["id"], "fields": document["fields"]}, ensure_ascii=False) + "\n")
            count += 1
    return count


class JsonlFeedFile:
    """A 'backend' that writes the feed to a JSONL file for `vespa feed` (the Go CLI) instead of sending it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.description = f"JSONL feed file {self.path} (send with: vespa feed --cluster feed {self.path})"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    resumable = False  # written whole by every feed

    @property
    def location(self) -> str:
        return str(self.path)

    def preflight(self) -> None:
        """Nothing to check: the file was created empty."""

    def feed_state(self, directory: Path, lock_timeout_s: float = 60.0):
        return directory_state(directory, lock_timeout_s)

    def feed(self, documents: Iterable[dict], doctype: str, report: FeedReport, journal: Path | None = None) -> None:
        written = write_jsonl(documents, self.path, append=True)
        report.sent += written
        report.ok += written

    def update(self, updates: Iterable[dict], doctype: str, report: FeedReport) -> None:
        """`{"update": id, "fields": {...}}` lines, as `vespa feed` reads partial updates."""
        with self.path.open("a", encoding="utf-8") as out:
            for update in updates:
                parse_document_id(update["update"])
                line = {"update": update["update"], "fields": update["fields"]}
                if update.get("condition"):
                    line["condition"] = update["condition"]
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                report.sent += 1
                report.ok += 1

    def install_reranker(self, onnx: bytes, source: str) -> str:
        return f"the Vespa application must carry this model: `newsrec app build --reranker {source}`, then deploy"


def tensor_vector(value) -> list[float]:
    """A 1-d indexed tensor as Vespa renders it (`{"type", "values"}`, or the long `{"cells": [...]}` form)."""
    if isinstance(value, list):
        return [float(v) for v in value]
    if isinstance(value, dict) and isinstance(value.get("values"), list):
        return [float(v) for v in value["values"]]
    if isinstance(value, dict) and isinstance(value.get("cells"), list):
        cells = sorted(value["cells"], key=lambda c: int(next(iter(c["address"].values()))))
        return [float(c["value"]) for c in cells]
    raise BackendError(f"cannot read a vector from tensor {str(value)[:80]!r}")


class VespaBackend:
    """Vespa over HTTP: pyvespa for document/v1 (the feed cluster at `feed_url`, default `url`) and /search/ (the
    query cluster at `url`); mTLS (cert/key files) or token auth, the same for both."""

    graph_in_feed_order = True  # Vespa's HNSW graph inserts documents as they come: fed largest norm first (feeding.py)

    def __init__(self, url: str, cert: str | None = None, key: str | None = None, token: str | None = None,
                 namespace: str = "news", mode: str = "sync", max_connections: int | None = None,
                 max_workers: int | None = None, max_attempts: int = 5, backoff_s: float = 0.5,
                 max_backoff_s: float = 8.0, timeout_s: float = 10.0, give_up_after: int = 200,
                 feed_url: str | None = None):
        if mode not in FEED_MODES:
            raise BackendError(f"feed mode {mode!r}: use one of {', '.join(FEED_MODES)}")
        if max_attempts < 1:
            raise BackendError("max_attempts must be at least 1")
        self.url = url.rstrip("/")
        self.feed_url = (feed_url or url).rstrip("/")
        self.namespace = namespace
        self.mode = mode
        self.connections = max_connections or 8
        self.policy = FeedPolicy(max_attempts, backoff_s, max_backoff_s, timeout_s, concurrency=max_workers or 64,
                                 give_up_after=give_up_after)
        self._auth = "token" if token else ("mTLS" if cert else "none")
        self._cert_path = cert
        self._app = Vespa(self.url, cert=cert, key=key, vespa_cloud_secret_token=token)
        self._feed_app = (self._app if self.feed_url == self.url else
                          Vespa(self.feed_url, cert=cert, key=key, vespa_cloud_secret_token=token))
        self._session: httpr.Client | None = None
        self._news_schema = load_schemas()["news"]
        self._profiles: tuple[str, ...] | None = None  # rank_profiles(), asked once

    @property
    def description(self) -> str:
        return f"Vespa at {_shown(self.url)}"

    def __repr__(self) -> str:
        auth = f"mTLS cert={self._cert_path}" if self._auth == "mTLS" else self._auth
        feed = "" if self.feed_url == self.url else f", feed_url={_shown(self.feed_url)!r}"
        return (f"VespaBackend({self.description!r}{feed}, auth={auth}, namespace={self.namespace!r}, "
                f"mode={self.mode!r})")

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> VespaBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------- feeding

    resumable = True  # each document acknowledged on its own: journals let an interrupted feed resume

    @property
    def location(self) -> str:
        return self.url

    def feed_state(self, directory: Path, lock_timeout_s: float = 60.0):
        """The feed's state in `directory` (meta.json), under its writer lock."""
        return directory_state(directory, lock_timeout_s)

    def install_reranker(self, onnx: bytes, source: str) -> str:
        """The model is part of the application package, not of the feed: what the user must do."""
        return f"the Vespa application must carry this model: `newsrec app build --reranker {source}`, then deploy"

    def update(self, updates: Iterable[dict], doctype: str, report: FeedReport) -> None:
        """Partial updates through document/v1 PUT (feed/vespa_feed.py `update_all`)."""
        async def run() -> None:
            async with self._async_session() as session:
                await update_all(session, updates, report, doctype, self.namespace, self.policy)

        asyncio.run(run())

    def feed(self, documents: Iterable[dict], doctype: str, report: FeedReport, journal: Path | None = None,
             mode: str | None = None) -> None:
        """Put every document (see feed/vespa_feed.py): 429 / 5xx / transport errors retried per document up
        to max_attempts, other 4xx reported with Vespa's message, a last timeout verified before it is failed.

        With `journal`, ids already in it are skipped (report.already_fed) and acknowledged ones are appended.
        If the documents iterator raises, documents in flight are still completed and journaled, then the
        exception is re-raised: a resumed run feeds each document once. If the endpoint stops answering,
        EndpointGoneError, after the same accounting. A Ctrl-C cancels the requests in flight: they are not
        journaled (a resumed run sends them again).
        """
        mode = mode or self.mode
        if mode not in FEED_MODES:
            raise BackendError(f"feed mode {mode!r}: use one of {', '.join(FEED_MODES)}")
        done = read_journal(Path(journal)) if journal is not None else set()
        with (open_journal(Path(journal)) if journal is not None else nullcontext()) as journal_file:
            run = FeedRun(report, journal_file, self.policy, doctype, self.description)
            items = pending_documents(documents, self.namespace, doctype, done, report)
            asyncio.run(self._feed(items, run, doctype, mode))
        if run.interrupted is not None:
            raise run.interrupted

    async def _feed(self, items, run: FeedRun, doctype: str, mode: str) -> None:
        async with self._async_session(mode) as session:
            await feed_all(session, items, run, doctype, self.namespace)

    def _async_session(self, mode: str | None = None, app: Vespa | None = None):
        """pyvespa's async client of the feed cluster (or `app`): our timeout, no retries of its own (every response
        comes back as is), no redirect followed (a 3xx is reported: following it would send the token and the
        documents elsewhere)."""
        return (app or self._feed_app).asyncio(connections=self.connections, timeout=self.policy.timeout_s,
                                 docv1_retry_policy=NO_RETRY, http2_only=(mode or self.mode) == "async",
                                 follow_redirects=False)  # a redirect is an answer, never followed with the token

    def preflight(self) -> None:
        """Before any document: document/v1 and /search/ answer like this application's Vespa (within the
        client timeout); else a BackendError saying what answered instead."""
        asyncio.run(self._preflight())

    async def _preflight(self) -> None:
        what = f"pre-flight check of {self.description} (nothing was fed)"
        async with self._async_session() as session, self._async_session(app=self._app) as queries:
            try:
                got = await session.get_data("news", PREFLIGHT_ID, namespace=self.namespace)
                found = await queries.query(body={"yql": f'select * from news where news_id contains "{PREFLIGHT_ID}"',
                                                  "hits": 0, "ranking": POPULARITY}, retry_policy=NO_RETRY)
            except Exception as error:
                raise BackendError(f"{what}: {type(error).__name__}: {error}") from None
        if got.status_code not in (200, 404) or not isinstance(got.json, dict) or "pathId" not in got.json:
            raise BackendError(f"{what}: document/v1 answered HTTP {got.status_code}: {vespa_message(got.json)}")
        if found.status_code != 200 or not isinstance(found.json, dict) or "root" not in found.json:
            raise BackendError(f"{what}: /search/ answered HTTP {found.status_code}: {vespa_message(found.json)}")

    def unlike_stored(self, doctype: str, documents: list[dict]) -> list[str]:
        """The ids of those documents that Vespa does not hold exactly as given (absent, different, or not
        readable)."""
        return asyncio.run(self._unlike_stored(doctype, documents))

    async def _unlike_stored(self, doctype: str, documents: list[dict]) -> list[str]:
        items = list(pending_documents(documents, self.namespace, doctype, set(), FeedReport()))
        async with self._async_session() as session:
            verdicts = await asyncio.gather(*(stored(session, item, doctype, self.namespace, self.policy)
                                              for item in items))
        return [item.local_id for item, verdict in zip(items, verdicts) if verdict is not True]

    # ------------------------------------------------------------------------- queries

    def recommend(self, user_id: str, hits: int = 10, filters: dict[str, str] | None = None,
                  ranking: str = DEFAULT_RECOMMENDATION, offset: int = 0, recall_budget: int | None = None,
                  rerank_budget: int | None = None) -> Recommendations:
        """GET /search/?user_id=...: the application's UserProfileSearcher (popularity for an unknown user, which
        the result names in root.fields.fallback), with the recall budget of its query profile unless given;
        ranking unbert re-ranks the best `rerank_budget`."""
        params = user_profile_params(user_id, hits, filters, fallback=FALLBACK, ranking=ranking, offset=offset,
                                     recall_budget=recall_budget, rerank_budget=rerank_budget)
        body = self._send("get", self._app.search_end_point, f"recommend for user {user_id}",
                          params={k: str(v) for k, v in params.items()})
        return Recommendations(user_id, _hits(body), ((body.get("root") or {}).get("fields") or {}).get("fallback"))

    def rank_profiles(self) -> tuple[str, ...]:
        """The recommendation profiles the deployed application serves: news.sd's always; unbert only in a package
        built with a re-ranker. Asked once: Vespa's container refuses an undefined rank profile (400, "does not
        contain requested rank profile"), so one query asking for no hits tells."""
        if self._profiles is None:
            self._profiles = tuple(name for name in RECOMMEND_PROFILES  # news.sd's are in every package
                                   if PROFILES[name].schema_file == "news.sd" or self._serves(name))
        return self._profiles

    def _serves(self, profile: str) -> bool:
        body = {"yql": "select * from news where true", "hits": 0, "ranking": profile}
        try:
            with self._app.syncio(session=self._client(), num_retries_429=2) as sync:
                response = sync.query(body=body)
        except (VespaError, HTTPError, httpr.HTTPError) as error:
            if "does not contain requested rank profile" in _error_text(error):
                return False
            raise BackendError(f"rank profile {profile}: {_error_text(error)}")
        if response.status_code == 200:
            return True
        if "does not contain requested rank profile" in json.dumps(response.json):
            return False
        raise BackendError(f"rank profile {profile}: HTTP {response.status_code}: {vespa_message(response.json)}")

    def search(self, text: str | None, hits: int = 10, user_id: str | None = None,
               filters: dict[str, str] | None = None, sort: str | None = None) -> list[Hit]:
        """BM25 over title and abstract; with a user, personalized by the user document's ranking_embedding."""
        ranking_vector = self._ranking_embedding(user_id) if user_id is not None else None
        return _hits(self._query(search_body(text, hits, ranking_vector, filters, sort), f"search {text!r}"))

    def popular(self, hits: int = 10, filters: dict[str, str] | None = None, offset: int = 0) -> list[Hit]:
        """The popularity profile over every news item (relevance 100 · the smoothed CTR), the page at `offset`."""
        return _hits(self._query(popularity_body(hits, filters, offset), "popular"))

    def group_counts(self, field: str, text: str | None = None,
                     filters: dict[str, str] | None = None) -> list[tuple[str, int]]:
        """(value, matches) per value of `field`, most matches first: Vespa grouping."""
        return _group_counts(self._query(group_body(field, text, filters), f"group by {field}"))

    def nearest_news(self, query_vector: list[float], k: int, published: tuple[int, int] | None = None) -> list[str]:
        """Ids of the k news nearest to a transformed query vector: nearestNeighbor with the `recall` profile; with
        `published` = (after, until), only news with after < published <= until (the recency window, a filter
        Vespa applies inside the graph search)."""
        body = recommend_body(query_vector, None, hits=k, ranking=RECALL, budgets=budgets(min(k, MAX_RECALL_BUDGET)))
        if published is not None:
            body["yql"] += f" and published > {int(published[0])} and published <= {int(published[1])}"
        return [hit.news_id for hit in _hits(self._query(body, "nearest news"))]

    def live_features(self, ranking_vector, news_ids: list[str], now: int, inputs: dict[str, float],
                      learned=None, profile: str = LIVE) -> dict:
        """The live profile's match-features of these news, ranked at `now` (ranking.properties.vespa.now, whole
        seconds), in the order given (feed/local_backend.py `live_features`). With `learned` (feed/replay.py
        LearnedQuery): rank profile learned_features (or learned, which Vespa ranks by its packaged trees), its
        inputs sent, and "features" (N, F) from its match-features."""
        for news_id in news_ids:
            safe_value("news id", news_id)
        size = embedding_size()
        vector = require_vector("user_ranking", list(map(float, ranking_vector)), size)
        recall = vector if learned is None else require_vector("user_recall", list(map(float, learned.recall_vector)), size)
        if profile not in (LIVE, FEATURE_LOG, LEARNED) or (learned is None and profile != LIVE):
            raise BackendError(f"live features: rank profile {profile} (live, or {FEATURE_LOG} / {LEARNED} with "
                               "their inputs)")
        # nearestNeighbor over exactly these news (a filter this small is searched exactly: every one is a hit),
        # so that the first phase's closeness is defined; the second phase re-ranks them all
        body = {"yql": f"select * from news where {{targetHits: {len(news_ids)}}}nearestNeighbor(embedding, "
                       f"user_recall) and {_news_id_in(news_ids)}", "hits": len(news_ids), "ranking": profile,
                "input.query(user_ranking)": vector, "input.query(user_recall)": recall,
                f"ranking.properties.{NOW}": int(now), "ranking.secondPhase.totalRerankCount": len(news_ids),
                **{f"input.query({name})": float(value) for name, value in inputs.items()}}
        if learned is not None:
            body.update(_learned_inputs(learned))
        found = {hit.news_id: hit.fields.get("matchfeatures", {}) for hit in _hits(self._query(body, "live features"))}
        missing = [news_id for news_id in news_ids if news_id not in found]
        if missing:
            raise BackendError(f"live features: {len(missing)} news not in Vespa: {', '.join(missing[:10])}")
        if learned is None:
            names = {"ranking_score": "ranking_score", "live_ctr": "live_ctr", "age_hours": "age_hours",
                     "appeal": "attribute(appeal)", "live_score": "live_score"}
            return {name: np.array([float(found[n][feature]) for n in news_ids]) for name, feature in names.items()}
        out = {name: np.array([float(found[n][name]) for n in news_ids])
               for name in ("ranking_score", "live_score", *(("learned_score",) if profile == LEARNED else ()))}
        out["features"] = np.array([[float(found[n][name]) for name in ranking.LEARNED_FEATURES] for n in news_ids])
        return out

    def checkpoint(self) -> None:
        """Nothing to do: each acknowledged update is durable in Vespa."""

    def ranking_scores(self, ranking_vector: list[float], news_ids: list[str]) -> list[float]:
        """u_ra · r per news id (relevance of personalized_search with no text and weight 1), in the given order."""
        for news_id in news_ids:
            safe_value("news id", news_id)
        scores: dict[str, float] = {}
        for start in range(0, len(news_ids), RANKING_SCORE_CHUNK):
            chunk = list(dict.fromkeys(news_ids[start:start + RANKING_SCORE_CHUNK]))
            for hit in _hits(self._query(_ranking_score_body(ranking_vector, chunk), "ranking_scores")):
                scores[hit.news_id] = hit.relevance
        missing = [news_id for news_id in news_ids if news_id not in scores]
        if missing:
            raise BackendError(f"ranking_scores: {len(missing)} news not in Vespa: {', '.join(missing[:10])}")
        return [scores[news_id] for news_id in news_ids]

    def user_ids(self, limit: int = 20) -> list[str]:
        """Up to `limit` (at most MAX_LISTED) user ids, from the query cluster's reader handler: one query of that
        many hits, never a visit of every user (an application that binds user ids to verified identities refuses
        the list: a BackendError)."""
        if limit < 1:
            return []
        body = self._send("get", f"{self.url}{READER_PATH}", "list readers",
                          params={"hits": str(min(limit, MAX_LISTED))})
        return [str(user) for user in body.get("users", [])][:limit]

    def stored_ids(self, doctype: str) -> set[str]:
        """Every id of `doctype` Vespa holds (the part after '::'): a visit of the whole type with fieldSet [id],
        following every continuation (a resume checks its journal against it)."""
        ids: set[str] = set()
        params = {"wantedDocumentCount": "1000", "fieldSet": "[id]"}
        while True:
            body = self._visit_page(doctype, params)
            ids.update(str(d.get("id", "")).split("::", 1)[-1] for d in body.get("documents", []))
            if not body.get("continuation"):
                return ids
            params["continuation"] = body["continuation"]

    def read_items(self, user_id: str) -> list[str] | None:
        """The user document's has_read_items (oldest first); None for a user Vespa does not hold."""
        fields = self._user_fields(user_id)
        return None if fields is None else [str(n) for n in fields.get("has_read_items", [])]

    def news(self, news_ids: list[str]) -> list[Hit]:
        """The news documents with these ids in the order given: `news_id in (...)` queries of at most
        RANKING_SCORE_CHUNK ids; ids Vespa does not hold left out."""
        for news_id in news_ids:
            safe_value("news id", news_id)
        found: dict[str, Hit] = {}
        for start in range(0, len(news_ids), RANKING_SCORE_CHUNK):
            chunk = list(dict.fromkeys(news_ids[start:start + RANKING_SCORE_CHUNK]))
            body = {"yql": f"select * from news where {_news_id_in(chunk)}", "hits": len(chunk), "ranking": POPULARITY}
            found.update((hit.news_id, hit) for hit in _hits(self._query(body, "news by id")))
        return [found[n] for n in news_ids if n in found]

    def _visit_page(self, doctype: str, params: dict) -> dict:
        url = f"{self.feed_url}/document/v1/{self.namespace}/{doctype}/docid"
        return self._send("get", url, f"visit {doctype} documents", params=params)

    def _user_fields(self, user_id: str) -> dict | None:
        """The user's has_read_items and vectors from the query cluster's reader handler; None for a user Vespa
        does not hold (the handler's 404 "Unknown user id"; any other 404 means the application lacks the handler)."""
        safe_value("user id", user_id)
        return self._send("get", f"{self.url}{READER_PATH}{user_id}", f"get user {user_id}", absent="Unknown user id")

    def _ranking_embedding(self, user_id: str) -> list[float]:
        fields = self._user_fields(user_id)
        if fields is None:
            raise BackendError(f"unknown user {user_id!r}: no document id:{self.namespace}:user::{user_id}")
        if "ranking_embedding" not in fields:
            raise BackendError(f"user {user_id!r} has no ranking_embedding")
        return tensor_vector(fields["ranking_embedding"])

    def _query(self, body: dict, what: str) -> dict:
        """POST /search/ with `body`, its query inputs first checked against the rank profile in schemas/."""
        try:
            check_query_inputs(self._news_schema, body["ranking"], query_inputs(body))
        except SchemaMismatchError as error:
            raise BackendError(f"{what}: {error}") from None
        return self._send("post", self._app.search_end_point, what, json=body)

    def _send(self, method: str, url: str, what: str, absent: str | None = None, **arguments) -> dict | None:
        """One request with the query client; its JSON, or a BackendError saying `what` failed and why (the
        status, Vespa's message, where a redirect pointed: never followed). With `absent`, a 404 whose message
        starts with it is None (any other 404: a path the application does not serve, e.g. a package without the
        reader handler)."""
        try:
            response = getattr(self._client(), method)(url, **arguments)
        except httpr.HTTPError as error:
            raise BackendError(f"{what}: {self.description}: {type(error).__name__}: {error}")
        answer = _json(response)
        if absent is not None and response.status_code == 404:
            if str(answer.get("message", "")).startswith(absent):
                return None
            raise BackendError(f"{what}: HTTP 404: {vespa_message(answer)} (an application package without the "
                               "reader handler: rebuild it, `newsrec app build`)")
        if response.status_code != 200:
            raise BackendError(f"{what}: HTTP {response.status_code}{_redirect(response)}: {vespa_message(answer)}")
        return answer

    def _client(self) -> httpr.Client:
        """One HTTP/1.1 client for queries, with the same auth headers and mTLS as the feed clients (pyvespa's
        VespaSync composes them), following no redirect: a 3xx is reported as the endpoint's answer."""
        if self._session is None:
            sync = VespaSync(app=self._app)
            config = {"headers": sync.headers, "timeout": 120, "follow_redirects": False}
            pem = sync._prepare_mtls_cert()
            if pem:
                config["client_pem_data"] = pem
            self._session = httpr.Client(**config)
        return self._session


def _shown(url: str) -> str:
    """The URL without user info, query or fragment: what messages name."""
    parts = urlsplit(url)
    host = parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else parts.netloc
    return urlunsplit((parts.scheme, host, parts.path, '', ''))


def _news_id_in(news_ids: list[str]) -> str:
    """The YQL clause matching these news ids (each already checked by safe_value)."""
    return "news_id in (" + ", ".join(f'"{news_id}"' for news_id in news_ids) + ")"


def _ranking_score_body(ranking_vector: list[float], news_ids: list[str]) -> dict:
    return {"yql": f"select * from news where {_news_id_in(news_ids)}", "hits": len(news_ids),
            "ranking": PERSONALIZED_SEARCH,
            "input.query(user_ranking)": require_vector("user_ranking", ranking_vector, embedding_size()),
            "input.query(personalization_weight)": 1.0}


def _error_text(error: Exception) -> str:
    """HTTP status and Vespa's root.errors[].message (or document/v1 message) from a pyvespa exception."""
    status = None
    for candidate in (error, error.__cause__):
        response = getattr(candidate, "response", None)
        if response is not None:
            status = response.status_code
    if isinstance(error, VespaError):
        detail = error.args[0] if error.args else ""
        messages = [e.get("message", str(e)) if isinstance(e, dict) else str(e) for e in detail] \
            if isinstance(detail, list) else [str(detail)]
        return f"HTTP {status}: {'; '.join(messages)}"
    return f"{type(error).__name__}: {error}"


def _redirect(response) -> str:
    """For a 3xx: where it pointed (never followed: the token or certificate would go with it)."""
    if not 300 <= response.status_code < 400:
        return ""
    return f" (a redirect to {one_line(str(response.headers.get('location', '?')))}, not followed)"


def _json(response) -> dict:
    try:
        return response.json()
    except (ValueError, RuntimeError):
        return {"message": one_line(response.text)}


def _group_counts(body: dict) -> list[tuple[str, int]]:
    """The `count()` of each group in a grouping result: root -> group:root:0 -> grouplist:<field> -> groups."""
    counts = []
    for root in (body.get("root") or {}).get("children", []):
        if not str(root.get("id", "")).startswith("group:root"):
            continue
        for group_list in root.get("children", []):
            counts += [(str(group["value"]), int(group["fields"]["count()"]))
                       for group in group_list.get("children", [])]
    return counts


def _hits(body: dict) -> list[Hit]:
    hits = []
    for child in (body.get("root") or {}).get("children", []):
        if str(child.get("id", "")).startswith("group:"):
            continue
        fields = child.get("fields", {})
        if "news_id" not in fields:
            raise BackendError(f"hit {child.get('id')} has no news_id field (summary fields: {sorted(fields)})")
        hits.append(Hit(news_id=fields["news_id"], relevance=float(child["relevance"]), fields=fields))
    return hits


def _learned_inputs(learned) -> dict:
    """The learned features' query inputs (feed/replay.py LearnedQuery) as a query body's entries."""
    return {"input.query(category_ctrs)": mapped_tensor("category", learned.category_ctrs),
            "input.query(user_categories)": mapped_tensor("category", learned.user_categories),
            "input.query(user_entities)": mapped_tensor("entity", learned.user_entities),
            "input.query(history_length)": float(learned.history_length),
            **({"model_version": learned.model_version} if learned.model_version else {})}
