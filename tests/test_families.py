"""Families from real inputs: tables, trees, corpora (pattern, hmmscan, de novo), cache."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from Bio import SeqIO
from sklearn.metrics import adjusted_rand_score

from phyloclr.errors import ConfigError, InputError
from phyloclr.evolution.distances import msa_distances
from phyloclr.families import FamiliesConfig, build_families
from phyloclr.io.fasta import read_aligned_fasta
from phyloclr.io.stockholm import read_stockholm
from tests.conftest import write

GLOBIN_TREE = "(((HBB_HUMAN:0.1,HBA_HUMAN:0.2):0.3,MYG_PHYCA:0.4):0.05,GLB5_PETMA:0.6);"


def test_fn3_table(protein: Path) -> None:
    fset = build_families([protein / "hmmer" / "tutorial" / "fn3.sto"])
    (row,) = fset.table()
    assert row["family"] == "fn3" and row["members"] == 98 and row["accession"] == "PF00041.20"
    assert row["aligned"] == "yes" and row["tree"] == "no" and row["distance"] == "kimura"
    (aln,) = read_stockholm(protein / "hmmer" / "tutorial" / "fn3.sto")
    expected = msa_distances([r.aligned or "" for r in aln.records], "protein", "kimura")
    iu = np.triu_indices(98, 1)
    assert row["median_distance"] == pytest.approx(float(np.median(expected.matrix[iu])), rel=1e-6)
    assert row["max_distance"] == pytest.approx(float(expected.matrix[iu].max()), rel=1e-6)


def test_eggnog_directory(protein: Path) -> None:
    folder = protein / "trimal_eggnog"
    fset = build_families([folder])
    files = sorted(folder.glob("*.fasta"))
    assert len(fset) == len(files) == 69
    for fam, f in zip(fset, files, strict=True):
        assert fam.size == sum(1 for _ in SeqIO.parse(f, "fasta"))
        assert fam.aligned and fam.alignment_label() == "yes" and fam.distance_method == "kimura"
        assert fam.distances is not None and fam.distances.shape == (fam.size, fam.size)
    assert any("LICENSE" in w for w in fset.warnings)  # ignored files are named


def test_ete_directory_alignment_plus_tree(protein: Path) -> None:
    fset = build_families([protein / "ete"])
    fam = fset["ete_evol_data__CladeModelCD__ECP_EDN_15"]
    assert fam.alphabet == "dna" and fam.size == 15
    assert fam.tree is not None and fam.tree_label() == "given (topology only)"
    assert sorted(fam.tree.leaf_names) == sorted(fam.names)
    # topology only, so distances are Jukes-Cantor from the alignment, checked independently
    recs = read_aligned_fasta(protein / "ete" / "ete_evol_data__CladeModelCD__ECP_EDN_15.fasta")
    p = _pairwise_p(recs[0].aligned or "", recs[1].aligned or "")
    assert fam.distance_method == "jc69"
    assert fam.distances is not None
    assert fam.distances[0, 1] == pytest.approx(-0.75 * np.log(1 - 4 * p / 3), rel=1e-5)
    unaligned = fset["test_ete_build__P53"]
    assert unaligned.alignment_label() == "yes (famsa)"
    assert any("no branch lengths" in w for w in fset.warnings)


def _pairwise_p(a: str, b: str) -> float:
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x != "-" and y != "-"]
    return sum(x != y for x, y in pairs) / len(pairs)


def test_tree_with_lengths_gives_patristic(protein: Path, tmp_path: Path) -> None:
    trees = write(tmp_path / "globins4.nw", GLOBIN_TREE)
    fset = build_families([protein / "hmmer" / "tutorial" / "globins4.sto"], trees=trees)
    fam = fset["globins4"]
    assert fam.distance_method == "patristic" and fam.tree_label() == "given"
    i, j = fam.names.index("HBB_HUMAN"), fam.names.index("GLB5_PETMA")
    assert fam.distances is not None
    assert fam.distances[i, j] == pytest.approx(0.1 + 0.3 + 0.05 + 0.6)
    assert fam.max_distance == pytest.approx(0.2 + 0.3 + 0.05 + 0.6)


def test_extra_leaves_are_reported_and_pruned(protein: Path, tmp_path: Path) -> None:
    trees = write(
        tmp_path / "t.nw",
        GLOBIN_TREE.replace("GLB5_PETMA:0.6", "(GLB5_PETMA:0.5,STRAY_LEAF:1):0.1"),
    )
    fset = build_families([protein / "hmmer" / "tutorial" / "globins4.sto"], trees=trees)
    assert any("STRAY_LEAF" in w and "pruned" in w for w in fset.warnings)
    fam = fset["globins4"]
    assert fam.tree is not None and "STRAY_LEAF" not in fam.tree.leaf_names
    assert fam.distance_method == "patristic"
    i, j = fam.names.index("HBB_HUMAN"), fam.names.index("GLB5_PETMA")
    assert fam.distances is not None
    assert fam.distances[i, j] == pytest.approx(0.1 + 0.3 + 0.05 + 0.1 + 0.5)


def test_missing_members_are_reported(protein: Path, tmp_path: Path) -> None:
    trees = write(tmp_path / "t.nw", "((HBB_HUMAN:0.1,HBA_HUMAN:0.2):0.3,MYG_PHYCA:0.4);")
    fset = build_families([protein / "hmmer" / "tutorial" / "globins4.sto"], trees=trees)
    assert any("GLB5_PETMA" in w and "not in its tree" in w for w in fset.warnings)
    assert fset["globins4"].distance_method == "kimura"


def test_tree_matching_no_member(protein: Path, tmp_path: Path) -> None:
    trees = write(tmp_path / "t.nw", "((X:1,Y:1):1,Z:2);")
    with pytest.raises(InputError) as info:
        build_families([protein / "hmmer" / "tutorial" / "globins4.sto"], trees=trees)
    assert str(trees) in str(info.value) and "match no member" in str(info.value)


def test_tree_leaves_with_range_suffix_match(tmp_path: Path) -> None:
    sto = write(tmp_path / "f.sto", "# STOCKHOLM 1.0\nA/1-5 MKVLA\nB/2-6 MKVLG\nC/1-5 MRVLG\n//\n")
    trees = write(tmp_path / "f.nw", "((A:1,B:1):1,C:2);")
    fset = build_families([sto], trees=trees)
    fam = fset["f"]
    assert fam.distance_method == "patristic"
    assert fam.tree is not None and sorted(fam.tree.leaf_names) == ["A/1-5", "B/2-6", "C/1-5"]


def test_hmmscan_corpus(protein: Path) -> None:
    cfg = FamiliesConfig(hmm_db=str(protein / "pyhmmer" / "hmms" / "PF02826.hmm"), threads=1)
    fset = build_families([protein / "pyhmmer" / "seqs" / "938293.PRJEB85.HG003687.faa"], cfg)
    (fam,) = fset.families
    assert fam.id == "2-Hacid_dh_C" and fam.accession == "PF02826.20"
    assert fam.alignment_label() == "yes (hmmalign)"
    assert fam.size == 7 and len(fset.unassigned) == 2100 - 7
    assert all("/" in name for name in fam.names)  # domain envelopes, Pfam style
    assert fam.distances is not None and np.isfinite(fam.distances).all()
    assert any("assigned to no family" in w for w in fset.warnings)


def _pooled_corpus(protein: Path, tmp_path: Path, n_fam: int = 4, per: int = 12):
    files = sorted((protein / "trimal_eggnog").glob("*.fasta"))[:n_fam]
    lines, truth = [], {}
    for k, f in enumerate(files):
        for rec in list(SeqIO.parse(f, "fasta"))[:per]:
            lines.append(
                f">{rec.id} fam={f.stem.split('.')[-1]}\n{str(rec.seq).replace('-', '')}\n"
            )
            truth[rec.id] = k
    return write(tmp_path / "corpus.fa", "".join(lines)), truth


def test_label_pattern_corpus(protein: Path, tmp_path: Path) -> None:
    corpus, truth = _pooled_corpus(protein, tmp_path)
    fset = build_families([corpus], FamiliesConfig(label_pattern=r"fam=(?P<family>\S+)"))
    assert len(fset) == 4 and fset.n_sequences == len(truth)
    assert all(f.alignment_label() == "yes (famsa)" for f in fset)


@pytest.mark.parametrize("method", ["prefilter", "phmmer", "mmseqs"])
def test_de_novo_corpus_recovers_families(protein: Path, tmp_path: Path, method: str) -> None:
    corpus, truth = _pooled_corpus(protein, tmp_path)
    cfg = FamiliesConfig(threads=1, workers=2, denovo_method=method)  # type: ignore[arg-type]
    fset = build_families([corpus], cfg, cache_dir=tmp_path / "cache")
    pred = {name: i for i, fam in enumerate(fset) for name in fam.names}
    ids = sorted(truth)
    assert adjusted_rand_score([truth[i] for i in ids], [pred[i] for i in ids]) > 0.9
    assert fset.n_sequences == len(truth)  # singletons are kept, nobody is dropped
    assert json.loads(fset.config_json)["denovo_method"] == method
    store = tmp_path / "cache" / "edges"
    assert store.is_dir() == (method != "phmmer")
    assert not list(store.glob("mmseqs-*"))  # MMseqs2's work directory goes once it is done


def test_families_aligned_in_two_processes_match_one(protein: Path, tmp_path: Path) -> None:
    corpus, _ = _pooled_corpus(protein, tmp_path)
    base = FamiliesConfig(label_pattern=r"fam=(?P<family>\S+)", build_nj=True, threads=1)
    one = build_families([corpus], replace(base, workers=1), use_cache=False)
    two = build_families([corpus], replace(base, workers=2), use_cache=False)
    assert [f.id for f in one] == [f.id for f in two]
    for a, b in zip(one, two, strict=True):
        assert a.rows == b.rows and a.alignment_origin == b.alignment_origin == "famsa"
        assert np.array_equal(a.distances, b.distances)
        assert b.tree is not None and sorted(b.tree.leaf_names) == sorted(a.names)


def test_pooled_families_keep_the_callers_records(protein: Path, tmp_path: Path) -> None:
    """The alignment workers send back aligned rows, not members: each family is filled in
    place, and its records share the caller's id and residue strings (no second copy of the
    corpus in the parent)."""
    from phyloclr.families.build import _all_distances
    from phyloclr.families.model import Family
    from phyloclr.io.fasta import read_fasta

    corpus, truth = _pooled_corpus(protein, tmp_path)
    records = read_fasta(corpus)
    groups: dict[str, list] = {}
    for r in records:
        groups.setdefault(truth[r.id], []).append(r)
    families = [Family(k, list(v), "protein", str(corpus)) for k, v in groups.items()]
    before = [(f, [(r.id, r.seq) for r in f.records]) for f in families]
    cfg = FamiliesConfig(workers=2, threads=1, build_nj=True)
    out = _all_distances(families, cfg, {}, None)
    for fam, (orig, members) in zip(out, before, strict=True):
        assert fam is orig and fam.alignment_origin == "famsa" and fam.tree is not None
        assert fam.distances is not None and fam.distances.shape == (fam.size, fam.size)
        for r, (rid, seq) in zip(fam.records, members, strict=True):
            assert r.id is rid and r.seq is seq and r.aligned is not None
            assert r.aligned.replace("-", "") == seq


def test_a_cache_entry_cut_short_is_rebuilt(protein: Path, tmp_path: Path) -> None:
    corpus, _ = _pooled_corpus(protein, tmp_path)
    cfg = FamiliesConfig(label_pattern=r"fam=(?P<family>\S+)", build_nj=True, threads=1)
    first = build_families([corpus], cfg, cache_dir=tmp_path / "cache")
    again = build_families([corpus], cfg, cache_dir=tmp_path / "cache")
    assert again.from_cache and [f.id for f in again] == [f.id for f in first]
    for a, b in zip(first, again, strict=True):
        assert a.records == b.records and np.array_equal(a.distances, b.distances)
        assert b.tree is not None and b.tree.to_newick() == a.tree.to_newick()  # type: ignore[union-attr]
    (entry,) = (tmp_path / "cache" / "families").iterdir()
    lines = (entry / "families.jsonl").read_text().splitlines(keepends=True)
    (entry / "families.jsonl").write_text("".join(lines[:-1]))  # a family short
    rebuilt = build_families([corpus], cfg, cache_dir=tmp_path / "cache")
    assert not rebuilt.from_cache and len(rebuilt) == len(first)
    assert build_families([corpus], cfg, cache_dir=tmp_path / "cache").from_cache


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def test_alignment_workers_run_one_blas_thread() -> None:
    """The alignment pool's workers run one BLAS thread and one torch thread each:
    ``msa_distances``' matrix products would otherwise start a thread per core in every worker
    (1.4× the wall time on 2 cores). A pool without the initializer keeps BLAS's default."""
    import multiprocessing

    from phyloclr.families.build import _one_blas_thread

    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                      else "spawn")  # fmt: skip
    with ctx.Pool(1, _one_blas_thread) as pool:
        limited = pool.apply(_blas_threads)
        assert pool.apply(_torch_threads) == 1
    with ctx.Pool(1) as pool:
        default = pool.apply(_blas_threads)
    assert limited and all(n == 1 for n in limited)
    assert len(default) == len(limited)  # the same libraries, their own thread counts


def test_cache_is_reused(protein: Path, tmp_path: Path) -> None:
    inputs = [protein / "hmmer" / "tutorial" / "fn3.sto"]
    first = build_families(inputs, cache_dir=tmp_path)
    second = build_families(inputs, cache_dir=tmp_path)
    assert not first.from_cache and second.from_cache
    assert first.table() == second.table()
    assert second.families[0].distances is not None
    assert np.array_equal(first.families[0].distances, second.families[0].distances)
    other = build_families(inputs, FamiliesConfig(distance_model="p"), cache_dir=tmp_path)
    assert not other.from_cache and other.families[0].distance_method == "p"


def test_nj_on_request(protein: Path) -> None:
    fset = build_families(
        [protein / "hmmer" / "tutorial" / "globins4.sto"], FamiliesConfig(build_nj=True)
    )
    fam = fset["globins4"]
    assert fam.tree_label() == "nj" and sorted(fam.tree.leaf_names) == sorted(fam.names)  # type: ignore[union-attr]


def test_duplicate_family_ids(protein: Path, tmp_path: Path) -> None:
    src = (protein / "hmmer" / "tutorial" / "fn3.sto").read_text()
    a = write(tmp_path / "a.sto", src)
    with pytest.raises(InputError, match="family id 'fn3' also comes from"):
        build_families([protein / "hmmer" / "tutorial" / "fn3.sto", a])


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        FamiliesConfig(distance_model="nonsense")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        FamiliesConfig(label_pattern="(")
    for bad in ({"denovo_method": "blast"}, {"denovo_two_hit_window": 3}, {"workers": -1},
                {"denovo_max_candidates": 0}, {"denovo_prefilter_k": 1}):  # fmt: skip
        with pytest.raises(ConfigError):
            FamiliesConfig(**bad)  # type: ignore[arg-type]


def test_famsa_takes_selenocysteine_and_keeps_it(tmp_path: Path) -> None:
    from phyloclr.families.align import align_famsa
    from phyloclr.io.sequences import SeqRecord

    recs = [
        SeqRecord("a", "MKVLUAAGHWTRE"),
        SeqRecord("b", "MKVLCAGHWTRE"),
        SeqRecord("c", "MKOLCAAGHWTRE"),
    ]
    for refine in (True, False):  # FAMSA's refinement on (its default) and off
        rows = [r.aligned for r in align_famsa(recs, threads=1, refine=refine)]
        assert [row.replace("-", "") for row in rows] == [r.seq for r in recs]
        assert len({len(row) for row in rows}) == 1


def test_search_settings_take_every_field_from_the_families_config() -> None:
    """The engines' settings are built from the config's ``denovo_*`` fields by name, so a
    field added to either side without its partner fails here, and every value arrives."""
    from dataclasses import fields

    from phyloclr.families.build import ENGINE_FIELDS, mmseqs_settings, search_settings
    from phyloclr.families.config import FamiliesConfig, SearchSettings
    from phyloclr.families.mmseqs import MmseqsSettings

    cfg = FamiliesConfig(denovo_evalue=1e-3, denovo_min_coverage=0.3, denovo_prefilter_k=4,
                         denovo_two_hit_window=20, denovo_max_candidates=50,
                         denovo_max_kmer_ratio=3.0, denovo_mmseqs_sensitivity=7.5,
                         denovo_mmseqs_max_seqs=1000)  # fmt: skip
    assert search_settings(cfg) == SearchSettings(evalue=1e-3, min_coverage=0.3, prefilter_k=4,
                                                  two_hit_window=20, max_candidates=50,
                                                  max_kmer_ratio=3.0)  # fmt: skip
    assert mmseqs_settings(cfg) == MmseqsSettings(evalue=1e-3, min_coverage=0.3,
                                                  sensitivity=7.5, max_seqs=1000)  # fmt: skip
    assert {f.name for f in fields(SearchSettings)} & ENGINE_FIELDS == {"batch", "version"}
    assert {f.name for f in fields(MmseqsSettings)} & ENGINE_FIELDS == {"mode", "version"}


def _eggnog_sequences(protein: Path, n_fam: int, per: int) -> tuple[list[str], list[int]]:
    """Ungapped sequences of the first ``n_fam`` eggNOG groups (``per`` each), their group."""
    seqs, truth = [], []
    for g, f in enumerate(sorted((protein / "trimal_eggnog").glob("*.fasta"))[:n_fam]):
        for rec in list(SeqIO.parse(f, "fasta"))[:per]:
            seqs.append(str(rec.seq).replace("-", "").upper())
            truth.append(g)
    return seqs, truth


def test_giant_de_novo_families_are_split_by_similarity(
    protein: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A family above max_family_size becomes parts of at most that size that keep the
    eggNOG groups apart (the average-linkage tree of k-mer cosines), named ID.1, ID.2…;
    nobody is lost."""
    from phyloclr.families.split import split_members

    seqs, truth = _eggnog_sequences(protein, 3, 12)
    parts = split_members(seqs, 12)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(seqs)))
    assert all(len(p) <= 12 for p in parts)
    assert all(len({truth[i] for i in p}) == 1 for p in parts)  # each part one group
    assert [len(p) for p in split_members(seqs, 100)] == [len(seqs)]  # fits: unchanged
    import phyloclr.families.split as split_module

    monkeypatch.setattr(split_module, "LINKAGE_MAX", 20)  # 2-means first, then the tree
    parts = split_members(seqs, 12)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(seqs)))
    assert all(len(p) <= 12 for p in parts)
    with pytest.raises(ConfigError, match="max_family_size"):
        FamiliesConfig(max_family_size=1)

    corpus, _ = _pooled_corpus(protein, tmp_path)  # 4 groups of 12
    cfg = FamiliesConfig(threads=1, workers=1, max_family_size=8)
    fset = build_families([corpus], cfg, use_cache=False)
    assert max(f.size for f in fset) <= 8 and fset.n_sequences == 48
    assert any(f.id.endswith(".1") for f in fset)
    assert any("max_family_size" in w for w in fset.warnings)


def test_a_family_of_nucleotide_letters_in_a_protein_corpus_is_protein(
    protein: Path, tmp_path: Path
) -> None:
    """UniProt P02732 ('AATAAT…', an Ala-Ala-Thr repeat) is a singleton family of a protein
    corpus: it takes the corpus's alphabet, so pretraining does not see mixed alphabets."""
    corpus, _ = _pooled_corpus(protein, tmp_path, n_fam=2, per=5)
    with corpus.open("a") as fh:
        fh.write(">P02732\nAATAATAATAATAATAATAATAATAATAATA\n")
    fset = build_families([corpus], FamiliesConfig(workers=1, threads=1), use_cache=False)
    assert any(f.names == ["P02732"] for f in fset)
    assert {f.alphabet for f in fset} == {"protein"}


def test_split_rejoins_the_outliers_a_tree_cut_peels_off(protein: Path) -> None:
    """Six eggNOG groups of 30 cut at 30: the tree alone peels a 2-member part off one group;
    rejoined to its nearest part, the split gives the six groups back."""
    from phyloclr.families.split import split_members

    seqs, truth = _eggnog_sequences(protein, 6, 30)
    parts = split_members(seqs, 30)
    assert sorted(len(p) for p in parts) == [30] * 6
    assert all(len({truth[i] for i in p}) == 1 for p in parts)


def test_cache_lists_clears_old_entries_and_keeps_those_in_use(
    protein: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`phyloclr cache` lists the family sets and the de novo search's work; --clear removes
    them (with --older-than only those unused for that long), skipping an entry a run holds;
    reading an entry counts as using it."""
    import os
    import time

    from typer.testing import CliRunner

    from phyloclr.cli import app
    from phyloclr.families.cache import cache_entries, clear_cache
    from phyloclr.fsutil import file_lock

    runner = CliRunner()
    cache = tmp_path / "cache"
    corpus, _ = _pooled_corpus(protein, tmp_path)
    fn3 = [protein / "hmmer" / "tutorial" / "fn3.sto"]
    denovo = build_families([corpus], FamiliesConfig(threads=1, workers=1), cache_dir=cache)
    build_families(fn3, cache_dir=cache)
    kinds = sorted((e.kind, e.families) for e in cache_entries(cache))
    assert kinds == [("families", 1), ("families", len(denovo)), ("search", None)]
    assert {e.inputs for e in cache_entries(cache)} == {(str(corpus),), (str(fn3[0]),), ()}
    listed = runner.invoke(app, ["cache", "--cache-dir", str(cache)])
    assert listed.exit_code == 0, listed.output
    assert "3 entries" in listed.output and "search" in listed.output

    old = time.time() - 40 * 86400  # the de novo corpus's entries, unused for 40 days
    for e in cache_entries(cache):
        if e.families != 1:
            for dirpath, _, files in os.walk(e.path):
                for name in files:
                    os.utime(os.path.join(dirpath, name), (old, old))
                os.utime(dirpath, (old, old))
    preview = runner.invoke(app, ["cache", "--cache-dir", str(cache), "--older-than", "30"])
    assert "2 entries" in preview.output and len(cache_entries(cache)) == 3  # nothing removed
    build_families([corpus], FamiliesConfig(threads=1, workers=1), cache_dir=cache)  # read: used
    preview = runner.invoke(app, ["cache", "--cache-dir", str(cache), "--older-than", "30"])
    assert "1 entries" in preview.output  # the edge store, not read when the families are

    held = next(e for e in cache_entries(cache) if e.families == 1)
    with file_lock(cache / "locks" / f"{held.key}.lock"):  # a run is reading or building it
        removed, kept = clear_cache(cache)
    assert [(e.key, why) for e, why in kept] == [(held.key, "in use by a run")]
    assert len(removed) == 2
    assert [e.key for e in cache_entries(cache)] == [held.key]
    with monkeypatch.context() as m:  # a file system that will not let go of it
        m.setattr("phyloclr.families.cache.shutil.rmtree", lambda *a, **k: None)
        stuck = runner.invoke(app, ["cache", "--cache-dir", str(cache), "--clear"])
    assert stuck.exit_code == 0 and "kept: could not be removed" in stuck.output
    cleared = runner.invoke(app, ["cache", "--cache-dir", str(cache), "--clear"])
    assert cleared.exit_code == 0 and "removed 1 entries" in cleared.output
    assert cache_entries(cache) == []
    assert not build_families(fn3, cache_dir=cache).from_cache  # rebuilt when next needed
    empty = runner.invoke(app, ["cache", "--cache-dir", str(tmp_path / "none")])
    assert empty.exit_code == 0 and "no entries" in empty.output
