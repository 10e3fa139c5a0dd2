"""The pretraining loop: views → encoder → projection → contrastive loss, with AdamW,
warm-up + cosine decay, clipping, bf16 autocast on CUDA, DDP, metrics CSV and atomic,
resumable checkpoints."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from phyloclr.config import config_to_json
from phyloclr.devices import resolve_device
from phyloclr.errors import ConfigError, InputError
from phyloclr.families.model import FamilySet
from phyloclr.fsutil import atomic_path, remove_stale_temporaries
from phyloclr.heap import release_free_memory
from phyloclr.kmers import member_pairs
from phyloclr.models.alphabet import Alphabet, get_alphabet
from phyloclr.models.build import build_encoder
from phyloclr.models.critics import build_critic
from phyloclr.models.directions import fit_directions
from phyloclr.models.encoders import DilatedCNN, Encoder
from phyloclr.models.heads import ProjectionHead
from phyloclr.models.hybrid import SketchedCNN
from phyloclr.models.memory import NeighbourMemory, attach_memory, sequence_keys
from phyloclr.models.profiles import ProfileBlock
from phyloclr.models.spectrum import KmerSpectrum
from phyloclr.objectives.contrastive import (
    build_objective,
    geometry_loss,
)
from phyloclr.progress import Progress
from phyloclr.train import distributed
from phyloclr.train.config import PretrainConfig
from phyloclr.train.state import CHECKPOINT, METRIC_COLUMNS, METRICS, MODEL, RunState
from phyloclr.train.views import ViewMaker
from phyloclr.views.batching import FamilyBatchSampler, TrainingFamily

StepCallback = Callable[[dict[str, float]], None]


class ContrastiveModel(nn.Module):
    """Encoder + projection head + objective (with its critic), one forward per step."""

    def __init__(
        self, encoder: Encoder, head: ProjectionHead, objective: nn.Module, geometry: float = 0.0
    ):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.objective = objective
        self.geometry = geometry

    def forward(
        self, tokens: torch.Tensor, groups: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float]:
        """tokens (2N, L): rows 0..N-1 first views, N..2N-1 second views."""
        mask = tokens != 0
        reference = None
        if self.geometry and isinstance(self.encoder, KmerSpectrum):
            # the sparse input once, for both the embedding and the geometry term's cosines
            feats = self.encoder.features(tokens)
            h = self.encoder.embed_features(feats)
            reference = self.encoder.feature_cosines(feats)
        else:
            h = self.encoder(tokens, mask)
        z = self.head(h)
        n = tokens.shape[0] // 2
        out = self.objective(z[:n], z[n:], groups)
        loss = out.loss
        if self.geometry:
            if reference is None:
                reference = self.encoder.input_cosines(tokens)
            loss = loss + self.geometry * geometry_loss(h, reference)
        return loss, z[:n], z[n:], out.mi_bound, out.candidates


@dataclass
class PretrainResult:
    run_dir: Path
    steps: int
    elapsed_s: float
    final_loss: float
    resumed_from: int | None
    model: ContrastiveModel


def _alphabet(fset: FamilySet, cfg: PretrainConfig) -> Alphabet:
    if cfg.run.alphabet != "auto":
        return get_alphabet(cfg.run.alphabet)
    kinds = {f.alphabet for f in fset.families}
    if len(kinds) > 1:
        dna = next(f for f in fset.families if f.alphabet == "dna")
        prot = next(f for f in fset.families if f.alphabet == "protein")
        raise InputError(
            None,
            f"the inputs mix nucleotide families (e.g. {dna.id!r} from {dna.source}) and protein "
            f"families (e.g. {prot.id!r} from {prot.source}); train on one, or set --alphabet",
        )
    return get_alphabet(kinds.pop())


def build_model(cfg: PretrainConfig, alphabet: Alphabet) -> ContrastiveModel:
    m = cfg.model
    spec = m.encoder_spec(len(alphabet.letters), cfg.views.crop_len)
    cnn = _cnn_to_append(m.append_cnn, alphabet) if m.append_cnn else None
    if cnn is not None:
        spec = replace(spec, appended_cnn_dim=cnn.spec.dim, appended_cnn_layers=cnn.spec.layers,
                       appended_cnn_kernel=cnn.spec.kernel_size,
                       appended_cnn_weight=m.append_cnn_weight)  # fmt: skip
    encoder = build_encoder(spec, alphabet.size)
    if cnn is not None:
        appended: torch.nn.Module = encoder.cnn  # type: ignore[assignment]
        appended.load_state_dict(cnn.state_dict())
    head = ProjectionHead(m.dim, m.projection_hidden, m.projection_dim)
    critic = build_critic(cfg.objective.critic, m.projection_dim or m.dim)
    objective = build_objective(cfg.objective.name, critic, cfg.objective.temperature)
    return ContrastiveModel(encoder, head, objective, cfg.objective.geometry)


def _cnn_to_append(source: str, alphabet: Alphabet) -> DilatedCNN:
    """The trained residue CNN of the model file ``source`` ('default': the shipped default
    model), without any sketch it appends (``model.append_cnn``)."""
    from phyloclr.embed import resolve_model_path
    from phyloclr.models.store import load_model

    loaded = load_model(resolve_model_path(source))
    enc = loaded.encoder
    if not isinstance(enc, DilatedCNN) or enc.kmer is not None or enc.pool is not None:
        raise ConfigError(f"model.append_cnn {source!r}: not a mean-pooled residue CNN model")
    if loaded.alphabet.name != alphabet.name:
        raise ConfigError(
            f"model.append_cnn {source!r} is a {loaded.alphabet.name} model; "
            f"these families are {alphabet.name}"
        )
    cnn = DilatedCNN(replace(enc.spec, sketch=""), alphabet.size)
    state = {k: v for k, v in enc.state_dict().items() if not k.startswith("branch.")}
    cnn.load_state_dict(state)
    return cnn


def _read_metrics(path: Path, upto: int) -> list[dict[str, str]]:
    """The rows of steps ≤ ``upto`` (the checkpoint's); a last line cut short by a kill is
    dropped, as is any row of a step already seen."""
    if not path.exists():
        return []
    text = path.read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows, seen = [], set()
    for row in csv.DictReader(io.StringIO(text, newline="")):
        if None in row.values() or not row["step"].isdigit():
            continue
        step = int(row["step"])
        if step <= upto and step not in seen:
            seen.add(step)
            rows.append(row)
    return rows


def pretrain(
    fset: FamilySet,
    cfg: PretrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    on_step: StepCallback | None = None,
    release_distances: bool = False,
) -> PretrainResult:
    """Train an encoder on ``fset`` and write RUN_DIR/{checkpoint.pt, model.pt, metrics.csv,
    config.json}. Under torchrun each rank trains on its own shard of families with DDP and
    rank 0 writes. ``resume`` continues from RUN_DIR/checkpoint.pt with the same optimizer,
    schedule, sampler and RNG state. ``release_distances`` drops every family's distance
    matrix (``Family.distances`` of ``fset`` becomes None) once training is over, before the
    profiles and the memory are built, which need none: at a million proteins they are half
    the family set (3.3 of 6.4 GB)."""
    run = Path(run_dir)
    device = resolve_device(cfg.run.device)
    dist = distributed.init_from_env(device.type)
    if device.type == "cuda" and dist.enabled:
        device = torch.device("cuda", dist.local_rank)
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    alphabet = _alphabet(fset, cfg)
    if cfg.model.profiles:
        _check_profiles(fset, cfg, alphabet)
    ckpt_path = run / CHECKPOINT
    if ckpt_path.exists() and not resume:
        raise InputError(run, "already holds a checkpoint: pass --resume, or choose another --out")
    state = _new_state(fset, cfg, run, alphabet, dist, device, resume)
    resumed_from = state.restore(ckpt_path) if resume else None
    net: nn.Module = state.model
    if dist.enabled:
        net = DistributedDataParallel(
            state.model, device_ids=[device.index] if device.type == "cuda" else None
        )
    autocast = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if dist.is_main:
        _prepare_run_dir(run, state.config_json, state.step)
    last_loss = float("nan")
    state.model.train()
    with contextlib.ExitStack() as stack:
        metrics_fh = (
            stack.enter_context(open(run / METRICS, "a", newline="")) if dist.is_main else None
        )
        writer = csv.DictWriter(metrics_fh, METRIC_COLUMNS) if metrics_fh else None
        while not state.finished(device):
            row = state.train_step(net, device, autocast)
            last_loss = row["loss"]
            if writer is not None and metrics_fh is not None:
                writer.writerow(row)
                metrics_fh.flush()
            if on_step is not None:
                on_step(row)
            if progress is not None:
                total = cfg.run.max_steps if cfg.run.time_budget_s is None else None
                progress("training", state.step, total)
            if state.step % cfg.run.checkpoint_every == 0:
                state.save()
        state.save()
    if release_distances:
        _release_distances(state, fset)
    if math.isnan(last_loss) and dist.is_main:  # no step ran here: a finished run resumed
        logged = _read_metrics(run / METRICS, state.step)
        last_loss = float(logged[-1]["loss"]) if logged else last_loss
    after = cfg.model.sketch_directions or cfg.model.profiles or cfg.model.memory_neighbours
    if after and dist.is_main:
        _save_with_corpus(state, fset, device, progress)
    distributed.barrier()
    del net  # the DDP wrapper holds the process group: release it before leaving the group
    distributed.leave_group()
    model = state.model
    assert isinstance(model, ContrastiveModel)
    return PretrainResult(run, state.step, state.elapsed, last_loss, resumed_from, model)


def _release_distances(state: RunState, fset: FamilySet) -> None:
    """Drop the families' distance matrices, in ``fset`` and in the run's training families
    (the one list its sampler and view maker share), and hand their memory back."""
    for fam in state.sampler.families:
        fam.distances = None
    for f in fset.families:
        f.distances = None
    release_free_memory()


#: corpus sequences embedded at a time into the neighbour memory
MEMORY_BLOCK = 4096


def _save_with_corpus(
    state: RunState, fset: FamilySet, device: torch.device, progress: Progress | None
) -> None:
    """Rank 0, after training: with ``model.sketch_directions``, the count sketch's top
    principal directions over the corpus are fitted (:mod:`phyloclr.models.directions`), to be
    removed from its rows; with ``model.profiles``, profile HMMs of the families
    (:mod:`phyloclr.models.profiles`) are appended to the encoder; with
    ``model.memory_neighbours``, its embeddings of the corpus (every family member; a sample of
    ``model.memory_max_rows``, seeded by ``run.seed``, when there are more) become its
    neighbour memory (second order: each row then smoothed over its
    ``model.memory_bank_neighbours`` nearest others); model.pt is written again with them.
    The checkpoint holds neither, so a resumed run builds them anew from the same weights."""
    cfg = state.cfg
    encoder = state.model.encoder
    assert isinstance(encoder, Encoder)
    if cfg.model.sketch_directions:
        seqs = [r.seq for f in fset.families for r in f.records]
        heard = None if progress is None else partial(progress, "sketch directions")
        fit_directions(encoder, state.alphabet, seqs, cfg.model.sketch_directions, heard)
    if cfg.model.profiles:
        _attach_profiles(encoder, fset, cfg, progress)
    if cfg.model.memory_neighbours:
        _attach_memory(encoder, state, fset, device, progress)
    state.save_model()


def _attach_profiles(
    encoder: Encoder, fset: FamilySet, cfg: PretrainConfig, progress: Progress | None
) -> None:
    """The profile block of ``model.profiles`` (E-values against the corpus's size), its HMMs
    refined by ``model.profile_rounds`` jackhmmer-like rounds over the memory's corpus rows."""
    from phyloclr.models.profiles import (
        attach_profiles,
        build_hmms,
        profile_families,
        refine_hmms,
    )

    m = cfg.model
    chosen = profile_families(fset.families, m.profile_min_members, m.profile_max)
    hmms = build_hmms(chosen, m.profile_max_members, cfg.run.seed, cfg.families.threads,
                      None if progress is None else partial(progress, "profiles"))  # fmt: skip
    seqs = _corpus_rows(fset, cfg) if m.profile_rounds else []
    for n in range(m.profile_rounds):
        heard = None if progress is None else partial(progress, f"profile round {n + 1}")
        hmms = refine_hmms(hmms, seqs, fset.n_sequences, m.profile_round_evalue,
                           m.profile_round_hits, heard)  # fmt: skip
    attach_profiles(encoder, hmms, fset.n_sequences)


def _corpus_rows(fset: FamilySet, cfg: PretrainConfig) -> list[str]:
    """The corpus sequences the memory holds and the profile rounds search: every family
    member, or a sample of ``model.memory_max_rows`` of them seeded by ``run.seed``."""
    seqs = [r.seq for f in fset.families for r in f.records]
    if len(seqs) > cfg.model.memory_max_rows:
        rng = np.random.default_rng([cfg.run.seed, 11])
        keep = np.sort(rng.choice(len(seqs), cfg.model.memory_max_rows, replace=False))
        seqs = [seqs[i] for i in keep]
    return seqs


def _check_profiles(fset: FamilySet, cfg: PretrainConfig, alphabet: Alphabet) -> None:
    """Before training: ``model.profiles`` needs protein families, one of them big enough."""
    if alphabet.name != "protein":
        raise ConfigError(f"model.profiles needs protein families; these are {alphabet.name}")
    least = cfg.model.profile_min_members
    if not any(f.size >= least for f in fset.families):
        raise InputError(
            None,
            f"model.profiles: no family has {least} or more members to build a profile from "
            "(lower model.profile_min_members, or set model.profiles: false)",
        )


def _attach_memory(
    encoder: Encoder, state: RunState, fset: FamilySet, device: torch.device,
    progress: Progress | None,
) -> None:  # fmt: skip
    """The neighbour memory of ``model.memory_neighbours`` (see :func:`_save_with_corpus`)."""
    from phyloclr.embed import embed_sequences

    cfg = state.cfg
    seqs = _corpus_rows(fset, cfg)
    memory = NeighbourMemory(len(seqs), encoder.dim, cfg.model.memory_neighbours,
                             cfg.model.memory_bank_neighbours).to(device)  # fmt: skip
    for start in range(0, len(seqs), MEMORY_BLOCK):  # a block at a time: bounded memory
        block = seqs[start : start + MEMORY_BLOCK]
        emb, _ = embed_sequences(encoder, state.alphabet, block, device=device)
        keys = sequence_keys(block) if memory.keyed else None
        memory.fill(torch.from_numpy(emb), start, keys)
        if progress is not None:
            progress("memory", min(start + MEMORY_BLOCK, len(seqs)), len(seqs))
    profiles = getattr(encoder, "profiles", None)
    if isinstance(profiles, ProfileBlock):  # searched no more: its pipelines go before the bank
        profiles.release_pipelines()
    if memory.keyed:
        memory.smooth_bank(None if progress is None else partial(progress, "memory bank"))
    attach_memory(encoder, memory)


def _new_state(
    fset: FamilySet, cfg: PretrainConfig, run: Path, alphabet: Alphabet,
    dist: distributed.DistInfo, device: torch.device, resume: bool,
) -> RunState:  # fmt: skip
    """The run's model (initialised from ``cfg.run.seed``; a k-mer encoder's weights fitted on
    the families unless resuming), optimizer, this rank's shard of families, its batch
    sampler and view maker, in the order that fixes every random draw."""
    families = [
        TrainingFamily.from_family(f)
        for f in fset.families
        if cfg.views.singletons == "mutation" or f.size >= 2
    ]
    shard = families[dist.rank :: dist.world_size]
    if len(shard) < 2:
        raise InputError(
            None,
            f"rank {dist.rank} has {len(shard)} families: contrastive training needs at least 2 "
            "per rank (same-family pairs are never negatives)"
            + (
                "; families of one member are left out (views.singletons: skip)"
                if cfg.views.singletons == "skip"
                else ""
            ),
        )
    torch.manual_seed(cfg.run.seed)
    model = build_model(cfg, alphabet)
    if isinstance(model.encoder, KmerSpectrum | SketchedCNN) and not resume:
        # the idf (and mean input) of every family's members (all ranks alike); a resumed run
        # loads them
        pairs = None
        if cfg.model.kmer_weights == "homology":  # member pairs of every family
            sizes = [f.size for f in fset.families]
            pairs = member_pairs(np.repeat(np.arange(len(sizes)), sizes), cfg.run.seed)
        model.encoder.fit_idf([r.seq for f in fset.families for r in f.records], pairs)
    model = model.to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    sampler = FamilyBatchSampler(
        shard,
        m=cfg.views.anchors_per_family,
        batch_tokens=cfg.run.batch_tokens,
        max_len=cfg.views.crop_len,
        seed=cfg.run.seed * 1000 + dist.rank,
        max_pairs=cfg.run.max_pairs,
        hard_negatives=cfg.views.hard_negatives,
        alphabet=alphabet.name,
    )
    views = ViewMaker(shard, cfg.views, alphabet.name)
    view_rng = np.random.default_rng([cfg.run.seed, dist.rank, 7])
    return RunState(run, cfg, config_to_json(cfg), alphabet, dist, model, optimizer, sampler,
                    views, view_rng)  # fmt: skip


def _prepare_run_dir(run: Path, config_json: str, step: int) -> None:
    """Rank 0: the run directory, its config.json, leftover temporaries removed, and the
    metrics CSV cut back to the rows up to ``step`` (the checkpoint's)."""
    run.mkdir(parents=True, exist_ok=True)
    for name in (CHECKPOINT, MODEL, METRICS):  # left by a run killed while writing them
        remove_stale_temporaries(run, name)
    (run / "config.json").write_text(json.dumps(json.loads(config_json), indent=2) + "\n")
    rows = _read_metrics(run / METRICS, step)
    with atomic_path(run / METRICS) as tmp, tmp.open("w", newline="") as fh:
        header = csv.DictWriter(fh, METRIC_COLUMNS)  # rows up to the checkpoint
        header.writeheader()
        header.writerows(rows)
