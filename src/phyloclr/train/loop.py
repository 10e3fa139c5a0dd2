"""The pretraining loop: views → encoder → projection → contrastive loss, with AdamW,
warm-up + cosine decay, clipping, bf16 autocast on CUDA, DDP, metrics CSV and atomic,
resumable checkpoints."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from phyloclr import __version__
from phyloclr.config import config_to_json
from phyloclr.devices import resolve_device
from phyloclr.errors import ConfigError, InputError
from phyloclr.families.model import FamilySet
from phyloclr.fsutil import atomic_path, remove_stale_temporaries
from phyloclr.models.alphabet import Alphabet, get_alphabet
from phyloclr.models.build import build_encoder
from phyloclr.models.critics import build_critic
from phyloclr.models.encoders import Encoder, EncoderSpec
from phyloclr.models.heads import ProjectionHead
from phyloclr.models.spectrum import KmerSpectrum
from phyloclr.models.store import atomic_torch_save, safe_torch_load, save_model
from phyloclr.objectives.contrastive import (
    alignment,
    build_objective,
    geometry_loss,
    uniformity,
)
from phyloclr.progress import Progress
from phyloclr.train import distributed
from phyloclr.train.config import PretrainConfig
from phyloclr.train.views import ViewMaker
from phyloclr.views.batching import FamilyBatchSampler, TrainingFamily

StepCallback = Callable[[dict[str, float]], None]

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
METRICS = "metrics.csv"
METRIC_COLUMNS = [
    "step", "elapsed_s", "loss", "mi_bound", "candidates", "alignment", "uniformity",
    "pos_distance", "window_lo", "window_hi", "phylo_fallback_rate", "mutation_fallbacks",
    "lr", "pairs", "seqs_per_s", "tokens_per_s",
]  # fmt: skip


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


def _lr_factor(step: int, progress: float, cfg: PretrainConfig) -> float:
    warm = cfg.optim.warmup_steps
    if warm and step < warm:
        return (step + 1) / warm
    floor = cfg.optim.min_lr_ratio
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def build_model(cfg: PretrainConfig, alphabet: Alphabet) -> ContrastiveModel:
    m = cfg.model
    spec = EncoderSpec(
        name=m.encoder,
        dim=m.dim,
        layers=m.layers,
        kernel_size=m.kernel_size,
        heads=m.heads,
        dropout=m.dropout,
        pooling=m.pooling,
        max_len=max(m.max_len, cfg.views.crop_len),
        kmer=m.kmer,
        alphabet_letters=len(alphabet.letters),
        spectrum=m.spectrum,
        buckets=m.buckets,
        hidden=m.hidden,
        centre=m.centre,
        map=m.map,
        sketch=m.sketch,
        sketch_dim=m.sketch_dim,
        sketch_weight=m.sketch_weight,
    )
    encoder = build_encoder(spec, alphabet.size)
    head = ProjectionHead(m.dim, m.projection_hidden, m.projection_dim)
    critic = build_critic(cfg.objective.critic, m.projection_dim or m.dim)
    objective = build_objective(cfg.objective.name, critic, cfg.objective.temperature)
    return ContrastiveModel(encoder, head, objective, cfg.objective.geometry)


#: settings a resumed run may change: how long it runs, where, and how often it saves
RESUMABLE_KEYS = {"run.max_steps", "run.time_budget_s", "run.device", "run.threads",
                  "run.checkpoint_every", "run.keep_models", "run.model_dtype"}  # fmt: skip


def _changed_keys(
    old: dict[str, Any], new: dict[str, Any], prefix: str = "", defaults: Any = None
) -> list[str]:
    """Dotted keys whose values differ. A key the old config lacks (saved by an earlier
    phyloclr) counts as changed only when the new value is not that key's default."""
    if defaults is None:
        defaults = json.loads(config_to_json(PretrainConfig()))
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        d = defaults.get(key) if isinstance(defaults, dict) else None
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(_changed_keys(a, b, f"{prefix}{key}.", d))
        elif key not in old and b == d:
            continue
        elif a != b and f"{prefix}{key}" not in RESUMABLE_KEYS:
            out.append(f"{prefix}{key}")
    return out


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
) -> PretrainResult:
    """Train an encoder on ``fset`` and write RUN_DIR/{checkpoint.pt, model.pt, metrics.csv,
    config.json}. Under torchrun each rank trains on its own shard of families with DDP and
    rank 0 writes. ``resume`` continues from RUN_DIR/checkpoint.pt with the same optimizer,
    schedule, sampler and RNG state."""
    run = Path(run_dir)
    device = resolve_device(cfg.run.device)
    dist = distributed.init_from_env(device.type)
    if device.type == "cuda" and dist.enabled:
        device = torch.device("cuda", dist.local_rank)
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    alphabet = _alphabet(fset, cfg)
    config_json = config_to_json(cfg)
    ckpt_path = run / CHECKPOINT
    if ckpt_path.exists() and not resume:
        raise InputError(run, "already holds a checkpoint: pass --resume, or choose another --out")

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
    if isinstance(model.encoder, KmerSpectrum) and not resume:
        # the idf (and mean input) of every family's members (all ranks alike); a resumed run
        # loads them
        model.encoder.fit_idf([r.seq for f in fset.families for r in f.records])
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
    step, elapsed, resumed_from = 0, 0.0, None

    if resume:
        if not ckpt_path.exists():
            raise InputError(run, "--resume: no checkpoint.pt in the run directory")
        state = safe_torch_load(ckpt_path, "phyloclr checkpoint")
        if not isinstance(state, dict) or state.get("format") != "phyloclr-checkpoint":
            raise InputError(ckpt_path, "not a phyloclr checkpoint")
        changed = _changed_keys(json.loads(state["config"]), json.loads(config_json))
        if changed:
            raise ConfigError(
                f"{ckpt_path}: --resume with a config that differs from the run's in "
                + ", ".join(changed)
            )
        if int(state.get("world_size", 1)) != dist.world_size:
            raise ConfigError(
                f"{ckpt_path}: saved by {state.get('world_size', 1)} ranks, resumed with "
                f"{dist.world_size}; resume with the same number of processes"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        sampler.load_state(state["sampler"][dist.rank])
        views.phylo.load_state(state["phylo"][dist.rank])
        view_rng.bit_generator.state = state["view_rng"][dist.rank]
        torch.set_rng_state(state["torch_rng"])
        step, elapsed, resumed_from = (
            int(state["step"]),
            float(state["elapsed"]),
            int(state["step"]),
        )

    net: nn.Module = model
    if dist.enabled:
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    autocast = device.type == "cuda" and torch.cuda.is_bf16_supported()

    if dist.is_main:
        run.mkdir(parents=True, exist_ok=True)
        for name in (CHECKPOINT, MODEL, METRICS):  # left by a run killed while writing them
            remove_stale_temporaries(run, name)
        (run / "config.json").write_text(json.dumps(json.loads(config_json), indent=2) + "\n")
        rows = _read_metrics(run / METRICS, step)
        with atomic_path(run / METRICS) as tmp, tmp.open("w", newline="") as fh:
            header = csv.DictWriter(fh, METRIC_COLUMNS)  # rows up to the checkpoint
            header.writeheader()
            header.writerows(rows)

    def save(final: bool) -> None:
        if dist.enabled:
            gathered: list[Any] = [None] * dist.world_size
            local = (sampler.state(), views.phylo.state(), view_rng.bit_generator.state)
            torch.distributed.all_gather_object(gathered, local)
        else:
            gathered = [(sampler.state(), views.phylo.state(), view_rng.bit_generator.state)]
        if not dist.is_main:
            return
        atomic_torch_save(
            {
                "format": "phyloclr-checkpoint",
                "format_version": 1,
                "phyloclr_version": __version__,
                "config": config_json,
                "alphabet": alphabet.name,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "sampler": [g[0] for g in gathered],
                "phylo": [g[1] for g in gathered],
                "view_rng": [g[2] for g in gathered],
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "elapsed": elapsed,
                "world_size": dist.world_size,
            },
            ckpt_path,
        )
        dtype = getattr(torch, cfg.run.model_dtype)
        save_model(run / MODEL, model.encoder, alphabet, config_json, step, run.name, dtype)
        if cfg.run.keep_models:  # a copy of the model just written, not a second serialisation
            with atomic_path(run / "models" / f"step-{step:07d}.pt") as tmp:
                shutil.copyfile(run / MODEL, tmp)

    def progress_fraction() -> float:
        parts = []
        if cfg.run.max_steps is not None:
            parts.append(step / cfg.run.max_steps)
        if cfg.run.time_budget_s is not None:
            parts.append(elapsed / cfg.run.time_budget_s)
        return max(parts)

    def finished() -> bool:
        done = progress_fraction() >= 1.0
        if dist.enabled:  # all ranks stop together (time budgets differ across ranks)
            flag = torch.tensor([1.0 if done else 0.0], device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            done = bool(flag.item() > 0)
        return done

    last_loss = float("nan")
    model.train()
    with contextlib.ExitStack() as stack:
        metrics_fh = (
            stack.enter_context(open(run / METRICS, "a", newline="")) if dist.is_main else None
        )
        writer = csv.DictWriter(metrics_fh, METRIC_COLUMNS) if metrics_fh else None
        while not finished():
            t0 = time.perf_counter()
            frac = progress_fraction()
            lr = cfg.optim.lr * _lr_factor(step, frac, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            fallbacks_before = views.phylo.fallbacks
            draws_before = views.phylo.draws
            batch = views.make(sampler.next_batch(frac), frac, view_rng)
            n = len(batch.first)
            tokens = alphabet.batch(batch.first + batch.second).to(device)
            groups = torch.as_tensor(batch.groups, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss, z1, z2, bound, candidates = net(tokens, groups)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dt = time.perf_counter() - t0
            elapsed += dt
            step += 1
            last_loss = float(loss.item())
            draws = views.phylo.draws - draws_before
            lo, hi = views.phylo.schedule.window(frac)
            row = {
                "step": step,
                "elapsed_s": round(elapsed, 4),
                "loss": last_loss,
                "mi_bound": bound,
                "candidates": candidates,
                "alignment": alignment(z1.detach(), z2.detach()),
                "uniformity": uniformity(torch.cat([z1, z2]).detach()),
                "pos_distance": float(np.mean(batch.distances))
                if batch.distances
                else float("nan"),
                "window_lo": lo,
                "window_hi": hi,
                "phylo_fallback_rate": (views.phylo.fallbacks - fallbacks_before) / draws
                if draws
                else 0.0,
                "mutation_fallbacks": batch.mutation_fallbacks,
                "lr": lr,
                "pairs": n,
                "seqs_per_s": 2 * n / dt,
                "tokens_per_s": int((tokens != 0).sum().item()) / dt,
            }
            if writer is not None and metrics_fh is not None:
                writer.writerow(row)
                metrics_fh.flush()
            if on_step is not None:
                on_step(row)
            if progress is not None:
                total = cfg.run.max_steps if cfg.run.time_budget_s is None else None
                progress("training", step, total)
            if step % cfg.run.checkpoint_every == 0:
                save(final=False)
        save(final=True)
    distributed.barrier()
    return PretrainResult(run, step, elapsed, last_loss, resumed_from, model)
