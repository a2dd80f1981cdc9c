"""A cross-encoder re-ranker (UNBERT) as an ONNX model: export, parity check, and scoring with onnxruntime.

The exported graph is the model's scorer: (input_ids, attention_mask, token_type_ids), each (R, L) int64, to
`score` (R,) float32 — the standard inputs Vespa's tokenInputIds / tokenAttentionMask / tokenTypeIds build in
a global-phase rank profile. `OnnxReranker` builds the same inputs from a news item's title pieces and a
user's history pieces (what the documents carry) and runs the graph: the embedded index's global phase.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from newsrec.pipeline.errors import NewsrecError
from newsrec.pipeline.models.unbert import token_input_ids

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "score"
ONNX_FILE = "unbert.onnx"
PARITY_TOLERANCE = 1e-4  # |onnxruntime - torch| allowed per score


class RerankerError(NewsrecError):
    """The re-ranker cannot be exported, loaded or run (wrong model kind, parity lost, bad inputs)."""


@dataclass(frozen=True)
class Parity:
    samples: int
    max_difference: float


def reranker_of(model):
    """The model's exportable scorer, or a clear error for a model that is not a cross-encoder."""
    scorer = getattr(model, "scorer", None)
    if model.user_is_cacheable or scorer is None:
        raise RerankerError(f"{type(model).__name__} is not a cross-encoder re-ranker: only UNBERT exports to ONNX")
    return scorer


def export_onnx(model, out: str | Path, samples: int = 16, seed: int = 0) -> Parity:
    """Write the model's scorer to `out` (ONNX, batch and length dynamic) and check onnxruntime against torch on
    `samples` random valid inputs; raises RerankerError past PARITY_TOLERANCE."""
    scorer = reranker_of(model).eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = sample_inputs(model.config, samples, seed)
    axes = {name: {0: "rows", 1: "length"} for name in INPUTS} | {OUTPUT: {0: "rows"}}
    partial = out.with_name(out.name + ".partial")
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused encoder-layer kernel has no ONNX export
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on transformers' code paths: parity decides
            torch.onnx.export(scorer, example, str(partial), input_names=list(INPUTS), output_names=[OUTPUT],
                              dynamic_axes=axes, opset_version=17, dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    partial.replace(out)  # never a half-written model under the final name
    return check_parity(model, out, example)


def check_parity(model, path: str | Path, inputs: tuple[torch.Tensor, ...]) -> Parity:
    """onnxruntime's scores of `inputs` against torch's, per row (batch of 1, as Vespa runs it) and batched."""
    scorer = reranker_of(model).eval()
    with torch.no_grad():
        expected = scorer(*inputs).numpy()
    runtime = OnnxReranker(path, model.config.title_tokens, model.config.history_tokens)
    batched = runtime.run(*(t.numpy() for t in inputs))
    single = np.concatenate([runtime.run(*(t[i:i + 1].numpy() for t in inputs)) for i in range(len(expected))])
    difference = float(max(np.abs(batched - expected).max(), np.abs(single - expected).max()))
    if not difference <= PARITY_TOLERANCE:
        raise RerankerError(f"{path}: onnxruntime differs from torch by {difference:.2e} (> {PARITY_TOLERANCE})")
    return Parity(len(expected), difference)


def sample_inputs(config, rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random valid (ids, mask, types) of L = config.sequence_length: titles and histories of random lengths
    (empty histories included), built as Vespa builds them."""

    generator = torch.Generator().manual_seed(seed)
    vocab = int(config.lm.get("vocab_size", 1000))
    low = min(1000, vocab // 2)  # ordinary word pieces, past the special ones

    def pieces(width: int, marker: bool) -> torch.Tensor:
        lengths = torch.randint(0, width + 1, (rows,), generator=generator)
        lengths[0] = width  # one row fills its budget
        ids = torch.randint(low, vocab, (rows, width), generator=generator)
        if marker:
            ids[torch.rand(rows, width, generator=generator) < 0.15] = config.nsep_token
            ids[:, 0] = config.nsep_token
        return ids * (torch.arange(width)[None, :] < lengths[:, None])

    titles = pieces(config.title_tokens, marker=False)
    titles[:, 0] = titles[:, 0].clamp(min=low)  # a title has at least one piece
    return token_input_ids(config.sequence_length, titles, pieces(config.history_tokens, marker=True))


class OnnxReranker:
    """onnxruntime over an exported re-ranker; scores candidates from the pieces the documents carry."""

    def __init__(self, model: str | Path | bytes, title_tokens: int, history_tokens: int, threads: int = 0,
                 name: str = "the re-ranker"):
        """`model`: an .onnx file, or its bytes (`name` then says where they came from in errors)."""
        import onnxruntime

        if not isinstance(model, bytes):
            name, model = str(model), Path(model)
            if not model.is_file():
                raise RerankerError(f"{model}: no ONNX re-ranker (export one with `newsrec app export-reranker`)")
            model = str(model)
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for a corrupt file
            raise RerankerError(f"{name}: not a loadable ONNX model ({error})") from None
        names = tuple(i.name for i in self.session.get_inputs())
        if names != INPUTS or [o.name for o in self.session.get_outputs()] != [OUTPUT]:
            raise RerankerError(f"{name}: inputs {names} / outputs {[o.name for o in self.session.get_outputs()]}, "
                                f"expected {INPUTS} -> {OUTPUT}")
        self.title_tokens, self.history_tokens = title_tokens, history_tokens
        self.length = title_tokens + history_tokens + 3

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        feeds = {name: np.ascontiguousarray(value, dtype=np.int64)
                 for name, value in zip(INPUTS, (input_ids, attention_mask, token_type_ids))}
        return self.session.run([OUTPUT], feeds)[0].astype(np.float32)

    def scores(self, titles: np.ndarray, history: np.ndarray) -> np.ndarray:
        """(N,) click scores of N candidates' title pieces (N, title_tokens) against one history (history_tokens,)."""

        titles = np.asarray(titles, dtype=np.int64).reshape(-1, self.title_tokens)
        history = np.asarray(history, dtype=np.int64).reshape(1, self.history_tokens)
        if len(titles) == 0:
            return np.zeros(0, dtype=np.float32)
        inputs = token_input_ids(self.length, torch.from_numpy(titles),
                                 torch.from_numpy(np.repeat(history, len(titles), axis=0)))
        width = max(1, int(inputs[1].sum(1).max()))  # the padding after the longest row changes no score
        return self.run(*(t[:, :width].numpy() for t in inputs))
