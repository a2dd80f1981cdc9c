"""The tiny UNBERT the Java tests load (vespa-app/src/test/resources/reranker/): exported by the pipeline's own
`export_onnx`, with cases (title pieces, history pieces, onnxruntime's score) the Java global phase must match.

    python3 tests/reranker_fixture.py   # rewrites unbert.onnx and cases.json (tests/test_unbert.py checks them)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "vespa-app" / "src" / "test" / "resources" / "reranker"
TITLE_TOKENS, HISTORY_TOKENS = 32, 128  # the schemas' title_tokens and history_tokens
VOCAB = 1200


def tiny_unbert(seed: int = 0, **changes):
    from transformers import BertConfig

    from newsrec.pipeline.models.unbert import UNBERT, UNBERTConfig, _plain

    lm = BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=192).to_dict()
    torch.manual_seed(seed)
    values = dict(lm=_plain(lm), title_tokens=TITLE_TOKENS, history_tokens=HISTORY_TOKENS, history_news=50,
                  dropout=0.0)
    return UNBERT(UNBERTConfig(**{**values, **changes})).eval()


def cases(count: int = 6, seed: int = 1) -> list[dict]:
    """Titles of 1..32 pieces; histories from empty to a full 128 ([NSEP] = 1 before each title)."""
    rng = np.random.default_rng(seed)
    result = []
    for case in range(count):
        title = rng.integers(1000, VOCAB, int(rng.integers(1, TITLE_TOKENS + 1))).tolist()
        history = []
        for _ in range([0, 1, 3, 6, 12, 20][case % 6]):
            history += [1] + rng.integers(1000, VOCAB, int(rng.integers(3, 15))).tolist()
        history = history[:HISTORY_TOKENS]
        result.append({"title_tokens": title + [0] * (TITLE_TOKENS - len(title)),
                       "history_tokens": history + [0] * (HISTORY_TOKENS - len(history))})
    return result


def scored_cases(onnx_path: Path) -> list[dict]:
    from newsrec.pipeline.reranker import OnnxReranker

    runtime = OnnxReranker(onnx_path, TITLE_TOKENS, HISTORY_TOKENS)
    return [{**case, "score": float(runtime.scores(np.array([case["title_tokens"]]), np.array(case["history_tokens"]))[0])}
            for case in cases()]


def write(directory: Path = FIXTURE_DIR) -> None:
    from newsrec.pipeline.reranker import export_onnx

    directory.mkdir(parents=True, exist_ok=True)
    parity = export_onnx(tiny_unbert(), directory / "unbert.onnx")
    (directory / "cases.json").write_text(json.dumps({"cases": scored_cases(directory / "unbert.onnx")}, indent=1) + "\n")
    print(f"wrote {directory}: parity over {parity.samples} samples, max difference {parity.max_difference:.2e}")


if __name__ == "__main__":
    write()
