"""The resume journal of a Vespa feed, bound to what was fed where.

`newsrec-feed --endpoint URL` appends every acknowledged document id to `journal-<doctype>.txt` in its
state directory, and writes `journal.json`: the identity of the feed — the endpoint, the application
(a fingerprint of the schemas/*.sd this client feeds for; the deployed package is not asked), the model
(of its checkpoint file), Φ, and the corpus (of the MIND files read, and of what was read from them).
`--resume` skips journaled documents only when the identity is the same (else it refuses, naming what
changed), when every journaled id is at the endpoint (a visit of the ids of each type) and when a random
sample of the journaled documents, rebuilt, is found there exactly as this feed would write them (a wiped
or partly lost deployment, or one fed since by something else, is caught before anything is skipped).
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit, urlunsplit

from newsrec.feed.schema import SCHEMA_DIR
from newsrec.feed.state import write_atomically
from newsrec.feed.vespa_feed import read_journal
from newsrec.pipeline.checkpoint import CHECKPOINT_FILE
from newsrec.pipeline.errors import NewsrecError
from newsrec.pipeline.mind import MindDataset

DOCTYPES = ("category_ctr", "news", "user")
IDENTITY_FILE = "journal.json"
SAMPLE = 20  # journaled ids per document type looked up on the endpoint before a resume skips any


class ResumeError(NewsrecError):
    """`--resume` would skip documents that the endpoint may not hold."""


@dataclass(frozen=True)
class FeedIdentity:
    endpoint: str  # without user info
    application: str  # sha256 of schemas/*.sd
    model: str  # sha256 of the checkpoint file
    max_norm: float  # Φ
    corpus: str  # sha256 of the MIND files and of what was read from them


def feed_identity(endpoint: str, model_dir: str | Path, max_norm: float, dataset: MindDataset) -> FeedIdentity:
    return FeedIdentity(_plain_url(endpoint), _files_digest(sorted(Path(SCHEMA_DIR).glob("*.sd"))),
                        _files_digest([Path(model_dir) / CHECKPOINT_FILE]), float(max_norm), _corpus_digest(dataset))


def start_journals(directory: str | Path, identity: FeedIdentity, resume: bool) -> dict[str, Path]:
    """The journal of each document type: kept when resuming the same feed (else ResumeError), started
    afresh (old journals removed, the identity written) otherwise."""
    directory = Path(directory)
    journals = {doctype: directory / f"journal-{doctype}.txt" for doctype in DOCTYPES}
    if resume:
        _check_identity(directory, identity)
        return journals
    directory.mkdir(parents=True, exist_ok=True)
    for path in journals.values():
        path.unlink(missing_ok=True)
    write_atomically(directory / IDENTITY_FILE, (json.dumps(asdict(identity), indent=1) + "\n").encode())
    return journals


def verify_journals(backend, journals: dict[str, Path], documents: dict[str, Callable[[], Iterable[dict]]],
                  rng: random.Random | None = None) -> tuple[int, int]:
    """Check that every journaled document of each type is at the endpoint (a visit of its ids), and that a
    random sample, rebuilt (`documents[doctype]()` yields them all), is there exactly as this feed writes it;
    ResumeError if any is absent or different. Returns (journaled ids found, documents compared)."""
    rng, found, checked = rng or random.SystemRandom(), 0, 0
    for doctype, path in journals.items():
        journaled = sorted(read_journal(path))
        missing = sorted(set(journaled) - backend.stored_ids(doctype)) if journaled else []
        if missing:
            raise ResumeError(f"cannot resume: {len(missing)} of the {len(journaled)} {doctype} documents that {path} "
                              f"records as fed are not at {backend.description} (e.g. {missing[0]}): the deployment "
                              "lost them; feed again without --resume")
        sample = set(rng.sample(journaled, min(SAMPLE, len(journaled))))
        rebuilt = [d for d in documents[doctype]() if d["id"].rsplit("::", 1)[-1] in sample]
        unlike = backend.unlike_stored(doctype, rebuilt)
        if unlike or len(rebuilt) < len(sample):
            example = unlike[0] if unlike else sorted(sample - {d["id"].rsplit("::", 1)[-1] for d in rebuilt})[0]
            raise ResumeError(f"cannot resume: {len(unlike) or len(sample) - len(rebuilt)} of {len(sample)} sampled "
                              f"{doctype} documents that {path} records as fed are not at {backend.description} as "
                              f"this feed would write them (e.g. {example}): the deployment lost them or holds "
                              "others; feed again without --resume")
        found, checked = found + len(journaled), checked + len(sample)
    return found, checked


def _check_identity(directory: Path, identity: FeedIdentity) -> None:
    path = directory / IDENTITY_FILE
    if not path.is_file():
        raise ResumeError(f"cannot resume: {path} is missing, so the journals in {directory} cannot be tied to "
                          "this endpoint, application, model and corpus; feed again without --resume")
    stored = json.loads(path.read_text(encoding="utf-8"))
    changed = [name for name, value in asdict(identity).items() if stored.get(name) != value]
    if changed:
        raise ResumeError(f"cannot resume: the journals in {directory} were written for another "
                          f"{', '.join(changed)} ({'; '.join(_change(name, stored, identity) for name in changed)}); "
                          "feed again without --resume")


def _change(name: str, stored: dict, identity: FeedIdentity) -> str:
    now = getattr(identity, name)
    return f"{name} {stored.get(name)} then, {now} now" if name in ("endpoint", "max_norm") else f"{name} changed"


def _plain_url(url: str) -> str:
    parts = urlsplit(url.rstrip("/"))
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _files_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _corpus_digest(dataset: MindDataset) -> str:
    """The MIND files of the splits read, and what was read (reading options may leave rows out)."""
    files = [dataset.split_dir(split) / name for split in dataset.splits for name in ("news.tsv", "behaviors.tsv")]
    read = [len(dataset.news), len(dataset.users)] + [b.num_impressions for b in dataset.splits.values()]
    return hashlib.sha256((_files_digest(files) + repr(read)).encode()).hexdigest()[:16]
