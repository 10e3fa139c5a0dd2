"""The pretraining config: frozen dataclasses, loaded from YAML presets, saved in checkpoints."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

import yaml

from phyloclr.config import check_literals, config_from_dict
from phyloclr.errors import ConfigError
from phyloclr.families.config import FamiliesConfig
from phyloclr.kmers import REDUCED_ALPHABETS, SPACED_WORDS, parse_spectrum, word_weight
from phyloclr.models.build import ENCODERS
from phyloclr.models.critics import CRITICS
from phyloclr.models.encoders import EncoderSpec
from phyloclr.views.mutation import MutationConfig


def _spectrum_rows(key: str, spectrum: str) -> int:
    """Rows of the unhashed table of ``spectrum`` ('ALPHABET:K,...'), validated; a bad one is
    an error naming ``model.<key>``."""
    try:
        spectra = parse_spectrum(spectrum)
    except ValueError as exc:
        raise ConfigError(f"model.{key}: {exc}") from None
    return sum(len(REDUCED_ALPHABETS[a]) ** word_weight(k) for a, k in spectra)


@dataclass(frozen=True)
class ModelConfig:
    """Encoder architecture and projection head (``projection_dim`` 0: none, the loss sees the
    embedding). ``centre`` (k-mer spectrum encoder only): subtract the training corpus's mean
    input vector before the map, so cosines see what two proteins share beyond the corpus's
    common composition. ``map`` (k-mer spectrum encoder only): 'linear', a learned (V, dim)
    table; 'sketch', a count sketch of the k-mer rows into ``dim`` columns (signed hashing, no
    stored table: a wide embedding at no cost in file size), with one learned weight per
    spectrum. ``sketch`` (k-mer spectrum and CNN encoders; spectra, e.g. 'murphy10:11011'): the
    embedding users get is the trained map's (or CNN's) output and a centred count sketch of
    these spectra (``sketch_dim`` columns), each unit-normed, weighted so that its cosine is
    (1 − ``sketch_weight``) × the map's cosine + ``sketch_weight`` × the sketch's; the loss
    sees the map alone (the sketch is fitted on the corpus, not trained). ``sketch_directions``
    > 0 (with ``map: sketch`` or ``sketch``): after training, that many top principal
    directions of the count sketch's rows over the corpus (a sample of 20,000) are removed from
    every row it embeds (:mod:`phyloclr.models.directions`). ``kmer_weights`` (k-mer
    spectrum encoder only): 'idf', or 'homology', the log-odds that evolution keeps a k-mer in
    a homolog (:func:`phyloclr.kmers.homology_weights`), fitted on up to 10 member pairs of
    every training family. ``append_cnn`` (k-mer spectrum encoder only): a model file, or
    'default' (the default model that ships), whose trained residue CNN is appended, frozen, to
    the embedding at cosine weight ``append_cnn_weight`` (as ``sketch``: not trained here,
    eval mode only; the model file then holds its weights). ``memory_neighbours`` > 0 (k-mer
    spectrum encoder only): after training, the model keeps its embeddings of the training
    corpus (a seeded sample of ``memory_max_rows`` when larger), and embeddings are smoothed
    over their nearest ``memory_neighbours`` of them (:mod:`phyloclr.models.memory`);
    ``memory_bank_neighbours`` > 0: each of those corpus embeddings is first smoothed over its
    nearest that many others (second order; 0: the first-order memory of session 37).
    ``profiles`` (k-mer spectrum encoder only): after training, the families of at least
    ``profile_min_members`` members (the ``profile_max`` largest) become profile HMMs, each
    from a seeded sample of at most ``profile_max_members`` aligned rows, and the embedding
    appends a protein's hits to them at E ≤ ``profile_evalue`` at cosine weight
    ``profile_weight`` (:mod:`phyloclr.models.profiles`; before any memory, which then holds
    them too); each HMM is first rebuilt ``profile_rounds`` times, as rounds of jackhmmer, from
    its best ``profile_round_hits`` hits at E ≤ ``profile_round_evalue`` among the corpus
    sequences the memory takes."""

    encoder: str = "cnn"
    dim: int = 128
    layers: int = 6
    kernel_size: int = 5
    heads: int = 4
    dropout: float = 0.1
    pooling: Literal["mean", "attention"] = "mean"
    max_len: int = 1024
    kmer: int = 0
    spectrum: str = "murphy10:4"
    buckets: int = 0
    hidden: int = 1024
    centre: bool = False
    map: Literal["linear", "sketch"] = "linear"
    sketch: str = ""
    sketch_dim: int = 4096
    sketch_weight: float = 0.5
    sketch_directions: int = 0
    append_cnn: str = ""
    append_cnn_weight: float = 0.07
    kmer_weights: Literal["idf", "homology"] = "idf"
    memory_neighbours: int = 0
    memory_max_rows: int = 50_000
    memory_bank_neighbours: int = 0
    profiles: bool = False
    profile_min_members: int = 3
    profile_max_members: int = 50
    profile_max: int = 2000
    profile_weight: float = 0.2
    profile_evalue: float = 0.1
    profile_rounds: int = 1
    profile_round_evalue: float = 1e-3
    profile_round_hits: int = 100
    projection_dim: int = 128
    projection_hidden: int = 256

    def __post_init__(self) -> None:
        check_literals(self)
        if self.encoder not in ENCODERS:
            raise ConfigError(f"model.encoder {self.encoder!r} is not one of {sorted(ENCODERS)}")
        if self.dim < 1 or self.layers < 1 or self.max_len < 8:
            raise ConfigError("model.dim and model.layers must be ≥ 1, model.max_len ≥ 8")
        if self.projection_dim < 0 or (self.projection_dim and self.projection_hidden < 1):
            raise ConfigError(
                "model.projection_dim must be ≥ 0 (0: no head), projection_hidden ≥ 1"
            )
        if self.encoder == "transformer" and self.dim % self.heads:
            raise ConfigError("model.dim must be divisible by model.heads")
        if self.sketch:
            if self.encoder not in ("kmer", "cnn"):
                raise ConfigError(
                    "model.sketch (an appended sketch) needs model.encoder 'kmer' or 'cnn'"
                )
            if not 0.0 < self.sketch_weight < 1.0 or self.sketch_dim < 1:
                raise ConfigError("model.sketch_weight must lie in (0, 1), sketch_dim be ≥ 1")
            rows = _spectrum_rows("sketch", self.sketch)
            if rows > 1 << 22:  # its idf and mean row are stored per k-mer, as the map's are
                raise ConfigError(
                    f"model.sketch {self.sketch!r} needs {rows:,} rows of idf and mean; "
                    "at most 4,194,304"
                )
        if self.map == "sketch" and (self.encoder != "kmer" or self.buckets):
            raise ConfigError("model.map 'sketch' needs model.encoder 'kmer' and buckets 0")
        if self.sketch_directions < 0:
            raise ConfigError("model.sketch_directions must be ≥ 0")
        if self.sketch_directions and (self.map == "sketch") == bool(self.sketch):
            raise ConfigError(
                "model.sketch_directions needs one count sketch: model.map 'sketch' or "
                "model.sketch, not both"
            )
        if self.sketch_directions and self.map == "sketch" and self.layers != 1:
            raise ConfigError("model.sketch_directions with model.map 'sketch' needs layers 1")
        if self.sketch_directions >= (self.sketch_dim if self.sketch else self.dim):
            raise ConfigError("model.sketch_directions must be fewer than the sketch's columns")
        if self.centre and self.encoder != "kmer":
            raise ConfigError("model.centre needs model.encoder 'kmer' (a mean input vector)")
        if self.kmer_weights != "idf" and self.encoder != "kmer":
            raise ConfigError("model.kmer_weights needs model.encoder 'kmer' (k-mer weights)")
        if self.append_cnn and self.encoder != "kmer":
            raise ConfigError("model.append_cnn needs model.encoder 'kmer'")
        if self.append_cnn and not 0.0 < self.append_cnn_weight < 1.0:
            raise ConfigError("model.append_cnn_weight must lie in (0, 1)")
        if self.memory_neighbours < 0 or self.memory_max_rows < 1:
            raise ConfigError("model.memory_neighbours must be ≥ 0, memory_max_rows ≥ 1")
        if self.memory_neighbours and self.encoder != "kmer":
            raise ConfigError("model.memory_neighbours needs model.encoder 'kmer'")
        if self.memory_bank_neighbours < 0 or (
            self.memory_bank_neighbours and not self.memory_neighbours
        ):
            raise ConfigError(
                "model.memory_bank_neighbours must be ≥ 0, and > 0 only with memory_neighbours"
            )
        if self.profiles and self.encoder != "kmer":
            raise ConfigError("model.profiles needs model.encoder 'kmer'")
        if not 0.0 < self.profile_weight < 1.0 or self.profile_evalue <= 0:
            raise ConfigError("model.profile_weight must lie in (0, 1), profile_evalue be > 0")
        if min(self.profile_min_members, self.profile_max_members, self.profile_max) < 1:
            raise ConfigError(
                "model.profile_min_members, profile_max_members and profile_max must be ≥ 1"
            )
        if self.profile_rounds < 0 or self.profile_round_evalue <= 0 or self.profile_round_hits < 2:
            raise ConfigError(
                "model.profile_rounds must be ≥ 0, profile_round_evalue > 0, profile_round_hits ≥ 2"
            )
        if self.encoder == "kmer":
            if self.kmer:
                raise ConfigError(
                    "model.kmer (a composition branch) does not apply to encoder kmer"
                )
            rows = _spectrum_rows("spectrum", self.spectrum)  # validated even when hashed
            rows = self.buckets or rows
            if self.buckets < 0 or rows > 1 << 22:
                raise ConfigError(
                    f"model.spectrum {self.spectrum!r} needs a table of {rows:,} rows; "
                    "set model.buckets (hashing) to at most 4,194,304"
                )

    def encoder_spec(self, alphabet_letters: int, crop_len: int) -> EncoderSpec:
        """The saved architecture (:class:`~phyloclr.models.encoders.EncoderSpec`): every field
        the two share, copied by name; ``max_len`` is raised to the views' ``crop_len`` (a
        crop longer than the encoder's context would not fit)."""
        shared = {f.name for f in fields(EncoderSpec)} & {f.name for f in fields(self)}
        values = {name: getattr(self, name) for name in shared}
        values["max_len"] = max(self.max_len, crop_len)
        return EncoderSpec(name=self.encoder, alphabet_letters=alphabet_letters, **values)


@dataclass(frozen=True)
class ViewsConfig:
    """How the two views of a pair are made.

    mode 'phylo': the positive is another family member at a distance within the scheduled
    window (singletons and families without distances fall back to mutation views, counted);
    'mutation': both views are mutated copies of the anchor.
    hard_negatives: the largest share of families batched with their nearest family (by
    3-mer profile), reached at the end of training (linear ramp from 0).
    singletons: 'mutation' trains on families of one member too (two mutated copies);
    'skip' leaves them out of training (they still count for the spectrum encoder's idf).
    """

    mode: Literal["phylo", "mutation"] = "phylo"
    window_units: Literal["absolute", "quantile"] = "quantile"
    window_start: tuple[float, ...] = (0.67, 1.0)
    window_end: tuple[float, ...] = (0.67, 1.0)
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    anchors_per_family: int = 2
    crop_len: int = 512
    hard_negatives: float = 0.0
    augment_phylo: bool = False
    singletons: Literal["mutation", "skip"] = "mutation"
    mutation: MutationConfig = field(default_factory=MutationConfig)

    def __post_init__(self) -> None:
        check_literals(self)
        for name in ("window_start", "window_end"):
            w = getattr(self, name)
            if len(w) != 2 or w[0] > w[1] or w[0] < 0:
                raise ConfigError(f"views.{name} must be [lo, hi] with 0 ≤ lo ≤ hi, got {list(w)}")
            if self.window_units == "quantile" and w[1] > 1:
                raise ConfigError(f"views.{name}: quantile windows lie within [0, 1]")
        if self.anchors_per_family < 1 or self.crop_len < 8:
            raise ConfigError("views.anchors_per_family must be ≥ 1 and views.crop_len ≥ 8")
        if not 0.0 <= self.hard_negatives <= 1.0:
            raise ConfigError("views.hard_negatives must lie in [0, 1]")


@dataclass(frozen=True)
class ObjectiveConfig:
    """Loss, critic and temperature. Same-family pairs in a batch are never negatives:
    'infonce'/'nwj' mask them, 'supcon' counts them as positives. ``geometry`` > 0 adds that
    weight × the mean squared difference between the embeddings' cosines and the cosines of
    the encoder's own k-mer tf-idf input over every pair of the batch (k-mer spectrum encoder
    only): it keeps the input's geometry, which carries to unseen families, while the
    contrastive loss adds homology (benchmarks/RESULTS.md, "Transfer to unseen families")."""

    name: Literal["infonce", "nwj", "supcon"] = "infonce"
    critic: str = "cosine"
    temperature: float = 0.1
    geometry: float = 0.0

    def __post_init__(self) -> None:
        check_literals(self)
        if self.critic not in CRITICS:
            raise ConfigError(f"objective.critic {self.critic!r} is not one of {list(CRITICS)}")
        if not self.temperature > 0:
            raise ConfigError("objective.temperature must be > 0")
        if not self.geometry >= 0:
            raise ConfigError("objective.geometry must be ≥ 0")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay to ``min_lr_ratio`` × lr."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise ConfigError("optim: lr must be > 0, weight_decay and warmup_steps ≥ 0")


@dataclass(frozen=True)
class RunConfig:
    """Length of training, batching, device and bookkeeping.

    Training stops at ``max_steps`` or after ``time_budget_s`` seconds of training, whichever
    comes first (at least one must be set); the schedules run on the fraction done.
    ``keep_models``: also keep the model of every checkpoint as ``models/step-NNNNNNN.pt``
    (for a curve of development-set scores over training, benchmarks/model_curve.py).
    ``model_dtype``: how ``model.pt``'s parameters are stored ('float16' halves the file; they
    are computed in float32 after loading); checkpoints for ``--resume`` stay float32.
    """

    max_steps: int | None = 2000
    time_budget_s: float | None = None
    batch_tokens: int = 32768
    max_pairs: int = 256
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0
    checkpoint_every: int = 200
    keep_models: bool = False
    model_dtype: Literal["float32", "float16"] = "float32"
    alphabet: Literal["auto", "protein", "dna"] = "auto"

    def __post_init__(self) -> None:
        check_literals(self)
        if self.max_steps is None and self.time_budget_s is None:
            raise ConfigError("run: set max_steps or time_budget_s")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("run.max_steps must be ≥ 1")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ConfigError("run.time_budget_s must be > 0")
        if self.batch_tokens < 64 or self.max_pairs < 2 or self.checkpoint_every < 1:
            raise ConfigError("run: batch_tokens ≥ 64, max_pairs ≥ 2, checkpoint_every ≥ 1")


@dataclass(frozen=True)
class PretrainConfig:
    """Everything ``phyloclr pretrain`` needs; saved as JSON in every checkpoint."""

    families: FamiliesConfig = field(default_factory=FamiliesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    views: ViewsConfig = field(default_factory=ViewsConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        if self.objective.geometry and self.model.encoder != "kmer":
            raise ConfigError(
                "objective.geometry needs model.encoder 'kmer' (the cosines of its input)"
            )


def default_pretrain_config() -> PretrainConfig:
    """What ``phyloclr pretrain`` trains without ``--config`` (configs/cpu-small.yaml holds the
    same values, checked by a test): the k-mer spectrum encoder as one linear map (its MLP is the
    projection head, which embeddings leave out), trained on the MMseqs2 de novo families (hits
    covering ≥ 30 % of both proteins) of two or more members for 1 minute, so that a
    20,000-protein corpus takes under 20 minutes on 2 CPU cores with its families, profiles
    and memory (benchmarks/RESULTS.md, "Protein retrieval"); the embeddings append a sketch of
    four spaced-word spectra fitted on the corpus (weight 0.7, chosen on go-function), the
    default model's residue CNN, frozen (weight 0.07, chosen on go-function), and the hits of
    profile HMMs of the families of three or more members (√bits at E ≤ 0.1, weight 0.2, chosen
    on go-function), each HMM rebuilt once from its best 100 corpus hits at E ≤ 10⁻³ (a
    jackhmmer-like round); after training the model keeps its embeddings of the corpus, each
    smoothed over its 20 nearest others (``model.memory_bank_neighbours``), and smooths each
    embedding over its 10 nearest of them (``model.memory_neighbours``; both chosen on
    go-function)."""
    return PretrainConfig(
        model=ModelConfig(encoder="kmer", dim=512, layers=1, hidden=1024, dropout=0.1,
                          spectrum="murphy10:4", projection_dim=256, projection_hidden=1024,
                          sketch=SPACED_WORDS, sketch_dim=4096, sketch_weight=0.7,
                          append_cnn="default", append_cnn_weight=0.07,
                          memory_neighbours=10, memory_max_rows=50_000,
                          memory_bank_neighbours=20, profiles=True, profile_min_members=3,
                          profile_max_members=50, profile_max=2000, profile_weight=0.2,
                          profile_evalue=0.1, profile_rounds=1, profile_round_evalue=1e-3,
                          profile_round_hits=100),
        views=ViewsConfig(crop_len=1024, singletons="skip"),
        objective=ObjectiveConfig(name="infonce", critic="cosine", temperature=0.1),
        optim=OptimConfig(lr=1e-3, weight_decay=0.01, warmup_steps=50),
        run=RunConfig(max_steps=None, time_budget_s=60, batch_tokens=1 << 20, max_pairs=512,
                      checkpoint_every=100),
        families=FamiliesConfig(denovo_method="mmseqs", denovo_min_coverage=0.3),
    )  # fmt: skip


def load_pretrain_config(path: str | Path) -> PretrainConfig:
    """A YAML preset → PretrainConfig; unknown keys are an error naming the key."""
    p = Path(path)
    try:
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else (yaml.safe_load(text) or {})
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: cannot read config: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config must be a mapping")
    try:
        return config_from_dict(PretrainConfig, data)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f"{p}: {exc}") from exc
