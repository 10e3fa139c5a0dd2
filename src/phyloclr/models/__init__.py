"""Alphabets, encoders, heads and critics."""

from phyloclr.models.alphabet import ALPHABETS, DNA, PROTEIN, Alphabet, get_alphabet
from phyloclr.models.build import ENCODERS, build_encoder
from phyloclr.models.critics import CRITICS, build_critic
from phyloclr.models.encoders import Encoder, EncoderSpec
from phyloclr.models.heads import ProjectionHead

__all__ = [
    "ALPHABETS",
    "CRITICS",
    "DNA",
    "ENCODERS",
    "PROTEIN",
    "Alphabet",
    "Encoder",
    "EncoderSpec",
    "ProjectionHead",
    "build_critic",
    "build_encoder",
    "get_alphabet",
]
