"""Choosing the torch device and thread count."""

from __future__ import annotations

import torch

from phyloclr.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' without a GPU is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)
