"""phyloclr embed / evaluate: order, resume after a kill, per-residue offsets, windows,
duplicate ids, label mismatches, and the file contract."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from phyloclr.cli import EXIT_INPUT, app
from phyloclr.embed import EmbedConfig, embed_fasta, embed_sequences
from phyloclr.errors import InputError
from phyloclr.evaluate import evaluate_embeddings, hungarian_accuracy
from phyloclr.io import hdf5
from phyloclr.io.hdf5 import read_embeddings
from phyloclr.models.alphabet import PROTEIN
from phyloclr.models.build import build_encoder
from phyloclr.models.encoders import EncoderSpec
from phyloclr.models.store import load_model, save_model
from tests.conftest import write

runner = CliRunner()
AA = list("ACDEFGHIKLMNPQRSTVWY")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    enc = build_encoder(EncoderSpec(dim=16, layers=2, max_len=64, dropout=0.0), PROTEIN.size)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(path, enc, PROTEIN, "{}", 0, "tiny")
    return path


def _fasta(
    path: Path, n: int, seed: int = 0, ids: list[str] | None = None
) -> tuple[Path, list[str], list[str]]:
    rng = np.random.default_rng(seed)
    ids = ids or [f"sp|P{i:05d}|X_{i}/1-{i + 10} some desc" for i in range(n)]
    seqs = ["".join(rng.choice(AA, int(rng.integers(5, 150)))) for _ in range(n)]
    path.write_text("".join(f">{i}\n{s}\n" for i, s in zip(ids, seqs, strict=True)))
    return path, [i.split()[0] for i in ids], seqs


def test_file_contract_and_input_order(model: Path, tmp_path: Path) -> None:
    fasta, ids, seqs = _fasta(tmp_path / "in.fa", 57)
    out = tmp_path / "out.h5"
    res = embed_fasta(fasta, out, model, EmbedConfig(part_size=10, batch_tokens=300))
    assert res.n_sequences == 57
    with h5py.File(out) as f:
        assert f.attrs["format"] == "phyloclr-embeddings" and f.attrs["format_version"] == 1
        assert bool(f.attrs["complete"]) and "phyloclr_version" in f.attrs
        assert json.loads(f.attrs["model"])["weights_sha256"]
        assert json.loads(f.attrs["config"])["embed"]["part_size"] == 10
        assert f["embeddings"].dtype == np.float32 and f["embeddings"].shape == (57, 16)
        assert f["embeddings"].chunks is not None and f["embeddings"].maxshape[0] is None
    store = read_embeddings(out)
    assert store.ids == ids  # verbatim, '/' and '|' included, in input order
    loaded = load_model(model)
    direct, _ = embed_sequences(loaded.encoder, PROTEIN, seqs)
    assert np.allclose(store.embeddings, direct, atol=1e-5)
    assert not hdf5.parts_dir(out).exists()


def test_float16_and_per_residue_offsets(model: Path, tmp_path: Path) -> None:
    fasta, _, seqs = _fasta(tmp_path / "in.fa", 23)
    out = tmp_path / "out.h5"
    embed_fasta(fasta, out, model, EmbedConfig(part_size=7, dtype="float16", per_residue=True))
    with h5py.File(out) as f:
        assert f["embeddings"].dtype == np.float16
        offsets = f["offsets"][:]
        assert offsets[0] == 0 and len(offsets) == 24
        assert np.array_equal(np.diff(offsets), [len(s) for s in seqs])
        assert f["residues"].shape == (sum(len(s) for s in seqs), 16)
        # mean of a sequence's residue rows is its residue-pooled embedding
        loaded = load_model(model)
        tokens = PROTEIN.batch([seqs[3]])
        h = loaded.encoder.residues(tokens, tokens != 0)[0].detach().numpy()
        assert np.allclose(f["residues"][offsets[3] : offsets[4]], h, atol=1e-2)


def test_long_sequences_are_windowed_not_truncated(model: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    long = "".join(rng.choice(AA, 1000))
    fasta = write(tmp_path / "long.fa", f">short\nMKVLA\n>long\n{long}\n")
    out = tmp_path / "o.h5"
    res = embed_fasta(fasta, out, model, EmbedConfig(per_residue=True))
    assert res.n_windowed == 1
    with h5py.File(out) as f:
        assert f["offsets"][-1] - f["offsets"][-2] == 1000


def test_resume_after_a_kill(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fasta, ids, _ = _fasta(tmp_path / "in.fa", 40)
    out = tmp_path / "out.h5"
    cfg = EmbedConfig(part_size=8)
    calls = {"n": 0}
    real = hdf5.write_part

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed while writing the third part
        return real(*args, **kwargs)

    monkeypatch.setattr(hdf5, "write_part", dying)
    with pytest.raises(KeyboardInterrupt):
        embed_fasta(fasta, out, model, cfg)
    monkeypatch.undo()
    assert not out.exists()  # nothing reads as complete
    assert len(hdf5.committed_parts(hdf5.parts_dir(out))) == 2
    with pytest.raises(InputError, match="pass --resume"):
        embed_fasta(fasta, out, model, cfg)
    res = embed_fasta(fasta, out, model, cfg, resume=True)
    assert res.resumed_rows == 16 and res.n_sequences == 40
    fresh = tmp_path / "fresh.h5"
    embed_fasta(fasta, fresh, model, cfg)
    a, b = read_embeddings(out), read_embeddings(fresh)
    assert a.ids == b.ids == ids and np.array_equal(a.embeddings, b.embeddings)


def test_duplicate_ids(model: Path, tmp_path: Path) -> None:
    fasta = write(tmp_path / "d.fa", ">a\nMKVLA\n>b\nMKVLG\n>a\nMKKKK\n")
    with pytest.raises(InputError, match=r"record 'a': duplicate sequence id"):
        embed_fasta(fasta, tmp_path / "o.h5", model)
    res = embed_fasta(fasta, tmp_path / "o.h5", model, EmbedConfig(dedupe=True))
    assert res.n_duplicates_skipped == 1 and read_embeddings(tmp_path / "o.h5").ids == ["a", "b"]


def test_invalid_and_wrong_alphabet_records(model: Path, tmp_path: Path) -> None:
    bad = write(tmp_path / "b.fa", ">a\nMKV1A\n")
    with pytest.raises(InputError, match="invalid character '1'"):
        embed_fasta(bad, tmp_path / "o.h5", model)
    dna = write(tmp_path / "n.fa", ">g\n" + "ACGT" * 30 + "\n")
    with pytest.raises(InputError, match=r"record 'g': nucleotide sequence"):
        embed_fasta(dna, tmp_path / "o2.h5", model)


def test_existing_output_is_not_overwritten(model: Path, tmp_path: Path) -> None:
    fasta, _, _ = _fasta(tmp_path / "in.fa", 3)
    out = write(tmp_path / "o.h5", "precious")
    with pytest.raises(InputError, match="already exists"):
        embed_fasta(fasta, out, model)
    assert out.read_text() == "precious"


def test_evaluate_scores_and_label_mismatch(model: Path, tmp_path: Path) -> None:
    ids = [f"s{i}" for i in range(40)]
    labels = {x: ("A" if i < 20 else "B") for i, x in enumerate(ids[:38])}
    labels["ghost"] = "A"
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(0, 0.1, (20, 8)) + 3, rng.normal(0, 0.1, (20, 8)) - 3])
    ev = evaluate_embeddings(ids, emb, labels)
    assert ev.map == 1.0 and ev.nn1 == 1.0 and ev.kmeans_acc == 1.0 and ev.kmeans_ari == 1.0
    assert ev.linear_probe == 1.0
    assert ev.unmatched_ids == ["s38", "s39"] and ev.unmatched_labels == ["ghost"]
    assert hungarian_accuracy(np.array([0, 0, 1, 1]), np.array([5, 5, 5, 7])) == 0.75


def test_evaluate_file_reads_only_the_labelled_rows(tmp_path: Path) -> None:
    """evaluate_file reads the labelled rows block by block: the same rows, in file order, and
    the same scores as evaluating the whole file read into memory."""
    from phyloclr.evaluate import evaluate_file

    rng = np.random.default_rng(1)
    ids = [f"s{i}" for i in range(500)]
    emb = rng.normal(size=(500, 6)).astype(np.float32)
    emb[::2] += 2.0
    path = tmp_path / "e.h5"
    hdf5.write_array_file(path, ids, emb, {"format": hdf5.FORMAT, "model": "{}"})
    labels = {x: "even" if i % 2 == 0 else "odd" for i, x in enumerate(ids) if i % 7 != 3}
    labels["ghost"] = "odd"
    part = read_embeddings(path, only=labels, block=64)
    rows = [i for i in range(500) if i % 7 != 3]
    assert part.ids == [ids[i] for i in rows] and part.all_ids == ids
    assert np.array_equal(part.embeddings, emb[rows])
    csv = tmp_path / "labels.csv"
    csv.write_text("id,label\n" + "".join(f"{k},{v}\n" for k, v in labels.items()))
    got = evaluate_file(path, csv).result
    want = evaluate_embeddings(ids, emb, labels)
    assert got.as_dict() == want.as_dict()


def test_cli_embed_and_evaluate(model: Path, tmp_path: Path) -> None:
    fasta, ids, _ = _fasta(tmp_path / "in.fa", 30)
    out = tmp_path / "e.h5"
    result = runner.invoke(app, ["embed", str(fasta), "--out", str(out), "--model", str(model)])
    assert result.exit_code == 0, result.output
    labels = write(
        tmp_path / "l.csv",
        "id,label\n" + "".join(f"{x},{i % 3}\n" for i, x in enumerate(ids)) + "nobody,1\n",
    )
    js = tmp_path / "s.json"
    png = tmp_path / "m.png"
    result = runner.invoke(
        app, ["evaluate", str(out), "--labels", str(labels), "--json", str(js), "--plot", str(png)]
    )
    assert result.exit_code == 0, result.output
    assert "1 labels without an embedding: nobody" in result.output
    scores = json.loads(js.read_text())
    assert scores["n"] == 30 and 0 <= scores["map"] <= 1 and png.stat().st_size > 1000
    bad = runner.invoke(app, ["evaluate", str(fasta), "--labels", str(labels)])
    assert bad.exit_code == EXIT_INPUT and "error:" in bad.output


def test_shards_merge_into_input_order(model: Path, tmp_path: Path) -> None:
    fasta, ids, _ = _fasta(tmp_path / "in.fa", 31)
    whole = tmp_path / "whole.h5"
    embed_fasta(fasta, whole, model, EmbedConfig(per_residue=True))
    shards = []
    for i in range(3):
        shard = tmp_path / f"s{i}.h5"
        embed_fasta(
            fasta,
            shard,
            model,
            EmbedConfig(per_residue=True, shard_index=i, shard_count=3, part_size=4),
        )
        shards.append(shard)
    assert len(read_embeddings(shards[1]).ids) == 10
    merged = tmp_path / "merged.h5"
    result = runner.invoke(app, ["merge", *map(str, reversed(shards)), "--out", str(merged)])
    assert result.exit_code == 0, result.output
    a, b = read_embeddings(merged), read_embeddings(whole)
    assert a.ids == ids == b.ids and np.allclose(a.embeddings, b.embeddings, atol=1e-6)
    with h5py.File(merged) as f, h5py.File(whole) as g:
        assert np.array_equal(f["offsets"][:], g["offsets"][:])
        assert np.allclose(f["residues"][:], g["residues"][:], atol=1e-6)
    missing = runner.invoke(
        app, ["merge", str(shards[0]), str(shards[2]), "--out", str(tmp_path / "x.h5")]
    )
    assert missing.exit_code == EXIT_INPUT and "exactly one file for each i" in missing.output


def _torchrun_worker(rank: int, world: int, port: int, fasta: str, out: str, model: str) -> None:
    import os

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})  # fmt: skip
    torch.set_num_threads(1)
    from phyloclr.embed import embed_fasta_torchrun

    embed_fasta_torchrun(fasta, out, model, EmbedConfig(device="cpu"))
    assert not torch.distributed.is_initialized()  # the group it created is destroyed


def test_embed_under_torchrun_two_ranks(model: Path, tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    from tests.test_train import _free_port

    fasta, ids, _ = _fasta(tmp_path / "in.fa", 25)
    out = tmp_path / "ddp.h5"
    mp.spawn(
        _torchrun_worker,
        args=(2, _free_port(), str(fasta), str(out), str(model)),
        nprocs=2,
        join=True,
    )
    single = tmp_path / "one.h5"
    embed_fasta(fasta, single, model)
    a, b = read_embeddings(out), read_embeddings(single)
    assert a.ids == ids and np.allclose(a.embeddings, b.embeddings, atol=1e-6)
    assert not list(tmp_path.glob("ddp.h5.shard-*"))


def test_resume_of_a_finished_run_is_a_no_op(model: Path, tmp_path: Path) -> None:
    """A run killed after its final rename (parts removed or not) resumes to its output."""
    fasta, _, _ = _fasta(tmp_path / "in.fa", 23)
    out = tmp_path / "out.h5"
    cfg = EmbedConfig(part_size=10, batch_tokens=300)
    embed_fasta(fasta, out, model, cfg)
    before = out.read_bytes()
    hdf5.parts_dir(out).mkdir()  # as if killed before the parts were removed
    again = embed_fasta(fasta, out, model, cfg, resume=True)
    assert again.n_sequences == 23 and out.read_bytes() == before
    assert not hdf5.parts_dir(out).exists()
    assert embed_fasta(fasta, out, model, cfg, resume=True).n_sequences == 23
    with pytest.raises(InputError, match="already exists"):
        embed_fasta(fasta, out, model, EmbedConfig(part_size=5, batch_tokens=300), resume=True)
    with pytest.raises(InputError, match="already exists"):
        embed_fasta(fasta, out, model, cfg)


def test_auto_precision_follows_the_cpus_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    from phyloclr import devices
    from phyloclr.devices import resolve_precision
    from phyloclr.errors import ConfigError

    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "_cpu_flags", lambda: {"avx2", "fma"})
    assert resolve_precision("auto", cpu) == "float32"
    monkeypatch.setattr(devices, "_cpu_flags", lambda: {"avx512f", "amx_bf16"})
    assert resolve_precision("auto", cpu) == "bfloat16"
    assert resolve_precision("float32", cpu) == "float32"
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("float8", cpu)


def test_bfloat16_embeddings_are_close_to_float32_and_recorded(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phyloclr import devices
    from phyloclr.models.encoders import DilatedCNN

    fasta, _, seqs = _fasta(tmp_path / "in.fa", 30)
    loaded = load_model(model)
    f32, _ = embed_sequences(loaded.encoder, PROTEIN, seqs, precision="float32")
    b16, _ = embed_sequences(loaded.encoder, PROTEIN, seqs, precision="bfloat16")
    cos = (f32 * b16).sum(1) / np.linalg.norm(f32, axis=1) / np.linalg.norm(b16, axis=1)
    assert cos.min() > 0.999 and not np.array_equal(f32, b16)
    cnns = [m for m in loaded.encoder.modules() if isinstance(m, DilatedCNN)]
    assert cnns and not any(m.bf16_inference for m in cnns)  # the setting does not leak
    out = tmp_path / "b.h5"
    embed_fasta(fasta, out, model, EmbedConfig(precision="bfloat16"))
    with h5py.File(out) as f:
        assert f.attrs["precision"] == "bfloat16"
    assert np.allclose(read_embeddings(out).embeddings, b16, atol=1e-5)
    # 'auto' resolved on one machine is not resumed by a machine that resolves it otherwise
    monkeypatch.setattr(devices, "_cpu_flags", lambda: {"amx_bf16"})
    real = hdf5.write_part
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(hdf5, "write_part", dying)
    auto = tmp_path / "auto.h5"
    with pytest.raises(KeyboardInterrupt):
        embed_fasta(fasta, auto, model, EmbedConfig(part_size=10, precision="auto"))
    monkeypatch.setattr(hdf5, "write_part", real)
    monkeypatch.setattr(devices, "_cpu_flags", lambda: {"avx2"})
    with pytest.raises(InputError, match="different input, model or settings"):
        embed_fasta(fasta, auto, model, EmbedConfig(part_size=10, precision="auto"), resume=True)


def test_shards_computed_at_different_precisions_do_not_merge(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phyloclr import devices
    from phyloclr.embed import merge_shards

    fasta, _, _ = _fasta(tmp_path / "in.fa", 12)
    shards = []
    for i, flags in enumerate(({"amx_bf16"}, {"avx2"})):  # 'auto' on two kinds of machine
        monkeypatch.setattr(devices, "_cpu_flags", lambda flags=flags: flags)
        shards.append(tmp_path / f"s{i}.h5")
        embed_fasta(fasta, shards[-1], model,
                    EmbedConfig(precision="auto", shard_index=i, shard_count=2))  # fmt: skip
    with pytest.raises(InputError, match="different models or settings"):
        merge_shards(shards, tmp_path / "merged.h5")
