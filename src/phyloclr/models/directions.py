"""A count sketch less its corpus's top principal directions ("all but the top").

A centred count sketch of k-mer spectra is close to isotropic, but not quite: over a corpus its
few largest principal directions (the top 4 hold 2.4 % of the variance of 20,000 proteins'
unit rows) are k-mer mass that unrelated proteins share, and they lift the cosine of pairs that
are not homologs. Removing them, as is done for word embeddings (Mu and Viswanath, 2018, "All-but-
the-Top"), lifted the default model's zero-shot retrieval on all three development sets
(benchmarks/RESULTS.md, "The sketch less its top principal directions").

After fitting, a sketch row x (B, D) becomes u − (u Vᵀ) V with u = x / ‖x‖ − m: m (D,) is the
mean unit row of a corpus sample and V (r, D) the r top principal directions of its unit rows
about m. The sample is the ``SAMPLE`` corpus sequences with the smallest 64-bit keys
(:func:`phyloclr.models.memory.sequence_keys`), so it does not depend on the corpus's order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from phyloclr.models.alphabet import Alphabet
    from phyloclr.models.encoders import Encoder
    from phyloclr.models.spectrum import KmerSpectrum

#: corpus sequences the directions are fitted on, at most
SAMPLE = 20_000
#: sequences sketched at a time while fitting
BATCH = 256


def sample_sequences(seqs: Sequence[str], size: int = SAMPLE) -> list[str]:
    """At most ``size`` of ``seqs``: those with the smallest sequence keys (ties by position),
    in that order, so the same corpus in any order gives the same sample."""
    from phyloclr.models.memory import sequence_keys

    if len(seqs) <= size:
        return list(seqs)
    keys = sequence_keys(seqs)
    order = np.lexsort((np.arange(len(seqs)), keys))[:size]
    return [seqs[i] for i in order]


def principal_directions(
    rows: np.ndarray, r: int, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) rows → their unit rows' mean m (D,) and the top ``r`` principal directions (r, D)
    of the unit rows about m (largest first): the top eigenvectors of their float64 scatter
    matrix, found by Lanczos iteration (ARPACK, a fixed start) on products with the rows, so
    the (D, D) matrix is never formed (at D = 16,384 it would be 2 GiB, and OpenBLAS's
    product ``x.T @ x`` of 20,000 such rows crashed here). The rows are read ``block`` at a
    time and made unit and centred in float64 there, so memory holds ``rows`` and one block
    in float64 (at 20,000 × 60,000 float32 rows a float64 copy would be another 9.6 GB)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    n, d = rows.shape
    if not 1 <= r < min(n, d):
        raise ValueError(f"{r} directions need more than {r} rows and columns, got ({n}, {d})")

    def unit(start: int) -> np.ndarray:
        x = np.asarray(rows[start : start + block], dtype=np.float64)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    mean = np.zeros(d)
    for start in range(0, n, block):
        mean += unit(start).sum(0)
    mean /= n

    def matvec(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64).ravel()
        out = np.zeros(d)
        for start in range(0, n, block):
            x = unit(start) - mean
            out += x.T @ (x @ v)
        return out

    scatter = LinearOperator((d, d), matvec=matvec, dtype=np.float64)
    values, vecs = eigsh(scatter, k=r, which="LA", v0=np.ones(d))
    vecs = vecs[:, np.argsort(values)[::-1]].T  # largest first
    vecs *= np.where(vecs.sum(1, keepdims=True) < 0, -1.0, 1.0)  # a fixed sign per direction
    return mean, np.ascontiguousarray(vecs)


def remove_directions(
    x: torch.Tensor, mean: torch.Tensor, directions: torch.Tensor
) -> torch.Tensor:
    """(B, D) rows → (B, D): the unit rows less ``mean`` (D,), less their projection on
    ``directions`` (r, D)."""
    u = torch.nn.functional.normalize(x, dim=1) - mean.to(x.dtype)
    v = directions.to(x.dtype)
    return u - (u @ v.T) @ v


def sketch_of(encoder: Encoder) -> KmerSpectrum:
    """The count sketch whose directions ``encoder`` removes: its own map (a k-mer spectrum
    encoder with ``map: sketch``), else its appended sketch (``branch``)."""
    from phyloclr.models.spectrum import KmerSpectrum

    spec = encoder.spec
    if isinstance(encoder, KmerSpectrum) and spec.map == "sketch":
        if spec.sketch or spec.layers != 1:
            raise ValueError("directions need one count sketch and no layers after it")
        return encoder
    branch = getattr(encoder, "branch", None)
    if not isinstance(branch, KmerSpectrum):
        raise ValueError(f"a {type(encoder).__name__} encoder holds no count sketch")
    return branch


def fit_directions(
    encoder: Encoder, alphabet: Alphabet, seqs: Sequence[str], r: int,
    progress: Callable[[int, int], None] | None = None,
) -> None:  # fmt: skip
    """Fit ``r`` top principal directions of the count sketch of ``encoder`` (see
    :func:`sketch_of`) on a sample of ``seqs`` (:func:`sample_sequences`) and make the
    encoder remove them from every row it embeds from now on; its saved architecture records
    them (``spec.sketch_pcs``), so a loaded model removes the same. ``progress(done, total)``
    as the sample is sketched."""
    sketch = sketch_of(encoder)
    if sketch.spec.sketch_pcs:
        raise ValueError("this sketch already removes its top directions")
    sample = sample_sequences(seqs)
    device = next(sketch.buffers()).device
    was = sketch.training
    sketch.eval()
    rows = np.empty((len(sample), sketch.spec.dim), dtype=np.float32)  # filled in place
    with torch.no_grad():
        for start in range(0, len(sample), BATCH):
            tokens = alphabet.batch(sample[start : start + BATCH]).to(device)
            rows[start : start + BATCH] = sketch.embed_features(sketch.features(tokens)).cpu()
            if progress is not None:
                progress(min(start + BATCH, len(sample)), len(sample))
    sketch.train(was)
    mean, directions = principal_directions(rows, r)
    sketch.spec = replace(sketch.spec, sketch_pcs=r)
    if sketch is not encoder:
        encoder.spec = replace(encoder.spec, sketch_pcs=r)
    sketch.register_buffer("direction_mean", torch.from_numpy(mean.astype(np.float32)).to(device))
    sketch.register_buffer("directions", torch.from_numpy(directions.astype(np.float32)).to(device))
