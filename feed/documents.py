"""Pure document builders: one row and its vectors in, one Vespa document (`{"id", "fields"}`) out.

Document ids follow `id:<namespace>:<doctype>::<id>` with namespace `news` (see schemas/*.sd).
Vectors must already be in the transformed (D + 1) space; non-finite values are refused.
"""
from __future__ import annotations

import math
from typing import Sequence

from newsrec.pipeline.errors import NewsrecError

NAMESPACE = "news"
CATEGORY_CTR_ID = f"id:{NAMESPACE}:category_ctr::global"


class DocumentError(NewsrecError):
    """A document that must not be fed (e.g. a NaN in a vector)."""


def document_id(doctype: str, local_id: str) -> str:
    return f"id:{NAMESPACE}:{doctype}::{local_id}"


def tensor_values(doc_id: str, field: str, vector: Sequence[float]) -> dict:
    values = [float(v) for v in vector]
    if not all(math.isfinite(v) for v in values):
        raise DocumentError(f"document {doc_id}: field {field!r} has a NaN or infinite value")
    return {"values": values}


def news_document(news_id: str, category: str, subcategory: str, title: str, abstract: str, url: str,
                  date: int, clicks: int, impressions: int, embedding: Sequence[float],
                  title_tokens: Sequence[int] | None = None, published: int = 0,
                  entities: Sequence[str] = ()) -> dict:
    """`title_tokens`: the title's word pieces for a re-ranker (feed/reranking.py), else left out. `published`: the
    first sighting in epoch seconds (0: never seen). `entities`: the Wikidata ids of its title and abstract entities
    (pipeline/mind.py entity_ids). The live fields the impressions stream updates start at 0
    (feed/live.py): set, so that Vespa's attributes hold numbers (an attribute never written reads NaN in ranking)."""
    doc_id = document_id("news", news_id)
    fields = {
        "news_id": news_id, "category": category, "subcategory": subcategory, "title": title,
        "abstract": abstract, "url": url, "date": int(date), "clicks": int(clicks),
        "impressions": int(impressions), "embedding": tensor_values(doc_id, "embedding", embedding),
        "category_ctr_ref": CATEGORY_CTR_ID, "published": int(published), "clicks_decayed": 0.0,
        "impressions_decayed": 0.0, "live_seq": 0, "appeal": 0.0, "entities": list(entities),
    }
    if title_tokens is not None:
        fields["title_tokens"] = tensor_values(doc_id, "title_tokens", title_tokens)
    return {"id": doc_id, "fields": fields}


def user_document(user_id: str, recall_embedding: Sequence[float], ranking_embedding: Sequence[float],
                  has_read_items: Sequence[str], history_tokens: Sequence[int] | None = None) -> dict:
    """`history_tokens`: the history's word pieces for a re-ranker (feed/reranking.py), else left out."""
    doc_id = document_id("user", user_id)
    fields = {
        "user_id": user_id,
        "recall_embedding": tensor_values(doc_id, "recall_embedding", recall_embedding),
        "ranking_embedding": tensor_values(doc_id, "ranking_embedding", ranking_embedding),
        "has_read_items": list(has_read_items),
    }
    if history_tokens is not None:
        fields["history_tokens"] = tensor_values(doc_id, "history_tokens", history_tokens)
    return {"id": doc_id, "fields": fields}


def category_ctr_document(ctrs: dict[str, float]) -> dict:
    """The global parent document: click-through rate per category (computed from train only)."""
    cells = {category: float(ctr) for category, ctr in sorted(ctrs.items())}
    if not all(math.isfinite(v) and v >= 0 for v in cells.values()):
        raise DocumentError(f"document {CATEGORY_CTR_ID}: CTRs must be finite and >= 0")
    return {"id": CATEGORY_CTR_ID, "fields": {"ctrs": {"cells": cells}}}
