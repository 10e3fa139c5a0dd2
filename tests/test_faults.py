"""Faults other than kills: untrusted checkpoints and models, malformed HDF5 inputs, a full
disk under outputs and checkpoints, and two runs sharing one family cache at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from phyloclr.cli import EXIT_INPUT, app
from phyloclr.errors import InputError
from phyloclr.families import build_families
from phyloclr.families.config import FamiliesConfig
from phyloclr.io.hdf5 import read_embeddings
from phyloclr.models.alphabet import PROTEIN
from phyloclr.models.build import build_encoder
from phyloclr.models.encoders import EncoderSpec
from phyloclr.models.store import load_model, save_model
from phyloclr.train import PretrainConfig, pretrain
from phyloclr.train.config import ModelConfig, RunConfig, ViewsConfig
from tests.conftest import DATA, REPRODUCIBLE_FAMILIES_YAML, write

runner = CliRunner()
SEEDS = DATA / "protein" / "seeds"
PROTEOME = next((DATA / "protein" / "proteome").glob("*.faa"))


class Payload:
    """Unpickling this runs ``touch MARKER``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def tiny(steps: int) -> PretrainConfig:
    return PretrainConfig(
        model=ModelConfig(dim=32, layers=2, projection_dim=16, projection_hidden=32),
        views=ViewsConfig(crop_len=64),
        run=RunConfig(max_steps=steps, batch_tokens=4096, checkpoint_every=2, threads=1),
    )


@pytest.fixture(scope="module")
def seeds():
    return build_families([SEEDS], use_cache=False)


# ---- untrusted files --------------------------------------------------------------------------


def test_a_checkpoint_holding_code_is_refused_not_run(seeds, tmp_path: Path) -> None:
    run = tmp_path / "run"
    pretrain(seeds, tiny(2), run)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    marker = tmp_path / "pwned"
    state["sampler"] = [Payload(marker)]
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(InputError, match="refused to load this phyloclr checkpoint") as info:
        pretrain(seeds, tiny(4), run, resume=True)
    assert "\n" not in str(info.value) and str(run / "checkpoint.pt") in str(info.value)
    assert not marker.exists()
    cfg = write(tmp_path / "tiny.yaml", "run: {max_steps: 4, threads: 1}\n")
    result = runner.invoke(
        app, ["pretrain", str(SEEDS), "--out", str(run), "--resume", "--config", str(cfg)]
    )
    assert result.exit_code == EXIT_INPUT and "refused to load" in result.output
    assert not marker.exists()


def test_a_model_holding_code_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"format": "phyloclr-model", "x": Payload(marker)}, tmp_path / "model.pt")
    with pytest.raises(InputError, match="refused to load this phyloclr model"):
        load_model(tmp_path / "model.pt")
    fasta = write(tmp_path / "a.fa", ">a\nMKV\n")
    result = runner.invoke(
        app, ["embed", str(fasta), "--out", str(tmp_path / "o.h5"), "--model", str(tmp_path)]
    )
    assert result.exit_code == EXIT_INPUT and "refused to load" in result.output
    assert not marker.exists() and not (tmp_path / "o.h5").exists()


def test_truncated_or_foreign_checkpoints_are_one_line_errors(seeds, tmp_path: Path) -> None:
    run = tmp_path / "run"
    pretrain(seeds, tiny(2), run)
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:500])
    with pytest.raises(InputError, match="not a readable phyloclr checkpoint"):
        pretrain(seeds, tiny(4), run, resume=True)
    torch.save({"weights": torch.zeros(2)}, ckpt)
    with pytest.raises(InputError, match="not a phyloclr checkpoint"):
        pretrain(seeds, tiny(4), run, resume=True)


def _h5(path: Path, **datasets: object) -> Path:
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "phyloclr-embeddings"
        f.attrs["complete"] = True
        for name, value in datasets.items():
            f[name] = value
    return path


@pytest.mark.parametrize(
    ("datasets", "message"),
    [
        ({"embeddings": np.zeros((3, 4), np.float32)}, "no 'ids' dataset"),
        ({"ids": np.array([b"a", b"b"])}, "no 'embeddings' dataset"),
        ({"ids": np.array([b"a"]), "embeddings": np.zeros(4, np.float32)}, "expected a 2-D"),
        ({"ids": np.array([b"a", b"b"]), "embeddings": np.array([[b"x"], [b"y"]])}, "2-D float"),
        ({"ids": np.array([b"a"]), "embeddings": np.zeros((2, 4), np.float32)}, "has 2 rows"),
        ({"ids": np.array([b"\xff\xfe"]), "embeddings": np.zeros((1, 4))}, "not UTF-8"),
    ],
)
def test_malformed_embedding_files_are_one_line_errors(
    tmp_path: Path, datasets: dict[str, object], message: str
) -> None:
    path = _h5(tmp_path / "bad.h5", **datasets)
    with pytest.raises(InputError, match=message) as info:
        read_embeddings(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    labels = write(tmp_path / "l.csv", "id,label\na,x\n")
    result = runner.invoke(app, ["evaluate", str(path), "--labels", str(labels)])
    assert result.exit_code == EXIT_INPUT and message.split()[0] in result.output


def test_an_embedding_file_with_the_wrong_count_is_refused(tmp_path: Path) -> None:
    path = _h5(tmp_path / "n.h5", ids=np.array([b"a"]), embeddings=np.zeros((1, 4), np.float32))
    with h5py.File(path, "a") as f:
        f.attrs["n_sequences"] = 5
    with pytest.raises(InputError, match="n_sequences attribute says 5"):
        read_embeddings(path)


# ---- full disk --------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs mounted by the test (needs root); remount to grow it."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, in its own process."""
    argv = [sys.executable, "-m", "phyloclr.cli", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def _grow(mnt: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True)


def _filler(mnt: Path, leave: int) -> Path:
    """Fill ``mnt`` until ``leave`` bytes are free."""
    free = shutil.disk_usage(mnt).free
    path = mnt / "filler"
    with open(path, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return path


def test_embed_on_a_full_disk_fails_cleanly_and_resumes(small_disk: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    spec = EncoderSpec(name="kmer", dim=512, layers=1, spectrum="murphy10:3", dropout=0.0)
    enc = build_encoder(spec, PROTEIN.size)
    model = tmp_path / "model.pt"
    save_model(model, enc, PROTEIN, "{}", 0, "wide")
    records = PROTEOME.read_text().split(">")[1:801]
    fasta = write(tmp_path / "p800.faa", "".join(">" + r for r in records))
    args = ["--model", str(model), "--part-size", "100", "--threads", "1"]
    straight = tmp_path / "straight.h5"
    assert _cli("embed", fasta, "--out", straight, *args).returncode == 0
    out = small_disk / "out.h5"  # 8 parts of 100 × 512 float32 (200 kB each)
    _filler(small_disk, 5 << 19)
    first = _cli("embed", fasta, "--out", out, *args)
    assert first.returncode == EXIT_INPUT
    line = first.stderr.strip()
    assert "\n" not in line and "No space left on device" in line and str(small_disk) in line
    assert not out.exists()
    parts = sorted((small_disk / "out.h5.parts").glob("part-*.h5"))
    assert parts, "the parts committed before the disk filled are kept"
    rows = 0
    for part in parts:
        with h5py.File(part) as f:
            assert f["embeddings"].shape[1] == 512
            rows += f["embeddings"].shape[0]
    _grow(small_disk, "64m")
    again = _cli("embed", fasta, "--out", out, *args, "--resume")
    assert again.returncode == 0, again.stderr
    assert f"resumed after {rows} rows" in again.stderr
    a, b = read_embeddings(straight), read_embeddings(out)
    assert a.ids == b.ids and np.array_equal(a.embeddings, b.embeddings)
    assert not [p for p in small_disk.iterdir() if p.name.endswith(".tmp")]


def test_pretrain_on_a_full_disk_keeps_its_checkpoint(
    seeds, small_disk: Path, tmp_path: Path
) -> None:
    cfg = tiny(4)
    straight = pretrain(seeds, tiny(8), tmp_path / "straight").model
    run = small_disk / "run"
    pretrain(seeds, cfg, run)
    before = (run / "checkpoint.pt").read_bytes()
    filler = _filler(small_disk, 64 << 10)
    yaml = write(tmp_path / "tiny.yaml", TINY_YAML.format(steps=8))
    result = runner.invoke(
        app, ["pretrain", str(SEEDS), "--out", str(run), "--config", str(yaml), "--resume"]
    )
    assert result.exit_code != 0
    line = result.output.strip().splitlines()[-1]
    assert "No space left on device" in line and str(run) in line, result.output
    assert (run / "checkpoint.pt").read_bytes() == before
    filler.unlink()
    resumed = pretrain(seeds, tiny(8), run, resume=True)
    assert resumed.steps == 8
    for key, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.model.state_dict()[key], atol=1e-6), key
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


TINY_YAML = """
model: {{dim: 32, layers: 2, projection_dim: 16, projection_hidden: 32}}
views: {{crop_len: 64}}
run: {{max_steps: {steps}, batch_tokens: 4096, checkpoint_every: 2, threads: 1}}
"""


def test_a_full_cache_disk_is_a_warning_not_a_failure(small_disk: Path) -> None:
    _filler(small_disk, 4 << 10)
    fset = build_families([SEEDS], cache_dir=small_disk / "cache")
    assert len(fset.families) == len(build_families([SEEDS], use_cache=False).families)
    assert any("cache" in w and "No space left" in w for w in fset.warnings), fset.warnings
    assert not list((small_disk / "cache" / "families").glob("*"))


# ---- concurrent runs --------------------------------------------------------------------------


def test_two_runs_sharing_a_cache_agree(tmp_path: Path) -> None:
    cache = tmp_path / "shared-cache"
    env = dict(os.environ, PHYLOCLR_CACHE=str(cache), OMP_NUM_THREADS="1")
    argv = [sys.executable, "-m", "phyloclr.cli", "families", str(PROTEOME), "--max-rows", "1"]
    argv += ["--denovo-method", "prefilter", "--workers", "1", "--threads", "1"]
    argv += ["--config", str(write(tmp_path / "families.yaml", REPRODUCIBLE_FAMILIES_YAML))]
    procs = []
    for i in range(2):
        out = ["--out", str(tmp_path / f"{i}.tsv")]
        procs.append(subprocess.Popen([*argv, *out], env=env, stderr=subprocess.PIPE))
    for p in procs:
        _, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr.decode()[-2000:]
    assert (tmp_path / "0.tsv").read_text() == (tmp_path / "1.tsv").read_text()
    entries = list((cache / "families").iterdir())
    assert len(entries) == 1 and not [p for p in entries if p.name.startswith(".")]
    cfg = FamiliesConfig(denovo_method="prefilter", workers=1, threads=1, align_refine=False)
    assert build_families([PROTEOME], cfg, cache_dir=cache).from_cache


def test_atomic_path_removes_only_its_files_orphans(tmp_path: Path) -> None:
    """A write of ``out.tsv`` removes the temporaries of ``out.tsv`` that a dead process on
    this host left, and keeps those of live processes, other hosts, other files and the
    older names without host and PID."""
    from phyloclr.fsutil import _owner_tag, atomic_path

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host, me = _owner_tag().rsplit(".", 1)
    orphan = write(tmp_path / f".out.tsv.{host}.{dead.pid}.ab12cd34.tmp", "half")
    kept = [
        write(tmp_path / f".out.tsv.{host}.{me}.zz99yy88.tmp", "a live writer"),
        write(tmp_path / f".out.tsv.elsewhere.{dead.pid}.ab12cd34.tmp", "another host"),
        write(tmp_path / f".other.tsv.{host}.{dead.pid}.ab12cd34.tmp", "another file"),
        write(tmp_path / ".out.tsv.k1ll3d.tmp", "an older name"),
    ]
    with atomic_path(tmp_path / "out.tsv") as tmp:
        assert tmp.name.startswith(f".out.tsv.{host}.{me}.") and tmp.name.endswith(".tmp")
        tmp.write_text("whole")
    assert (tmp_path / "out.tsv").read_text() == "whole"
    assert not orphan.exists()
    assert all(p.exists() for p in kept)
    long_name = "x" * 230 + ".tsv"  # host and PID would pass the 255-byte limit on names
    with atomic_path(tmp_path / long_name) as tmp:
        tmp.write_text("long")
    assert (tmp_path / long_name).read_text() == "long"
