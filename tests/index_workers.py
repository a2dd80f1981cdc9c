"""Two distinguishable small corpora (A and B: same ids, different texts, counts and vectors) for the embedded
index's crash and concurrency tests, the answers a reader gets from an index, and the writer and reader
processes those tests start:

    python tests/index_workers.py writer INDEX STOP_FILE   # re-feeds B, A, B, ... until STOP_FILE exists
    python tests/index_workers.py reader INDEX SECONDS     # opens and queries INDEX; one JSON answer a line
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from newsrec.feed.backend import FeedReport
from newsrec.feed.documents import category_ctr_document, news_document, user_document
from newsrec.feed.local_backend import LocalBackend

DIM = 65  # the schemas' x[65] (support.DIM, without importing torch into the worker processes)
NEWS, USERS = 30, 6
CATEGORIES = ("sports", "finance", "news")


def corpus(version: str) -> dict[str, list[dict]]:
    """The documents of `version` ("A" or "B") by type, in feeding order."""
    rng = np.random.default_rng({"A": 1, "B": 2}[version])
    news = [news_document(f"N{i}", CATEGORIES[i % 3], "sub", f"{version} story {i} about topic{i % 5}",
                          f"{version} abstract", f"https://x/{i}", 20191101 + i % 20, int(rng.integers(0, 50)), 100,
                          rng.normal(size=DIM)) for i in range(NEWS)]
    users = [user_document(f"U{u}", rng.normal(size=DIM), rng.normal(size=DIM), [f"N{u}"]) for u in range(USERS)]
    ctrs = {category: float(rng.uniform()) for category in CATEGORIES}
    return {"category_ctr": [category_ctr_document(ctrs)], "news": news, "user": users}


def feed_version(backend: LocalBackend, version: str) -> None:
    """One generation holding every document of `version`, its state saying which."""
    with backend.transaction({"model": version}):
        for doctype, documents in corpus(version).items():
            report = FeedReport()
            backend.feed(documents, doctype, report)
            assert report.success, report.summary()


def answer(backend: LocalBackend) -> dict:
    """What a reader gets: recommendations (both rank profiles), a search, the popular list, the state's model."""
    def hits(found) -> list:
        return [[hit.news_id, round(hit.relevance, 5), hit.fields["title"]] for hit in found]

    return {"recommend": hits(backend.recommend("U1", 5).hits),
            "category_ctr": hits(backend.recommend("U2", 5, ranking="recommendation_with_global_category_ctr").hits),
            "search": hits(backend.search("topic3", 5)), "popular": hits(backend.popular(5)),
            "model": backend.state.get("model")}


def writer(index: str, stop_file: str) -> None:
    commits = 0
    while not Path(stop_file).exists():
        feed_version(LocalBackend(index), "B" if commits % 2 == 0 else "A")
        commits += 1
    print(json.dumps({"commits": commits}))


def reader(index: str, seconds: str) -> None:
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            print(json.dumps(answer(LocalBackend(index))), flush=True)
        except Exception as error:  # reported to the test, which fails on any
            print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)


if __name__ == "__main__":
    {"writer": writer, "reader": reader}[sys.argv[1]](*sys.argv[2:])
