"""The neighbour memory (``model.memory_neighbours``): each embedding is smoothed over its k
nearest embeddings of the training corpus, its own row left out; pretraining builds it, the
model file round-trips it, ``embed`` applies it, and a resumed run builds the same one. Second
order (``model.memory_bank_neighbours``): the corpus rows are smoothed among themselves first,
and own rows are found by sequence key."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from phyloclr.embed import embed_sequences
from phyloclr.errors import ConfigError
from phyloclr.families import build_families
from phyloclr.models.alphabet import PROTEIN
from phyloclr.models.memory import NeighbourMemory, attach_memory, sequence_key, sequence_keys
from phyloclr.models.spectrum import KmerSpectrum
from phyloclr.models.store import load_model
from phyloclr.train import PretrainConfig, pretrain
from phyloclr.train.config import ModelConfig, RunConfig, ViewsConfig
from tests.conftest import ROOT

SEEDS = ROOT / "data" / "protein" / "seeds"


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _expected(q: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    """The smoothing written out: q + Σ max(cos, 0) b over the k nearest rows but q's own
    (the nearest, when it is as close as a copy)."""
    q, bank = _unit(q), _unit(bank)
    cos = bank @ q
    order = list(np.argsort(-cos)[: k + 1])
    order = order[1:] if cos[order[0]] >= 0.995 else order[:k]
    return _unit(q + sum(max(cos[i], 0.0) * bank[i] for i in order))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_smoothing_matches_the_written_out_sum(k: int) -> None:
    rng = np.random.default_rng(k)
    bank = rng.normal(size=(40, 24)).astype(np.float32)
    memory = NeighbourMemory(40, 24, k, chunk=7)  # several chunks: the top-k is merged
    memory.fill(torch.from_numpy(bank))
    inside = bank[[3, 17]] * 2.5  # corpus members (scale does not matter)
    outside = rng.normal(size=(3, 24)).astype(np.float32)
    for q in np.concatenate([inside, outside]):
        got = memory.smooth(q[None])[0]
        np.testing.assert_allclose(got, _expected(q, bank, k), atol=3e-3)
    both = memory.smooth(np.concatenate([inside, outside]))  # rows do not see each other
    alone = np.concatenate([memory.smooth(r[None]) for r in np.concatenate([inside, outside])])
    np.testing.assert_allclose(both, alone, atol=1e-6)


def test_a_member_is_smoothed_over_others_not_itself() -> None:
    bank = np.eye(4, dtype=np.float32)
    bank[1] = _unit(np.array([1.0, 0.5, 0, 0], dtype=np.float32))  # near row 0
    bank[2] = -bank[0]  # opposite: weight 0 even when among the nearest
    memory = NeighbourMemory(4, 4, 2)
    memory.fill(torch.from_numpy(bank))
    got = memory.smooth(bank[:1])[0]
    c = float(bank[1] @ bank[0])  # row 0 is left out, row 1 and row 3 (cosine 0) remain
    np.testing.assert_allclose(got, _unit(bank[0] + c * bank[1]), atol=3e-3)
    small = NeighbourMemory(2, 4, 5)  # fewer rows than neighbours: all the others
    small.fill(torch.from_numpy(bank[:2]))
    np.testing.assert_allclose(small.smooth(bank[:1])[0], _unit(bank[0] + c * bank[1]), atol=3e-3)


def test_quantised_rows_keep_cosines() -> None:
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(50, 300)).astype(np.float32)
    memory = NeighbourMemory(50, 300, 3)
    memory.fill(torch.from_numpy(bank))
    assert memory.bank.dtype == torch.int8
    back = memory.rows(torch.arange(50)).numpy()
    np.testing.assert_allclose(back @ back.T, _unit(bank) @ _unit(bank).T, atol=5e-3)
    half = NeighbourMemory(50, 300, 3)  # filled a block at a time: the same rows
    half.fill(torch.from_numpy(bank[:20]))
    half.fill(torch.from_numpy(bank[20:]), 20)
    assert torch.equal(half.bank, memory.bank) and torch.equal(half.scale, memory.scale)
    with pytest.raises(ValueError, match="do not fit"):
        memory.fill(torch.zeros(49, 300), 2)


def _keyed_expected(q: np.ndarray, key: int, bank: np.ndarray, keys: list[int],
                    k: int) -> np.ndarray:  # fmt: skip
    """Keyed smoothing written out: q + Σ max(cos, 0) b over the k nearest rows whose key is
    not the query's."""
    q, bank = _unit(q), _unit(bank)
    cos = bank @ q
    order = [i for i in np.argsort(-cos, kind="stable") if keys[i] != key][:k]
    return _unit(q + sum(max(cos[i], 0.0) * bank[i] for i in order))


def _tied(q: np.ndarray, key: int, bank: np.ndarray, keys: list[int], k: int) -> bool:
    """Whether the k-th and (k+1)-th nearest rows of another key are within 10⁻³ in cosine."""
    cos = np.sort([c for c, r in zip(_unit(bank) @ _unit(q), keys, strict=True) if r != key])
    return len(cos) > k and cos[-k] - cos[-k - 1] < 1e-3


def test_second_order_smoothing_matches_the_written_out_sums() -> None:
    rng = np.random.default_rng(7)
    bank = rng.normal(size=(30, 16)).astype(np.float32)
    bank[5] = bank[4]  # an identical copy: the same protein, left out of each other's sums
    seqs = [f"MK{'A' * i}W" for i in range(30)]
    seqs[5] = seqs[4].lower()  # keys ignore case
    keys = [sequence_key(s) for s in seqs]
    assert keys[4] == keys[5] and len(set(keys)) == 29
    memory = NeighbourMemory(30, 16, 3, bank_neighbours=4, chunk=7)
    memory.fill(torch.from_numpy(bank), 0, sequence_keys(seqs))
    memory.smooth_bank()
    rows = memory.rows(torch.arange(30)).numpy()
    second = np.stack([_keyed_expected(bank[i], keys[i], bank, keys, 4) for i in range(30)])
    np.testing.assert_allclose(rows, second, atol=6e-3)
    queries = np.concatenate([bank[[4, 11]] * 3.0, rng.normal(size=(2, 16)).astype(np.float32)])
    qseqs = [seqs[4], seqs[11], "QQQ", "RRR"]  # two corpus members, two strangers
    got = memory.smooth(queries, sequence_keys(qseqs))
    for q, s, g in zip(queries, qseqs, got, strict=True):
        np.testing.assert_allclose(g, _keyed_expected(q, sequence_key(s), second, keys, 3),
                                   atol=6e-3)  # fmt: skip
    with pytest.raises(ValueError, match="sequence key of every query"):
        memory.smooth(queries)
    with pytest.raises(ValueError, match="a sequence key per row"):
        memory.fill(torch.from_numpy(bank))
    first = NeighbourMemory(30, 16, 3)
    with pytest.raises(ValueError, match="only a second-order memory"):
        first.smooth_bank()
    assert "keys" not in first.state_dict()  # first-order model files hold no keys


def _config(max_rows: int = 50_000, bank_neighbours: int = 0) -> PretrainConfig:
    model = ModelConfig(encoder="kmer", spectrum="murphy10:3", dim=32, layers=1,
                        projection_dim=0, sketch="murphy10:11011", sketch_dim=64,
                        sketch_weight=0.5, memory_neighbours=3,
                        memory_max_rows=max_rows,
                        memory_bank_neighbours=bank_neighbours)  # fmt: skip
    return PretrainConfig(
        model=model,
        views=ViewsConfig(crop_len=64),
        run=RunConfig(max_steps=4, batch_tokens=4096, checkpoint_every=2, threads=1),
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("memory") / "run"
    pretrain(build_families([SEEDS], use_cache=True), _config(), out)
    return out


def test_pretrain_keeps_the_corpus_and_embed_smooths_over_it(run: Path) -> None:
    seqs = [r.seq for f in build_families([SEEDS], use_cache=True).families for r in f.records]
    loaded = load_model(run)
    enc = loaded.encoder
    assert isinstance(enc, KmerSpectrum) and enc.memory is not None
    assert enc.spec.memory_rows == len(seqs) and enc.spec.memory_neighbours == 3
    smoothed, _ = embed_sequences(enc, PROTEIN, seqs[:12])
    memory, enc.memory = enc.memory, None
    raw_all, _ = embed_sequences(enc, PROTEIN, seqs)
    raw = raw_all[:12]
    assert not np.allclose(smoothed, _unit(raw), atol=1e-3)  # it does something
    # the bank is the corpus embedded by the trained encoder, unsmoothed (int8 rows)
    bank = memory.rows(torch.arange(len(seqs))).numpy()
    assert np.min(np.sum(_unit(raw_all) * bank, axis=1)) > 0.99
    for q, got in zip(raw, smoothed, strict=True):
        np.testing.assert_allclose(got, _expected(q, bank, 3), atol=3e-3)
    enc.memory = memory
    assert enc.dim == smoothed.shape[1] == 32 + 64


@pytest.fixture(scope="module")
def run2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("memory2") / "run"
    pretrain(build_families([SEEDS], use_cache=True), _config(bank_neighbours=2), out)
    return out


def test_a_second_order_memory_is_built_and_applied(run2: Path) -> None:
    seqs = [r.seq for f in build_families([SEEDS], use_cache=True).families for r in f.records]
    enc = load_model(run2).encoder
    assert isinstance(enc, KmerSpectrum) and enc.memory is not None and enc.memory.keyed
    assert enc.spec.memory_bank_neighbours == 2 and enc.spec.memory_rows == len(seqs)
    queried = [*seqs[:8], "MKTAYIAKQRQISFVKSHFSRQ"]  # eight corpus members and a stranger
    smoothed, _ = embed_sequences(enc, PROTEIN, queried)
    memory, enc.memory = enc.memory, None
    raw_all, _ = embed_sequences(enc, PROTEIN, seqs)
    keys = [sequence_key(s) for s in seqs]
    assert torch.equal(memory.keys, torch.tensor(keys))  # type: ignore[arg-type]
    first = NeighbourMemory(len(seqs), enc.dim, 1)  # the raw rows, quantised as the bank was
    first.fill(torch.from_numpy(raw_all))
    raw_q = first.rows(torch.arange(len(seqs))).numpy()
    second = np.stack(
        [_keyed_expected(r, c, raw_q, keys, 2) for r, c in zip(raw_q, keys, strict=True)]
    )
    bank = memory.rows(torch.arange(len(seqs))).numpy()
    # the bank: rows smoothed among rows (but where the 2nd and 3rd nearest are within
    # rounding, 10⁻³ in cosine, and either may be taken)
    clear = [i for i in range(len(seqs)) if not _tied(raw_q[i], keys[i], raw_q, keys, 2)]
    assert len(clear) > 0.9 * len(seqs)
    np.testing.assert_allclose(bank[clear], second[clear], atol=6e-3)
    queries, _ = embed_sequences(enc, PROTEIN, queried)
    for q, s, got in zip(queries, queried, smoothed, strict=True):
        if _tied(q, sequence_key(s), bank, keys, 3):
            continue
        np.testing.assert_allclose(got, _keyed_expected(q, sequence_key(s), bank, keys, 3),
                                   atol=3e-3)  # fmt: skip


@pytest.mark.parametrize("order", [1, 2])
def test_resuming_a_finished_run_builds_the_same_memory(
    order: int, run: Path, run2: Path, tmp_path: Path
) -> None:
    import shutil

    done = run if order == 1 else run2
    copy = tmp_path / "run"
    shutil.copytree(done, copy)
    (copy / "model.pt").unlink()  # as if killed while the memory was being built
    cfg = _config(bank_neighbours=0 if order == 1 else 2)
    result = pretrain(build_families([SEEDS], use_cache=True), cfg, copy, resume=True)
    assert result.steps == 4 and not math.isnan(result.final_loss)  # the logged last loss
    a, b = load_model(done).encoder.state_dict(), load_model(copy).encoder.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ("memory.keys" in a) == (order == 2)


def test_a_large_corpus_keeps_a_sample(tmp_path: Path) -> None:
    out = tmp_path / "run"
    pretrain(build_families([SEEDS], use_cache=True), _config(max_rows=10), out)
    enc = load_model(out).encoder
    assert enc.spec.memory_rows == 10 and enc.memory is not None


def test_memory_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"memory_neighbours needs model\.encoder 'kmer'"):
        ModelConfig(encoder="cnn", memory_neighbours=5)
    with pytest.raises(ConfigError, match="memory_neighbours must be ≥ 0"):
        ModelConfig(encoder="kmer", memory_neighbours=-1)
    for bad in ({"memory_bank_neighbours": -1, "memory_neighbours": 3},
                {"memory_bank_neighbours": 5}):  # fmt: skip
        with pytest.raises(ConfigError, match="memory_bank_neighbours must be ≥ 0"):
            ModelConfig(encoder="kmer", **bad)
    cnn = load_model(ROOT / "src" / "phyloclr" / "data" / "default_model.pt").encoder
    with pytest.raises(ValueError, match="keeps no neighbour memory"):
        attach_memory(cnn, NeighbourMemory(2, cnn.dim, 1))


def test_embed_smooths_unless_told_not_to(run: Path, tmp_path: Path) -> None:
    import h5py
    from typer.testing import CliRunner

    from phyloclr.cli import app

    seqs = [r.seq for f in build_families([SEEDS], use_cache=True).families for r in f.records]
    fasta = tmp_path / "q.fasta"
    fasta.write_text("".join(f">q{i}\n{s}\n" for i, s in enumerate(seqs[:5])))
    got = {}
    for name, extra in (("smoothed", []), ("raw", ["--no-memory"])):
        out = tmp_path / f"{name}.h5"
        result = CliRunner().invoke(
            app, ["embed", str(fasta), "--model", str(run), "--out", str(out), *extra]
        )
        assert result.exit_code == 0, result.output
        with h5py.File(out) as fh:
            got[name] = fh["embeddings"][:]
    enc = load_model(run).encoder
    np.testing.assert_allclose(got["smoothed"], embed_sequences(enc, PROTEIN, seqs[:5])[0],
                               atol=1e-5)  # fmt: skip
    enc.memory = None
    np.testing.assert_allclose(got["raw"], embed_sequences(enc, PROTEIN, seqs[:5])[0], atol=1e-5)
    assert not np.allclose(_unit(got["raw"]), got["smoothed"], atol=1e-3)


def test_search_embeds_queries_as_the_database_was(run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from phyloclr.cli import app

    seqs = [r.seq for f in build_families([SEEDS], use_cache=True).families for r in f.records]
    fasta = tmp_path / "db.fasta"
    fasta.write_text("".join(f">d{i}\n{s}\n" for i, s in enumerate(seqs[:6])))
    runner = CliRunner()
    for name, extra in (("smoothed", []), ("raw", ["--no-memory"])):
        out = tmp_path / f"{name}.h5"
        args = ["embed", str(fasta), "--model", str(run), "--out", str(out), *extra]
        assert runner.invoke(app, args).exit_code == 0
    for name in ("smoothed", "raw"):  # FASTA queries: itself first, at cosine 1
        hits = tmp_path / f"{name}.tsv"
        args = ["search", str(fasta), "--db", str(tmp_path / f"{name}.h5"), "--out", str(hits),
                "--top", "1"]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        lines = hits.read_text().splitlines()
        rows = [ln.split("\t") for ln in lines if ln[0] != "#" and not ln.startswith("query\t")]
        assert [r[:2] for r in rows] == [[f"d{i}", f"d{i}"] for i in range(6)]
        assert all(abs(float(r[2]) - 1.0) < 1e-4 for r in rows)
    mixed = ["search", str(tmp_path / "smoothed.h5"), "--db", str(tmp_path / "raw.h5"),
             "--out", str(tmp_path / "x.tsv")]  # fmt: skip
    result = runner.invoke(app, mixed)
    assert result.exit_code != 0 and "embed both the same way" in result.output
