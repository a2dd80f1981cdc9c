"""Choosing the backend (Vespa when an endpoint is given, the embedded default index otherwise), where the
feed's state lives, and the Euclidean transform's Φ consistent with what was fed before."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from newsrec.feed.local_backend import DEFAULT_INDEX_DIR, LocalBackend
from newsrec.pipeline.errors import NewsrecError
from newsrec.pipeline.transforms import DEFAULT_PHI_HEADROOM, EuclideanTransform

DEFAULT_STATE_DIR = "newsrec-feed-state"  # Vespa feeds: metadata (Φ, counts) and resume journals


class FeedStateError(NewsrecError):
    """The feed's stored state forbids this feed (e.g. Φ would change for news it cannot re-write)."""


class EndpointError(NewsrecError):
    """A Vespa endpoint URL that cannot be used: not http(s), no host, a port outside 1-65535, ..."""


def check_endpoint(endpoint: str) -> str:
    """`endpoint` when it is an http(s) URL with a host and a valid port, and nothing after its path."""
    try:
        parts = urlsplit(endpoint)
    except ValueError as error:  # e.g. "Invalid IPv6 URL"
        raise EndpointError(f"bad endpoint: {error} (e.g. http://localhost:8080)") from None

    def bad(reason: str) -> EndpointError:
        userinfo = parts.netloc.rpartition("@")[0]
        text = endpoint.replace(userinfo, "***") if userinfo else endpoint  # never print a password
        shown = repr(text) if len(text) <= 80 else repr(text[:80]) + "..."
        return EndpointError(f"bad endpoint {shown}: {reason} (e.g. http://localhost:8080)")

    if not endpoint.isprintable() or any(c.isspace() for c in endpoint):
        raise bad("spaces or control characters")
    if "://" not in endpoint or parts.scheme not in ("http", "https"):
        raise bad(f"the scheme must be http or https, not {parts.scheme!r}" if "://" in endpoint
                  else "no http:// or https://")
    if not parts.hostname:
        raise bad("no host")
    if parts.username is not None or parts.password is not None:
        raise bad("credentials in the URL (they would be logged; use --token or --cert/--key)")
    if parts.query or parts.fragment:
        raise bad("a query or fragment")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise bad(f"port {parts.netloc.rpartition(':')[2]!r} is not in 1-65535")
    return endpoint


@dataclass(frozen=True)
class Target:
    """Where documents go and queries are answered: Vespa at `endpoint` (its query cluster; documents go to its feed
    cluster at `feed_endpoint`, default `endpoint`; pyvespa, `feed_mode` sync or async; mTLS with cert/key or a
    token), a JSONL file for `vespa feed` (feeding only), or the embedded index."""

    endpoint: str | None = None
    feed_endpoint: str | None = None
    index_dir: str | None = None  # embedded index directory [default: ./newsrec-index]
    cert: str | None = None
    key: str | None = None
    token: str | None = field(default=None, repr=False)  # never logged
    feed_mode: str = "sync"
    jsonl: str | None = None

    def __post_init__(self) -> None:
        if self.endpoint is not None:
            check_endpoint(self.endpoint)
        if self.feed_endpoint is not None:
            if self.endpoint is None:
                raise EndpointError("a feed endpoint without --endpoint (the query cluster's URL)")
            check_endpoint(self.feed_endpoint)

    @property
    def is_vespa(self) -> bool:
        return self.endpoint is not None and self.jsonl is None

    @property
    def is_local(self) -> bool:
        """The embedded default index."""
        return self.endpoint is None and self.jsonl is None


def open_backend(target: Target = Target(), feeding: bool = False):
    """The backend `target` names (see `feed.backend.Backend`). `feeding`: an embedded index that cannot be read
    (damaged, or of an older newsrec) opens as empty, for the feed to replace it whole; readers get the error."""
    if target.jsonl is not None:
        from newsrec.feed.vespa_backend import JsonlFeedFile

        return JsonlFeedFile(target.jsonl)
    if target.endpoint is None:
        return LocalBackend(target.index_dir or DEFAULT_INDEX_DIR, replace_unreadable=feeding)
    from newsrec.feed.vespa_backend import VespaBackend

    return VespaBackend(target.endpoint, cert=target.cert, key=target.key, token=target.token,
                        mode=target.feed_mode, feed_url=target.feed_endpoint)


def state_dir(target: Target, explicit: str | None = None) -> Path:
    """The feed's state: `explicit`, else the embedded index's own directory, else one directory per endpoint
    under ./newsrec-feed-state (`127.0.0.1_8080`; `jsonl` for JSONL files), so that the Φ and journals of one
    deployment never steer a feed of another."""
    if explicit:
        return Path(explicit)
    if target.is_local:
        return Path(target.index_dir or DEFAULT_INDEX_DIR)
    if target.jsonl is not None:
        return Path(DEFAULT_STATE_DIR) / "jsonl"
    parts = urlsplit(target.endpoint)
    place = f"{parts.hostname}_{parts.port or (443 if parts.scheme == 'https' else 80)}{parts.path.rstrip('/')}"
    return Path(DEFAULT_STATE_DIR) / re.sub(r"[^A-Za-z0-9._-]", "_", place)


def choose_transform(news_vectors: np.ndarray, news_ids: list[str], state: dict,
                     headroom: float = DEFAULT_PHI_HEADROOM) -> tuple[EuclideanTransform, str]:
    """Φ for this feed of `news_vectors` (N, D), consistent with what was fed before (the feed's state).

    - nothing fed before: Φ = (1 + headroom) × this corpus' maximum news norm, so that later news up to Φ fit;
    - the corpus fits under the stored Φ: keep it, so news fed earlier stay valid (and their closeness too);
    - the corpus needs a larger Φ: Φ enters every news vector's extra coordinate √(Φ² − |r|²), so every
      news item must be re-transformed; this feed re-writes all of them (Φ = (1 + headroom) × the new
      maximum), which is only possible when it contains every news id fed before (else: an error).
    """
    fitted = EuclideanTransform.fit(news_vectors, headroom)
    largest = EuclideanTransform.fit(news_vectors).max_norm
    stored = state.get("max_norm")
    if stored is None:
        return fitted, f"Φ = {fitted.max_norm:.6g} ({1 + headroom:g} × the maximum news norm {largest:.6g} of this corpus)"
    if not EuclideanTransform(stored).needs_retransform(news_vectors):
        return EuclideanTransform(stored), f"Φ = {stored:.6g} (kept from the earlier feed; this corpus fits under it)"
    why = (f"a news norm {largest:.6g} exceeds the stored Φ = {stored:.6g}, and Φ is in every news vector's extra "
           "coordinate √(Φ² − |r|²)")
    missing = set(state.get("news_ids", [])) - set(news_ids)
    if missing:
        raise FeedStateError(f"{why}: growing Φ to {fitted.max_norm:.6g} would leave {len(missing)} news fed earlier "
                             f"(e.g. {sorted(missing)[0]}) with stale vectors; feed a corpus that includes them, or "
                             "start a new index")
    return fitted, (f"Φ = {fitted.max_norm:.6g}, grown from {stored:.6g}: {why}, so every news vector is "
                    "re-transformed and re-fed")
