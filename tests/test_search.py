"""phyloclr search: hits in order, empty results, model mismatches, bad inputs, atomic output,
label transfer and realignment; the nearest-neighbour module against brute force."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from phyloclr.cli import EXIT_INPUT, app
from phyloclr.embed import EmbedConfig, embed_fasta
from phyloclr.errors import ConfigError, InputError
from phyloclr.io.hdf5 import read_embeddings
from phyloclr.models.alphabet import PROTEIN
from phyloclr.models.build import build_encoder
from phyloclr.models.encoders import EncoderSpec
from phyloclr.models.store import save_model
from phyloclr.neighbours import NeighbourConfig, have_faiss, knn, recall
from phyloclr.search import SearchConfig, search
from phyloclr.transfer import transfer_labels
from tests.conftest import DATA, write

runner = CliRunner()
PROTEOME = next((DATA / "protein" / "proteome").glob("*.faa"))


def _model(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    spec = EncoderSpec(name="kmer", dim=32, layers=1, spectrum="murphy10:3", dropout=0.0)
    save_model(path, build_encoder(spec, PROTEIN.size), PROTEIN, "{}", 0, f"tiny{seed}")
    return path


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("search")
    records = PROTEOME.read_text().split(">")[1:301]
    fasta = write(root / "db.faa", "".join(">" + r for r in records))
    queries = write(root / "q.faa", "".join(">" + r for r in records[:7]))
    model = _model(root / "model.pt", 0)
    h5 = root / "db.h5"
    embed_fasta(fasta, h5, model, EmbedConfig(threads=1))
    return {"fasta": fasta, "queries": queries, "model": model, "h5": h5, "root": root}


def _hits(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", comment="#")


def test_every_query_finds_itself_first_and_hits_are_ordered(db, tmp_path: Path) -> None:
    out = tmp_path / "hits.tsv"
    result = runner.invoke(
        app, ["search", str(db["queries"]), "--db", str(db["h5"]), "--out", str(out), "--top", "5"]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("# phyloclr ")
    hits = _hits(out)
    assert list(hits.columns) == ["query", "target", "score", "rank"]
    ids = [line[1:].split()[0] for line in db["queries"].read_text().splitlines()
           if line.startswith(">")]  # fmt: skip
    assert list(dict.fromkeys(hits["query"])) == ids  # queries in input order
    for qid, group in hits.groupby("query", sort=False):
        assert list(group["rank"]) == [1, 2, 3, 4, 5]
        assert group["target"].iloc[0] == qid and group["score"].iloc[0] == pytest.approx(1.0)
        assert (np.diff(group["score"].to_numpy()) <= 1e-9).all()


def test_hdf5_queries_give_the_same_hits_as_fasta(db, tmp_path: Path) -> None:
    qh5 = tmp_path / "q.h5"
    embed_fasta(db["queries"], qh5, db["model"], EmbedConfig(threads=1))
    a = search(db["queries"], db["h5"], config=SearchConfig(top=4))
    b = search(qh5, db["h5"], config=SearchConfig(top=4))
    ra, rb = a.rows(), b.rows()
    assert [(q, t, r) for q, t, _, r in ra] == [(q, t, r) for q, t, _, r in rb]
    assert [x[2] for x in ra] == pytest.approx([x[2] for x in rb], abs=1e-6)


def test_ivf_search_from_the_command_line(db, tmp_path: Path) -> None:
    out, exact = tmp_path / "ivf.tsv", tmp_path / "exact.tsv"
    for path, method in ((out, "ivf"), (exact, "exact")):
        args = ["search", str(db["queries"]), "--db", str(db["h5"]), "--out", str(path),
                "--top", "5", "--method", method]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert '"method": "ivf"' in out.read_text().splitlines()[0]
    got, want = _hits(out), _hits(exact)
    assert (got["query"] == got["target"])[got["rank"] == 1].all()  # each finds itself first
    pairs = set(zip(got["query"], got["target"], strict=True))
    assert len(pairs & set(zip(want["query"], want["target"], strict=True))) >= 0.8 * len(want)


@pytest.mark.skipif(not have_faiss(), reason="faiss-cpu is not installed")
def test_graph_settings_from_the_command_line(db, tmp_path: Path) -> None:
    """The faiss graph's settings reach the search and its header; a bad one is a one-line
    error."""
    out = tmp_path / "graph.tsv"
    args = ["search", str(db["queries"]), "--db", str(db["h5"]), "--out", str(out), "--top",
            "5", "--method", "faiss", "--hnsw-storage", "int8", "--ef-construction", "80",
            "--ef-search", "70", "--hnsw-m", "12"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    settings = json.loads(out.read_text().splitlines()[0].split("config=", 1)[1])
    graph = {k: settings["neighbours"][k] for k in ("hnsw_storage", "hnsw_ef_construction",
                                                    "ef_search", "hnsw_m")}  # fmt: skip
    assert graph == {"hnsw_storage": "int8", "hnsw_ef_construction": 80, "ef_search": 70,
                     "hnsw_m": 12} and settings["method"] == "faiss"  # fmt: skip
    got = _hits(out)
    assert (got["query"] == got["target"])[got["rank"] == 1].all()  # each finds itself first
    bad = runner.invoke(app, [*args[:-8], "--hnsw-storage", "int4"])
    assert bad.exit_code != 0 and "hnsw_storage" in bad.output


@pytest.mark.skipif(not have_faiss(), reason="faiss-cpu is not installed")
def test_identical_rows_share_one_list_in_a_graph_self_search() -> None:
    """With ``distinct`` the graph indexes each distinct row once: a row's twins lead its list
    (by row, at its cosine to itself; 0 for zero rows), never the row itself, each row once."""
    from phyloclr.neighbours import identical_rows

    rng = np.random.default_rng(0)
    base = rng.normal(size=(600, 24)).astype(np.float32)
    x = np.concatenate([base, base[:40], base[:10], np.zeros((2, 24), np.float32)])
    group, first = identical_rows(x)
    assert len(first) == 601 and group[600] == group[640] == 0 and group[650] == group[651]
    assert (first == np.sort(first)).all() and (group[first] == np.arange(601)).all()
    exact = knn(x, x, 10, NeighbourConfig(method="exact"), exclude=np.arange(len(x)))[1]
    graph = NeighbourConfig(method="faiss", exact_limit=0)
    scores, index = knn(x, x, 10, graph, exclude=np.arange(len(x)))
    assert index.shape == (652, 10) and (index != np.arange(652)[:, None]).all()
    assert all(len(set(r[r >= 0].tolist())) == (r >= 0).sum() for r in index)
    assert index[0, :2].tolist() == [600, 640] and index[640, :2].tolist() == [0, 600]
    np.testing.assert_allclose(scores[0, :2], 1.0, atol=1e-6)
    assert index[650, 0] == 651 and scores[650, 0] == 0.0
    assert recall(index, exact) > 0.95
    plain = knn(x, x, 10, dataclasses.replace(graph, distinct=False), exclude=np.arange(652))
    assert recall(plain[1], exact) > 0.95
    queries = knn(x[:5], x, 10, graph)[1]  # queries apart from the database: the plain search
    assert sorted(queries[0, :3].tolist()) == [0, 600, 640]  # in the graph's tie order


def _expand_one_group_at_a_time(g_scores, g_index, group, first, nonzero, k):
    """The reference for ``expand_groups``: each group's list built alone."""
    n_groups = len(first)
    members = [np.flatnonzero(group == g) for g in range(n_groups)]
    out_s, out_i = np.full((len(group), k), -np.inf, np.float32), np.full((len(group), k), -1)
    for g in range(n_groups):
        cand, sc = list(members[g]), [float(nonzero[g])] * len(members[g])
        for j, s in zip(g_index[g], g_scores[g], strict=True):
            if j >= 0 and j != g:
                cand += list(members[j])
                sc += [s] * len(members[j])
        for r in members[g]:
            out_i[r, : min(k, len(cand))] = cand[:k]
            out_s[r, : min(k, len(cand))] = sc[:k]
    return out_s, out_i


@pytest.mark.parametrize("block", [1, 3, 65_536])
def test_group_lists_expand_to_row_lists(block, monkeypatch) -> None:
    """``expand_groups`` (vectorised, in blocks of groups) gives each row the list a loop over
    its group builds: its twins by row, then the found groups' rows, gaps and the group's own
    entry skipped, cut at k; zero rows score 0 against themselves."""
    import phyloclr.neighbours as nb

    monkeypatch.setattr(nb, "EXPAND_BLOCK", block)
    rng = np.random.default_rng(3)
    for n_rows, n_groups, width, k in [(40, 25, 6, 5), (200, 120, 9, 12), (30, 2, 2, 40)]:
        group = np.sort(rng.integers(0, n_groups, n_rows))
        group = np.unique(group, return_inverse=True)[1]  # every group used
        rng.shuffle(group)
        n_groups = int(group.max()) + 1
        _, first_rows = np.unique(group, return_index=True)
        order = np.argsort(first_rows)  # groups numbered by their first rows
        group = np.argsort(order)[group]
        first = np.sort(first_rows)
        g_index = rng.integers(-1, n_groups, (n_groups, width))
        g_index[:, 1] = np.where(rng.random(n_groups) < 0.3, np.arange(n_groups), g_index[:, 1])
        g_scores = np.where(g_index >= 0, rng.random((n_groups, width)), -np.inf).astype(np.float32)
        nonzero = rng.random(n_groups) < 0.8
        got = nb.expand_groups(g_scores, g_index, group, first, nonzero, k)
        want = _expand_one_group_at_a_time(g_scores, g_index, group, first, nonzero, k)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])
        assert (got[1] >= 0).sum() > n_rows  # lists hold more than the rows' twins


def test_settings_key_names_every_setting_that_changes_the_lists() -> None:
    """Results kept on disk are keyed by :func:`settings_key`: a field added to
    NeighbourConfig must be named there, or here as one that does not change the lists."""
    from phyloclr.neighbours import _SETTINGS, settings_key

    named = {f for fields in _SETTINGS.values() for f in fields}
    # method and exact_limit choose the method, which the key holds; block only tiles exact search
    unchanging = {"method", "exact_limit", "block"}
    assert named | unchanging == {f.name for f in dataclasses.fields(NeighbourConfig)}
    cells = NeighbourConfig(method="ivf")
    assert settings_key(10, cells) != settings_key(10, dataclasses.replace(cells, ivf_probe=4))
    assert settings_key(10, cells) == settings_key(10, dataclasses.replace(cells, block=7))
    assert settings_key(10, NeighbourConfig()) == "exact"  # auto below exact_limit


def test_graph_flag_defaults_are_the_librarys() -> None:
    """The search command's graph flags default to NeighbourConfig's values (written as
    literals there, so that the CLI starts without importing NumPy)."""
    import typer

    command = typer.main.get_command(app).commands["search"]  # type: ignore[attr-defined]
    fields = {"method": "method", "ef_search": "ef_search", "hnsw_m": "hnsw_m",
              "ef_construction": "hnsw_ef_construction",
              "hnsw_storage": "hnsw_storage"}  # fmt: skip
    defaults = {p.name: p.default for p in command.params if p.name in fields}
    assert defaults == {flag: getattr(NeighbourConfig(), f) for flag, f in fields.items()}


def test_a_float16_database_is_searched_in_float16(db, tmp_path: Path) -> None:
    """A float16 file is held as float16 (half the memory of float32) and gives the hits of
    its float32 values."""
    from phyloclr.io.hdf5 import read_embeddings

    half = tmp_path / "half.h5"
    embed_fasta(db["fasta"], half, db["model"], EmbedConfig(threads=1, dtype="float16"))
    native, wide = read_embeddings(half, native=True), read_embeddings(half)
    assert native.embeddings.dtype == np.float16 and wide.embeddings.dtype == np.float32
    assert read_embeddings(db["h5"], native=True).embeddings.dtype == np.float32
    result = search(db["queries"], half, config=SearchConfig(top=4))
    assert result.db_embeddings is not None and result.db_embeddings.dtype == np.float16
    q = read_embeddings(half, only=set(result.query_ids))  # the queries are the first rows
    scores, index = knn(q.embeddings, wide.embeddings, 4)
    assert np.array_equal(result.index, index)
    assert result.scores == pytest.approx(scores, abs=2e-3)  # queries embedded, not rounded


def test_min_score_above_every_hit_gives_an_empty_table(db, tmp_path: Path) -> None:
    out = tmp_path / "none.tsv"
    result = runner.invoke(app, ["search", str(db["queries"]), "--db", str(db["h5"]),
                                 "--out", str(out), "--min-score", "1.0001"])  # fmt: skip
    assert result.exit_code == EXIT_INPUT  # outside [-1, 1]
    result = runner.invoke(app, ["search", str(db["queries"]), "--db", str(db["h5"]),
                                 "--out", str(out), "--min-score", "1.0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    hits = _hits(out)
    assert set(hits["rank"]) <= {1}  # only exact copies (the queries themselves) reach 1.0
    empty = search(db["queries"], db["h5"], config=SearchConfig(top=3, min_score=1.0))
    empty.index[:] = -1
    from phyloclr.search import write_hits

    assert write_hits(tmp_path / "e.tsv", empty, SearchConfig(), db["h5"]) == 0
    assert _hits(tmp_path / "e.tsv").empty


def test_a_different_model_is_an_error_naming_both(db, tmp_path: Path) -> None:
    other = _model(tmp_path / "other.pt", 1)
    with pytest.raises(InputError, match=r"tiny1.*tiny0") as info:
        search(db["queries"], db["h5"], model=other)
    assert str(db["h5"]) in str(info.value)
    qh5 = tmp_path / "q.h5"
    embed_fasta(db["queries"], qh5, other, EmbedConfig(threads=1))
    with pytest.raises(InputError, match=r"queries embedded with model 'tiny1'.*'tiny0'"):
        search(qh5, db["h5"])
    moved = tmp_path / "moved.h5"
    moved.write_bytes(db["h5"].read_bytes())
    db["model"].rename(tmp_path / "hidden.pt")
    try:
        with pytest.raises(InputError, match="pass --model"):
            search(db["queries"], moved)
        assert search(db["queries"], moved, model=tmp_path / "hidden.pt").rows()
    finally:
        (tmp_path / "hidden.pt").rename(db["model"])


@pytest.mark.parametrize(
    ("queries", "message"),
    [
        (">a\nMKV*QQ\n", "internal"),
        ("", "empty file"),
        (">a\nMKV\n>a\nMKV\n", "duplicate"),
        (">dna\n" + "ACGT" * 30 + "\n", "not protein"),
    ],
)
def test_bad_queries_are_one_line_errors_and_write_nothing(
    db, tmp_path: Path, queries: str, message: str
) -> None:
    q = write(tmp_path / "bad.faa", queries)
    out = tmp_path / "hits.tsv"
    result = runner.invoke(app, ["search", str(q), "--db", str(db["h5"]), "--out", str(out)])
    assert result.exit_code == EXIT_INPUT and message in result.output.lower()
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_a_database_that_is_not_an_embedding_file_is_refused(db, tmp_path: Path) -> None:
    out = tmp_path / "hits.tsv"
    result = runner.invoke(app, ["search", str(db["queries"]), "--db", str(db["fasta"]),
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == EXIT_INPUT and str(db["fasta"]) in result.output
    assert not out.exists()


def test_output_is_replaced_atomically(db, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "hits.tsv"
    out.write_text("previous\n")
    import phyloclr.search as mod

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    result = search(db["queries"], db["h5"], config=SearchConfig(top=3))
    monkeypatch.setattr(mod, "header", boom)
    with pytest.raises(KeyboardInterrupt):
        mod.write_hits(out, result, SearchConfig(top=3), db["h5"])
    assert out.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["hits.tsv"]


def test_label_transfer_and_its_reliability(db, tmp_path: Path) -> None:
    ids = [line[1:].split()[0] for line in db["fasta"].read_text().splitlines()
           if line.startswith(">")]  # fmt: skip
    rows = "".join(f"{i},g{n % 3}\n" for n, i in enumerate(ids))
    labels = write(tmp_path / "labels.csv", "id,label\n" + rows)
    out = tmp_path / "transfer.tsv"
    result = runner.invoke(app, ["search", str(db["queries"]), "--db", str(db["h5"]),
                                 "--out", str(out), "--labels", str(labels)])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = _hits(out)
    assert list(table.columns) == ["query", "predicted_label", "score", "support", "reliability"]
    assert len(table) == 7
    # each query is in the database: its nearest labelled hit is itself
    assert list(table["predicted_label"]) == [f"g{n % 3}" for n in range(7)]
    assert table["reliability"].between(0, 1).all() and (table["support"] >= 1).all()
    res = search(db["queries"], db["h5"], config=SearchConfig(top=5))
    with pytest.raises(ConfigError, match="no database id has a label"):
        transfer_labels(res, {"nobody": "x"}, SearchConfig())


def test_realign_ranks_by_bit_score(db, tmp_path: Path) -> None:
    out = tmp_path / "hits.tsv"
    args = ["search", str(db["queries"]), "--db", str(db["h5"]), "--out", str(out), "--top", "8"]
    result = runner.invoke(app, [*args, "--realign"])
    assert result.exit_code == EXIT_INPUT and "--db-fasta" in result.output
    result = runner.invoke(app, [*args, "--realign", "--db-fasta", str(db["fasta"])])
    assert result.exit_code == 0, result.output
    hits = _hits(out)
    assert list(hits.columns) == ["query", "target", "score", "rank", "bits", "evalue"]
    for qid, group in hits.groupby("query", sort=False):
        assert group["target"].iloc[0] == qid  # itself: the highest bit score
        assert (np.diff(group["bits"].to_numpy()) <= 0).all()
        assert (np.diff(group["evalue"].to_numpy()) >= 0).all()
    assert hits["evalue"].iloc[0] < 1e-20


def test_realign_depth_keeps_the_best_aligned_of_more_candidates(db) -> None:
    """--realign-depth aligns more nearest proteins than it reports and keeps the top by bits:
    the kept hits are the bit-score best of the deeper candidate list, and differ from
    realigning the top hits alone where the embedding ranked a better alignment lower."""
    shallow = search(db["queries"], db["h5"], db_fasta=db["fasta"],
                     config=SearchConfig(top=5, realign=True, realign_depth=0))  # fmt: skip
    deep = search(db["queries"], db["h5"], db_fasta=db["fasta"],
                  config=SearchConfig(top=5, realign=True, realign_depth=40))  # fmt: skip
    every = search(db["queries"], db["h5"], db_fasta=db["fasta"],
                   config=SearchConfig(top=40, realign=True, realign_depth=0))  # fmt: skip
    assert deep.index.shape == deep.bits.shape == deep.evalues.shape == (7, 5)
    assert np.array_equal(deep.index, every.index[:, :5])
    assert np.allclose(deep.bits, every.bits[:, :5])
    assert (np.diff(deep.bits, axis=1) <= 0).all()
    assert (deep.bits.sum(axis=1) >= shallow.bits.sum(axis=1) - 1e-3).all()
    assert not np.array_equal(deep.index, shallow.index)
    with pytest.raises(ConfigError, match="realign-depth"):
        SearchConfig(realign_depth=-1)


def test_word_index_is_the_exact_mean_centred_cosine() -> None:
    """WordIndex's scores equal the mean over the words of the centred cosines computed
    directly (kmers.centred_cosines), and ``top`` is their best-first order in any block."""
    from phyloclr.kmers import (
        SEARCH_WORDS,
        centred_cosines,
        inverse_document_frequency,
        log_tfidf,
        parse_spectrum,
        spectrum_counts,
    )
    from phyloclr.wordsearch import WordIndex

    seqs = [r.split("\n", 1)[1].replace("\n", "") for r in PROTEOME.read_text().split(">")[1:121]]
    index = WordIndex(seqs)
    want = np.zeros((len(seqs), len(seqs)))
    for alphabet, word in parse_spectrum(SEARCH_WORDS):
        c = spectrum_counts(seqs, word, alphabet)
        x = log_tfidf(c, inverse_document_frequency(c))
        want += centred_cosines(x, np.asarray(x.mean(0)).ravel()) / 5
    got = index.scores(seqs[:30])
    assert np.allclose(got, want[:30], atol=1e-5)
    for cells in (1, 1000, 1 << 24):  # one query a block, a few, all at once
        scores, rows = index.top(seqs[:30], 7, max_cells=cells)
        order = np.lexsort((np.tile(np.arange(len(seqs)), (30, 1)), -got), axis=1)[:, :7]
        assert np.array_equal(rows, order)
        assert np.allclose(scores, np.take_along_axis(got, rows, axis=1), atol=1e-6)
    assert index.top(seqs[:3], 500)[1].shape == (3, len(seqs))  # depth above N: every row
    assert index.top([], 5)[1].shape == (0, 5)


def test_word_ranking_mixes_in_a_learned_cosine() -> None:
    """With ``learned`` embeddings, ``top`` ranks by (1 − w) × the words' score + w × the
    embeddings' cosine, in any block size; w = 0 is the words alone."""
    from phyloclr.wordsearch import WordIndex

    seqs = [r.split("\n", 1)[1].replace("\n", "") for r in PROTEOME.read_text().split(">")[1:81]]
    index = WordIndex(seqs)
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(seqs), 8)) * rng.uniform(0.5, 3, size=(len(seqs), 1))
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    words = index.scores(seqs[:20])
    assert np.array_equal(index.top(seqs[:20], 9, learned=(emb[:20], emb), learned_weight=0)[1],
                          index.top(seqs[:20], 9)[1])  # fmt: skip
    want = 0.7 * words + 0.3 * unit[:20] @ unit.T
    order = np.lexsort((np.tile(np.arange(len(seqs)), (20, 1)), -want), axis=1)[:, :9]
    for cells in (1, 1 << 24):
        scores, rows = index.top(seqs[:20], 9, max_cells=cells, learned=(emb[:20], emb),
                                 learned_weight=0.3)  # fmt: skip
        assert np.allclose(scores, np.take_along_axis(want, rows, axis=1), atol=1e-5)
        assert np.allclose(np.take_along_axis(want, rows, 1), np.take_along_axis(want, order, 1),
                           atol=1e-6)  # fmt: skip
    assert not np.array_equal(rows, index.top(seqs[:20], 9)[1])
    with pytest.raises(ConfigError, match="word-mix"):
        SearchConfig(word_mix=1.0)


def test_word_prefilter_mixes_in_the_default_models_cnn(tmp_path: Path) -> None:
    """A database embedded with the default model: the word prefilter's candidates are the best
    by 0.95 × words + 0.05 × the cosine of the CNN's columns (the first 128), not the words
    alone, and the whole search still finds each query itself first."""
    from phyloclr.embed import bundled_model_path, default_model_path
    from phyloclr.models.store import load_model
    from phyloclr.search import learned_columns
    from phyloclr.wordsearch import WordIndex

    assert learned_columns(load_model(default_model_path())) == slice(0, 128)
    assert learned_columns(load_model(bundled_model_path("sketch"))) is None
    records = PROTEOME.read_text().split(">")[1:101]
    fasta = write(tmp_path / "db.faa", "".join(">" + r for r in records))
    queries = write(tmp_path / "q.faa", "".join(">" + r for r in records[:6]))
    h5 = tmp_path / "db.h5"
    embed_fasta(fasta, h5, None, EmbedConfig(threads=1))
    emb = read_embeddings(h5).embeddings
    seqs = [r.split("\n", 1)[1].replace("\n", "") for r in records]
    want = WordIndex(seqs).top(seqs[:6], 10, learned=(emb[:6, :128], emb[:, :128]),
                               learned_weight=0.05)[1]  # fmt: skip
    res = search(
        queries,
        h5,
        db_fasta=fasta,
        config=SearchConfig(top=10, realign=True, realign_depth=10, prefilter="words"),
    )
    for q in range(6):
        assert set(res.index[q].tolist()) == set(want[q].tolist())
        assert res.index[q, 0] == q
    alone = search(queries, h5, db_fasta=fasta, config=SearchConfig(
        top=10, realign=True, realign_depth=10, prefilter="words", word_mix=0.0))  # fmt: skip
    words = WordIndex(seqs).top(seqs[:6], 10)[1]
    for q in range(6):
        assert set(alone.index[q].tolist()) == set(words[q].tolist())


def test_word_prefilter_aligns_the_best_by_spaced_words(db, tmp_path: Path) -> None:
    """prefilter 'words' realigns the best proteins by spaced-word cosine, 'both' those and
    the nearest by embedding: each query still finds itself first, hits are ranked by bits,
    the score column is the embedding cosine, and 'both' is at least as good by bits."""
    from phyloclr.io.fasta import read_fasta
    from phyloclr.wordsearch import WordIndex

    runs = {p: search(db["queries"], db["h5"], db_fasta=db["fasta"],
                      config=SearchConfig(top=5, realign=True, realign_depth=20, prefilter=p))
            for p in ("embedding", "words", "both")}  # fmt: skip
    for res in runs.values():
        assert res.index.shape == res.bits.shape == (7, 5)
        assert (res.index[:, 0] == np.arange(7)).all()  # the queries are the first 7 rows
        assert (np.diff(res.bits, axis=1) <= 0).all()
    db_seqs = [r.seq for r in read_fasta(db["fasta"])]
    q_seqs = [r.seq for r in read_fasta(db["queries"])]
    words = WordIndex(db_seqs).top(q_seqs, 20)[1]
    for q in range(7):  # 'words' kept hits are among the 20 best by spaced words
        assert set(runs["words"].index[q].tolist()) <= set(words[q].tolist())
    emb = search(db["queries"], db["h5"], config=SearchConfig(top=300)).scores
    full = search(db["queries"], db["h5"], config=SearchConfig(top=300))
    for q in range(7):  # the score column is the embedding cosine of the pair
        cos = dict(zip(full.index[q].tolist(), emb[q].tolist(), strict=True))
        assert runs["words"].scores[q] == pytest.approx([cos[t] for t in runs["words"].index[q]],
                                                        abs=1e-5)  # fmt: skip
    assert (runs["both"].bits.sum(1) >= runs["embedding"].bits.sum(1) - 1e-3).all()
    assert (runs["both"].bits.sum(1) >= runs["words"].bits.sum(1) - 1e-3).all()
    with pytest.raises(ConfigError, match="prefilter"):
        SearchConfig(prefilter="kmers")  # type: ignore[arg-type]
    records = PROTEOME.read_text().split(">")[1:50]
    short = write(tmp_path / "short.faa", "".join(">" + r for r in records))
    with pytest.raises(InputError, match="holds 49 sequences"):
        search(db["queries"], db["h5"], db_fasta=short,
               config=SearchConfig(realign=True, prefilter="words"))  # fmt: skip
    out = tmp_path / "hits.tsv"
    result = runner.invoke(app, ["search", str(db["queries"]), "--db", str(db["h5"]), "--out",
                                 str(out), "--realign", "--db-fasta", str(db["fasta"]),
                                 "--prefilter", "words", "--top", "5"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert '"prefilter": "words"' in out.read_text().splitlines()[0]


def test_exact_neighbours_match_brute_force_in_any_block_size() -> None:
    rng = np.random.default_rng(0)
    db, q = rng.normal(size=(500, 16)), rng.normal(size=(37, 16))
    dn = db / np.linalg.norm(db, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    truth = np.argsort(-(qn @ dn.T), axis=1, kind="stable")[:, :10]
    for block in (1, 7, 1024):
        scores, index = knn(q, db, 10, NeighbourConfig(method="exact", block=block))
        assert np.array_equal(index, truth)
        assert (np.diff(scores, axis=1) <= 0).all()
    _, i = knn(db[:20], db, 3, NeighbourConfig(method="exact"), exclude=np.arange(20))
    assert i.shape == (20, 3) and not (i == np.arange(20)[:, None]).any()
    assert knn(q, db[:2], 10)[1].shape == (37, 2)


def test_ivf_neighbours_are_exact_when_every_cell_is_probed() -> None:
    rng = np.random.default_rng(2)
    db = rng.normal(size=(800, 24)).astype(np.float16)  # stays float16: scored in chunks
    db[5] = 0  # a zero row scores 0 against everything, as in exact search
    q = rng.normal(size=(41, 24))
    for queries, exclude in ((q, None), (db, np.arange(len(db)))):
        se, ie = knn(queries, db, 7, NeighbourConfig(method="exact"), exclude=exclude)
        cfg = NeighbourConfig(method="ivf", ivf_cells=9, ivf_probe=9, block=16)
        si, ii = knn(queries, db, 7, cfg, exclude=exclude)
        assert np.array_equal(ii, ie)
        assert np.allclose(si, se, atol=1e-5)
    # fewer database rows than k: every row, best first, none missing
    s, i = knn(q, db[:3], 10, NeighbourConfig(method="ivf"))
    assert i.shape == (41, 3) and (np.sort(i, axis=1) == np.arange(3)).all()
    assert (np.diff(s, axis=1) <= 0).all()


def test_ivf_neighbours_recall_exact_on_clustered_rows() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(60, 48))
    db = centres[rng.integers(0, 60, 6000)] + 0.6 * rng.normal(size=(6000, 48))
    _, exact = knn(db, db, 20, NeighbourConfig(method="exact"), exclude=np.arange(6000))
    few = knn(db, db, 20, NeighbourConfig(method="ivf", ivf_probe=1), exclude=np.arange(6000))
    many = knn(db, db, 20, NeighbourConfig(method="ivf", ivf_probe=12), exclude=np.arange(6000))
    assert recall(many[1], exact) > 0.97
    assert recall(few[1], exact) < recall(many[1], exact)  # the probe is what buys recall
    assert not (many[1] == np.arange(6000)[:, None]).any()
    # bfloat16 products (emulated where the CPU lacks them) find nearly the same neighbours
    cfg = NeighbourConfig(method="ivf", ivf_probe=12, precision="bfloat16")
    half = knn(db[:300], db, 20, cfg, exclude=np.arange(300))
    assert recall(half[1], many[1][:300]) > 0.95
    assert np.abs(half[0] - many[0][:300]).max() < 0.02
    with pytest.raises(ConfigError, match="ivf_probe"):
        NeighbourConfig(method="ivf", ivf_probe=0)
    with pytest.raises(ConfigError, match="precision"):
        NeighbourConfig(precision="float16")


@pytest.mark.skipif(not have_faiss(), reason="faiss-cpu is not installed")
def test_faiss_neighbours_recall_exact() -> None:
    rng = np.random.default_rng(1)
    db, q = rng.normal(size=(3000, 32)), rng.normal(size=(100, 32))
    _, exact = knn(q, db, 10, NeighbourConfig(method="exact"))
    _, approx = knn(q, db, 10, NeighbourConfig(method="faiss"))
    assert recall(approx, exact) > 0.9


@pytest.mark.skipif(not have_faiss(), reason="faiss-cpu is not installed")
def test_faiss_float16_storage_chunks_and_self_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """A float16 database searched against itself in chunks (rows made unit chunk by chunk,
    stored as float32, float16 or 8-bit codes in the graph) finds what exact search finds,
    itself left out, with cosines near the exact ones."""
    import phyloclr.neighbours as nb

    monkeypatch.setattr(nb, "FAISS_CHUNK", 700)  # several chunks, the last one short
    rng = np.random.default_rng(2)
    db = (rng.normal(size=(3000, 32)) * rng.uniform(0.5, 5.0, size=(3000, 1))).astype(np.float16)
    rows = np.arange(len(db))
    exact_s, exact = knn(db, db, 10, NeighbourConfig(method="exact"), exclude=rows)
    for storage, atol in (("float32", 2e-3), ("float16", 2e-3), ("int8", 1e-2)):
        cfg = NeighbourConfig(method="faiss", hnsw_storage=storage)
        scores, found = knn(db, db, 10, cfg, exclude=rows)
        assert found.shape == (3000, 10) and not (found == rows[:, None]).any()
        assert recall(found, exact) > 0.9
        hit = found[:, 0] == exact[:, 0]  # the same nearest row: about the same cosine
        assert np.allclose(scores[hit, 0], exact_s[hit, 0], atol=atol)
        assert np.all(np.diff(scores, axis=1) <= 0)  # best first
    with pytest.raises(ConfigError, match="hnsw_storage"):
        NeighbourConfig(hnsw_storage="int4")


def test_reverse_pairs_join_each_rows_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """``with_reverse``: each row keeps the best of its own pairs and of those other rows found
    with it, a pair once at its own search's score, ties by row, missing ones last."""
    import phyloclr.neighbours as nb

    inf = -np.inf
    index = np.array([[0, 1, 3], [1, -1, -1], [2, 0, 3], [3, 2, 1]])
    scores = np.array([[1.0, 0.5, 0.2], [1.0, inf, inf], [1.0, 0.3, 0.2], [1.0, 0.25, 0.4]],
                      np.float32)  # fmt: skip
    s, i = nb.with_reverse(scores, index)
    assert i.tolist() == [[0, 1, 2], [1, 0, 3], [2, 0, 3], [3, 1, 2]]
    # row 0 gains 2 (row 2 found it) and row 1 gains 0 and 3; the pair (2, 3) keeps each row's
    # own score: 0.2 in row 2's list, 0.25 in row 3's
    assert np.allclose(s, [[1.0, 0.5, 0.3], [1.0, 0.5, 0.4], [1.0, 0.3, 0.2], [1.0, 0.4, 0.25]])
    # random lists in several blocks against a dictionary per row
    rng = np.random.default_rng(0)
    n, w = 300, 6
    index = rng.integers(-1, n, size=(n, w))
    scores = np.where(index < 0, inf, rng.integers(0, 20, size=(n, w)) / 20).astype(np.float32)
    want: list[dict[int, float]] = [{} for _ in range(n)]
    for r in range(n):  # own pairs first: they keep their score
        for c, v in zip(index[r], scores[r], strict=True):
            if c >= 0:
                want[r].setdefault(int(c), float(v))
    for r in range(n):
        for c, v in zip(index[r], scores[r], strict=True):
            if c >= 0:
                want[int(c)].setdefault(r, float(v))
    monkeypatch.setattr(nb, "REVERSE_BLOCK", 37)  # several blocks, the last one short
    s, i = nb.with_reverse(scores, index)
    for r in range(n):
        best = sorted(want[r].items(), key=lambda cv: (-cv[1], cv[0]))[:w]
        best += [(-1, inf)] * (w - len(best))
        assert i[r].tolist() == [c for c, _ in best]
        assert s[r].tolist() == [v for _, v in best]


@pytest.mark.skipif(not have_faiss(), reason="faiss-cpu is not installed")
def test_a_self_search_adds_the_pairs_other_rows_found() -> None:
    """A narrow graph searched against itself misses pairs; offering each found pair to both
    rows (the default) finds more of the exact lists, and no row lists itself."""
    rng = np.random.default_rng(4)
    db = rng.normal(size=(3000, 48)).astype(np.float32)
    rows = np.arange(len(db))
    _, exact = knn(db, db, 10, NeighbourConfig(method="exact"), exclude=rows)
    kept = {}
    for symmetric in (False, True):
        cfg = NeighbourConfig(method="faiss", hnsw_m=4, ef_search=10, hnsw_ef_construction=10,
                              symmetric=symmetric)  # fmt: skip
        scores, found = knn(db, db, 10, cfg, exclude=rows)
        assert found.shape == (3000, 10) and not (found == rows[:, None]).any()
        assert np.all(np.diff(scores, axis=1) <= 0)
        kept[symmetric] = recall(found, exact)
    assert kept[True] > kept[False] + 0.02


@pytest.mark.skipif(not have_faiss(), reason="faiss-cpu is not installed")
def test_faiss_build_breadth_reaches_the_graph() -> None:
    """``hnsw_ef_construction`` is the graph's build breadth: a narrow build on rows without
    structure keeps less of the exact top 10 than a wide one, at the same search breadth."""
    rng = np.random.default_rng(3)
    db = rng.normal(size=(4000, 64)).astype(np.float32)
    rows = np.arange(len(db))
    _, exact = knn(db[:300], db, 10, NeighbourConfig(method="exact"), exclude=rows[:300])
    kept = {}
    for breadth in (2, 200):
        cfg = NeighbourConfig(method="faiss", hnsw_m=4, ef_search=10, hnsw_ef_construction=breadth)
        _, found = knn(db, db, 10, cfg, exclude=rows)
        kept[breadth] = recall(found[:300], exact)
    assert kept[200] > kept[2] + 0.05
    with pytest.raises(ConfigError, match="hnsw_ef_construction"):
        NeighbourConfig(hnsw_ef_construction=0)


def test_fasta_queries_are_embedded_at_the_databases_precision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import phyloclr.embed

    torch.manual_seed(0)
    spec = EncoderSpec(dim=16, layers=2, max_len=256, dropout=0.0)
    model = tmp_path / "cnn.pt"
    save_model(model, build_encoder(spec, PROTEIN.size), PROTEIN, "{}", 0, "tinycnn")
    records = PROTEOME.read_text().split(">")[1:41]
    fasta = write(tmp_path / "db.faa", "".join(">" + r for r in records))
    real, asked = phyloclr.embed.embed_sequences, []

    def spy(*args, **kwargs):
        asked.append(kwargs.get("precision"))
        return real(*args, **kwargs)

    for precision in ("bfloat16", "float32"):
        h5 = tmp_path / f"{precision}.h5"
        embed_fasta(fasta, h5, model, EmbedConfig(threads=1, precision=precision))
        monkeypatch.setattr(phyloclr.embed, "embed_sequences", spy)
        result = search(fasta, h5, config=SearchConfig(top=1))
        monkeypatch.setattr(phyloclr.embed, "embed_sequences", real)
        assert asked[-1] == precision
        assert [r[1] for r in result.rows()] == [r[0] for r in result.rows()]  # itself first


def test_hubness_demotes_a_row_near_everything() -> None:
    from phyloclr.search import db_density, rank_by_hubness

    rng = np.random.default_rng(0)
    db = rng.standard_normal((40, 16)).astype(np.float32)
    db[0] = db[1:].mean(0) * 3  # a hub: the mean direction, near every row
    density = db_density(db, 5)
    unit = db / np.linalg.norm(db, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    expected = np.sort(sims, axis=1)[:, ::-1][:, :5].mean(1)
    np.testing.assert_allclose(density, expected, atol=1e-5)  # mean of the 5 nearest others
    assert density.argmax() == 0
    q = rng.standard_normal((30, 16)).astype(np.float32)
    q = q / np.linalg.norm(q, axis=1, keepdims=True) + 0.5 * unit[0]  # leaning to the hub
    scores, index = knn(q, db, 40)
    plain = (index[:, 0] == 0).mean()
    s2, i2 = rank_by_hubness(scores, index, density, 0.5, 10)
    assert i2.shape == (30, 10) and (i2[:, 0] == 0).mean() < plain
    adjusted = s2 - 0.5 * density[i2]
    assert np.all(np.diff(adjusted, axis=1) <= 1e-6)  # best first by the adjusted score
    assert np.allclose(
        s2,
        np.einsum("qd,qkd->qk", q / np.linalg.norm(q, axis=1, keepdims=True), unit[i2]),
        atol=1e-5,
    )  # the scores stay cosines
    assert db_density(db[:1], 5).tolist() == [0.0]


def test_hubness_search_from_the_command_line(db, tmp_path: Path) -> None:
    plain, hub = tmp_path / "plain.tsv", tmp_path / "hub.tsv"
    for out, extra in ((plain, []), (hub, ["--hubness", "10"])):
        args = ["search", str(db["queries"]), "--db", str(db["h5"]), "--out", str(out), "--top",
                "8", *extra]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    a, b = _hits(plain), _hits(hub)
    assert len(a) == len(b) == 7 * 8 and list(b["rank"][:8]) == list(range(1, 9))
    assert (b.groupby("query")["target"].first() == b.groupby("query")["query"].first()).all()
    assert '"hubness": 10' in hub.read_text().splitlines()[0]  # the header holds it
    with pytest.raises(ConfigError, match="--hubness is a neighbour count"):
        SearchConfig(hubness=-1)
    with pytest.raises(ConfigError, match="--hubness-weight must lie in"):
        SearchConfig(hubness=5, hubness_weight=0.0)
    cfg = SearchConfig(hubness=5, realign=True, prefilter="words")
    with pytest.raises(ConfigError, match="use it with --prefilter embedding"):
        search(db["queries"], db["h5"], config=cfg, db_fasta=db["fasta"])


def test_hubness_densities_are_kept_beside_the_database_and_renewed(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import phyloclr.search as search_mod

    h5 = tmp_path / "db.h5"
    shutil.copyfile(db["h5"], h5)
    calls: list[int] = []
    real = search_mod.db_density

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(search_mod, "db_density", counted)
    cfg = SearchConfig(top=6, hubness=10)
    first = search(db["queries"], h5, config=cfg)
    kept = search_mod.density_path(h5, 10)
    assert kept.exists() and len(calls) == 1
    again = search(db["queries"], h5, config=cfg)
    assert len(calls) == 1  # reused
    np.testing.assert_array_equal(first.index, again.index)
    np.testing.assert_array_equal(first.density, again.density)
    search(db["queries"], h5, config=SearchConfig(top=6, hubness=5))
    assert len(calls) == 2 and search_mod.density_path(h5, 5).exists()  # another k: its own
    search(db["queries"], h5, config=SearchConfig(top=6, hubness=10, hubness_keep=False))
    assert len(calls) == 3  # not read when told not to keep
    kept.write_bytes(b"not an npz")  # damaged: computed again and rewritten
    assert np.array_equal(search(db["queries"], h5, config=cfg).density, first.density)
    assert len(calls) == 4
    search(db["queries"], h5, config=cfg)
    assert len(calls) == 4
    kept.write_bytes(kept.read_bytes()[:100])  # a truncated archive: computed again
    search(db["queries"], h5, config=cfg)
    assert len(calls) == 5
    st = h5.stat()  # the database rewritten (a new modification time): computed again
    os.utime(h5, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    search(db["queries"], h5, config=cfg)
    assert len(calls) == 6
    rows = read_embeddings(h5).embeddings
    search_mod.kept_density(h5, rows, cfg, model="another model's digest")
    assert len(calls) == 7  # kept for another model: computed again
    graph = NeighbourConfig(method="ivf", ivf_probe=2)
    wider = dataclasses.replace(graph, ivf_probe=4)
    for nb, count in ((graph, 8), (graph, 8), (wider, 9), (graph, 10)):
        search_mod.kept_density(h5, rows, dataclasses.replace(cfg, neighbours=nb))
        assert len(calls) == count  # kept per method and per setting that changes its lists
    monkeypatch.setattr(search_mod, "atomic_path", _unwritable)
    kept.unlink()
    assert np.array_equal(search(db["queries"], h5, config=cfg).density, first.density)
    assert len(calls) == 11 and not kept.exists()  # a read-only directory: searched anyway


def _unwritable(path: Path):
    raise PermissionError(13, "Permission denied", str(path))


def test_label_transfer_with_hubness_calibrates_on_the_same_ranking(db, tmp_path: Path) -> None:
    ids = [line[1:].split()[0] for line in db["fasta"].read_text().splitlines()
           if line.startswith(">")]  # fmt: skip
    labels = {i: f"g{n % 3}" for n, i in enumerate(ids)}
    plain = search(db["queries"], db["h5"], config=SearchConfig(top=5))
    cfg = SearchConfig(top=5, hubness=10)
    hub = search(db["queries"], db["h5"], config=cfg)
    assert plain.density is None and hub.density is not None and hub.density.shape == (300,)
    got = transfer_labels(hub, labels, cfg)
    assert [t.label for t in got] == [f"g{n % 3}" for n in range(7)]  # each finds itself
    assert all(0 <= t.reliability <= 1 for t in got)


def test_empty_embeddings_are_left_out_of_the_hits(db, tmp_path: Path) -> None:
    """A sequence with no k-mer word embeds as zeros: as a query it gets no hits, and as a
    database protein it is never a hit (its cosine 0 would outrank every negative one)."""
    records = PROTEOME.read_text().split(">")[1:41]
    short = ">tiny1\nMK\n>tiny2\nW\n"
    fasta = write(tmp_path / "db.faa", "".join(">" + r for r in records) + short)
    h5 = tmp_path / "db.h5"
    embed_fasta(fasta, h5, db["model"], EmbedConfig(threads=1))
    store = read_embeddings(h5)
    assert not store.embeddings[-2:].any()  # the two short ones are zero rows
    queries = write(tmp_path / "q.faa", ">short\nMK\n>" + records[0])
    out = tmp_path / "hits.tsv"
    result = runner.invoke(app, ["search", str(queries), "--db", str(h5), "--out", str(out),
                                 "--top", "42"])  # fmt: skip
    assert result.exit_code == 0, result.output
    hits = _hits(out)
    assert "short" not in set(hits["query"])
    assert not {"tiny1", "tiny2"} & set(hits["target"])
    assert len(hits) == 40  # every non-empty protein, and none of the two empty ones
    assert "1 queries have an empty embedding" in result.output and "short" in result.output
    assert "2 database proteins among the hits have an empty embedding" in result.output
    found = search(queries, h5, config=SearchConfig(top=42))
    assert (found.index[0] == -1).all() and len(found.warnings) == 2
