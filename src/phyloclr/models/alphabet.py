"""Tokenisers for protein and nucleotide sequences (recorded by name in every checkpoint)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

PAD, MASK, UNK = 0, 1, 2
N_SPECIAL = 3  # letters get token ids from N_SPECIAL on
#: the character mutation views write for a masked residue
MASK_CHAR = "#"
_SPECIAL = ("<pad>", "<mask>", "<unk>")


@dataclass(frozen=True)
class Alphabet:
    """A tokeniser: ``letters`` get ids from 3 on; ``aliases`` map ambiguity codes to letters.

    Unknown and ambiguous residues (X, N, B, Z, ...) become ``<unk>`` unless aliased.
    """

    name: str
    letters: str
    aliases: tuple[tuple[str, str], ...] = ()

    @property
    def size(self) -> int:
        return len(_SPECIAL) + len(self.letters)

    @property
    def tokens(self) -> list[str]:
        return list(_SPECIAL) + list(self.letters)

    def _table(self) -> np.ndarray:
        table = np.full(256, UNK, dtype=np.int64)
        for i, ch in enumerate(self.letters):
            table[ord(ch)] = i + len(_SPECIAL)
            table[ord(ch.lower())] = i + len(_SPECIAL)
        for src, dst in self.aliases:
            table[ord(src)] = table[ord(dst)]
            table[ord(src.lower())] = table[ord(dst)]
        table[ord(MASK_CHAR)] = MASK
        return table

    def encode(self, seq: str) -> np.ndarray:
        """(L,) int64 token ids."""
        raw = np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)
        return _TABLES.setdefault(self.name, self._table())[raw]

    def batch(self, seqs: Sequence[str], max_len: int | None = None) -> torch.Tensor:
        """(B, L) padded token ids, L = longest sequence (capped at ``max_len``)."""
        longest = max((len(s) for s in seqs), default=0)
        width = longest if max_len is None else min(longest, max_len)
        out = np.zeros((len(seqs), max(width, 1)), dtype=np.int64)
        for i, s in enumerate(seqs):
            ids = self.encode(s[:width])
            out[i, : len(ids)] = ids
        return torch.from_numpy(out)


_TABLES: dict[str, np.ndarray] = {}

PROTEIN = Alphabet("protein", "ACDEFGHIKLMNPQRSTVWY", aliases=(("U", "C"), ("O", "K")))
DNA = Alphabet("dna", "ACGT", aliases=(("U", "T"),))
ALPHABETS = {"protein": PROTEIN, "dna": DNA}


def get_alphabet(name: str) -> Alphabet:
    try:
        return ALPHABETS[name]
    except KeyError:
        raise ValueError(f"unknown alphabet {name!r}; choose from {sorted(ALPHABETS)}") from None
