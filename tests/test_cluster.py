"""phyloclr cluster: output contract, label matching across runs, K choice, errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from phyloclr.cli import EXIT_INPUT, app
from phyloclr.cluster import (
    ClusterConfig,
    cluster_sequences,
    kmeans_refine,
    label_mapping,
    neighbour_cut,
    read_dna,
    score,
)
from phyloclr.errors import ConfigError, InputError
from tests.conftest import write

runner = CliRunner()


def _synthetic(
    path: Path, groups: int = 3, per: int = 20, length: int = 600
) -> tuple[Path, dict[str, str]]:
    """Copies of ``groups`` random ancestors with 3% substitutions and a few Ns."""
    rng = np.random.default_rng(0)
    lines, labels = [], {}
    for g in range(groups):
        ancestor = rng.choice(list("ACGT"), length)
        for i in range(per):
            seq = ancestor.copy()
            sites = rng.random(length) < 0.03
            seq[sites] = rng.choice(list("ACGT"), int(sites.sum()))
            seq[rng.integers(0, length)] = "N"
            rid = f"g{g}_s{i}/x"
            lines.append(f">{rid}\n{''.join(seq)}\n")
            labels[rid] = f"group{g}"
    order = rng.permutation(len(lines))
    path.write_text("".join(lines[i] for i in order))
    return path, labels


def test_refine_moves_misplaced_points_and_keeps_empty_clusters_empty() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = np.repeat(np.arange(3), 30)
    space = centres[truth] + rng.normal(0, 1, (90, 2))
    start = truth.copy()
    start[[0, 1, 30, 31, 60]] = [1, 2, 0, 2, 1]  # five sequences in the wrong cluster
    resp = kmeans_refine(space, start, n_clusters=5)  # a 5-output head that uses 3 clusters
    assert resp.shape == (90, 5) and np.allclose(resp.sum(1), 1.0)
    assert np.array_equal(resp.argmax(1), truth)
    assert np.all(resp[:, 3:] == 0)
    assert resp.max(1).min() > 0.99  # well-separated blobs: confident assignments


def test_neighbour_cut_known_answers() -> None:
    from phyloclr.cluster import neighbour_cut

    # two triangles joined by one link each way: 0-1-2 and 3-4-5, neighbours of 2 and 3 cross
    graph = np.array([[1, 2], [0, 2], [1, 3], [4, 2], [3, 5], [3, 4]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert neighbour_cut(graph, labels) == pytest.approx(1 / 6)  # 1 of 6 links leaves each
    assert neighbour_cut(graph, np.array([0, 1, 0, 1, 0, 1])) > 0.5
    assert neighbour_cut(graph, np.zeros(6, dtype=int)) == 1.0  # nothing separated


def test_label_mapping_is_label_free_hungarian() -> None:
    ref = np.array([0, 0, 1, 1, 2, 2])
    other = np.array([2, 2, 0, 0, 1, 1])
    mapping = label_mapping(ref, other, 3)
    assert np.array_equal(mapping[other], ref)


def test_clusters_synthetic_families(tmp_path: Path) -> None:
    fasta, labels = _synthetic(tmp_path / "s.fa")
    records, counts = read_dna(fasta)
    assert counts["ambiguous_bases"] == 60
    cfg = ClusterConfig(
        n_clusters=3, input="kmer", k=4, steps=40, batch_size=32, threads=1, runs=2, heads=2,
        kmeans=0, hierarchical=(),
    )  # fmt: skip
    result = cluster_sequences(records, cfg)
    assert result.ids == [r.id for r in records]
    assert set(result.clusters.tolist()) <= {0, 1, 2}
    assert ((result.probability >= 0) & (result.probability <= 1)).all()
    assert score(result.ids, result.clusters, labels)["acc"] >= 0.9
    assert result.voted is not None and result.voted.shape == (60,)
    assert result.summary["relatives"] == {"nearest": 10}  # half an expected cluster of 20
    assert result.embeddings.shape == (60, 512)  # the run holding the best partition
    assert len(result.candidates) == 8  # 2 runs × 2 heads, each also refined by k-means
    assert sum(c.refined for c in result.candidates) == 4
    keys = [c.rank_key(cfg.select) for c in result.candidates]
    assert keys == sorted(keys)  # best first: the worse of the two ranks, then their sum
    assert {c.rank_cut for c in result.candidates} and result.candidates[0].rank_cut >= 1
    by_cut = cluster_sequences(records, replace(cfg, select="cut"))
    cuts = [c.cut for c in by_cut.candidates]
    assert cuts == sorted(cuts)
    assert [c["cut"] for c in result.summary["candidates"]] == [  # type: ignore[union-attr]
        round(c.cut, 4) for c in result.candidates
    ]
    by_sil = cluster_sequences(records, replace(cfg, select="silhouette"))
    sils = [c.silhouette for c in by_sil.candidates]
    assert sils == sorted(sils, reverse=True)
    raw = cluster_sequences(records, replace(cfg, refine=False))
    assert raw.voted is not None and np.array_equal(raw.clusters, raw.voted)
    assert not any(c.refined for c in raw.candidates)
    heads_only = cluster_sequences(records, replace(cfg, rank_refined=False))
    assert np.array_equal(raw.voted, heads_only.voted)  # refinement comes after the vote
    reseeded = cluster_sequences(records, replace(cfg, seed=7, steps=5))
    assert result.space is not None and reseeded.space is not None
    assert np.array_equal(result.space, reseeded.space)  # seeds differ in training only


def test_kmeans_partitions_join_the_pool(tmp_path: Path) -> None:
    fasta, labels = _synthetic(tmp_path / "s.fa")
    records, _ = read_dna(fasta)
    cfg = ClusterConfig(n_clusters=3, k=4, steps=1, batch_size=32, threads=1, runs=1, heads=2,
                        kmeans=3, vote=1)  # fmt: skip
    result = cluster_sequences(records, cfg)
    sources = [c.source for c in result.candidates]
    assert sources.count("kmeans") == 3 and sources.count("kmeans-raw") == 3
    assert sources.count("tcl") == 4  # 2 heads, each also refined
    keys = [c.rank_key(cfg.select) for c in result.candidates]
    assert keys == sorted(keys)  # k-means partitions are ranked with the heads
    km = next(c for c in result.candidates if c.source == "kmeans-raw")
    assert score(result.ids, km.labels, labels)["acc"] == 1.0  # three separated families
    # one step of training leaves the heads near chance: the ranking picks a k-means partition
    assert result.candidates[0].source.startswith("kmeans")
    assert score(result.ids, result.clusters, labels)["acc"] == 1.0
    assert result.embeddings.shape == (60, 512)  # from the best head, not a k-means partition
    summary = result.summary["candidates"]
    assert [c["source"] for c in summary] == sources  # type: ignore[index]
    assert result.summary["voted_sources"] == [result.candidates[0].source]
    few = cluster_sequences(records[:4], replace(cfg, n_clusters=5, batch_size=4))
    assert {c.source for c in few.candidates} == {"tcl"}  # more clusters than sequences
    # K chosen: no k-means partitions (there is no K to give them)
    auto = cluster_sequences(records, replace(cfg, n_clusters=0, runs=2, max_clusters=3))
    assert {c.source for c in auto.candidates} == {"tcl"}


def test_both_scores_must_agree() -> None:
    from phyloclr.cluster import Candidate, with_ranks

    labels = np.zeros(4, dtype=np.int64)
    pool = [
        Candidate(
            0, 0, cut=0.01, silhouette=0.1, labels=labels, n_clusters=2
        ),  # best cut, worst sil.
        Candidate(0, 1, cut=0.02, silhouette=0.5, labels=labels, n_clusters=2),  # second by both
        Candidate(
            0, 2, cut=0.05, silhouette=0.6, labels=labels, n_clusters=2
        ),  # best sil., worst cut
        Candidate(
            0, 3, cut=0.03, silhouette=0.2, labels=labels, n_clusters=3
        ),  # another K: own ranks
    ]
    ranked = with_ranks(pool)
    assert [(c.rank_cut, c.rank_silhouette) for c in ranked] == [
        (1.0, 3.0), (2.0, 2.0), (3.0, 1.0), (1.0, 1.0)
    ]  # fmt: skip
    best = min(ranked[:3], key=lambda c: c.rank_key("both"))
    assert best.head == 1
    assert min(ranked[:3], key=lambda c: c.rank_key("cut")).head == 0
    assert min(ranked[:3], key=lambda c: c.rank_key("silhouette")).head == 2


def test_three_scores_and_clade_separation() -> None:
    from phyloclr.cluster import Candidate, separation, with_ranks

    # four clades on a line: A and B close (one phylum), C and D each far from everything
    rng = np.random.default_rng(0)
    centres = np.array([[1.0, 0.0, 0.0], [1.0, 0.25, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    space = np.repeat(centres, 20, axis=0) + rng.normal(0, 0.02, (80, 3))
    clade = np.repeat([0, 0, 1, 2], 20)  # A+B merged, C, D: the deep split, K = 3
    shallow = np.repeat([0, 1, 2, 2], 20)  # A and B split, C and D merged
    assert separation(space, clade) > 2 * separation(space, shallow)
    assert separation(space, np.zeros(80, dtype=np.int64)) == 0.0
    labels = np.zeros(4, dtype=np.int64)
    pool = [  # best by cut and silhouette, least separated: "both" picks it, "three" does not
        Candidate(0, 0, cut=0.01, silhouette=0.6, labels=labels, n_clusters=2, separation=0.5),
        Candidate(0, 1, cut=0.02, silhouette=0.5, labels=labels, n_clusters=2, separation=2.0),
        Candidate(0, 2, cut=0.03, silhouette=0.4, labels=labels, n_clusters=2, separation=1.5),
    ]
    ranked = with_ranks(pool)
    assert [c.rank_separation for c in ranked] == [3.0, 1.0, 2.0]
    assert min(ranked, key=lambda c: c.rank_key("both")).head == 0
    assert min(ranked, key=lambda c: c.rank_key("three")).head == 1  # worse rank 2, not 3
    assert ClusterConfig().select == "three"


def test_votes_by_default_one_with_k_given_three_when_chosen() -> None:
    from phyloclr.cluster import voters

    assert voters(ClusterConfig(n_clusters=4)) == 1
    assert voters(ClusterConfig()) == 3  # K chosen: one partition per run
    assert voters(ClusterConfig(n_clusters=4, vote=2)) == 2
    with pytest.raises(ConfigError, match="vote"):
        ClusterConfig(n_clusters=4, vote=-1)


def test_steps_grow_with_the_data() -> None:
    from phyloclr.cluster import auto_steps

    assert auto_steps(113, 113) == 60  # the floor
    assert auto_steps(1000, 256) == 79  # 20 epochs
    assert auto_steps(5000, 256) == 300 and auto_steps(100_000, 256) == 300  # the ceiling
    from phyloclr.cluster import run_steps

    assert run_steps(ClusterConfig(n_clusters=5), 1000) == 79  # K given: grows with the data
    assert run_steps(ClusterConfig(), 1000) == 300  # K chosen: the setting it was measured with
    assert run_steps(ClusterConfig(steps=7), 1000) == 7
    with pytest.raises(ConfigError, match="steps ≥ 0"):
        ClusterConfig(steps=-1)


def test_relatives_reach_about_half_an_expected_cluster() -> None:
    from phyloclr.cluster import relatives_count

    assert relatives_count(ClusterConfig(n_clusters=8), 331) == 21  # round(0.5 × 331 / 8)
    assert relatives_count(ClusterConfig(n_clusters=10), 121) == 6
    assert relatives_count(ClusterConfig(n_clusters=10), 60) == 5  # the floor: neighbours
    assert relatives_count(ClusterConfig(n_clusters=5), 4647) == 50  # the ceiling
    assert relatives_count(ClusterConfig(), 4647) == 5  # K chosen: neighbours, as measured
    assert relatives_count(ClusterConfig(n_clusters=5, neighbours_per_cluster=0), 4647) == 5
    assert relatives_count(ClusterConfig(n_clusters=5, neighbours=0), 4647) == 0  # mutation only
    assert relatives_count(ClusterConfig(n_clusters=5, neighbours=60), 4647) == 60  # a floor
    with pytest.raises(ConfigError, match="neighbours_per_cluster must be ≥ 0"):
        ClusterConfig(neighbours_per_cluster=-1)


def test_hierarchical_partitions_join_the_pool(tmp_path: Path) -> None:
    fasta, labels = _synthetic(tmp_path / "s.fa")
    records, _ = read_dna(fasta)
    cfg = ClusterConfig(n_clusters=3, k=4, steps=1, batch_size=32, threads=1, runs=1, heads=1,
                        kmeans=0, hierarchical=("ward", "average"), vote=1)  # fmt: skip
    result = cluster_sequences(records, cfg)
    sources = [c.source for c in result.candidates]
    assert sorted(s for s in sources if s != "tcl") == ["average", "average-raw", "ward",
                                                        "ward-raw"]  # fmt: skip
    for c in result.candidates:
        if c.source != "tcl":  # three separated families: every linkage finds them
            assert score(result.ids, c.labels, labels)["acc"] == 1.0
            assert not c.refined and c.run == -1
    assert result.candidates[0].source != "tcl"  # ranked with the near-chance heads
    assert score(result.ids, result.clusters, labels)["acc"] == 1.0
    capped = cluster_sequences(records, replace(cfg, hierarchical_limit=59))  # N = 60
    assert {c.source for c in capped.candidates} == {"tcl"}
    with pytest.raises(ConfigError, match="ward or average"):
        ClusterConfig(hierarchical=("single",))


def test_cluster_config_file(tmp_path: Path) -> None:
    from phyloclr.cluster import load_cluster_config

    path = write(tmp_path / "c.yaml", "n_clusters: 4\nkmeans: 2\nstrong:\n  indel_rate: 0.0\n"
                 "hierarchical: [ward, average]\n")  # fmt: skip
    cfg = load_cluster_config(path, {"kmeans": 5})
    assert (cfg.n_clusters, cfg.kmeans) == (4, 5)  # the override wins
    assert cfg.hierarchical == ("ward", "average")
    assert cfg.strong.indel_rate == 0.0
    assert cfg.strong.transition_rate == ClusterConfig().strong.transition_rate  # merged
    bad = write(tmp_path / "bad.yaml", "n_cluster: 4\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'n_cluster'"):
        load_cluster_config(bad)
    wrong = write(tmp_path / "wrong.yaml", "strong:\n  indel_rate: lots\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: strong.indel_rate: expected a number"):
        load_cluster_config(wrong)


def test_cli_config_file(tmp_path: Path) -> None:
    fasta, _ = _synthetic(tmp_path / "s.fa")
    text = ("n_clusters: 3\nk: 4\nsteps: 5\nruns: 1\nheads: 1\nvote: 1\nkmeans: 1\n"
            "batch_size: 32\nthreads: 1\nweak:\n  crop_min: 0.9\n")  # fmt: skip
    conf = write(tmp_path / "c.yaml", text)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["cluster", str(fasta), "--config", str(conf), "--steps", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "summary.json").read_text())["config"]
    assert config["steps"] == 3 and config["k"] == 4 and config["weak"]["crop_min"] == 0.9
    bad = write(tmp_path / "bad.yaml", "n_clusters: 3\nhead: 2\n")
    result = runner.invoke(app, ["cluster", str(fasta), "--config", str(bad), "--out", str(out)])
    assert result.exit_code == 2 and "bad.yaml" in result.output and "'head'" in result.output


def test_cli_help_states_the_config_defaults() -> None:
    """Each ``[default]`` written in a cluster option's help is ClusterConfig's default."""
    import re

    import typer

    command = typer.main.get_command(app).commands["cluster"]  # type: ignore[attr-defined]
    names = {"input_kind": "input"}
    flags = {True: "on", False: "off"}
    checked = 0
    for param in command.params:
        said = re.search(r"\[([^\]]+)\]$", getattr(param, "help", None) or "")
        field = names.get(param.name, param.name)
        if said is None or field not in ClusterConfig.__dataclass_fields__:
            continue
        default = getattr(ClusterConfig(), field)
        assert said.group(1) == (flags[default] if isinstance(default, bool) else str(default)), (
            field
        )
        checked += 1
    assert checked >= 15


def test_refined_heads_are_ranked_beside_the_raw_ones() -> None:
    from phyloclr.cluster import Candidate, assign, kmer_neighbours, refined_candidate

    # three separated blobs (the neighbour graph is by cosine: away from the origin); the
    # better raw head has five points in the wrong cluster, the other is noise
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(3), 30)
    centres = np.array([[10.0, 0.0], [0.0, 10.0], [-10.0, 0.0]])
    space = centres[truth] + rng.normal(0, 1, (90, 2))
    graph = kmer_neighbours(space, 5)
    cfg = ClusterConfig(n_clusters=3, vote=1)
    misplaced = truth.copy()
    misplaced[[0, 1, 30, 31, 60]] = [1, 2, 0, 2, 1]
    noise = rng.integers(0, 3, 90)
    eye = np.eye(3)
    heads = []
    for h, labels in enumerate((misplaced, noise)):
        c = Candidate(0, h, neighbour_cut(graph, labels), 0.0, labels, 3)
        heads.append((c, eye[labels]))
    refined = [refined_candidate(c, space, graph, cfg) for c, _ in heads]
    assert all(c.refined and c.n_clusters == 3 for c, _ in refined)
    assert np.array_equal(refined[0][0].labels, truth) and refined[0][0].cut < heads[0][0].cut
    assert np.allclose(refined[0][1].sum(1), 1.0)  # k-means responsibilities
    pool = heads + refined
    best = assign(pool, space, 3, cfg).chosen[0][0]
    assert best.refined and best.head == 0
    # ranking the raw heads only, the misplaced head is voted, then refined: the same answer
    # here, but the voter is the raw head
    heads_only = assign(pool, space, 3, replace(cfg, rank_refined=False))
    assert not heads_only.chosen[0][0].refined and heads_only.chosen[0][0].head == 0
    assert np.array_equal(heads_only.final, truth)
    assert np.array_equal(assign(pool, space, 3, replace(cfg, refine=False)).final, truth)
    assert not np.array_equal(
        assign(pool, space, 3, replace(cfg, refine=False, rank_refined=False)).final, truth
    )


def test_choose_k_takes_the_smallest_stable_local_maximum() -> None:
    from phyloclr.cluster import choose_k

    def curve(*s: float) -> list[dict[str, float]]:
        return [{"k": k, "stability": x, "cut": 0.0} for k, x in enumerate(s, start=2)]

    # Influenza-like: K = 3 is a local maximum but below the floor; K = 5 is the answer even
    # though K = 7 and the fine K = 9 are about as reproducible
    assert choose_k(curve(0.19, 0.43, 0.33, 0.76, 0.67, 0.75, 0.6, 0.8), 0.6) == 5
    assert choose_k(curve(0.76, 1.0, 0.46, 0.43), 0.6) == 3  # rising into K = 3 is no peak
    assert choose_k(curve(0.9, 0.5, 0.95), 0.6) == 2  # the edge counts as a local maximum
    assert choose_k(curve(0.7, 0.7, 0.5), 0.6) == 3  # a plateau resolves to its larger end
    assert choose_k(curve(0.2, 0.3, 0.4), 0.6) == 4  # nothing reaches the floor: most stable
    assert choose_k(curve(0.3, 0.5, 0.5), 0.6) == 3  # ... the smaller K on ties
    with pytest.raises(ValueError):
        choose_k([], 0.6)


def test_k_stability_compares_runs_only() -> None:
    from phyloclr.cluster import Candidate, k_stability

    a = np.repeat(np.arange(3), 10)
    shuffled = np.random.default_rng(0).permutation(a)
    cands = [
        Candidate(0, 0, 0.1, 0.5, a, 3), Candidate(1, 0, 0.3, 0.5, (a + 1) % 3, 3),
        Candidate(0, 1, 0.2, 0.5, a % 2, 2), Candidate(0, 2, 0.2, 0.5, 1 - a % 2, 2),
        Candidate(1, 1, 0.4, 0.5, shuffled % 2, 2),
    ]  # fmt: skip
    scores = k_stability(cands)
    assert [s["k"] for s in scores] == [2, 3]
    assert scores[1]["stability"] == 1.0 and scores[1]["cut"] == pytest.approx(0.2)
    assert scores[0]["stability"] < 0.3  # the two run-0 heads agree, but only runs are compared
    # two runs that each misplace a few points of three separated blobs: refined by k-means in
    # the space, they agree
    rng = np.random.default_rng(1)
    truth = np.repeat(np.arange(3), 20)
    space = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])[truth] + rng.normal(0, 1, (60, 2))
    first, second = truth.copy(), truth.copy()
    first[[0, 1, 20]] = [1, 2, 2]
    second[[40, 41]] = [0, 1]
    runs = [Candidate(0, 0, 0.1, 0.5, first, 3), Candidate(1, 0, 0.1, 0.5, second, 3)]
    assert k_stability(runs)[0]["stability"] < 0.95
    assert k_stability(runs, space)[0]["stability"] == 1.0


def test_choosing_k_finds_the_groups_and_reports_every_k(tmp_path: Path) -> None:
    fasta, labels = _synthetic(tmp_path / "s.fa", groups=4, per=15)
    records, _ = read_dna(fasta)
    cfg = ClusterConfig(n_clusters=0, max_clusters=7, input="kmer", k=4, steps=60, batch_size=32,
                        runs=2, threads=1)  # fmt: skip
    result = cluster_sequences(records, cfg)
    assert result.summary["k_chosen"] is True
    scores = result.summary["k_scores"]
    assert [s["k"] for s in scores] == list(range(2, 8))  # type: ignore[union-attr]
    assert result.n_clusters == 4 and result.clusters.max() == 3
    assert score(result.ids, result.clusters, labels)["acc"] == 1.0
    assert len(result.candidates) == 2 * 6 + 2  # one head per K per run, the chosen K's refined
    assert all(c.n_clusters == 4 for c in result.candidates if c.refined)
    with pytest.raises(ConfigError):
        ClusterConfig(n_clusters=0, runs=1)


def test_cli_outputs_and_scores(tmp_path: Path) -> None:
    fasta, labels = _synthetic(tmp_path / "s.fa")
    csv = write(
        tmp_path / "labels.csv", "id,label\n" + "".join(f"{k},{v}\n" for k, v in labels.items())
    )
    out = tmp_path / "out"
    args = ["cluster", str(fasta), "--n-clusters", "3", "--input", "kmer", "--k", "4",
            "--steps", "10", "--runs", "1", "--heads", "2", "--vote", "2", "--batch-size", "32",
            "--labels", str(csv), "--out", str(out),
            "--embeddings", "--threads", "1"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "clusters.tsv", sep="\t")
    assert list(table.columns) == ["id", "cluster", "probability"]
    assert table["id"].tolist() == [r.id for r in read_dna(fasta)[0]]  # input order, '/' kept
    summary = json.loads((out / "summary.json").read_text())
    assert {"acc", "nmi", "ari"} <= set(summary["scores"]) and summary["k"] == 3
    assert summary["config"]["steps"] == 10 and "seconds" in summary
    from phyloclr.io.hdf5 import read_embeddings

    assert read_embeddings(out / "embeddings.h5").embeddings.shape == (60, 512)
    assert summary["reverse_complemented"] == 0 and "was chosen" not in result.output
    auto = [*args[:2], "--n-clusters", "0", "--max-clusters", "5", *args[4:]]
    auto[auto.index(str(out))] = str(tmp_path / "auto")
    result = runner.invoke(app, auto)
    assert result.exit_code == 2 and "runs ≥ 2" in result.output  # one run cannot be compared
    auto[auto.index("--runs") + 1] = "2"
    result = runner.invoke(app, auto)
    assert result.exit_code == 0, result.output
    assert "was chosen" in result.output  # the K-choice note
    summary = json.loads((tmp_path / "auto" / "summary.json").read_text())
    assert [s["k"] for s in summary["k_scores"]] == [2, 3, 4, 5] and summary["k_chosen"]


def test_errors(tmp_path: Path) -> None:
    prot = write(tmp_path / "p.fa", ">p\nMKVLAAGIVGLLLQWERTYIPASDF\n")
    with pytest.raises(InputError, match="record 'p': not a nucleotide"):
        read_dna(prot)
    short = write(tmp_path / "s.fa", ">a\nACGTACGTAC\n>b\nACG\n")
    with pytest.raises(InputError, match="shorter than k=6: b"):
        cluster_sequences(read_dna(short)[0], ClusterConfig(n_clusters=2))
    with pytest.raises(ConfigError):
        ClusterConfig(n_clusters=1)
    result = runner.invoke(app, ["cluster", str(prot), "--out", str(tmp_path / "o")])
    assert result.exit_code == EXIT_INPUT and not (tmp_path / "o" / "clusters.tsv").exists()


def test_vote_matches_labels_and_breaks_ties_by_the_best() -> None:
    from phyloclr.cluster import vote_partitions

    eye = np.eye(3)
    best = eye[[0, 0, 1, 1, 2, 2]]
    renamed = eye[[2, 2, 0, 0, 1, 1]]  # same partition, other names
    other = eye[[0, 0, 1, 2, 2, 2]]
    labels, mean, agree = vote_partitions([best, renamed, other], 3)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert agree.tolist() == [3, 3, 3, 2, 3, 3]  # ``other`` dissents on the fourth
    assert np.allclose(mean.sum(1), 1.0)
    labels, _, agree = vote_partitions(
        [best, other], 3
    )  # a 1–1 tie goes to the first (best) partition
    assert labels.tolist() == [0, 0, 1, 1, 2, 2] and agree.tolist() == [2, 2, 2, 1, 2, 2]


def test_featuriser_standardises_and_lays_out_fcgr() -> None:
    from phyloclr import dna
    from phyloclr.cluster import Featuriser
    from phyloclr.dna import fcgr, normalise

    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACGT"), 300)) for _ in range(20)]
    codes = [dna.encode(s) for s in seqs]
    x = Featuriser(codes, ClusterConfig(k=3)).standardised(codes)
    assert x.shape == (20, 64)
    assert np.allclose(x.mean(0), 0, atol=1e-4) and np.allclose(x.std(0), 1, atol=1e-3)
    img = Featuriser(codes, ClusterConfig(k=3, input="fcgr"))(codes).numpy()
    assert np.allclose(img, normalise(fcgr(seqs, 3))[:, None], atol=1e-5)


def test_phylo_neighbours_from_tree_and_msa(tmp_path: Path) -> None:
    from phyloclr.cluster import phylo_neighbours

    tree = write(tmp_path / "t.nwk", "((a:1,b:1):5,(c:1,(d:0.5,e:0.9):0.2):5);\n")
    cfg = ClusterConfig(input="phylo", tree=str(tree), neighbours=1)
    near = phylo_neighbours(["e", "a", "b", "c", "d"], cfg)
    assert near[:, 0].tolist() == [4, 2, 1, 4, 0]  # e↔d, a↔b, c → d (index 4 = d)
    msa = write(tmp_path / "m.fa", ">a\nAAAA-A\n>b\nAAAA-C\n>c\nCCCCTT\n")
    cfg = ClusterConfig(input="phylo", msa=str(msa), neighbours=1)
    assert phylo_neighbours(["a", "b", "c"], cfg)[:2, 0].tolist() == [1, 0]
    with pytest.raises(InputError, match="'zz'"):
        phylo_neighbours(["a", "zz"], cfg)
    with pytest.raises(ConfigError, match="exactly one"):
        ClusterConfig(input="phylo")


def test_cli_phylo_input(tmp_path: Path) -> None:
    fasta, labels = _synthetic(tmp_path / "s.fa", per=6)
    ids = [r.id for r in read_dna(fasta)[0]]
    groups = {g: [i for i in ids if labels[i] == g] for g in sorted(set(labels.values()))}
    newick = "(" + ",".join("(" + ",".join(f"'{i}':1" for i in m) + "):10" for m in groups.values())
    tree = write(tmp_path / "t.nwk", newick + ");\n")
    out = tmp_path / "o"
    args = ["cluster", str(fasta), "--n-clusters", "3", "--input", "phylo", "--tree", str(tree),
            "--k", "4", "--steps", "10", "--runs", "1", "--heads", "1", "--vote", "1",
            "--batch-size", "8", "--out", str(out), "--threads", "1"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["config"]["input"] == "phylo"


@pytest.mark.slow
def test_real_dataset_beats_kmeans() -> None:
    """Actinopterygii mitogenomes (113, 3 orders): 6-mer k-means reaches 0.947."""
    import csv

    from tests.conftest import SHARED

    folder = SHARED / "dna" / "idelucs_Actinopterygii"
    records, _ = read_dna(folder / "Actinopterygii.fas")
    labels = dict(csv.reader((folder / "labels.csv").open()))
    result = cluster_sequences(records, ClusterConfig(n_clusters=3, threads=2))
    assert score(result.ids, result.clusters, labels)["acc"] > 0.947


def test_fcgr_input_end_to_end_with_a_narrow_cnn(tmp_path: Path) -> None:
    from phyloclr.cluster import TCLModel

    fasta, labels = _synthetic(tmp_path / "s.fa")
    records, _ = read_dna(fasta)
    cfg = ClusterConfig(n_clusters=3, input="fcgr", k=4, fcgr_channels=8, steps=40, runs=1,
                        heads=2, vote=2, batch_size=32, threads=1, refine=False)  # fmt: skip
    assert TCLModel(cfg, [3]).backbone.features[0].out_channels == 8
    result = cluster_sequences(records, cfg)  # no k-means refinement: the CNN's own partition
    assert result.summary["config"]["fcgr_channels"] == 8  # type: ignore[index]
    assert score(result.ids, result.clusters, labels)["acc"] > 0.9
    with pytest.raises(ConfigError, match="fcgr_channels"):
        ClusterConfig(fcgr_channels=0)


def test_neighbour_graph_switches_to_faiss_above_the_exact_limit() -> None:
    """Up to ``search.exact_limit`` rows the graph is scikit-learn's exact one (the engine every
    clustering figure was measured with); above it, a faiss HNSW graph with the same layout
    (self left out, nearest first) that finds nearly all of the exact neighbours."""
    pytest.importorskip("faiss")
    from phyloclr.cluster import kmer_neighbours
    from phyloclr.neighbours import NeighbourConfig, neighbour_graph, recall

    rng = np.random.default_rng(0)
    space = rng.normal(size=(3000, 16)).astype(np.float32)
    exact = kmer_neighbours(space, 10)
    # the exact engines agree where there are no ties
    assert np.array_equal(exact, neighbour_graph(space, 10, NeighbourConfig(method="exact")))
    approx = kmer_neighbours(space, 10, NeighbourConfig(exact_limit=1000))
    assert approx.shape == (3000, 10)
    assert not (approx == np.arange(3000)[:, None]).any()
    assert recall(approx, exact) > 0.95
    # reachable from a cluster config file, checked there
    from phyloclr.config import config_from_dict

    cfg = config_from_dict(ClusterConfig, {"search": {"method": "faiss", "exact_limit": 5}})
    assert cfg.search == NeighbourConfig(method="faiss", exact_limit=5)
    with pytest.raises(ConfigError, match="neighbours method"):
        config_from_dict(ClusterConfig, {"search": {"method": "annoy"}})
