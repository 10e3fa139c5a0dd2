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


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CUDA GPU that supports it, or a CPU
    with AMX or AVX-512 BF16 instructions (read from /proc/cpuinfo; False where it cannot be
    read). Elsewhere bfloat16 is emulated and slower than float32."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    return bool({"amx_bf16", "avx512_bf16"} & _cpu_flags())


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto' → 'bfloat16' where ``device`` computes it natively, else 'float32'."""
    if name == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    if name not in ("float32", "bfloat16"):
        raise ConfigError(f"unknown precision {name!r}; choose auto, float32 or bfloat16")
    return name
