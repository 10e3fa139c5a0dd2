"""FASTA / aligned FASTA / A3M readers, and every bad input getting a one-line error."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from phyloclr.errors import InputError
from phyloclr.io.fasta import read_a3m, read_aligned_fasta, read_fasta
from phyloclr.io.sequences import detect_alphabet
from tests.conftest import write


def _error(fn, path: Path) -> str:
    with pytest.raises(InputError) as info:
        fn(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


def test_plain_and_gzipped_read_the_same(tmp_path: Path) -> None:
    text = ">s1 first one\nMKV LAA\nGIV\n>s2\nMKVLAGIV\n"
    plain = write(tmp_path / "a.fa", text)
    gz = tmp_path / "a.fa.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    a, b = read_fasta(plain), read_fasta(gz)
    assert a == b
    assert [r.id for r in a] == ["s1", "s2"]
    assert a[0].seq == "MKVLAAGIV"
    assert a[0].description == "first one"


def test_ids_are_verbatim(tmp_path: Path) -> None:
    recs = read_fasta(write(tmp_path / "a.fa", ">sp|P1|X/10-20 desc\nMKV\n"))
    assert recs[0].id == "sp|P1|X/10-20"


def test_empty_file(tmp_path: Path) -> None:
    assert "empty file" in _error(read_fasta, write(tmp_path / "e.fa", ""))


def test_fasta_with_no_sequences(tmp_path: Path) -> None:
    msg = _error(read_fasta, write(tmp_path / "n.fa", "just some text\nno records\n"))
    assert "not FASTA" in msg


def test_header_only_counts_as_empty_sequence(tmp_path: Path) -> None:
    msg = _error(read_fasta, write(tmp_path / "h.fa", ">s1\nMKV\n>s2\n"))
    assert "record 's2'" in msg and "empty sequence (length 0)" in msg


def test_non_iupac_character_names_record_and_position(tmp_path: Path) -> None:
    msg = _error(read_fasta, write(tmp_path / "x.fa", ">ok\nMKV\n>bad\nMKV1LA\n"))
    assert "record 'bad'" in msg
    assert "invalid character '1' at position 4" in msg


def test_lowercase_is_upper_cased(tmp_path: Path) -> None:
    recs = read_fasta(write(tmp_path / "l.fa", ">s\nmkvLAa\n"))
    assert recs[0].seq == "MKVLAA"


def test_trailing_stop_removed_internal_stop_error(tmp_path: Path) -> None:
    recs = read_fasta(write(tmp_path / "s.fa", ">s\nMKVLA*\n"))
    assert recs[0].seq == "MKVLA"
    msg = _error(read_fasta, write(tmp_path / "t.fa", ">s\nMKV*LA\n"))
    assert "record 's'" in msg and "internal stop codon '*' at position 4" in msg


def test_length_100000_is_read_whole(tmp_path: Path) -> None:
    seq = "ACGT" * 25_000
    body = "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60))
    recs = read_fasta(write(tmp_path / "long.fa", f">genome\n{body}\n"))
    assert len(recs[0].seq) == 100_000
    assert detect_alphabet(recs, None) == "dna"


def test_mixed_dna_and_protein(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.fa",
        ">dna1\nACGTACGTACGTACGTACGTACGTAC\n>prot1\nMKVLAAGIVGLLLQWERTYIPASDF\n",
    )
    with pytest.raises(InputError) as info:
        detect_alphabet(read_fasta(path), path)
    msg = str(info.value)
    assert str(path) in msg and "record 'prot1'" in msg and "mixed nucleotide and protein" in msg


def test_protein_of_nucleotide_letters_is_not_mixed(tmp_path: Path) -> None:
    """UniProt P02732 (an Ala-Ala-Thr repeat) is all nucleotide letters but lacks C and G: it
    may be protein, so a protein corpus holding it is still protein; a real DNA record in
    one is still an error, and a DNA file does not take it for protein."""
    from phyloclr.io.sequences import ambiguous_alphabet, fits_alphabet

    aat = "AATAATAATAATAATAATAATAATAATAATA"
    prot = ">p1\nMKVLAAGIVGLLLQWERTYIPASDF\n"
    path = write(tmp_path / "p.fa", f"{prot}>P02732\n{aat}\n>p3\nMSTNPKPQRKTKRNTNRRPQDVKFPGG\n")
    assert detect_alphabet(read_fasta(path), path) == "protein"
    assert ambiguous_alphabet(aat) and fits_alphabet(aat, "protein") and fits_alphabet(aat, "dna")
    dna = "ACGTACGTACGTACGTACGTACGTAC"
    assert not ambiguous_alphabet(dna) and not fits_alphabet(dna, "protein")
    assert not fits_alphabet("MKVLAAGIVGLLLQWERTYIPASDF", "dna")
    mixed = write(tmp_path / "m.fa", f"{prot}>d\n{dna}\n")
    with pytest.raises(InputError, match=r"record 'd'.*mixed nucleotide and protein"):
        detect_alphabet(read_fasta(mixed), mixed)
    only = write(tmp_path / "d.fa", f">d\n{dna}\n>P02732\n{aat}\n")
    assert detect_alphabet(read_fasta(only), only) == "dna"


def test_duplicate_ids(tmp_path: Path) -> None:
    msg = _error(read_fasta, write(tmp_path / "d.fa", ">a\nMKV\n>b\nMKV\n>a\nMKL\n"))
    assert "record 'a'" in msg and "duplicate sequence id" in msg


def test_empty_header(tmp_path: Path) -> None:
    msg = _error(read_fasta, write(tmp_path / "eh.fa", ">a\nMKV\n>\nMKV\n"))
    assert "record '#2'" in msg and "empty header" in msg


def test_gap_in_unaligned_fasta(tmp_path: Path) -> None:
    msg = _error(read_fasta, write(tmp_path / "g.fa", ">a\nMK-V\n"))
    assert "gap character '-' at position 3" in msg


def test_aligned_fasta(tmp_path: Path) -> None:
    recs = read_aligned_fasta(write(tmp_path / "a.afa", ">a\nMK-V.A\n>b\nmkLVGA\n"))
    assert [r.aligned for r in recs] == ["MK-V-A", "MKLVGA"]
    assert recs[0].seq == "MKVA"
    msg = _error(read_aligned_fasta, write(tmp_path / "b.afa", ">a\nMK-V\n>b\nMKV\n"))
    assert "record 'b'" in msg and "3 columns" in msg


def test_a3m_drops_insertions_from_rows(tmp_path: Path) -> None:
    recs = read_a3m(write(tmp_path / "q.a3m", ">q\nMKVLA\n>h1\nMKkkV-A\n>h2\n-K.VLA\n"))
    assert [r.aligned for r in recs] == ["MKVLA", "MKV-A", "-KVLA"]
    assert recs[1].seq == "MKKKVA"
    msg = _error(read_a3m, write(tmp_path / "bad.a3m", ">q\nMKVLA\n>h\nMKV\n"))
    assert "record 'h'" in msg and "match columns" in msg


def test_a3m_real_file_needs_ids(protein: Path) -> None:
    # the ESM example A3M files have empty headers: reported, not invented
    with pytest.raises(InputError, match=r"record '#1': empty header"):
        read_a3m(protein / "esm" / "1a3a_1_A.a3m")
