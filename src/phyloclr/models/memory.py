"""A neighbour memory: a pretrained model's embeddings smoothed over its training corpus.

Database-side augmentation (α-query expansion with α = 1, as in image retrieval): a model
pretrained on a corpus keeps the corpus's own embeddings (the bank), and an embedding ``x``
becomes ``x + Σ_j max(cos(x, b_j), 0) · b_j`` over its ``k`` nearest bank rows ``b_j``, unit-normed.
A protein of the corpus leaves its own row out, so it is smoothed over the same number of other
proteins as a protein the corpus never held. Homologs that share little sequence but share
neighbours in the corpus move together: on the transductive development sets this lifts
retrieval by 0.011–0.015 mAP (3-seed means, benchmarks/RESULTS.md, "A neighbour memory").

Second order (``bank_neighbours`` > 0; the default's 20): each bank row is first smoothed in the
same way over its ``bank_neighbours`` nearest other rows, so a query reaches its neighbours'
neighbours (a further +0.006–0.008 mAP, RESULTS.md "A second-order memory"). Own rows are then
found by a key of the sequence (:func:`sequence_key`, stored per row), as a smoothed row is no
longer the query's image. A first-order memory (``bank_neighbours`` 0, as model files written
before it hold) keeps raw rows, and a row is the query's own when its cosine is ≥ 0.995.
The bank is stored as int8 rows with a scale per row (a quarter of float32's bytes; for the
default's 4,736 columns the cosines move by 2 × 10⁻⁴ (s.d.), at most 2 × 10⁻³).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from phyloclr.models.encoders import Encoder

#: a raw bank row at least this close to the query is the query itself (or an identical copy)
SELF_COSINE = 0.995
#: nearest rows read beyond ``k`` where own rows are found by key (identical copies included)
SPARE_ROWS = 8
#: queries whose neighbours' rows are gathered and summed at a time
GATHER_BLOCK = 256


def sequence_key(seq: str) -> int:
    """A 64-bit key of a protein sequence (case ignored): the row of the bank it owns."""
    digest = hashlib.blake2b(seq.upper().encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def sequence_keys(seqs: Sequence[str]) -> torch.Tensor:
    """(N,) int64 keys of ``seqs`` (:func:`sequence_key`)."""
    return torch.tensor([sequence_key(s) for s in seqs], dtype=torch.int64)


class NeighbourMemory(nn.Module):
    """A bank of ``rows`` unit embeddings (``dim`` wide) and the smoothing over its
    ``neighbours`` nearest rows; ``bank_neighbours`` > 0: a second-order memory, whose rows
    are keyed by sequence and smoothed by :meth:`smooth_bank` (see the module docstring)."""

    def __init__(self, rows: int, dim: int, neighbours: int, bank_neighbours: int = 0,
                 chunk: int = 4096):  # fmt: skip
        super().__init__()
        if rows < 1 or dim < 1 or neighbours < 1 or bank_neighbours < 0:
            raise ValueError("a neighbour memory needs ≥ 1 row, dimension and neighbour")
        self.size = rows
        self.neighbours = neighbours
        self.bank_neighbours = bank_neighbours
        self.chunk = chunk
        self.register_buffer("bank", torch.zeros(rows, dim, dtype=torch.int8))
        self.register_buffer("scale", torch.zeros(rows))
        # the sequence key of each row (second order only; a first-order file holds none)
        keys = torch.zeros(rows, dtype=torch.int64) if bank_neighbours else None
        self.register_buffer("keys", keys)

    @property
    def keyed(self) -> bool:
        """Whether own rows are found by sequence key (a second-order memory)."""
        return self.keys is not None

    @torch.no_grad()
    def fill(self, emb: torch.Tensor, start: int = 0, keys: torch.Tensor | None = None) -> None:
        """Store ``emb`` (n, dim) as rows ``start`` to ``start + n``, each unit-normed and
        quantised to int8 (a corpus can be filled a block at a time), with their sequence
        ``keys`` (n,) in a keyed memory."""
        bank: torch.Tensor = self.bank  # type: ignore[assignment]
        if emb.ndim != 2 or emb.shape[1] != bank.shape[1] or start + len(emb) > len(bank):
            raise ValueError(
                f"rows of shape {tuple(emb.shape)} at {start} do not fit a bank of shape "
                f"{tuple(bank.shape)}"
            )
        if self.keyed:
            if keys is None or keys.shape != (len(emb),):
                raise ValueError("a second-order memory needs a sequence key per row")
            table_keys: torch.Tensor = self.keys  # type: ignore[assignment]
            table_keys[start : start + len(emb)] = keys.to(table_keys.device)
        unit = F.normalize(emb.float(), dim=1)
        scale = unit.abs().amax(1).clamp_min(1e-12) / 127.0
        bank[start : start + len(emb)] = torch.round(unit / scale[:, None]).to(torch.int8)
        table: torch.Tensor = self.scale  # type: ignore[assignment]
        table[start : start + len(emb)] = scale

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """(…, dim) float32 bank rows at ``idx`` (…)."""
        bank: torch.Tensor = self.bank  # type: ignore[assignment]
        scale: torch.Tensor = self.scale  # type: ignore[assignment]
        return bank[idx].float() * scale[idx].unsqueeze(-1)

    @torch.no_grad()
    def nearest(self, q: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosines and bank rows (B, m) of the ``m`` nearest rows of unit queries ``q`` (B, dim),
        best first; the bank is read ``chunk`` rows at a time."""
        bank: torch.Tensor = self.bank  # type: ignore[assignment]
        scale: torch.Tensor = self.scale  # type: ignore[assignment]
        values, indices = [], []
        for start in range(0, self.size, self.chunk):
            end = start + self.chunk
            block = bank[start:end].float() * scale[start:end, None]
            v, i = (q @ block.T).topk(min(m, len(block)), dim=1)
            values.append(v)
            indices.append(i + start)
        v, j = torch.cat(values, 1).topk(m, dim=1)
        return v, torch.cat(indices, 1).gather(1, j)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """(B, dim) embeddings → (B, dim) unit embeddings smoothed over their nearest rows;
        a keyed memory needs the sequences' ``keys`` (B,) (:func:`sequence_keys`)."""
        if self.keyed and (keys is None or keys.shape != (len(x),)):
            raise ValueError("a second-order memory needs the sequence key of every query")
        return self._smooth_over(F.normalize(x.float(), dim=1), keys, self.neighbours)

    def _smooth_over(self, q: torch.Tensor, keys: torch.Tensor | None, k: int) -> torch.Tensor:
        """Unit queries ``q`` (B, dim) smoothed over their ``k`` nearest rows but their own:
        by ``keys`` (B,) in a keyed memory, else the nearest row when its cosine is ≥
        ``SELF_COSINE`` (one row read beyond ``k`` stands in for it when it is not there)."""
        spare = SPARE_ROWS if self.keyed else 1
        v, idx = self.nearest(q, min(k + spare, self.size))
        if self.keyed:
            table: torch.Tensor = self.keys  # type: ignore[assignment]
            assert keys is not None
            own = table[idx] == keys.to(idx.device)[:, None]
        else:
            own = torch.zeros_like(v, dtype=torch.bool)
            own[:, 0] = v[:, 0] >= SELF_COSINE
        other = ~own
        kept = other & (other.cumsum(1) <= k)  # the first k rows that are not its own
        return self._smoothed(q, torch.where(kept, v.clamp_min(0.0), torch.zeros_like(v)), idx)

    def _smoothed(self, q: torch.Tensor, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """unit(q + Σ_j w_j · row_j) (B, dim) over the rows ``idx`` (B, m), gathered
        ``GATHER_BLOCK`` queries at a time (bounded: (block, m, dim) floats)."""
        out = torch.empty_like(q)
        for s in range(0, len(q), GATHER_BLOCK):
            e = s + GATHER_BLOCK
            out[s:e] = q[s:e] + (w[s:e].unsqueeze(-1) * self.rows(idx[s:e])).sum(1)
        return F.normalize(out, dim=1)

    @torch.no_grad()
    def smooth_bank(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Second order: replace every filled row by itself smoothed over its
        ``bank_neighbours`` nearest other rows (own key left out), all read from the rows as
        they were; ``progress(done, rows)`` after each block."""
        if not self.keyed:
            raise ValueError("only a second-order memory (bank_neighbours > 0) smooths its bank")
        bank: torch.Tensor = self.bank  # type: ignore[assignment]
        raw = NeighbourMemory(self.size, bank.shape[1], self.bank_neighbours,
                              self.bank_neighbours, self.chunk)  # fmt: skip
        raw.to(bank.device).load_state_dict(self.state_dict())
        table: torch.Tensor = self.keys  # type: ignore[assignment]
        for start in range(0, self.size, self.chunk):
            idx = torch.arange(start, min(start + self.chunk, self.size), device=table.device)
            q = F.normalize(raw.rows(idx), dim=1)
            out = raw._smooth_over(q, table[idx], self.bank_neighbours)
            self.fill(out, start, table[idx].clone())
            if progress is not None:
                progress(int(idx[-1]) + 1, self.size)

    def smooth(self, emb: np.ndarray, keys: torch.Tensor | None = None,
               batch: int = 1024) -> np.ndarray:  # fmt: skip
        """(N, dim) float32 array (and, for a keyed memory, the sequences' ``keys`` (N,)) →
        its smoothed rows, ``batch`` queries at a time."""
        bank: torch.Tensor = self.bank  # type: ignore[assignment]
        device = bank.device
        out = np.empty(emb.shape, dtype=np.float32)
        for start in range(0, len(emb), batch):
            part = torch.from_numpy(np.ascontiguousarray(emb[start : start + batch])).to(device)
            part_keys = None if keys is None else keys[start : start + batch]
            out[start : start + len(part)] = self(part, part_keys).cpu().numpy()
        return out


def attach_memory(encoder: Encoder, memory: NeighbourMemory) -> None:
    """Give ``encoder`` the filled ``memory`` of its own embeddings of a corpus (unsmoothed).
    The saved architecture records it (``spec.memory_rows``), so a loaded model smooths as
    this one does."""
    if not hasattr(encoder, "memory"):  # only encoders that rebuild one from their spec
        raise ValueError(f"a {type(encoder).__name__} encoder keeps no neighbour memory")
    if encoder.memory is not None:
        raise ValueError("the encoder already holds a neighbour memory")
    bank: torch.Tensor = memory.bank
    if bank.shape[1] != encoder.dim:
        raise ValueError(f"a memory {bank.shape[1]} wide for embeddings {encoder.dim} wide")
    encoder.spec = replace(encoder.spec, memory_rows=memory.size,
                           memory_neighbours=memory.neighbours,
                           memory_bank_neighbours=memory.bank_neighbours)  # fmt: skip
    encoder.memory = memory.to(next(encoder.buffers()).device)


def detach_memory(encoder: Encoder) -> None:
    """Drop ``encoder``'s neighbour memory, if it has one: its embeddings are then unsmoothed
    (``embed --no-memory``)."""
    if getattr(encoder, "memory", None) is not None:
        encoder.memory = None  # type: ignore[assignment]
