"""Self-describing checkpoints: weights of the unwrapped module, the model's kind and config, the
vocabularies, the text-model settings, the history length and the training report. Inference and
feeding rebuild everything from the checkpoint alone.

    checkpoint = load_checkpoint("runs/unirec")      # runs/unirec/model.pt
    checkpoint.model, checkpoint.vocab, checkpoint.dim, checkpoint.cache_dir
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from newsrec.pipeline.errors import NewsrecError
from newsrec.pipeline.models.contract import NewsRecModel
from newsrec.pipeline.models.registry import MODELS, build_model
from newsrec.pipeline.text_encoder import TextEncoderConfig
from newsrec.pipeline.vocabulary import Vocabulary

CHECKPOINT_FILE = "model.pt"
FORMAT = "newsrec-checkpoint-1"


class CheckpointError(NewsrecError):
    """A checkpoint that cannot be loaded."""


def cache_dir_for(model_dir: str | Path) -> Path:
    """Where the LM vectors of a checkpoint's news are cached: `cache/` beside its directory, so that
    models trained side by side (runs/unirec, runs/mf) share them."""
    return Path(model_dir).parent / "cache"


def checkpoint_exists(model_dir: str | Path) -> bool:
    return (Path(model_dir) / CHECKPOINT_FILE).is_file()


@dataclass(frozen=True, eq=False)
class Checkpoint:
    path: Path  # the model.pt file
    kind: str  # registry name, e.g. "unirec"
    model: NewsRecModel  # on CPU, in eval mode
    vocab: Vocabulary
    text: TextEncoderConfig
    max_history: int  # clicks a user encoder reads (the latest ones)
    dim: int  # the serving dimension D, as stored (checked against the model's at load)
    training: dict  # the training report (config, device, stages with their epochs)

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def cache_dir(self) -> Path:
        return cache_dir_for(self.directory)


def save_checkpoint(directory: str | Path, kind: str, model: NewsRecModel, vocab: Vocabulary,
                    text: TextEncoderConfig, max_history: int, training: dict) -> Path:
    path = Path(directory) / CHECKPOINT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "kind": kind, "config": asdict(model.config),
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "vocab": asdict(vocab), "dim": model.serving_dim, "training": training, "text": asdict(text),
                "max_history": max_history}, path)
    return path


def load_checkpoint(directory: str | Path) -> Checkpoint:
    """The checkpoint in `directory` (or the file itself), its model rebuilt in eval mode on CPU."""
    path = Path(directory)
    path = path / CHECKPOINT_FILE if path.is_dir() else path
    saved = _read(path)
    model = build_model(saved["kind"], saved["config"])
    model.load_state_dict(saved["state_dict"])
    if saved["dim"] != model.serving_dim:
        raise CheckpointError(f"{path}: stores D = {saved['dim']} but its model serves D = {model.serving_dim}")
    return Checkpoint(path, saved["kind"], model.eval(), Vocabulary(**saved["vocab"]),
                      TextEncoderConfig(**saved["text"]), saved["max_history"], saved["dim"], saved["training"])


def _read(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint (train one with `newsrec train`)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a corrupt file
        raise CheckpointError(f"{path}: not a newsrec checkpoint ({error})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or saved.get("kind") not in MODELS:
        raise CheckpointError(f"{path}: not a newsrec checkpoint")
    return saved


def model_version(directory: str | Path) -> str:
    """The checkpoint's version: the first 16 hex digits of the SHA-256 of its model.pt. The index generation (or
    the Vespa package) and a learned ranker trained over its features carry it; serving refuses a mismatch."""
    path = Path(directory)
    path = path / CHECKPOINT_FILE if path.is_dir() else path
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint (train one with `newsrec train`)")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
