"""Families of homologous sequences: reading, building from corpora, aligning, distances."""

from phyloclr.families.build import build_families
from phyloclr.families.config import FamiliesConfig
from phyloclr.families.model import Family, FamilySet

__all__ = ["FamiliesConfig", "Family", "FamilySet", "build_families"]
