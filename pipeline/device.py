"""Where tensors live and in which precision: CUDA with bf16 autocast when present, CPU otherwise."""
from __future__ import annotations

import torch


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when present (and asked for), else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA; a no-op context on CPU (float32 there, bit-for-bit reproducible)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
