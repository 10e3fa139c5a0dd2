"""Sequence encoders, registered by name: a dilated residual 1D-CNN and a pre-LN transformer.

Every encoder maps tokens (B, L) long with a padding mask (B, L) bool (True = residue) to
per-residue features (B, L, D) and, pooled, to the embedding users get (B, D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from phyloclr.models.alphabet import N_SPECIAL, PAD


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over residues: x (B, L, D), mask (B, L) → (B, D)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class AttentionPool(nn.Module):
    """Softmax-weighted mean over residues with one learned query: (B, L, D) → (B, D)."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        w = torch.softmax(logits.float(), dim=1).to(x.dtype).unsqueeze(-1)
        return (w * x).sum(1)


@dataclass(frozen=True)
class EncoderSpec:
    """Architecture of an encoder (saved in checkpoints)."""

    name: str = "cnn"
    dim: int = 128
    layers: int = 6
    kernel_size: int = 5
    heads: int = 4
    dropout: float = 0.1
    pooling: str = "mean"
    max_len: int = 1024
    kmer: int = 0
    alphabet_letters: int = 20
    spectrum: str = "murphy10:4"
    buckets: int = 0
    hidden: int = 1024
    centre: bool = False
    map: str = "linear"
    sketch: str = ""
    sketch_dim: int = 4096
    sketch_weight: float = 0.5
    sketch_pcs: int = 0  # top principal directions removed from the count sketch (directions.py)
    sketch_exact: bool = False  # the sketch's columns are its table rows, not hashed (dim = rows)
    appended_cnn_dim: int = 0  # a frozen, pretrained residue CNN appended (0: none)
    appended_cnn_layers: int = 6
    appended_cnn_kernel: int = 5
    appended_cnn_weight: float = 0.07
    memory_rows: int = 0  # a neighbour memory of that many corpus embeddings (0: none)
    memory_neighbours: int = 10
    memory_bank_neighbours: int = 0  # > 0: a second-order memory (models/memory.py)
    profile_count: int = 0  # an appended block of that many profile HMMs (models/profiles.py)
    profile_bytes: int = 0  # the size of their packed stream
    profile_weight: float = 0.2
    profile_evalue: float = 0.1
    profile_z: int = 0  # E-values are those of a database of that many sequences


class KmerComposition(nn.Module):
    """Mean of learned k-mer embeddings over a sequence: (B, L) tokens → (B, D).

    At initialisation (Gaussian rows) this is a random projection of the k-mer frequency
    vector, so cosine similarity between sequences starts close to that of k-mer composition,
    a strong baseline the trained encoder should not lose. Windows holding a special token
    (padding, mask, unknown) are skipped.
    """

    def __init__(self, k: int, letters: int, dim: int):
        super().__init__()
        self.k = k
        self.letters = letters
        self.table = nn.Embedding(letters**k + 1, dim, padding_idx=letters**k)
        nn.init.normal_(self.table.weight, std=1.0)
        with torch.no_grad():
            self.table.weight[letters**k].zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, length = tokens.shape
        if length < self.k:
            return self.table.weight.new_zeros(b, self.table.embedding_dim)
        code = tokens - N_SPECIAL
        windows = code.unfold(1, self.k, 1)  # (B, L-k+1, k)
        valid = ((windows >= 0) & (windows < self.letters)).all(-1)
        powers = self.letters ** torch.arange(self.k - 1, -1, -1, device=tokens.device)
        ids = (windows.clamp(0, self.letters - 1) * powers).sum(-1)
        ids = torch.where(valid, ids, torch.full_like(ids, self.letters**self.k))
        summed = self.table(ids).sum(1)
        return summed / valid.sum(1, keepdim=True).clamp_min(1).to(summed.dtype)


class Encoder(nn.Module):
    """Common interface: ``residues(tokens, mask)`` and ``forward(tokens, mask)`` (pooled).

    ``windowed``: whether sequences longer than ``spec.max_len`` are embedded in windows;
    ``per_residue``: whether the encoder has per-residue features.

    The pooled embedding is the pooled residue features plus, when ``spec.kmer`` > 0, a
    learned k-mer composition branch (:class:`KmerComposition`).
    """

    spec: EncoderSpec
    windowed = True
    #: whether ``residues`` gives per-residue features
    per_residue = True

    def __init__(self, spec: EncoderSpec, vocab: int):
        super().__init__()
        self.spec = spec
        self.embed = nn.Embedding(vocab, spec.dim, padding_idx=PAD)
        self.kmer: KmerComposition | None = (
            KmerComposition(spec.kmer, spec.alphabet_letters, spec.dim) if spec.kmer > 0 else None
        )
        if spec.pooling == "attention":
            self.pool: nn.Module | None = AttentionPool(spec.dim)
        elif spec.pooling == "mean":
            self.pool = None
        else:
            raise ValueError(f"unknown pooling {spec.pooling!r}; choose mean or attention")

    @property
    def dim(self) -> int:
        """Width of the pooled embedding."""
        return self.spec.dim

    @property
    def residue_dim(self) -> int:
        """Width of the per-residue features (``residues``)."""
        return self.spec.dim

    def residues(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def input_cosines(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, B) cosines of the encoder's own input vectors (k-mer spectrum encoders only)."""
        raise ValueError(f"the {self.spec.name} encoder has no input vectors to compare")

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            mask = tokens != PAD
        h = self.residues(tokens, mask)
        pooled = masked_mean(h, mask) if self.pool is None else self.pool(h, mask)
        if self.kmer is not None:
            pooled = pooled + self.kmer(tokens).to(pooled.dtype)
        return pooled


class _ConvBlock(nn.Module):
    def __init__(self, dim: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, kernel, dilation=dilation, padding=dilation * (kernel // 2))
        self.ff = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm(x) * mask.unsqueeze(-1)
        h = self.conv(h.transpose(1, 2)).transpose(1, 2)
        return x + self.ff(h)


class DilatedCNN(Encoder):
    """Residual pre-norm 1D-CNN with dilations 1, 2, 4, ... (reset every 4 layers).

    Padding positions are zeroed before every convolution, so the output for a sequence does
    not depend on how much padding its batch needed.
    """

    def __init__(self, spec: EncoderSpec, vocab: int):
        super().__init__(spec, vocab)
        self.blocks = nn.ModuleList(
            _ConvBlock(spec.dim, spec.kernel_size, 2 ** (i % 4), spec.dropout)
            for i in range(spec.layers)
        )
        self.norm = nn.LayerNorm(spec.dim)

    #: run the convolutions and linear layers in bfloat16 (inference only; see
    #: :func:`use_bfloat16`); the features come back as float32
    bf16_inference = False

    def residues(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.bf16_inference and not self.training:
            with torch.autocast(tokens.device.type, dtype=torch.bfloat16):
                return self._residues(tokens, mask).float()
        return self._residues(tokens, mask)

    def _residues(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x) * mask.unsqueeze(-1)


def use_bfloat16(module: nn.Module, on: bool = True) -> None:
    """Run every residue CNN inside ``module`` in bfloat16 at inference (k-mer spectra, sketches
    and pooling stay float32)."""
    for sub in module.modules():
        if isinstance(sub, DilatedCNN):
            sub.bf16_inference = on


def _sinusoid(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


class Transformer(Encoder):
    """A small pre-LN transformer encoder with sinusoidal positions (context ``max_len``)."""

    def __init__(self, spec: EncoderSpec, vocab: int):
        super().__init__(spec, vocab)
        if spec.dim % spec.heads:
            raise ValueError("dim must be divisible by heads")
        layer = nn.TransformerEncoderLayer(
            spec.dim,
            spec.heads,
            dim_feedforward=4 * spec.dim,
            dropout=spec.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, spec.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(spec.dim)
        self.register_buffer("positions", _sinusoid(spec.max_len, spec.dim), persistent=False)

    def residues(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] > self.spec.max_len:
            raise ValueError(
                f"sequence of {tokens.shape[1]} tokens exceeds the context of {self.spec.max_len}"
            )
        positions: torch.Tensor = self.positions  # type: ignore[assignment]
        x = self.embed(tokens) + positions[: tokens.shape[1]].to(self.embed.weight.dtype)
        x = self.layers(x, src_key_padding_mask=~mask)
        return self.norm(x) * mask.unsqueeze(-1)
