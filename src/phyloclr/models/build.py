"""The encoder registry (``model.encoder`` name → class) and building an encoder from its spec.

Its own module so that encoders.py (the base class, CNN, transformer) and spectrum.py (the
k-mer spectrum encoder, a subclass) do not import each other."""

from __future__ import annotations

from phyloclr.models.encoders import DilatedCNN, Encoder, EncoderSpec, Transformer
from phyloclr.models.hybrid import SketchedCNN
from phyloclr.models.spectrum import KmerSpectrum

ENCODERS: dict[str, type[Encoder]] = {
    "cnn": DilatedCNN,
    "transformer": Transformer,
    "kmer": KmerSpectrum,
}


def build_encoder(spec: EncoderSpec, vocab: int) -> Encoder:
    """The encoder ``spec.name`` names, built from ``spec`` for a vocabulary of ``vocab`` tokens
    (a CNN with ``spec.sketch`` is a :class:`~phyloclr.models.hybrid.SketchedCNN`)."""
    try:
        cls = ENCODERS[spec.name]
    except KeyError:
        raise ValueError(f"unknown encoder {spec.name!r}; choose from {sorted(ENCODERS)}") from None
    if cls is DilatedCNN and spec.sketch:
        cls = SketchedCNN
    return cls(spec, vocab)
