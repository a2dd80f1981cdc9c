"""Model kinds by name. Adding a model = its module + one line in `MODELS`.

Entries are "module:Class" and imported on first use, so that listing the kinds (the CLI's choices)
does not import torch. A kind is built either new, from a vocabulary and `ModelSettings` (training),
or from the config a checkpoint stored (loading); configs are frozen dataclasses, nested ones rebuilt
by their type hints.
"""
from __future__ import annotations

import dataclasses
import importlib
import typing
from typing import TYPE_CHECKING

from newsrec.pipeline.errors import NewsrecError

if TYPE_CHECKING:
    from newsrec.pipeline.models.contract import ModelSettings, NewsRecModel
    from newsrec.pipeline.vocabulary import Vocabulary

MODELS: dict[str, str] = {
    "unirec": "newsrec.pipeline.models.unirec:UniRec",
    "content": "newsrec.pipeline.models.content:ContentModel",
    "mf": "newsrec.pipeline.models.mf:MatrixFactorization",
    "meanpool": "newsrec.pipeline.models.meanpool:MeanPoolModel",
    "fum": "newsrec.pipeline.models.fum:FUM",
    "unbert": "newsrec.pipeline.models.unbert:UNBERT",
    "recallnet": "newsrec.pipeline.models.recallnet:Recallnet",
}


class UnknownModelError(NewsrecError):
    """A model kind that is not in the registry."""


def model_class(kind: str) -> type[NewsRecModel]:
    if kind not in MODELS:
        raise UnknownModelError(f"unknown model {kind!r}; choose one of {', '.join(MODELS)}")
    module, name = MODELS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def new_model(kind: str, vocab: Vocabulary, settings: ModelSettings) -> NewsRecModel:
    """A freshly initialized model of `kind`, sized by the vocabulary."""
    cls = model_class(kind)
    model = cls(with_options(cls.config_class.from_vocabulary(vocab, settings), settings.options))
    model.on_new()
    return model


def with_options(config, options: tuple[tuple[str, str], ...]):
    """`config` with top-level fields set from text values, converted to the field's type (int, float, bool,
    str); an unknown field or a value of the wrong type is a NewsrecError naming it."""
    if not options:
        return config
    hints = typing.get_type_hints(type(config))
    changes = {}
    for name, text in options:
        kind = hints.get(name)
        if kind not in (int, float, bool, str):
            settable = ", ".join(f.name for f in dataclasses.fields(config) if hints[f.name] in (int, float, bool, str))
            raise NewsrecError(f"{type(config).__name__} has no option {name!r} (options: {settable})")
        changes[name] = _convert(name, text, kind)
    return dataclasses.replace(config, **changes)


def _convert(name: str, text: str, kind: type):
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise NewsrecError(f"option {name}: {text!r} is not true or false")
        return text.lower() in ("true", "1")
    try:
        return kind(text)
    except ValueError:
        raise NewsrecError(f"option {name}: {text!r} is not a{'n' if kind is int else ''} {kind.__name__}") from None


def build_model(kind: str, config: dict) -> NewsRecModel:
    """A model of `kind` from a config as `dataclasses.asdict` wrote it (weights not loaded)."""
    cls = model_class(kind)
    return cls(config_from_dict(cls.config_class, config))


def config_from_dict(config_class: type, values: dict):
    """Rebuild a (possibly nested) frozen dataclass config from plain values."""
    hints = typing.get_type_hints(config_class)
    unknown = set(values) - {field.name for field in dataclasses.fields(config_class)}
    if unknown:
        raise NewsrecError(f"{config_class.__name__} has no field(s) {', '.join(sorted(unknown))}: "
                           "a checkpoint from another newsrec version?")
    rebuilt = {}
    for field in dataclasses.fields(config_class):
        if field.name not in values:
            continue  # a field added since the checkpoint was written keeps its default
        value, hint = values[field.name], hints[field.name]
        rebuilt[field.name] = config_from_dict(hint, value) if dataclasses.is_dataclass(hint) else value
    return config_class(**rebuilt)
