"""The pretraining job: the files a user has → families → a trained run directory.

What ``phyloclr pretrain`` runs, callable from Python::

    from phyloclr.train.job import pretrain_files
    job = pretrain_files(["corpus.fasta"], "runs/a")          # the default config
    job.result.steps, len(job.families)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from phyloclr.families import build_families
from phyloclr.families.model import FamilySet, exclude
from phyloclr.progress import Progress
from phyloclr.train.config import PretrainConfig, default_pretrain_config, load_pretrain_config
from phyloclr.train.loop import PretrainResult, StepCallback, pretrain

PathArg = str | os.PathLike[str]


@dataclass
class PretrainJob:
    """The run's result, the families it trained on (without their distance matrices, dropped
    once training was over to bound memory; ``on_families`` sees them whole), the excluded ids
    that matched no family, and the families' warnings."""

    result: PretrainResult
    families: FamilySet
    unmatched_exclusions: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return self.families.warnings


def run_config(out: PathArg, config: PretrainConfig | None, resume: bool) -> PretrainConfig:
    """``config`` if given; else, resuming, the run's saved config; else the default."""
    saved = Path(out) / "config.json"
    if config is not None:
        return config
    if resume and saved.exists():
        return load_pretrain_config(saved)
    return default_pretrain_config()


def pretrain_files(
    inputs: Sequence[PathArg],
    out: PathArg,
    config: PretrainConfig | None = None,
    *,
    trees: PathArg | None = None,
    cache_dir: PathArg | None = None,
    exclude_families: Sequence[str] = (),
    resume: bool = False,
    progress: Progress | None = None,
    on_families: Callable[[FamilySet, list[str]], None] | None = None,
    on_step: StepCallback | None = None,
) -> PretrainJob:
    """Build the families of ``inputs`` (anything :func:`phyloclr.families.build_families`
    reads), leave out ``exclude_families``, and train into ``out`` (see
    :func:`phyloclr.train.pretrain`). ``on_families(families, unmatched_exclusions)`` is called
    before training starts; ``progress`` hears the families' stages, then training's and the
    stages after it (profiles, their rounds, the memory). The families' distance matrices are
    dropped once training is over (``pretrain``'s ``release_distances``)."""
    cfg = run_config(out, config, resume)
    fset = build_families(inputs, cfg.families, trees=trees, cache_dir=cache_dir,
                          progress=progress)  # fmt: skip
    missing: list[str] = []
    if exclude_families:
        fset, missing = exclude(fset, list(exclude_families))
    if on_families is not None:
        on_families(fset, missing)
    result = pretrain(fset, cfg, Path(out), resume=resume, progress=progress, on_step=on_step,
                      release_distances=True)  # fmt: skip
    return PretrainJob(result, fset, missing)
