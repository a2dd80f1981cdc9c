"""Model kinds by name, their configs from a vocabulary, and self-describing checkpoints."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from pipeline.errors import NewsrecError
from pipeline.features import Vocabulary
from pipeline.models.content import ContentConfig, ContentModel
from pipeline.models.layers import NewsEncoderConfig
from pipeline.models.meanpool import MeanPoolConfig, MeanPoolModel
from pipeline.models.mf import MatrixFactorization, MFConfig
from pipeline.models.unirec import UniRec, UniRecConfig

MODELS = {"unirec": (UniRec, UniRecConfig), "content": (ContentModel, ContentConfig),
          "mf": (MatrixFactorization, MFConfig), "meanpool": (MeanPoolModel, MeanPoolConfig)}
CHECKPOINT_FILE = "model.pt"


class CheckpointError(NewsrecError):
    """A checkpoint that cannot be loaded."""


def new_config(kind: str, vocab: Vocabulary, dim: int, text_dim: int, finetune_layers: int = 0,
               text_model: str = "default"):
    if kind not in MODELS:
        raise NewsrecError(f"unknown model {kind!r}; choose one of {', '.join(MODELS)}")
    news = NewsEncoderConfig(text_dim=text_dim, num_categories=vocab.size("categories"),
                             num_subcategories=vocab.size("subcategories"), num_entities=vocab.size("entities"),
                             dim=dim, finetune_layers=finetune_layers, text_model=text_model)
    return {"unirec": lambda: UniRecConfig(news=news),
            "content": lambda: ContentConfig(news=news, num_users=vocab.size("users")),
            "mf": lambda: MFConfig(num_users=vocab.size("users"), num_news=vocab.size("news"), dim=dim),
            "meanpool": lambda: MeanPoolConfig(news=news)}[kind]()


def build_model(kind: str, config) -> torch.nn.Module:
    return MODELS[kind][0](config)


def config_from_dict(kind: str, values: dict):
    config_class = MODELS[kind][1]
    if "news" in values:
        values = {**values, "news": NewsEncoderConfig(**values["news"])}
    return config_class(**values)


def save_checkpoint(directory: str | Path, kind: str, model: torch.nn.Module, vocab: Vocabulary,
                    extra: dict) -> Path:
    """Weights of the unwrapped module + model config + vocabularies + serving dimension + `extra`."""
    path = Path(directory) / CHECKPOINT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "newsrec-checkpoint-1", "kind": kind, "config": asdict(model.config),
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "vocab": asdict(vocab), "dim": serving_dim(model), **extra}, path)
    return path


def load_checkpoint(directory: str | Path) -> tuple[torch.nn.Module, Vocabulary, dict]:
    path = Path(directory)
    path = path / CHECKPOINT_FILE if path.is_dir() else path
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint (train one with `newsrec train`)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a corrupt file
        raise CheckpointError(f"{path}: not a newsrec checkpoint ({error})") from None
    if saved.get("format") != "newsrec-checkpoint-1" or saved.get("kind") not in MODELS:
        raise CheckpointError(f"{path}: not a newsrec checkpoint")
    model = build_model(saved["kind"], config_from_dict(saved["kind"], saved["config"]))
    model.load_state_dict(saved["state_dict"])
    return model.eval(), Vocabulary(**saved["vocab"]), saved


def serving_dim(model: torch.nn.Module) -> int:
    config = model.config
    return config.news.dim if hasattr(config, "news") else config.dim
