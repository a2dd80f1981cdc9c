"""Runtimes for the frozen language model's forward pass (the news encoder of `pipeline.text_encoder`):

- "torch": PyTorch float32 (bf16 autocast on CUDA); the default;
- "torch-int8": PyTorch dynamic quantization of every nn.Linear to int8 (weights int8 per output channel,
  activations quantized per batch), CPU only;
- "onnx": ONNX Runtime float32 (the model exported with batch and length dynamic), CPU;
- "onnx-int8": ONNX Runtime with onnxruntime.quantization's dynamic int8 quantization of that export (weights
  per channel), CPU. Per-channel weights, measured on all-MiniLM-L6-v2 over 64 generated abstracts: mean cosine
  to float32 0.971 (torch) / 0.989 (ONNX Runtime) against 0.934 / 0.954 per tensor.

Each returns the last hidden states (N, T, H) as a float32 tensor for a tokenizer's batch; pooling stays in
`pipeline.text_encoder`. Which one is fastest at equal quality on a machine is measured by
`python3 bench/run.py cpu` (vectors against float32, dev AUC of a trained model fed each runtime's vectors).
"""
from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from newsrec.pipeline.errors import NewsrecError

RUNTIMES = ("torch", "torch-int8", "onnx", "onnx-int8")
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class RuntimeChoiceError(NewsrecError):
    """A runtime that does not exist, or does not run on the chosen device."""


def require_runtime(runtime: str, device: torch.device) -> None:
    if runtime not in RUNTIMES:
        raise RuntimeChoiceError(f"unknown LM runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime != "torch" and device.type != "cpu":
        raise RuntimeChoiceError(f"LM runtime {runtime!r} runs on CPU only (on {device.type} use 'torch', bf16)")


class TorchLM:
    """The PyTorch model (optionally int8-quantized) as a function of a tokenizer's batch."""

    def __init__(self, model: torch.nn.Module, device: torch.device, int8: bool = False):
        model = model.to(device).eval()
        if int8:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.ao's notice that the API moves to torchao
                per_channel = {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
                model = torch.ao.quantization.quantize_dynamic(model, per_channel, dtype=torch.qint8)
        self.model, self.hidden_size = model, model.config.hidden_size

    def __call__(self, tokens: dict) -> torch.Tensor:
        return self.model(**tokens).last_hidden_state


class OnnxLM:
    """The model exported to ONNX (in a temporary directory) and run by ONNX Runtime, optionally int8."""

    def __init__(self, model: torch.nn.Module, int8: bool = False, threads: int = 0):
        import onnxruntime

        self.hidden_size = model.config.hidden_size
        with tempfile.TemporaryDirectory() as scratch:
            path = export(model, Path(scratch) / "lm.onnx")
            if int8:
                from onnxruntime.quantization import QuantType, quantize_dynamic

                quantized = path.with_name("lm.int8.onnx")
                logging.getLogger().disabled = True  # the quantizer's root-logger advice on pre-processing
                try:
                    quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8, per_channel=True)
                finally:
                    logging.getLogger().disabled = False
                path = quantized
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads or torch.get_num_threads()
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, tokens: dict) -> torch.Tensor:
        ids = tokens["input_ids"]
        feeds = {name: tokens.get(name, torch.zeros_like(ids)).cpu().numpy().astype(np.int64) for name in self.inputs}
        return torch.from_numpy(self.session.run(None, feeds)[0])


def export(model: torch.nn.Module, out: Path) -> Path:
    """The model's forward (ids, mask, token types -> last hidden states) as ONNX, batch and length dynamic."""

    class Hidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0  # padding in the example: a trace of an all-ones mask would drop the mask for every batch
    example = (torch.full((2, 8), 1000, dtype=torch.long), mask, torch.zeros(2, 8, dtype=torch.long))
    axes = {name: {0: "rows", 1: "length"} for name in ONNX_INPUTS} | {"hidden": {0: "rows", 1: "length"}}
    was_training = model.training
    wrapper = Hidden(model.cpu()).eval()  # export restores the wrapper's mode afterwards, recursively: keep eval
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on transformers' code paths: parity is tested
            torch.onnx.export(wrapper, example, str(out), input_names=list(ONNX_INPUTS), output_names=["hidden"],
                              dynamic_axes=axes, opset_version=17, dynamo=False)
    finally:
        model.train(was_training)  # the caller's model as it was (a model left in train mode runs dropout)
    return out


def language_model(model: torch.nn.Module, runtime: str, device: torch.device):
    """A callable tokens -> (N, T, H) hidden states, with `.hidden_size`, for `runtime` (see RUNTIMES)."""
    require_runtime(runtime, device)
    if runtime.startswith("onnx"):
        return OnnxLM(model, int8=runtime == "onnx-int8")
    return TorchLM(model, device, int8=runtime == "torch-int8")
