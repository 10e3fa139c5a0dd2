"""The profile block (``model.profiles``): profile HMMs of the training corpus's families, each
protein's hits to them appended to its embedding; pretraining builds it (before the memory,
which then holds it), the model file round-trips it, a resumed run builds the same one, and a
protein's vector does not depend on what it is embedded with."""

from __future__ import annotations

import gc
import math
import shutil
from pathlib import Path

import numpy as np
import pyhmmer
import pytest
import torch

from phyloclr.embed import embed_sequences
from phyloclr.errors import ConfigError, InputError
from phyloclr.families import build_families
from phyloclr.families.model import FamilySet
from phyloclr.models.alphabet import PROTEIN
from phyloclr.models.profiles import (
    ProfileBlock,
    attach_profiles,
    build_hmms,
    decode_tokens,
    pack_hmms,
    profile_families,
    refine_hmms,
    unpack_hmms,
)
from phyloclr.models.spectrum import KmerSpectrum, side_by_side
from phyloclr.models.store import load_model
from phyloclr.train import PretrainConfig, pretrain
from phyloclr.train.config import ModelConfig, RunConfig, ViewsConfig
from tests.conftest import ROOT

SEEDS = ROOT / "data" / "protein" / "seeds"


@pytest.fixture(scope="module")
def seeds() -> FamilySet:
    return build_families([SEEDS], use_cache=True)


@pytest.fixture(scope="module")
def block(seeds: FamilySet) -> ProfileBlock:
    fams = profile_families(seeds.families, 3, 2000)
    return ProfileBlock.from_hmms(build_hmms(fams, 8, seed=0, threads=1), 0.1, seeds.n_sequences)


def test_each_member_hits_its_own_familys_profile(seeds: FamilySet, block: ProfileBlock) -> None:
    fams = profile_families(seeds.families, 3, 2000)
    assert [f.id for f in fams] == [f.id for f in seeds.families if f.size >= 3]
    assert block.count == len(fams) > 10
    own = best = 0
    for j, fam in enumerate(fams):
        vec = block([r.seq for r in fam.records]).numpy()
        assert vec.shape == (fam.size, block.count) and (vec >= 0).all()
        own += int((vec[:, j] > 0).sum())
        best += int((vec.argmax(1) == j).sum())
    members = sum(f.size for f in fams)
    assert own > 0.95 * members and best > 0.9 * members  # built from ≤ 8 rows of each
    stranger = block(["MKTAYIAKQRQISFVKSHFSRQ"]).numpy()
    assert not stranger.any()  # no profile: zeros


def test_a_vector_does_not_depend_on_its_batch(seeds: FamilySet, block: ProfileBlock) -> None:
    seqs = [r.seq for f in seeds.families for r in f.records][::7]
    together = block(seqs)
    alone = torch.cat([block([s]) for s in seqs])
    assert torch.equal(together, alone)  # E-values against a fixed database size
    assert together.any(1).float().mean() > 0.8
    hits = block([seqs[0], ""])  # an empty sequence hits nothing
    assert torch.equal(hits[0], together[0]) and not hits[1].any()


def test_hits_are_the_vectors_entries(seeds: FamilySet, block: ProfileBlock) -> None:
    seqs = [r.seq for f in seeds.families for r in f.records][::5]
    rows, cols, bits = block.hits(seqs)
    assert len(rows) > len(seqs) * 0.8 and (bits > 0).all()
    assert np.all(np.diff(rows * block.count + cols) > 0)  # sorted, one hit a pair
    dense = np.zeros((len(seqs), block.count), dtype=np.float32)
    dense[rows, cols] = np.sqrt(bits)
    assert np.array_equal(block(seqs).numpy(), dense)


def test_a_round_rebuilds_each_profile_from_its_best_hits(seeds: FamilySet) -> None:
    fams = profile_families(seeds.families, 3, 2000)
    first = build_hmms(fams, 2, seed=0, threads=1)  # two rows each: narrow profiles
    seqs = [r.seq for f in seeds.families for r in f.records]
    heard: list[tuple[int, int]] = []
    again = refine_hmms(first, seqs, seeds.n_sequences, evalue=1e-3, max_hits=50,
                        progress=lambda done, n: heard.append((done, n)))  # fmt: skip
    assert [h.name for h in again] == [h.name for h in first]
    assert heard == [(i, len(first)) for i in range(1, len(first) + 1)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)
    try:
        other = refine_hmms(first, seqs, seeds.n_sequences, evalue=1e-3, max_hits=50)
    finally:
        torch.set_num_threads(threads)
    assert bytes(pack_hmms(again).numpy()) == bytes(pack_hmms(other).numpy())
    # the same HMMs and sequences give the same bytes, whatever the number of threads
    found = [
        ProfileBlock.from_hmms(h, 1e-3, seeds.n_sequences)(seqs).numpy() for h in (first, again)
    ]
    own = [sum(int((f[[seqs.index(r.seq) for r in fam.records], j] > 0).sum())
               for j, fam in enumerate(fams)) for f in found]  # fmt: skip
    assert own[1] - own[0] > 0.05 * sum(f.size for f in fams)  # the round finds more members
    # searched against one family alone, only its profile has 2 hits: the rest stay as they were
    alone = refine_hmms(first, [r.seq for r in fams[0].records], seeds.n_sequences, max_hits=50)
    assert alone[0] is not first[0] and all(
        a is b for a, b in zip(alone[1:], first[1:], strict=True)
    )


def test_a_round_leaves_no_search_pipeline_behind(seeds: FamilySet) -> None:
    # pyhmmer's pipelines sit in reference cycles and hold ~1 GB each after long hits: a round
    # must free them itself, not leave them to a full collection that a process holding a
    # million families' objects rarely runs (automatic collection is off here, as good as)
    fams = profile_families(seeds.families, 3, 2000)
    first = build_hmms(fams, 2, seed=0, threads=1)
    seqs = [r.seq for f in seeds.families for r in f.records]

    def alive() -> int:
        return sum(isinstance(o, pyhmmer.plan7.Pipeline) for o in gc.get_objects())

    gc.collect()
    before = alive()
    gc.disable()
    try:
        refine_hmms(first, seqs, seeds.n_sequences, evalue=1e-3, max_hits=50)
        assert alive() == before
    finally:
        gc.enable()


def test_packing_round_trips(seeds: FamilySet) -> None:
    fams = profile_families(seeds.families, 3, 3)
    top = sorted((f.size for f in seeds.families), reverse=True)[:3]
    assert sorted(f.size for f in fams) == sorted(top)  # the three largest, in input order
    order = [f.id for f in seeds.families]
    assert [order.index(f.id) for f in fams] == sorted(order.index(f.id) for f in fams)
    hmms = build_hmms(fams, 5, seed=1, threads=1)
    back = unpack_hmms(pack_hmms(hmms))
    names = [h.name.decode() if isinstance(h.name, bytes) else h.name for h in back]
    assert names == [f.id for f in fams]
    assert all(a.M == b.M for a, b in zip(hmms, back, strict=True))
    seen: list[int] = []
    split = build_hmms(fams, 5, seed=1, threads=2, progress=lambda done, n: seen.append(done))
    assert bytes(pack_hmms(split).numpy()) == bytes(pack_hmms(hmms).numpy())  # any threads
    assert seen == [1, 2, 3]


def test_tokens_decode_to_their_sequences() -> None:
    seqs = ["MKVL", "ACDEFGHIKLMNPQRSTVWY", "MXB"]
    text = decode_tokens(PROTEIN.batch(seqs), PROTEIN.letters)
    assert text[:2] == seqs[:2] and text[2] == "MXX"  # unknown letters as X


def _config(memory: bool) -> PretrainConfig:
    model = ModelConfig(encoder="kmer", spectrum="murphy10:3", dim=32, layers=1,
                        projection_dim=0, sketch="murphy10:11011", sketch_dim=64,
                        sketch_weight=0.5, memory_neighbours=3 if memory else 0,
                        memory_bank_neighbours=2 if memory else 0, profiles=True,
                        profile_max_members=6, profile_weight=0.3)  # fmt: skip
    return PretrainConfig(
        model=model,
        views=ViewsConfig(crop_len=64),
        run=RunConfig(max_steps=4, batch_tokens=4096, checkpoint_every=2, threads=1),
    )


#: the stages the memory run reported, in order (each once)
STAGES: list[str] = []


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    out = {}
    for memory in (False, True):
        out[memory] = tmp_path_factory.mktemp("profiles") / "run"

        def heard(stage: str, done: int, total: int | None) -> None:
            if not STAGES or STAGES[-1] != stage:
                STAGES.append(stage)

        pretrain(build_families([SEEDS], use_cache=True), _config(memory), out[memory],
                 progress=heard if memory else None)  # fmt: skip
    return out


def test_the_stages_after_training_report_progress(runs: dict[bool, Path]) -> None:
    assert STAGES == ["training", "profiles", "profile round 1", "memory", "memory bank"]


def test_pretrain_appends_the_profile_block(seeds: FamilySet, runs: dict[bool, Path]) -> None:
    enc = load_model(runs[False]).encoder
    assert isinstance(enc, KmerSpectrum) and enc.profiles is not None and enc.memory is None
    count = sum(f.size >= 3 for f in seeds.families)
    assert enc.spec.profile_count == count and enc.spec.profile_z == seeds.n_sequences
    assert enc.dim == 32 + 64 + count
    seqs = [r.seq for f in seeds.families for r in f.records]
    got, _ = embed_sequences(enc, PROTEIN, seqs)
    block, enc.profiles = enc.profiles, None
    enc.spec = enc.spec.__class__(**{**enc.spec.__dict__, "profile_count": 0})
    base, _ = embed_sequences(enc, PROTEIN, seqs)
    expected = side_by_side(torch.from_numpy(base), block(seqs), 0.3).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    own = got[:, 96:]
    assert (np.linalg.norm(own, axis=1) > 0).mean() > 0.9  # nearly every member hits


def test_the_memory_holds_the_profile_block(runs: dict[bool, Path]) -> None:
    enc = load_model(runs[True]).encoder
    assert isinstance(enc, KmerSpectrum) and enc.profiles is not None
    assert enc.memory is not None and enc.memory.bank.shape[1] == enc.dim  # type: ignore[union-attr]
    plain = load_model(runs[False]).encoder
    assert enc.spec.profile_count == plain.spec.profile_count
    a, b = enc.state_dict()["profiles.packed"], plain.state_dict()["profiles.packed"]
    assert torch.equal(a, b)  # the same families, rows and seed: the same HMMs


def test_resuming_a_finished_run_builds_the_same_block(
    runs: dict[bool, Path], tmp_path: Path
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(runs[True], copy)
    (copy / "model.pt").unlink()  # as if killed while the profiles were being built
    result = pretrain(build_families([SEEDS], use_cache=True), _config(True), copy, resume=True)
    assert result.steps == 4 and not math.isnan(result.final_loss)
    a, b = load_model(runs[True]).encoder.state_dict(), load_model(copy).encoder.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "profiles.packed" in a


def test_distances_and_pipelines_go_after_their_stages(
    runs: dict[bool, Path], tmp_path: Path
) -> None:
    """``release_distances`` frees every family's distance matrix once training is over, before
    the profiles are built (no reference left, the run's own training families included), and
    the model is the one built with them kept; no search pipeline outlives the memory stage."""
    import weakref

    fset = build_families([SEEDS], use_cache=True)
    held = [weakref.ref(f.distances) for f in fset.families if f.distances is not None]
    assert len(held) > 3
    alive: dict[str, int] = {}

    def heard(stage: str, done: int, total: int | None) -> None:
        if stage not in alive:
            gc.collect()
            alive[stage] = sum(ref() is not None for ref in held)

    def pipelines() -> int:  # alive anywhere (other tests' blocks included)
        gc.collect()
        return sum(isinstance(o, pyhmmer.plan7.Pipeline) for o in gc.get_objects())

    before = pipelines()
    result = pretrain(fset, _config(True), tmp_path / "run", progress=heard,
                      release_distances=True)  # fmt: skip
    assert alive["training"] == len(held) and alive["profiles"] == 0
    assert all(f.distances is None for f in fset.families)
    # the memory's embedding searched with the model's block: its pipelines went
    assert result.model.encoder.profiles is not None and pipelines() == before
    a = load_model(runs[True]).encoder.state_dict()
    b = result.model.encoder.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_profile_errors(seeds: FamilySet, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model.profiles needs model\.encoder 'kmer'"):
        ModelConfig(encoder="cnn", profiles=True)
    with pytest.raises(ConfigError, match="profile_weight must lie in"):
        ModelConfig(encoder="kmer", profiles=True, profile_weight=1.0)
    with pytest.raises(ConfigError, match="must be ≥ 1"):
        ModelConfig(encoder="kmer", profiles=True, profile_max=0)
    for bad in ({"profile_rounds": -1}, {"profile_round_evalue": 0.0}, {"profile_round_hits": 1}):
        with pytest.raises(ConfigError, match="profile_rounds must be ≥ 0"):
            ModelConfig(encoder="kmer", profiles=True, **bad)  # type: ignore[arg-type]
    cfg = _config(False)
    big = PretrainConfig(model=ModelConfig(**{**cfg.model.__dict__, "profile_min_members": 500}),
                         views=cfg.views, run=cfg.run)  # fmt: skip
    with pytest.raises(InputError, match="no family has 500 or more members"):
        pretrain(seeds, big, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before training
    dna = PretrainConfig(model=cfg.model, views=cfg.views,
                         run=RunConfig(**{**cfg.run.__dict__, "alphabet": "dna"}))  # fmt: skip
    with pytest.raises(ConfigError, match=r"model\.profiles needs protein families; these are dna"):
        pretrain(seeds, dna, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    cnn = load_model(ROOT / "src" / "phyloclr" / "data" / "default_model.pt").encoder
    with pytest.raises(ValueError, match="keeps no profile block"):
        attach_profiles(cnn, [], 10)
