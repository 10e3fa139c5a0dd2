"""Embedding sequences with a trained encoder (library core; the HDF5 job builds on it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from phyloclr.models.alphabet import Alphabet
from phyloclr.models.encoders import Encoder

Progress = Callable[[str, int, int | None], None]


def _windows(length: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Start/end of overlapping windows covering [0, length)."""
    if length <= window:
        return [(0, length)]
    step = max(1, window - overlap)
    starts = list(range(0, max(1, length - window) + 1, step))
    if starts[-1] + window < length:
        starts.append(length - window)
    return [(s, s + window) for s in starts]


@torch.no_grad()
def embed_sequences(
    encoder: Encoder,
    alphabet: Alphabet,
    seqs: Sequence[str],
    *,
    batch_tokens: int = 32768,
    window: int | None = None,
    overlap: int = 128,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> tuple[np.ndarray, int]:
    """Pooled embeddings (N, D) float32 in input order, and how many sequences were windowed.

    Sequences longer than ``window`` (default: the encoder's ``max_len``) are cut into
    overlapping windows whose residue features are mean-pooled together, weighted by
    residues, never truncated. Windows are batched by length under ``batch_tokens``.
    """
    encoder.eval()
    window = window or encoder.spec.max_len
    pieces: list[tuple[int, int, int]] = []  # (sequence index, start, end)
    n_windowed = 0
    for i, s in enumerate(seqs):
        spans = _windows(len(s), window, min(overlap, window // 2))
        n_windowed += len(spans) > 1
        pieces.extend((i, a, b) for a, b in spans)
    order = sorted(range(len(pieces)), key=lambda k: pieces[k][2] - pieces[k][1])
    dim = encoder.dim
    sums = np.zeros((len(seqs), dim), dtype=np.float64)
    counts = np.zeros(len(seqs), dtype=np.float64)
    done = 0
    k = 0
    while k < len(order):
        longest = pieces[order[k]][2] - pieces[order[k]][1]
        batch = [order[k]]
        k += 1
        while k < len(order):
            length = pieces[order[k]][2] - pieces[order[k]][1]
            if (len(batch) + 1) * max(longest, length) > batch_tokens:
                break
            batch.append(order[k])
            longest = max(longest, length)
            k += 1
        texts = [seqs[pieces[j][0]][pieces[j][1] : pieces[j][2]] for j in batch]
        tokens = alphabet.batch(texts).to(device)
        mask = tokens != 0
        pooled = encoder(tokens, mask).float().cpu().numpy()
        weights = mask.sum(1).cpu().numpy().astype(np.float64)
        for row, j in enumerate(batch):
            idx = pieces[j][0]
            sums[idx] += pooled[row] * weights[row]
            counts[idx] += weights[row]
        done += len(batch)
        if progress is not None:
            progress("embedding", done, len(pieces))
    emb = sums / np.maximum(counts, 1.0)[:, None]
    return emb.astype(np.float32), n_windowed
