"""Saving and loading a trained encoder as one self-contained file (``model.pt``)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from phyloclr import __version__
from phyloclr.errors import InputError
from phyloclr.fsutil import atomic_path
from phyloclr.models.alphabet import Alphabet, get_alphabet
from phyloclr.models.build import build_encoder
from phyloclr.models.encoders import Encoder, EncoderSpec

MODEL_FORMAT = "phyloclr-model"
MODEL_FORMAT_VERSION = 1


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same directory, fsync, then rename over ``path``:
    a reader (or a crash) never sees a half-written file."""
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


def safe_torch_load(path: Path, what: str) -> Any:
    """``torch.load`` of a file that may come from someone else: tensors and plain data only
    (``weights_only=True``), so a pickle that would run code is refused, never executed.

    Raises InputError naming ``path``: refused (it holds other objects) or unreadable
    (truncated, corrupt, not a torch file).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln for ln in str(exc).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
        why = f" ({lines[0].strip().rstrip('.')})" if lines else ""
        raise InputError(
            path,
            f"refused to load this {what}: it holds objects other than tensors and plain data, "
            f"which could run code{why}",
        ) from exc
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        raise InputError(
            path, f"not a readable {what} (truncated or corrupt?): {type(exc).__name__}: {first}"
        ) from exc


def weights_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 (first 16 hex) of the weights, independent of file layout."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        h.update(key.encode())
        buf = io.BytesIO()
        torch.save(state_dict[key].detach().cpu().contiguous(), buf)
        h.update(buf.getvalue())
    return h.hexdigest()[:16]


@dataclass
class LoadedModel:
    """An encoder ready for inference, with what it was trained with."""

    encoder: Encoder
    alphabet: Alphabet
    name: str
    weights_sha256: str
    config: dict[str, Any]
    step: int


def save_model(
    path: Path,
    encoder: Encoder,
    alphabet: Alphabet,
    config_json: str,
    step: int,
    name: str,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Write the encoder's weights and what it was trained with; ``dtype`` stores the learned
    parameters (buffers such as the idf stay as they are); loading computes in float32."""
    params = {k for k, _ in encoder.named_parameters()}
    state = {
        k: v.detach().cpu().to(dtype) if k in params else v.detach().cpu()
        for k, v in encoder.state_dict().items()
    }
    atomic_torch_save(
        {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "phyloclr_version": __version__,
            "name": name,
            "alphabet": alphabet.name,
            "encoder": dataclasses.asdict(encoder.spec),
            "state_dict": state,
            "weights_sha256": weights_hash(state),
            "config": json.loads(config_json),
            "step": step,
        },
        path,
    )


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedModel:
    """Load ``model.pt`` (or a run directory holding one) into an eval-mode encoder."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    if not p.is_file():
        raise InputError(p, "no such model file (expected RUN_DIR/model.pt)")
    blob = safe_torch_load(p, "phyloclr model")
    if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
        raise InputError(p, "not a phyloclr model file")
    if int(blob["format_version"]) > MODEL_FORMAT_VERSION:
        raise InputError(p, "model file is from a newer phyloclr; upgrade phyloclr")
    alphabet = get_alphabet(blob["alphabet"])
    spec = EncoderSpec(**blob["encoder"])
    encoder = build_encoder(spec, alphabet.size)
    encoder.load_state_dict(blob["state_dict"])
    encoder.to(device).eval()
    return LoadedModel(
        encoder=encoder,
        alphabet=alphabet,
        name=str(blob.get("name", p.parent.name)),
        weights_sha256=str(blob["weights_sha256"]),
        config=dict(blob["config"]),
        step=int(blob["step"]),
    )
