"""Fuzzed inputs: any byte string given to a reader yields records or the one-line InputError
naming the file, never another exception (property-based, with hypothesis).

``PHYLOCLR_FUZZ_EXAMPLES`` sets the examples per reader (CI: the default, 150; the full run in
benchmarks/RESULTS.md: 3,000).
"""

from __future__ import annotations

import gzip
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phyloclr.errors import PhyloclrError
from phyloclr.evaluate import read_labels
from phyloclr.io.fasta import read_a3m, read_aligned_fasta, read_fasta
from phyloclr.io.newick import read_trees
from phyloclr.io.stockholm import read_stockholm

EXAMPLES = int(os.environ.get("PHYLOCLR_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run, so CI cannot flake
    suppress_health_check=[HealthCheck.too_slow],
)

# text made of the characters each format gives meaning to, so that examples get past the
# first check and reach the parsers' inner paths
FASTA_CHARS = ">ACDEFGHIKLMNPQRSTVWYXBZJUO*acgtun-. \t\n\r|;0123456789é"
STOCKHOLM_CHARS = "# STOCKHOLM1.0\n//=GFSCAIDTRNACGTacgt-.*\t /0123456789"
NEWICK_CHARS = "(),:;ABCabc0123456789.-e \n'[]_\t#>"
CSV_CHARS = 'id,label\n"\r\t ;ABCxyz0123456789,\x00é'

READERS: dict[str, tuple[Callable[[Path], Any], str]] = {
    "fasta": (read_fasta, FASTA_CHARS),
    "aligned-fasta": (read_aligned_fasta, FASTA_CHARS),
    "a3m": (read_a3m, FASTA_CHARS),
    "stockholm": (read_stockholm, STOCKHOLM_CHARS),
    "newick": (read_trees, NEWICK_CHARS),
    "labels-csv": (read_labels, CSV_CHARS),
}

PREFIXES = {
    "fasta": b">",
    "aligned-fasta": b">",
    "a3m": b">",
    "stockholm": b"# STOCKHOLM 1.0\n",
    "newick": b"(",
    "labels-csv": b"id,label\n",
}


def inputs(name: str) -> st.SearchStrategy[bytes]:
    chars = READERS[name][1]
    text = st.text(alphabet=chars, max_size=300).map(lambda s: s.encode("utf-8"))
    prefixed = text.map(lambda b: PREFIXES[name] + b)
    raw = st.binary(max_size=300)
    gz = st.one_of(text, prefixed).map(gzip.compress)
    truncated_gz = gz.map(lambda b: b[: max(2, len(b) // 2)])
    return st.one_of(raw, text, prefixed, gz, truncated_gz)


def read_or_fail_cleanly(name: str, data: bytes) -> None:
    reader = READERS[name][0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input.{name}"
        path.write_bytes(data)
        try:
            reader(path)
        except PhyloclrError as err:
            message = str(err)
            assert "\n" not in message, message
            assert str(path) in message, message


@pytest.mark.parametrize("name", sorted(READERS))
def test_any_bytes_give_records_or_a_one_line_error(name: str) -> None:
    @FUZZ
    @given(data=inputs(name))
    def check(data: bytes) -> None:
        read_or_fail_cleanly(name, data)

    check()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("fasta", b"\x1f\x8b\x08\x00garbage"),  # gzip magic, then not gzip
        ("fasta", gzip.compress(b">a\nACGT\n")[:-6]),  # gzip cut short
        ("fasta", b">a\nAC\x00GT\n"),
        ("labels-csv", b"id,label\n\xff\xfe,x\n"),  # not UTF-8
        ("labels-csv", b"id,label\na,\x00\n"),
        ("newick", b"((a:1,b:1):1,(c:1"),
        ("stockholm", b"# STOCKHOLM 1.0\nseq1 ACGT\nseq2 AC\n//\n"),
    ],
)
def test_known_bad_inputs(name: str, data: bytes) -> None:
    read_or_fail_cleanly(name, data)
