"""Mutation views: the usual SimCLR-style augmentation, for comparison and for singletons.

Protein: each residue is substituted with probability ``substitution_rate`` by b drawn from
BLOSUM62, P(b | a) ∝ 2^(S(a,b)/2) for b ≠ a (the matrix's log-odds in half-bits). DNA:
transitions (A↔G, C↔T) with probability ``transition_rate`` per base and transversions with
``transversion_rate`` (split evenly between the two targets). Then small indels (lengths
1–3) at ``indel_rate`` per position, masking at ``mask_rate`` (the mask token), a random
contiguous crop keeping a fraction in [``crop_min``, 1], and, for DNA, the reverse complement
with probability ``reverse_complement``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phyloclr.models.alphabet import MASK_CHAR

AMINO = "ACDEFGHIKLMNPQRSTVWY"
_TRANSITION = {"A": "G", "G": "A", "C": "T", "T": "C"}
_TRANSVERSIONS = {"A": "CT", "G": "CT", "C": "AG", "T": "AG"}
_COMPLEMENT = str.maketrans("ACGTRYKMBDHVN", "TGCAYRMKVHDBN")


@dataclass(frozen=True)
class MutationConfig:
    """Rates of the mutation views (per residue unless said otherwise)."""

    substitution_rate: float = 0.15
    transition_rate: float = 0.01
    transversion_rate: float = 0.005
    indel_rate: float = 0.0
    mask_rate: float = 0.05
    crop_min: float = 0.8
    reverse_complement: float = 0.0

    def __post_init__(self) -> None:
        for name in ("substitution_rate", "transition_rate", "transversion_rate", "indel_rate",
                     "mask_rate", "reverse_complement"):  # fmt: skip
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if self.transition_rate + self.transversion_rate > 1.0:
            raise ValueError("transition_rate + transversion_rate must be ≤ 1")
        if not 0.0 < self.crop_min <= 1.0:
            raise ValueError(f"crop_min must lie in (0, 1], got {self.crop_min}")


def _blosum_conditional() -> np.ndarray:
    """(20, 20) cumulative P(b | a) from BLOSUM62, zero on the diagonal."""
    from Bio.Align import substitution_matrices

    m = substitution_matrices.load("BLOSUM62")
    probs = np.array([[2.0 ** (m[a][b] / 2.0) if a != b else 0.0 for b in AMINO] for a in AMINO])
    probs /= probs.sum(1, keepdims=True)
    return np.cumsum(probs, axis=1)


class MutationViews:
    """Draw mutated copies of sequences; ``alphabet`` is 'protein' or 'dna'."""

    def __init__(self, config: MutationConfig, alphabet: str):
        self.config = config
        self.alphabet = alphabet
        self._cum = _blosum_conditional() if alphabet == "protein" else None
        self._index = np.full(256, -1, dtype=np.int64)
        for i, ch in enumerate(AMINO):
            self._index[ord(ch)] = i

    def __call__(self, seq: str, rng: np.random.Generator) -> str:
        cfg = self.config
        arr = np.frombuffer(seq.encode("ascii"), dtype=np.uint8).copy()
        if self.alphabet == "protein":
            arr = self._substitute_protein(arr, rng)
        else:
            arr = self._substitute_dna(arr, rng)
        out = arr.tobytes().decode("ascii")
        if cfg.indel_rate > 0:
            out = self._indels(out, rng)
        if cfg.mask_rate > 0:
            chars = np.frombuffer(out.encode("ascii"), dtype=np.uint8).copy()
            chars[rng.random(len(chars)) < cfg.mask_rate] = ord(MASK_CHAR)
            out = chars.tobytes().decode("ascii")
        if cfg.crop_min < 1.0 and len(out) > 1:
            keep = max(1, round(len(out) * rng.uniform(cfg.crop_min, 1.0)))
            start = int(rng.integers(0, len(out) - keep + 1))
            out = out[start : start + keep]
        if self.alphabet == "dna" and rng.random() < cfg.reverse_complement:
            out = out.translate(_COMPLEMENT)[::-1]
        return out

    def _substitute_protein(self, arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        assert self._cum is not None
        idx = self._index[arr]
        hit = (rng.random(len(arr)) < self.config.substitution_rate) & (idx >= 0)
        if hit.any():
            rows = self._cum[idx[hit]]
            u = rng.random(int(hit.sum()))[:, None]
            choice = np.minimum((u > rows).sum(1), len(AMINO) - 1)
            arr[hit] = np.frombuffer(AMINO.encode(), dtype=np.uint8)[choice]
        return arr

    def _substitute_dna(self, arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        u = rng.random(len(arr))
        ti = u < cfg.transition_rate
        tv = (u >= cfg.transition_rate) & (u < cfg.transition_rate + cfg.transversion_rate)
        original = arr.copy()  # decide every site on the original base, not a mutated one
        for base in "ACGT":
            at = original == ord(base)
            arr[at & ti] = ord(_TRANSITION[base])
            sel = np.flatnonzero(at & tv)
            if sel.size:
                targets = np.frombuffer(_TRANSVERSIONS[base].encode(), dtype=np.uint8)
                arr[sel] = targets[rng.integers(0, 2, sel.size)]
        return arr

    def _indels(self, seq: str, rng: np.random.Generator) -> str:
        letters = AMINO if self.alphabet == "protein" else "ACGT"
        sites = np.flatnonzero(rng.random(len(seq)) < self.config.indel_rate)
        if not sites.size:
            return seq
        parts: list[str] = []
        last = 0
        for site in sites.tolist():
            if site < last:
                continue
            size = int(rng.integers(1, 4))
            parts.append(seq[last:site])
            if rng.random() < 0.5:  # deletion
                last = min(len(seq), site + size)
            else:  # insertion
                parts.append("".join(letters[i] for i in rng.integers(0, len(letters), size)))
                parts.append(seq[site])
                last = site + 1
        parts.append(seq[last:])
        out = "".join(parts)
        return out or seq
