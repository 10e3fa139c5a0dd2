"""Two machines on one: torchrun with ``--nnodes 2`` over loopback, one process per node.

Each node is its own ``torchrun`` launcher (as on two hosts of a cluster, with a shared
filesystem), rendezvousing at node 0's address. Pretraining must write one run whose model
both nodes agree on, and sharded embedding must give the single-process file row for row.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "data" / "protein" / "seeds"
TORCHRUN = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")

pytestmark = pytest.mark.skipif(not Path(TORCHRUN).exists(), reason="no torchrun")

TINY = """\
model: {dim: 32, layers: 2, projection_dim: 16, projection_hidden: 32}
views: {crop_len: 64}
run: {max_steps: 2, batch_tokens: 4096, checkpoint_every: 1, threads: 1}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _two_nodes(args: list[str], cwd: Path) -> None:
    """Run ``phyloclr ARGS`` as two torchrun nodes of one process each; both must succeed."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}  # a crash shows where
    launch = [TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--master-addr", "127.0.0.1",
              "--master-port", str(port)]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*launch, "--node-rank", str(node), "-m", "phyloclr.cli", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in (0, 1)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for node, (p, out) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, f"node {node} failed:\n{out[-3000:]}"


def test_pretrain_and_embed_on_two_nodes(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    cache = ["--cache-dir", str(tmp_path / "cache")]
    _two_nodes(["pretrain", str(SEEDS), "--config", str(config), "--out", "run", *cache],
               tmp_path)  # fmt: skip
    run = tmp_path / "run"
    assert (run / "model.pt").exists() and (run / "checkpoint.pt").exists()
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 2  # one writer: a header and the two steps, not twice as many

    fasta = tmp_path / "q.fasta"
    fasta.write_text("".join(f">p{i}\n{'MKVLAAGIVGLLLAAQSTAEEWKR'[i % 7 :]}\n" for i in range(9)))
    _two_nodes(["embed", str(fasta), "--model", str(run / "model.pt"), "--out", "two.h5"],
               tmp_path)  # fmt: skip
    one = ["embed", str(fasta), "--model", str(run / "model.pt"), "--out", str(tmp_path / "one.h5")]
    single = subprocess.run([sys.executable, "-m", "phyloclr.cli", *one], capture_output=True,
                            text=True)  # fmt: skip
    assert single.returncode == 0, single.stderr
    with h5py.File(tmp_path / "two.h5") as a, h5py.File(tmp_path / "one.h5") as b:
        assert [x.decode() for x in a["ids"][:]] == [f"p{i}" for i in range(9)]
        two, one = a["embeddings"][:], b["embeddings"][:]
    assert np.isfinite(two).all() and np.abs(two).sum() > 0
    assert np.allclose(two, one, atol=1e-5)


def test_sketched_cnn_pretrains_on_two_nodes(tmp_path: Path) -> None:
    """The appended sketch is never trained, so DDP sees no parameter without a gradient."""
    config = tmp_path / "hybrid.yaml"
    config.write_text(
        TINY.replace("model: {", "model: {encoder: cnn, sketch: 'murphy10:1111', sketch_dim: 64, ")
    )
    _two_nodes(["pretrain", str(SEEDS), "--config", str(config), "--out", "run",
                "--cache-dir", str(tmp_path / "cache")], tmp_path)  # fmt: skip
    assert len((tmp_path / "run" / "metrics.csv").read_text().splitlines()) == 1 + 2


def test_a_neighbour_memory_is_built_once_on_two_nodes(tmp_path: Path) -> None:
    """The default's k-mer encoder trains under DDP (no parameter left without a gradient), and
    rank 0 builds the profile block and embeds the corpus into the model's memory (second
    order, as the default's) while rank 1 waits: one model results."""
    config = tmp_path / "memory.yaml"
    config.write_text(
        TINY.replace("model: {", "model: {encoder: kmer, spectrum: 'murphy10:3', "
                     "memory_neighbours: 3, memory_bank_neighbours: 2, profiles: true, ")
        .replace("layers: 2", "layers: 1")
    )  # fmt: skip
    _two_nodes(["pretrain", str(SEEDS), "--config", str(config), "--out", "run",
                "--cache-dir", str(tmp_path / "cache")], tmp_path)  # fmt: skip
    from phyloclr.families import build_families
    from phyloclr.models.store import load_model

    enc = load_model(tmp_path / "run").encoder
    members = build_families([SEEDS], cache_dir=tmp_path / "cache").n_sequences
    assert enc.spec.memory_rows == members and getattr(enc, "memory", None) is not None
    assert enc.spec.memory_bank_neighbours == 2 and enc.memory.keyed
    assert enc.spec.profile_count > 0 and enc.memory.bank.shape[1] == enc.dim  # profiles held


def _corpus(protein: Path, tmp_path: Path, n_fam: int = 4, per: int = 10) -> Path:
    from Bio import SeqIO

    files = sorted((protein / "trimal_eggnog").glob("*.fasta"))
    lines = [
        f">{rec.id}\n{str(rec.seq).replace('-', '')}\n"
        for f in files[:n_fam]
        for rec in list(SeqIO.parse(f, "fasta"))[:per]
    ]
    lines.append(lines[0].replace(">", ">copy_", 1))  # a duplicate joins its first copy
    path = tmp_path / "corpus.fa"
    path.write_text("".join(lines))
    return path


def test_families_searched_in_parts_equal_one_search(protein: Path, tmp_path: Path) -> None:
    """Three machines each search one part of the homology search into a shared cache; the
    build afterwards searches nothing and gives the families of a single search."""
    from phyloclr.families import FamiliesConfig, build_families
    from phyloclr.families.build import search_part

    corpus = _corpus(protein, tmp_path)
    cfg = FamiliesConfig(workers=1, threads=1)
    shared = tmp_path / "shared-cache"
    searched = [search_part(corpus, i, 3, cfg, cache_dir=shared) for i in range(3)]
    assert sum(searched) == 40 and all(n > 0 for n in searched)  # 41 records, one a copy
    assert search_part(corpus, 1, 3, cfg, cache_dir=shared) == 0  # a part done is not redone
    stages: list[str] = []
    parts = build_families([corpus], cfg, cache_dir=shared,
                           progress=lambda stage, done, total: stages.append(stage))  # fmt: skip
    assert "homology search" not in stages  # every query came from the parts
    single = build_families([corpus], cfg, use_cache=False)
    assert [sorted(f.names) for f in parts] == [sorted(f.names) for f in single]
    assert max(f.size for f in parts) >= 10


def test_cli_shard_option(protein: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from phyloclr.cli import app

    corpus = _corpus(protein, tmp_path, n_fam=2, per=5)
    runner = CliRunner()
    cache = ["--cache-dir", str(tmp_path / "c"), "--workers", "1"]
    ok = runner.invoke(app, ["families", str(corpus), "--shard", "1/2", *cache])
    assert ok.exit_code == 0 and "shard 1/2: searched" in ok.output
    for bad, why in ((["--shard", "2/2"], "0..n-1"), (["--shard", "x"], "i/n"),
                     (["--shard", "0/2", "--denovo-method", "mmseqs"], "prefilter")):  # fmt: skip
        res = runner.invoke(app, ["families", str(corpus), *bad, *cache])
        assert res.exit_code != 0 and why in res.output, res.output


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--version"], 0, "phyloclr "),
        (["families", "missing.fasta"], 2, "missing.fasta: no such file"),
    ],
)
def test_a_torchrun_process_exits_with_the_commands_status(
    tmp_path: Path, args: list[str], code: int, text: str
) -> None:
    """Under torchrun (WORLD_SIZE > 1) the CLI ends with os._exit: the status and the printed
    lines must still be those of the command."""
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}
    run = subprocess.run([sys.executable, "-m", "phyloclr.cli", *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == code, run.stdout + run.stderr
    assert text in run.stdout + run.stderr
