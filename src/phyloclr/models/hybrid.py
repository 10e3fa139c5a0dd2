"""A residue CNN with an appended k-mer sketch: ``model.encoder: cnn`` with ``model.sketch``.

The CNN learns from evolution what a fixed k-mer vector cannot (substitution-tolerant local
features); the sketch keeps what counting already does well on families no model saw. In eval
mode the embedding is the two side by side, unit-normed and scaled so that its cosine is
``(1 − sketch_weight)`` × the CNN's + ``sketch_weight`` × the sketch's
(:func:`phyloclr.models.spectrum.side_by_side`); training sees the CNN alone, so the loss and
the projection head are the CNN's. The sketch's idf and mean row are fitted on the training
corpus (``fit_idf``) and saved with the weights. Sequences are embedded whole, never windowed
(the sketch counts the whole sequence; the CNN has no context limit).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from phyloclr.models.encoders import DilatedCNN, EncoderSpec
from phyloclr.models.spectrum import appended_sketch, side_by_side


class SketchedCNN(DilatedCNN):
    """:class:`~phyloclr.models.encoders.DilatedCNN` (B, L) → (B, dim), plus in eval mode the
    count sketch of ``spec.sketch`` → (B, dim + sketch_dim)."""

    windowed = False

    def __init__(self, spec: EncoderSpec, vocab: int):
        if not spec.sketch:
            raise ValueError("SketchedCNN needs spec.sketch (the spectra of its sketch)")
        super().__init__(spec, vocab)
        self.branch = appended_sketch(spec, vocab)

    @property
    def dim(self) -> int:
        """Width of the embedding users get (the CNN's, plus the appended sketch's)."""
        return self.spec.dim + self.spec.sketch_dim

    @property
    def residue_dim(self) -> int:
        """Width of the per-residue features (the CNN's alone)."""
        return self.spec.dim

    def fit_idf(self, seqs: Sequence[str], pairs: np.ndarray | None = None) -> None:
        """The sketch's idf and mean row from a corpus (see ``KmerSpectrum.fit_idf``)."""
        self.branch.fit_idf(seqs, pairs)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = super().forward(tokens, mask)
        if self.training:
            return x
        return side_by_side(x, self.branch(tokens), self.spec.sketch_weight)
