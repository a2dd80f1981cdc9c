"""Choosing the backend: Vespa when an endpoint is given, the embedded default index otherwise."""
from __future__ import annotations

from pathlib import Path

from feed.local_backend import DEFAULT_INDEX_DIR, LocalBackend
from pipeline.errors import NewsrecError
from pipeline.transforms import EuclideanTransform

DEFAULT_STATE_DIR = "newsrec-feed-state"  # Vespa feeds: metadata (Φ, counts) and resume journals


class FeedStateError(NewsrecError):
    """The feed's stored state forbids this feed (e.g. Φ would change for news it cannot re-write)."""


def open_backend(endpoint: str | None = None, index_dir: str | None = None, cert: str | None = None,
                 key: str | None = None, token: str | None = None, mode: str = "sync", jsonl: str | None = None):
    """Vespa (pyvespa, `mode` sync or async) at `endpoint`; a JSONL file for `vespa feed`; else the embedded index."""
    if jsonl is not None:
        from feed.vespa_backend import JsonlFeedFile

        return JsonlFeedFile(jsonl)
    if endpoint is None:
        return LocalBackend(index_dir or DEFAULT_INDEX_DIR)
    from feed.vespa_backend import VespaBackend

    return VespaBackend(endpoint, cert=cert, key=key, token=token, mode=mode)


def state_dir(backend, explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return backend.directory if isinstance(backend, LocalBackend) else Path(DEFAULT_STATE_DIR)



def choose_transform(corpus: EuclideanTransform, news_ids: list[str], state: dict) -> tuple[EuclideanTransform, str]:
    """Φ for this feed, consistent with what was fed before (stored in the feed's state).

    - nothing fed before: Φ = this corpus' maximum news norm;
    - the corpus fits under the stored Φ: keep it, so news fed earlier stay valid;
    - the corpus needs a larger Φ: every news item must be re-transformed; this feed re-writes all
      of them, which is only possible when it contains every news id fed before (else: an error).
    """
    stored = state.get("max_norm")
    if stored is None:
        return corpus, f"Φ = {corpus.max_norm:.6g} (maximum news norm of this corpus)"
    if corpus.max_norm <= stored:
        return EuclideanTransform(stored), f"Φ = {stored:.6g} (kept from the earlier feed; this corpus fits under it)"
    missing = set(state.get("news_ids", [])) - set(news_ids)
    if missing:
        raise FeedStateError(f"this corpus needs Φ = {corpus.max_norm:.6g} > the stored {stored:.6g}, which would "
                             f"leave {len(missing)} news fed earlier (e.g. {sorted(missing)[0]}) with stale vectors; "
                             "feed a corpus that includes them, or start a new index")
    return corpus, f"Φ = {corpus.max_norm:.6g} (grew from {stored:.6g}: every news vector re-transformed and re-fed)"
