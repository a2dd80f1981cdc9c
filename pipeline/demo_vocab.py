"""Topic vocabularies for `newsrec demo-data`: fictional headline and abstract building blocks.

Subjects are singular noun phrases, actions third-person singular verb phrases, objects noun
phrases, so any combination within a topic reads as a headline. Details are lowercase clauses for
abstracts, without a final period (the template supplies it). All names are invented.

The words live in package data: `pipeline/data/demo_topics.json` (one object per topic) and
`pipeline/data/demo_templates.json` (headline and abstract templates). Every headline template
names the {entity} (so title entities have an offset) and never starts with {subject}, so lowercase
subjects stay correctly cased. Nothing is read at import time: `TOPICS`, `HEADLINE_TEMPLATES` and
`ABSTRACT_TEMPLATES` are loaded (once) on first access.
"""
from __future__ import annotations

import functools
import json
import string
from dataclasses import dataclass, fields
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from newsrec.pipeline.errors import InputFileError

TOPICS_FILE = "demo_topics.json"
TEMPLATES_FILE = "demo_templates.json"
ENTITY_TYPES = ("P", "O", "G", "E")  # person, organization, geographic place, event
TEMPLATE_FIELDS = frozenset({"entity", "subject", "action", "object", "detail"})

# Resolved lazily by __getattr__ below (annotations only: nothing is bound at import time).
TOPICS: tuple[Topic, ...]
HEADLINE_TEMPLATES: tuple[str, ...]
ABSTRACT_TEMPLATES: tuple[str, ...]


class VocabularyFileError(InputFileError):
    """A demo vocabulary data file that is missing, not JSON, or not in the expected layout."""

    def __init__(self, path: str | Path | Traversable, message: str):
        super().__init__(str(path), None, message)


@dataclass(frozen=True)
class Topic:
    category: str  # MIND category, e.g. "sports"
    subcategory: str  # MIND subcategory, e.g. "football_nfl"
    subjects: tuple[str, ...]  # singular noun phrases that open a clause
    actions: tuple[str, ...]  # third-person singular verb phrases taking an object
    objects: tuple[str, ...]  # noun phrases
    details: tuple[str, ...]  # lowercase clauses for abstracts, no final period
    # (label, type) with type P person, O organization, G geographic place, E event
    entities: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Templates:
    headline: tuple[str, ...]  # str.format templates over entity, subject, action, object
    abstract: tuple[str, ...]  # the same fields plus detail


TOPIC_KEYS = tuple(field.name for field in fields(Topic))  # the keys of every topic object


def load_topics(path: Path | Traversable) -> tuple[Topic, ...]:
    """Read and validate a topics file: a non-empty JSON list of topic objects."""
    data = _read_json(path)
    if not isinstance(data, list) or not data:
        raise VocabularyFileError(path, "expected a non-empty JSON list of topic objects")
    return tuple(_topic(path, i, item) for i, item in enumerate(data))


def load_templates(path: Path | Traversable) -> Templates:
    """Read and validate a templates file: {"headline": [...], "abstract": [...]}."""
    data = _read_json(path)
    if not isinstance(data, dict) or set(data) != {"headline", "abstract"}:
        raise VocabularyFileError(path, 'expected a JSON object with exactly the keys "headline" and "abstract"')
    templates = Templates(_strings(path, "headline", data["headline"]), _strings(path, "abstract", data["abstract"]))
    for text in templates.headline + templates.abstract:
        _check_template(path, text, must_name_entity=text in templates.headline)
    return templates


def _check_template(path: Path | Traversable, text: str, must_name_entity: bool) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as error:
        raise VocabularyFileError(path, f"template {text!r} is not a valid format string: {error}") from error
    if not names <= TEMPLATE_FIELDS:
        raise VocabularyFileError(path, f"template {text!r} uses unknown fields {sorted(names - TEMPLATE_FIELDS)}; "
                                        f"allowed: {sorted(TEMPLATE_FIELDS)}")
    if must_name_entity and "entity" not in names:
        raise VocabularyFileError(path, f"headline template {text!r} must name {{entity}}")


def _read_json(path: Path | Traversable) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise VocabularyFileError(path, f"cannot read the file: {error}") from error
    except json.JSONDecodeError as error:
        raise VocabularyFileError(path, f"not valid JSON: {error}") from error


def _topic(path: Path | Traversable, index: int, item: Any) -> Topic:
    where = f"topic {index}"
    if not isinstance(item, dict):
        raise VocabularyFileError(path, f"{where} must be a JSON object, found {type(item).__name__}")
    missing, unknown = [k for k in TOPIC_KEYS if k not in item], sorted(set(item) - set(TOPIC_KEYS))
    if missing or unknown:
        raise VocabularyFileError(path, f"{where} has missing keys {missing} and unknown keys {unknown}; "
                                        f"expected exactly {list(TOPIC_KEYS)}")
    for key in ("category", "subcategory"):
        if not isinstance(item[key], str) or not item[key]:
            raise VocabularyFileError(path, f"{where}: {key!r} must be a non-empty string")
    where = f"topic {index} ({item['category']}/{item['subcategory']})"
    entities = item["entities"]
    if not isinstance(entities, list) or not entities or not all(_is_entity(e) for e in entities):
        raise VocabularyFileError(path, f"{where}: 'entities' must be a non-empty list of [label, type] pairs "
                                        f"with type one of {list(ENTITY_TYPES)}")
    words = {key: _strings(path, f"{where}: {key!r}", item[key])
             for key in ("subjects", "actions", "objects", "details")}
    return Topic(item["category"], item["subcategory"], **words,
                 entities=tuple((label, kind) for label, kind in entities))


def _is_entity(entity: Any) -> bool:
    return (isinstance(entity, list) and len(entity) == 2 and isinstance(entity[0], str) and bool(entity[0])
            and entity[1] in ENTITY_TYPES)


def _strings(path: Path | Traversable, where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise VocabularyFileError(path, f"{where} must be a non-empty list of non-empty strings")
    return tuple(value)


def data_file(name: str) -> Traversable:
    """The packaged data file `pipeline/data/<name>`."""
    return resources.files("newsrec.pipeline") / "data" / name


@functools.lru_cache(maxsize=None)
def packaged_topics() -> tuple[Topic, ...]:
    """The packaged topics, read and validated once."""
    return load_topics(data_file(TOPICS_FILE))


@functools.lru_cache(maxsize=None)
def packaged_templates() -> Templates:
    """The packaged headline and abstract templates, read and validated once."""
    return load_templates(data_file(TEMPLATES_FILE))


def __getattr__(name: str) -> Any:
    if name == "TOPICS":
        return packaged_topics()
    if name == "HEADLINE_TEMPLATES":
        return packaged_templates().headline
    if name == "ABSTRACT_TEMPLATES":
        return packaged_templates().abstract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "TOPICS", "HEADLINE_TEMPLATES", "ABSTRACT_TEMPLATES"})
