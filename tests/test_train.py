"""Pretraining on tiny real data: smoke run, repeatability, resume, atomic checkpoints, DDP."""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from phyloclr.config import config_to_json
from phyloclr.errors import ConfigError, InputError
from phyloclr.families import build_families
from phyloclr.models.alphabet import PROTEIN
from phyloclr.models.store import load_model
from phyloclr.train import PretrainConfig, pretrain
from phyloclr.train.config import ModelConfig, RunConfig, ViewsConfig, load_pretrain_config
from phyloclr.train.loop import build_model
from tests.conftest import ROOT

SEEDS = ROOT / "data" / "protein" / "seeds"


def tiny(steps: int = 6, **run: object) -> PretrainConfig:
    return PretrainConfig(
        model=ModelConfig(dim=32, layers=2, projection_dim=16, projection_hidden=32),
        views=ViewsConfig(crop_len=64),
        run=RunConfig(max_steps=steps, batch_tokens=4096, checkpoint_every=3, threads=1, **run),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def seeds():
    return build_families([SEEDS], use_cache=False)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_smoke_training_writes_a_run(seeds, tmp_path: Path) -> None:
    result = pretrain(seeds, tiny(6), tmp_path / "run")
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {
        "checkpoint.pt",
        "model.pt",
        "metrics.csv",
        "config.json",
    }
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    for col in (
        "loss",
        "mi_bound",
        "alignment",
        "uniformity",
        "pos_distance",
        "lr",
        "seqs_per_s",
        "tokens_per_s",
    ):
        assert all(r[col] != "" for r in rows), col
    assert all(float(r["loss"]) > 0 for r in rows)
    loaded = load_model(run)
    assert loaded.alphabet.name == "protein" and loaded.step == 6
    assert loaded.config["model"]["dim"] == 32
    assert result.steps == 6


def test_same_seed_same_weights(seeds, tmp_path: Path) -> None:
    a = pretrain(seeds, tiny(4), tmp_path / "a").model
    b = pretrain(seeds, tiny(4), tmp_path / "b").model
    for (k, va), vb in zip(_weights(a).items(), _weights(b).values(), strict=True):
        assert torch.equal(va, vb), k
    c = pretrain(seeds, tiny(4, seed=1), tmp_path / "c").model
    assert not all(
        torch.equal(x, y) for x, y in zip(_weights(a).values(), _weights(c).values(), strict=True)
    )


def test_resume_continues_exactly(seeds, tmp_path: Path) -> None:
    straight = pretrain(seeds, tiny(6), tmp_path / "straight").model
    pretrain(seeds, tiny(3), tmp_path / "split")
    resumed = pretrain(seeds, tiny(6), tmp_path / "split", resume=True)
    assert resumed.resumed_from == 3 and resumed.steps == 6
    for (k, va), vb in zip(
        _weights(straight).items(), _weights(resumed.model).values(), strict=True
    ):
        assert torch.allclose(va, vb, atol=1e-6), k
    rows = list(csv.DictReader((tmp_path / "split" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))


def test_existing_run_needs_resume_and_same_config(seeds, tmp_path: Path) -> None:
    pretrain(seeds, tiny(2), tmp_path / "r")
    with pytest.raises(InputError, match="already holds a checkpoint"):
        pretrain(seeds, tiny(2), tmp_path / "r")
    other = PretrainConfig(
        model=ModelConfig(dim=48, layers=2, projection_dim=16, projection_hidden=32),
        views=ViewsConfig(crop_len=64),
        run=RunConfig(max_steps=4, batch_tokens=4096, threads=1),
    )
    with pytest.raises(ConfigError, match=r"model\.dim"):
        pretrain(seeds, other, tmp_path / "r", resume=True)


def test_interrupted_checkpoint_write_keeps_the_old_one(seeds, tmp_path: Path, monkeypatch) -> None:
    pretrain(seeds, tiny(3), tmp_path / "r")
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed while writing

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        pretrain(seeds, tiny(6), tmp_path / "r", resume=True)
    monkeypatch.undo()
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.startswith(".")]
    assert pretrain(seeds, tiny(6), tmp_path / "r", resume=True).steps == 6


def test_mutation_views_and_other_objectives_train(seeds, tmp_path: Path) -> None:
    for i, (mode, objective, critic) in enumerate(
        [
            ("mutation", "infonce", "cosine"),
            ("phylo", "supcon", "bilinear"),
            ("phylo", "nwj", "separable"),
            ("phylo", "infonce", "rbf"),
        ]
    ):
        base = tiny(2)
        cfg = PretrainConfig(
            model=base.model,
            views=ViewsConfig(crop_len=64, mode=mode),  # type: ignore[arg-type]
            objective=type(base.objective)(name=objective, critic=critic),  # type: ignore[arg-type]
            run=base.run,
        )
        result = pretrain(seeds, cfg, tmp_path / f"r{i}")
        assert result.steps == 2 and torch.isfinite(torch.tensor(result.final_loss))


def test_transformer_encoder_trains(seeds, tmp_path: Path) -> None:
    base = tiny(2)
    cfg = PretrainConfig(
        model=ModelConfig(
            encoder="transformer",
            dim=32,
            layers=1,
            heads=4,
            projection_dim=16,
            projection_hidden=32,
        ),
        views=base.views,
        run=base.run,
    )
    assert pretrain(seeds, cfg, tmp_path / "t").steps == 2


def test_presets_load() -> None:
    for name in ("cpu-small", "gpu-base", "cnn-small", "sketch-model"):
        cfg = load_pretrain_config(ROOT / "configs" / f"{name}.yaml")
        assert isinstance(cfg, PretrainConfig)


def test_cpu_small_preset_is_the_cli_default() -> None:
    """`phyloclr pretrain` without --config trains what configs/cpu-small.yaml says."""
    from phyloclr.train.config import default_pretrain_config

    assert load_pretrain_config(ROOT / "configs" / "cpu-small.yaml") == default_pretrain_config()


def test_unknown_config_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  dimm: 64\n")
    with pytest.raises(ConfigError, match=r"'model\.dimm'"):
        load_pretrain_config(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(1)
    fset = build_families([SEEDS], use_cache=False)
    result = pretrain(fset, tiny(1), Path(out) / "run")
    torch.save(_weights(result.model), Path(out) / f"rank{rank}.pt")
    assert not torch.distributed.is_initialized()  # the group it created is destroyed


def test_ddp_two_cpu_ranks_agree_after_a_step(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    w0 = torch.load(tmp_path / "rank0.pt")
    w1 = torch.load(tmp_path / "rank1.pt")
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    torch.manual_seed(0)
    init = _weights(build_model(tiny(1), PROTEIN))  # the step moved the weights
    assert any(not torch.equal(w0[k], v) for k, v in init.items())
    assert (tmp_path / "run" / "model.pt").exists()


def test_resume_accepts_a_config_saved_before_new_keys() -> None:
    """A run saved by an earlier phyloclr lacks newer config keys; resuming it with those keys
    at their defaults is not a change, while a key set to another value still is."""
    import json

    from phyloclr.train.state import changed_keys

    new = json.loads(config_to_json(tiny(2)))
    old = json.loads(config_to_json(tiny(2)))
    del old["model"]["spectrum"], old["views"]["singletons"]
    assert changed_keys(old, new) == []
    new["views"]["singletons"] = "skip"
    assert changed_keys(old, new) == ["views.singletons"]


def test_pretrain_files_is_the_cli_job_in_python(tmp_path: Path) -> None:
    from phyloclr.train.job import pretrain_files

    seen: list[int] = []
    stages: set[str] = set()
    job = pretrain_files(
        [SEEDS], tmp_path / "run", tiny(3), exclude_families=["fn3", "nothing"],
        on_families=lambda fset, missing: seen.append(len(fset)),
        progress=lambda stage, done, total: stages.add(stage),
    )  # fmt: skip
    assert job.result.steps == 3 and job.unmatched_exclusions == ["nothing"]
    assert "training" in stages  # the callback reaches the training loop too
    assert "fn3" not in {f.id for f in job.families.families} and seen == [len(job.families)]
    assert all(f.distances is None for f in job.families.families)  # dropped after training
    again = pretrain_files([SEEDS], tmp_path / "run", None, resume=True)  # the saved config
    assert again.result.resumed_from == 3 and again.result.steps == 3


def test_encoder_spec_is_built_from_the_model_config_by_name() -> None:
    """Every architecture field of EncoderSpec comes from ModelConfig's field of that name (a
    field added to one and not the other fails here), but the appended CNN's, which its source
    model gives (model.append_cnn), the neighbour memory's row count, the profile block's size
    and the sketch's directions, which the corpus gives after training, and the exact sketch
    (one column per k-mer), which only ``gpu_transfer hybrid --exact`` builds; max_len rises to
    the views' crop."""
    from dataclasses import fields

    from phyloclr.models.encoders import EncoderSpec

    spec_fields = {f.name for f in fields(EncoderSpec)} - {"name", "alphabet_letters"}
    appended = {f for f in spec_fields if f.startswith("appended_cnn_")}
    assert appended == {"appended_cnn_dim", "appended_cnn_layers", "appended_cnn_kernel",
                        "appended_cnn_weight"}  # fmt: skip
    spec_fields -= appended | {"memory_rows", "profile_count", "profile_bytes", "profile_z",
                               "sketch_pcs", "sketch_exact"}  # fmt: skip
    assert spec_fields <= {f.name for f in fields(ModelConfig)}
    remembering = ModelConfig(encoder="kmer", memory_neighbours=3).encoder_spec(20, 64)
    assert remembering.memory_rows == 0  # set by pretraining, never by the config
    profiling = ModelConfig(encoder="kmer", profiles=True).encoder_spec(20, 64)
    assert profiling.profile_count == profiling.profile_bytes == profiling.profile_z == 0
    directing = ModelConfig(encoder="kmer", map="sketch", layers=1, sketch_directions=4)
    assert directing.encoder_spec(20, 64).sketch_pcs == 0  # set once fitted, after training
    m = ModelConfig(encoder="kmer", dim=64, layers=1, spectrum="murphy10:3", centre=True,
                    map="sketch", max_len=256)  # fmt: skip
    spec = m.encoder_spec(20, crop_len=512)
    assert spec.name == "kmer" and spec.alphabet_letters == 20 and spec.max_len == 512
    assert all(getattr(spec, f) == getattr(m, f) for f in spec_fields - {"max_len"})
    assert m.encoder_spec(20, crop_len=128).max_len == 256
