"""SIGKILL at random moments: `pretrain`, `embed`, `families` (de novo: the prefilter with two
workers, and MMseqs2) and `cluster` run as subprocesses, are killed at seeded random moments,
then resumed (``--resume``; `families` and `cluster` are simply run again, reusing what the
killed run committed). After every kill no output that reads as complete may be partial; when a
run completes, its outputs must equal an uninterrupted run's, and no temporary file may be left
beside them.

``PHYLOCLR_KILLS`` sets the kills per command: CI runs 1 per command (the fast case); the full
harness is ``make faults`` (20 per command). ``PHYLOCLR_FAULT_REPORT=FILE`` appends one JSON
line per command (kills landed, completed runs, seconds).
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from phyloclr.io.hdf5 import read_embeddings
from phyloclr.models.alphabet import PROTEIN
from phyloclr.models.build import build_encoder
from phyloclr.models.encoders import EncoderSpec
from phyloclr.models.store import load_model, safe_torch_load, save_model
from tests.conftest import DATA, REPRODUCIBLE_FAMILIES_YAML

KILLS = int(os.environ.get("PHYLOCLR_KILLS", "1"))
REPORT = os.environ.get("PHYLOCLR_FAULT_REPORT")
PROTEOME = next((DATA / "protein" / "proteome").glob("*.faa"))
INFLUENZA = DATA / "dna" / "Influenza-A.fas"

PRETRAIN_YAML = """
model: {dim: 32, layers: 2, projection_dim: 16, projection_hidden: 32}
views: {crop_len: 64}
run: {max_steps: 40, batch_tokens: 4096, threads: 1, checkpoint_every: 4}
"""


@dataclass
class Command:
    """How to run one command in a work directory, and what its outputs must satisfy."""

    name: str
    argv: Callable[[Path], list[str]]  # the first run's arguments
    resume_argv: Callable[[Path], list[str] | None]  # after a kill (None: as the first run)
    check_after_kill: Callable[[Path, Any], None]  # (work dir, reference result)
    result: Callable[[Path], Any]
    same: Callable[[Any, Any], None]
    outputs: Callable[[Path], list[Path]]  # directories that must hold no temporaries


def _cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "phyloclr.cli", *map(str, args)]


def _env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PHYLOCLR_CACHE"] = str(work / "cache")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run_to_end(argv: list[str], work: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=_env(work), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return time.perf_counter() - t0


def _no_temporaries(dirs: list[Path]) -> None:
    for d in dirs:
        if d.is_dir():
            left = [p.name for p in d.iterdir() if p.name.endswith(".tmp")]
            assert not left, f"{d}: temporaries left: {left}"


def survive_kills(cmd: Command, tmp: Path, kills: int, seed: int = 0) -> dict[str, Any]:
    """Kill ``cmd`` ``kills`` times at moments drawn uniformly from its uninterrupted run
    time, resuming after each kill; every completed run is compared with the reference."""
    ref = tmp / "reference"
    ref.mkdir()
    span = _run_to_end(cmd.argv(ref), ref)
    reference = cmd.result(ref)
    rng = random.Random(seed)
    landed = completed = attempts = 0
    t0 = time.perf_counter()
    while landed < kills:
        work = tmp / f"run{completed}"
        work.mkdir()
        argv: list[str] | None = cmd.argv(work)
        while True:
            assert argv is not None
            attempts += 1
            proc = subprocess.Popen(
                argv, env=_env(work), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            try:
                _, stderr = proc.communicate(
                    timeout=rng.uniform(0.0, span) if landed < kills else 600
                )
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                landed += 1
                cmd.check_after_kill(work, reference)
                argv = cmd.resume_argv(work) or cmd.argv(work)
                continue
            assert proc.returncode == 0, stderr.decode()[-3000:]
            cmd.same(reference, cmd.result(work))
            _no_temporaries(cmd.outputs(work))
            completed += 1
            break
    summary = {
        "command": cmd.name,
        "kills_survived": landed,
        "completed_runs": completed,
        "starts": attempts,
        "uninterrupted_s": round(span, 2),
        "harness_s": round(time.perf_counter() - t0, 1),
    }
    if REPORT:
        with open(REPORT, "a") as fh:
            fh.write(json.dumps(summary) + "\n")
    return summary


# ---- pretrain ---------------------------------------------------------------------------------


def _pretrain(tmp: Path) -> Command:
    cfg = tmp / "tiny.yaml"
    cfg.write_text(PRETRAIN_YAML)
    seeds = DATA / "protein" / "seeds"

    def result(work: Path) -> Any:
        model = load_model(work / "run")
        steps = [int(r["step"]) for r in csv.DictReader((work / "run" / "metrics.csv").open())]
        return model.encoder.state_dict(), steps

    def same(a: Any, b: Any) -> None:
        assert b[1] == a[1], "metrics.csv must hold every step once"
        for key, value in a[0].items():  # the documented tolerance of an exact resume
            assert torch.allclose(value, b[0][key], atol=1e-6), key

    def after_kill(work: Path, reference: Any) -> None:
        run = work / "run"
        if (run / "checkpoint.pt").exists():
            state = safe_torch_load(run / "checkpoint.pt", "checkpoint")
            assert state["format"] == "phyloclr-checkpoint"
        if (run / "model.pt").exists():
            load_model(run)

    def resume(work: Path) -> list[str] | None:
        if not (work / "run" / "checkpoint.pt").exists():
            return None
        return _cli("pretrain", seeds, "--out", work / "run", "--config", cfg, "--resume")

    return Command(
        "pretrain (Stockholm seeds, 40 steps)",
        lambda w: _cli("pretrain", seeds, "--out", w / "run", "--config", cfg),
        resume,
        after_kill,
        result,
        same,
        lambda w: [w / "run"],
    )


# ---- embed ------------------------------------------------------------------------------------


def _embed(tmp: Path) -> Command:
    torch.manual_seed(0)
    enc = build_encoder(EncoderSpec(dim=32, layers=2, max_len=256, dropout=0.0), PROTEIN.size)
    model = tmp / "model.pt"
    save_model(model, enc, PROTEIN, "{}", 0, "tiny-cnn")
    args = ["--model", model, "--part-size", 100, "--threads", 1, "--batch-tokens", 8192]

    def result(work: Path) -> Any:
        done = read_embeddings(work / "out.h5")
        return done.ids, done.embeddings

    def same(a: Any, b: Any) -> None:
        assert b[0] == a[0]
        assert np.array_equal(a[1], b[1])

    def after_kill(work: Path, reference: Any) -> None:
        if (work / "out.h5").exists():  # only ever whole
            same(reference, result(work))

    return Command(
        f"embed ({PROTEOME.name}, 2,100 proteins, parts of 100)",
        lambda w: _cli("embed", PROTEOME, "--out", w / "out.h5", *args),
        lambda w: _cli("embed", PROTEOME, "--out", w / "out.h5", *args, "--resume"),
        after_kill,
        result,
        same,
        lambda w: [w, w / "out.h5.parts"],
    )


# ---- families ---------------------------------------------------------------------------------


def _families(tmp: Path, engine: str = "prefilter") -> Command:
    cfg = tmp / "families.yaml"
    cfg.write_text(REPRODUCIBLE_FAMILIES_YAML)

    def argv(work: Path) -> list[str]:
        return _cli("families", PROTEOME, "--denovo-method", engine, "--workers", 2,
                    "--threads", 1, "--out", work / "families.tsv", "--max-rows", 1,
                    "--config", cfg)  # fmt: skip

    def result(work: Path) -> Any:
        return (work / "families.tsv").read_text()

    def same(a: Any, b: Any) -> None:
        assert a == b

    def after_kill(work: Path, reference: Any) -> None:
        if (work / "families.tsv").exists():
            same(reference, result(work))

    def temporaries(work: Path) -> list[Path]:
        cache = work / "cache"
        return [work, cache / "families", *sorted((cache / "edges").glob("*"))]

    return Command(
        f"families (de novo {engine}, 2 workers, {PROTEOME.name})",
        argv,
        lambda w: None,
        after_kill,
        result,
        same,
        temporaries,
    )


# ---- cluster ----------------------------------------------------------------------------------


def _cluster(tmp: Path) -> Command:
    args = ["--n-clusters", 6, "--runs", 1, "--heads", 2, "--vote", 2, "--kmeans", 1, "--steps", 30,
            "--threads", 1, "--no-refine"]  # fmt: skip

    def result(work: Path) -> Any:
        return (work / "out" / "clusters.tsv").read_text()

    def same(a: Any, b: Any) -> None:
        assert a == b

    def after_kill(work: Path, reference: Any) -> None:
        if (work / "out" / "clusters.tsv").exists():
            same(reference, result(work))
        if (work / "out" / "summary.json").exists():
            json.loads((work / "out" / "summary.json").read_text())

    return Command(
        "cluster (Influenza-A, 949 sequences, K = 6)",
        lambda w: _cli("cluster", INFLUENZA, "--out", w / "out", *args),
        lambda w: None,
        after_kill,
        result,
        same,
        lambda w: [w / "out"],
    )


def _families_mmseqs(tmp: Path) -> Command:
    """MMseqs2 runs as child processes that outlive a killed parent."""
    from phyloclr.families.mmseqs import mmseqs_binary

    if mmseqs_binary() is None:
        pytest.skip("no mmseqs binary")
    return _families(tmp, "mmseqs")


COMMANDS = {
    "pretrain": _pretrain,
    "embed": _embed,
    "families": _families,
    "families-mmseqs": _families_mmseqs,
    "cluster": _cluster,
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_survives_sigkill_and_resumes_to_the_same_result(name: str, tmp_path: Path) -> None:
    summary = survive_kills(COMMANDS[name](tmp_path), tmp_path, KILLS, seed=len(name))
    assert summary["kills_survived"] == KILLS
