"""The CLI: tables and TSV from real data, one-line errors and exit codes for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from phyloclr.cli import EXIT_INPUT, app
from tests.conftest import write

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_help_lists_every_command() -> None:
    result = _run("--help")
    assert result.exit_code == 0
    for name in ("families", "pretrain", "embed", "cluster", "evaluate"):
        assert name in result.output


def test_help_shows_the_defaults_written_in_brackets() -> None:
    """Help is rendered as markdown: rich markup would take '[on]' or '[kmer]' in an option's
    help for a style tag and drop it, and the defaults cluster's options state would vanish."""
    result = _run("cluster", "--help")
    assert result.exit_code == 0
    assert "[kmer]" in result.output and "[on]" in result.output and "[auto]" in result.output
    result = _run("merge", "--help")
    assert "``" not in result.output and "phyloclr embed --shard i/n" in result.output


def test_messages_keep_square_brackets_of_names(tmp_path: Path) -> None:
    """File names and record ids are printed as they are: rich markup would take '[abc]' for a
    style tag and drop it, and the error would name a file or record that does not exist."""
    empty = write(tmp_path / "weird[abc].fasta", "")
    result = _run("embed", empty, "--out", tmp_path / "x.h5")
    assert result.exit_code == EXIT_INPUT and "weird[abc].fasta" in result.output
    bad = write(tmp_path / "bad.fasta", ">seq[red]x\n\n")
    result = _run("embed", bad, "--out", tmp_path / "x.h5")
    assert result.exit_code == EXIT_INPUT and "'seq[red]x'" in result.output
    good = write(tmp_path / "ok.fasta", ">a\nMKVLAAGIVGLLAW\n")
    result = _run("embed", good, "--out", tmp_path / "out[1].h5")
    assert result.exit_code == 0 and "out[1].h5" in result.output


def test_families_writes_tsv_with_config(protein: Path, tmp_path: Path) -> None:
    out = tmp_path / "fam.tsv"
    result = _run("families", protein / "hmmer" / "tutorial" / "fn3.sto", "--out", out)
    assert result.exit_code == 0, result.output
    assert "fn3" in result.output and "98" in result.output
    first = out.read_text().splitlines()[0]
    assert first.startswith("# phyloclr ") and "config=" in first
    config = json.loads(first.split("config=", 1)[1])
    assert config["distance_model"] == "auto"
    table = pd.read_csv(out, sep="\t", comment="#")
    assert list(table.columns[:8]) == [
        "family", "members", "alphabet", "aligned", "tree", "distance",
        "median_distance", "max_distance",
    ]  # fmt: skip
    assert table.loc[0, "members"] == 98


def test_families_removes_the_temporary_of_a_killed_write(protein: Path, tmp_path: Path) -> None:
    """A run killed while writing --out left ``.fam.tsv.*.tmp``; the rerun removes it (the
    kill tests saw one left behind), and leaves other files' temporaries alone."""
    out = tmp_path / "fam.tsv"
    stale = write(tmp_path / ".fam.tsv.k1ll3d.tmp", "half a table")
    other = write(tmp_path / ".other.tsv.k1ll3d.tmp", "not ours")
    result = _run("families", protein / "hmmer" / "tutorial" / "fn3.sto", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.exists() and not stale.exists() and other.exists()


def test_families_hmm_db(protein: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.tsv"
    result = _run(
        "families",
        protein / "pyhmmer" / "seqs" / "938293.PRJEB85.HG003687.faa",
        "--hmm-db",
        protein / "pyhmmer" / "hmms" / "PF02826.hmm",
        "--threads",
        "1",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, sep="\t", comment="#")
    assert table.loc[0, "family"] == "2-Hacid_dh_C" and table.loc[0, "members"] == 7
    assert table.loc[0, "aligned"] == "yes (hmmalign)"


BAD_INPUTS = {
    "empty.fa": ("", "empty file"),
    "noseq.fa": ("this is not a sequence file\n", "unrecognised format"),
    "iupac.fa": (">s1\nMKVLA\n>s2\nMKV@A\n", "record 's2': invalid character '@' at position 4"),
    "stop.fa": (">s1\nMKV*LA\n", "record 's1': internal stop codon"),
    "zero.fa": (">s1\nMKV\n>s2\n\n", "record 's2': empty sequence (length 0)"),
    "mixed.fa": (
        ">d\nACGTACGTACGTACGTACGTAAAC\n>p\nMKVLAAGIVGLLLQWERTYIP\n",
        "record 'p': mixed nucleotide and protein",
    ),
    "noterm.sto": ("# STOCKHOLM 1.0\nA MKV\nB MKL\n", "missing // terminator"),
    "dup.sto": ("# STOCKHOLM 1.0\nA MKV\nA MKL\n//\n", "record 'A': duplicate sequence name"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_one_line_error(tmp_path: Path, name: str) -> None:
    text, expected = BAD_INPUTS[name]
    path = write(tmp_path / name, text)
    out = tmp_path / "out.tsv"
    result = _run("families", path, "--unaligned", "family", "--out", out)
    assert result.exit_code == EXIT_INPUT
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and str(path) in lines[0] and expected in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()  # nothing presented as complete


def test_bad_tree_inputs(protein: Path, tmp_path: Path) -> None:
    aln = protein / "hmmer" / "tutorial" / "globins4.sto"
    broken = write(tmp_path / "broken.nw", "((A:1,B:2:0.5,C:3;")
    result = _run("families", aln, "--trees", broken)
    assert result.exit_code == EXIT_INPUT and "Newick does not parse" in result.output
    assert str(broken) in result.output
    stranger = write(tmp_path / "stranger.nw", "((X:1,Y:2):0.5,Z:3);")
    result = _run("families", aln, "--trees", stranger)
    assert result.exit_code == EXIT_INPUT and "tree leaves match no member" in result.output


def test_lowercase_and_long_sequences_are_accepted(tmp_path: Path) -> None:
    seq = "acgt" * 25_000
    path = write(tmp_path / "g.fa", f">g1\n{seq}\n>g2\n{seq.upper()}\n")
    result = _run("families", path, "--unaligned", "family", "--no-cache")
    assert result.exit_code == 0, result.output
    assert "dna" in result.output


TINY_YAML = """
model: {dim: 32, layers: 2, projection_dim: 16, projection_hidden: 32}
views: {crop_len: 64}
run: {max_steps: 3, batch_tokens: 4096, threads: 1, checkpoint_every: 2}
"""


def _pretrain_ok(tmp_path: Path, *args: object) -> Path:
    cfg = write(tmp_path / "tiny.yaml", TINY_YAML)
    run = tmp_path / "run"
    result = _run("pretrain", *args, "--out", run, "--config", cfg)
    assert result.exit_code == 0, result.output
    assert (run / "model.pt").exists() and (run / "checkpoint.pt").exists()
    table = pd.read_csv(run / "metrics.csv")
    assert len(table) == 3 and table["loss"].notna().all()
    return run


def test_pretrain_from_stockholm_directory(tmp_path: Path) -> None:
    from tests.conftest import DATA

    _pretrain_ok(tmp_path, DATA / "protein" / "seeds")


def test_pretrain_from_alignment_and_tree(protein: Path, tmp_path: Path) -> None:
    tree = write(
        tmp_path / "globins4.nw",
        "(((HBB_HUMAN:0.1,HBA_HUMAN:0.2):0.3,MYG_PHYCA:0.4):0.05,GLB5_PETMA:0.6);",
    )
    tutorial = protein / "hmmer" / "tutorial"
    _pretrain_ok(tmp_path, tutorial / "globins4.sto", tutorial / "fn3.sto", "--trees", tree)


def test_pretrain_from_raw_fasta_corpus(protein: Path, tmp_path: Path) -> None:
    from Bio import SeqIO

    lines = []
    for f in sorted((protein / "trimal_eggnog").glob("*.fasta"))[:4]:
        for rec in list(SeqIO.parse(f, "fasta"))[:8]:
            lines.append(f">{rec.id}\n{str(rec.seq).replace('-', '')}\n")
    corpus = write(tmp_path / "corpus.fa", "".join(lines))
    run = _pretrain_ok(tmp_path, corpus)
    from phyloclr.models.store import load_model

    assert load_model(run).alphabet.name == "protein"


def test_pretrain_resume_and_errors(tmp_path: Path) -> None:
    from tests.conftest import DATA

    run = _pretrain_ok(tmp_path, DATA / "protein" / "seeds")
    again = _run("pretrain", DATA / "protein" / "seeds", "--out", run)
    assert again.exit_code == EXIT_INPUT and "already holds a checkpoint" in again.output
    more = _run(
        "pretrain", DATA / "protein" / "seeds", "--out", run, "--resume", "--max-steps", "5"
    )
    assert more.exit_code == 0, more.output
    assert len(pd.read_csv(run / "metrics.csv")) == 5
    bad = write(tmp_path / "bad.yaml", "model: {dimm: 3}\n")
    result = _run("pretrain", DATA / "protein" / "seeds", "--out", tmp_path / "x", "--config", bad)
    assert result.exit_code == EXIT_INPUT and "'model.dimm'" in result.output
