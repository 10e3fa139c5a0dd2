"""The mutable state of a pretraining run (model, optimizer, batch sampler, views, RNGs, step,
clock) and what is done to it: restore from a checkpoint, save a checkpoint and the model,
one optimiser step with its metrics row."""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from phyloclr import __version__
from phyloclr.config import config_to_json
from phyloclr.errors import ConfigError, InputError
from phyloclr.fsutil import atomic_path
from phyloclr.models.alphabet import Alphabet
from phyloclr.models.encoders import Encoder
from phyloclr.models.store import atomic_torch_save, safe_torch_load, save_model
from phyloclr.objectives.contrastive import alignment, uniformity
from phyloclr.train import distributed
from phyloclr.train.config import PretrainConfig
from phyloclr.train.views import ViewMaker
from phyloclr.views.batching import FamilyBatchSampler

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
METRICS = "metrics.csv"
METRIC_COLUMNS = [
    "step", "elapsed_s", "loss", "mi_bound", "candidates", "alignment", "uniformity",
    "pos_distance", "window_lo", "window_hi", "phylo_fallback_rate", "mutation_fallbacks",
    "lr", "pairs", "seqs_per_s", "tokens_per_s",
]  # fmt: skip
#: settings a resumed run may change: how long it runs, where, and how often it saves
RESUMABLE_KEYS = {"run.max_steps", "run.time_budget_s", "run.device", "run.threads",
                  "run.checkpoint_every", "run.keep_models", "run.model_dtype"}  # fmt: skip


def changed_keys(
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
            out.extend(changed_keys(a, b, f"{prefix}{key}.", d))
        elif key not in old and b == d:
            continue
        elif a != b and f"{prefix}{key}" not in RESUMABLE_KEYS:
            out.append(f"{prefix}{key}")
    return out


def lr_factor(step: int, progress: float, cfg: PretrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr_ratio``."""
    warm = cfg.optim.warmup_steps
    if warm and step < warm:
        return (step + 1) / warm
    floor = cfg.optim.min_lr_ratio
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


@dataclass
class RunState:
    """Everything a checkpoint holds, and the run it belongs to (``model`` is the unwrapped
    :class:`~phyloclr.train.loop.ContrastiveModel`; ``net`` what the step calls: the model or
    its DDP wrapper)."""

    run: Path
    cfg: PretrainConfig
    config_json: str
    alphabet: Alphabet
    dist: distributed.DistInfo
    model: nn.Module
    optimizer: torch.optim.Optimizer
    sampler: FamilyBatchSampler
    views: ViewMaker
    view_rng: np.random.Generator
    step: int = 0
    elapsed: float = 0.0

    def restore(self, path: Path) -> int:
        """Load the checkpoint at ``path`` (refusing another config or rank count) → its step."""
        if not path.exists():
            raise InputError(self.run, "--resume: no checkpoint.pt in the run directory")
        state = safe_torch_load(path, "phyloclr checkpoint")
        if not isinstance(state, dict) or state.get("format") != "phyloclr-checkpoint":
            raise InputError(path, "not a phyloclr checkpoint")
        changed = changed_keys(json.loads(state["config"]), json.loads(self.config_json))
        if changed:
            raise ConfigError(
                f"{path}: --resume with a config that differs from the run's in "
                + ", ".join(changed)
            )
        if int(state.get("world_size", 1)) != self.dist.world_size:
            raise ConfigError(
                f"{path}: saved by {state.get('world_size', 1)} ranks, resumed with "
                f"{self.dist.world_size}; resume with the same number of processes"
            )
        rank = self.dist.rank
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state(state["sampler"][rank])
        self.views.phylo.load_state(state["phylo"][rank])
        self.view_rng.bit_generator.state = state["view_rng"][rank]
        torch.set_rng_state(state["torch_rng"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        return self.step

    def save(self) -> None:
        """Checkpoint and model (rank 0 writes; every rank's sampler and view state gathered)."""
        local = (self.sampler.state(), self.views.phylo.state(), self.view_rng.bit_generator.state)
        if self.dist.enabled:
            gathered: list[Any] = [None] * self.dist.world_size
            torch.distributed.all_gather_object(gathered, local)
        else:
            gathered = [local]
        if not self.dist.is_main:
            return
        atomic_torch_save(
            {
                "format": "phyloclr-checkpoint",
                "format_version": 1,
                "phyloclr_version": __version__,
                "config": self.config_json,
                "alphabet": self.alphabet.name,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "sampler": [g[0] for g in gathered],
                "phylo": [g[1] for g in gathered],
                "view_rng": [g[2] for g in gathered],
                "torch_rng": torch.get_rng_state(),
                "step": self.step,
                "elapsed": self.elapsed,
                "world_size": self.dist.world_size,
            },
            self.run / CHECKPOINT,
        )
        self.save_model()

    def save_model(self) -> None:
        """RUN_DIR/model.pt (and, with ``run.keep_models``, its copy under models/)."""
        dtype = getattr(torch, self.cfg.run.model_dtype)
        encoder = self.model.encoder
        assert isinstance(encoder, Encoder)
        save_model(self.run / MODEL, encoder, self.alphabet, self.config_json, self.step,
                   self.run.name, dtype)  # fmt: skip
        if self.cfg.run.keep_models:  # a copy of the model just written, not a second save
            with atomic_path(self.run / "models" / f"step-{self.step:07d}.pt") as tmp:
                shutil.copyfile(self.run / MODEL, tmp)

    def progress_fraction(self) -> float:
        """How far the run is through its step count or time budget (the larger)."""
        parts = []
        if self.cfg.run.max_steps is not None:
            parts.append(self.step / self.cfg.run.max_steps)
        if self.cfg.run.time_budget_s is not None:
            parts.append(self.elapsed / self.cfg.run.time_budget_s)
        return max(parts)

    def finished(self, device: torch.device) -> bool:
        """Whether the run is done; under DDP all ranks stop together (budgets differ)."""
        done = self.progress_fraction() >= 1.0
        if self.dist.enabled:
            flag = torch.tensor([1.0 if done else 0.0], device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            done = bool(flag.item() > 0)
        return done

    def train_step(self, net: nn.Module, device: torch.device, autocast: bool) -> dict[str, Any]:
        """One optimiser step on the next batch → its metrics row (METRIC_COLUMNS)."""
        cfg, views = self.cfg, self.views
        t0 = time.perf_counter()
        frac = self.progress_fraction()
        lr = cfg.optim.lr * lr_factor(self.step, frac, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        fallbacks_before = views.phylo.fallbacks
        draws_before = views.phylo.draws
        batch = views.make(self.sampler.next_batch(frac), frac, self.view_rng)
        n = len(batch.first)
        tokens = self.alphabet.batch(batch.first + batch.second).to(device)
        groups = torch.as_tensor(batch.groups, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss, z1, z2, bound, candidates = net(tokens, groups)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        self.elapsed += dt
        self.step += 1
        draws = views.phylo.draws - draws_before
        lo, hi = views.phylo.schedule.window(frac)
        return {
            "step": self.step,
            "elapsed_s": round(self.elapsed, 4),
            "loss": float(loss.item()),
            "mi_bound": bound,
            "candidates": candidates,
            "alignment": alignment(z1.detach(), z2.detach()),
            "uniformity": uniformity(torch.cat([z1, z2]).detach()),
            "pos_distance": float(np.mean(batch.distances)) if batch.distances else float("nan"),
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
