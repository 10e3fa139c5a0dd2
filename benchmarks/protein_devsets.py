"""Build the protein development sets of the retrieval harness (issue 18).

    python -m benchmarks.protein_devsets --out ~/.cache/phyloclr/devsets [--work DIR]

Three sets and a training corpus, from real proteins the package registries ship (Debian
archive, ``apt-get download``), each written as
``OUT/NAME/{sequences.fasta, labels.csv, corpus.fasta}`` with a ``summary.json`` (counts,
identity distribution, sources). Nothing here was tuned on the hidden sets that score landed
commits; the sources differ from theirs where we know them.

- ``orthologs`` (zero-shot, twilight): the same gene name (prokka's ``~~~gene~~~`` header field,
  case-insensitive, a trailing ``_N`` copy suffix dropped) in at least two of prokka's three genus
  databases (*Escherichia*, a proteobacterium; *Staphylococcus* and *Enterococcus*, two
  Bacilli). A group must hold an *Escherichia* protein and a Bacillus protein, so every group
  spans the deepest split (≈ 2 Gyr); at most ``--max-members`` per group. The within-group
  identity distribution (global Needleman-Wunsch, BLOSUM62, gaps 11/1, identities over aligned
  columns) is in the summary. Models scored on it zero-shot must be trained on a corpus with
  these groups' homologs removed (``training_corpus.py --heldout-fasta``).
- ``go-function`` (transductive): 20,000 proteins from the GO-annotated UniProt of Debian
  metastudent-data (2014, molecular-function set), of which the labelled subset is every protein
  of ``--groups`` randomly drawn *specific* function signatures: the exact set of MF GO terms a
  protein carries, held by 8–300 proteins of the 459k (so not "ATP binding" alone), 5–25
  members each. The rest of the corpus is random other proteins. ``phyloclr pretrain`` sees the
  whole ``corpus.fasta`` without labels; ``sequences.fasta`` and ``labels.csv`` are the scored
  subset.
- ``go-process`` (transductive, held out from the choice of the defaults): built as go-function
  from the biological-process set (BPO), with no protein of go-function's corpus. The rules of
  the default config were chosen on go-function; this set only reports them.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.make_corpus import DEBIAN, blastdb, debian

GENERA = ("Escherichia", "Staphylococcus", "Enterococcus")
BACILLI = {"Staphylococcus", "Enterococcus"}
AMINO = re.compile(r"^[ACDEFGHIKLMNPQRSTVWY]+$")


def _write(path: Path, records: list[tuple[str, str]]) -> None:
    with open(path, "w") as fh:
        for rid, seq in records:
            fh.write(f">{rid}\n{seq}\n")


def _labels(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w") as fh:
        fh.write("id,label\n")
        for rid, lab in rows:
            fh.write(f"{rid},{lab}\n")


def identity(a: str, b: str) -> float:
    """Identities over aligned columns of a global alignment (BLOSUM62, gaps 11/1)."""
    from Bio import Align
    from Bio.Align import substitution_matrices

    aligner = _ALIGNER.get("nw")
    if aligner is None:
        aligner = Align.PairwiseAligner(mode="global")
        aligner.substitution_matrix = substitution_matrices.load("BLOSUM62")
        aligner.open_gap_score, aligner.extend_gap_score = -11, -1
        aligner.end_gap_score = 0
        _ALIGNER["nw"] = aligner
    aln = aligner.align(a, b)[0]
    counts = aln.counts()
    cols = counts.identities + counts.mismatches
    return counts.identities / cols if cols else 0.0


_ALIGNER: dict[str, object] = {}


def orthologs(work: Path, out: Path, max_members: int, seed: int) -> dict[str, object]:
    root = debian("prokka", work) / DEBIAN["prokka"]
    groups: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for genus in GENERA:
        with open(root / genus) as fh:
            header, seq_lines = "", []
            for line in [*fh, ">"]:
                if line.startswith(">"):
                    if header:
                        parts = header.split("~~~")
                        seq = "".join(seq_lines).upper().rstrip("*")
                        gene = parts[1].strip().lower() if len(parts) >= 3 else ""
                        name = re.sub(r"_\d+$", "", gene)
                        if name and AMINO.match(seq) and len(seq) >= 50:
                            acc = parts[0].split()[0]
                            groups[name].append((f"{genus}|{acc}", seq, genus))
                    header, seq_lines = line[1:].strip(), []
                else:
                    seq_lines.append(line.strip())
    rng = np.random.default_rng(seed)
    records: list[tuple[str, str]] = []
    labels: list[tuple[str, str]] = []
    ident: list[float] = []
    for name in sorted(groups):
        members = groups[name]
        genera = {g for _, _, g in members}
        if "Escherichia" not in genera or not genera & BACILLI:
            continue
        # one Escherichia and one Bacillus protein first, then the rest at random
        order = [int(i) for i in rng.permutation(len(members))]
        eco = next(i for i in order if members[i][2] == "Escherichia")
        bac = next(i for i in order if members[i][2] in BACILLI)
        chosen = [eco, bac] + [i for i in order if i not in (eco, bac)]
        chosen = chosen[:max_members]
        seen: set[str] = set()
        kept = []
        for i in chosen:
            rid, seq, _ = members[i]
            if seq in seen:
                continue
            seen.add(seq)
            kept.append((rid, seq))
        if len(kept) < 2:
            continue
        records.extend(kept)
        labels.extend((rid, name) for rid, _ in kept)
        pair = [identity(kept[a][1], kept[b][1]) for a in range(len(kept))
                for b in range(a + 1, len(kept))]  # fmt: skip
        ident.append(float(np.median(pair)))
    ident_arr = np.asarray(ident)
    summary = {
        "set": "orthologs",
        "kind": "zero-shot",
        "proteins": len(records),
        "groups": len(ident),
        "group_median_identity": {
            "quartiles": np.percentile(ident_arr, [25, 50, 75]).round(3).tolist(),
            "share_below_40": float((ident_arr < 0.4).mean()),
        },
        "source": "Debian prokka 1.14.6 db/genus/{Escherichia,Staphylococcus,Enterococcus} "
        "(GPL-3 package; RefSeq/EcoCyc proteins, public)",
        "seed": seed,
    }
    _write(out / "sequences.fasta", records)
    _write(out / "corpus.fasta", records)
    _labels(out / "labels.csv", labels)
    return summary


def go_function(
    work: Path,
    out: Path,
    groups: int,
    corpus_size: int,
    seed: int,
    ontology: str = "MFO",
    avoid: Path | None = None,
) -> dict[str, object]:
    """A transductive set of exact GO-term signatures of one ontology (``MFO``: go-function,
    ``BPO``: go-process); proteins of the ``avoid`` FASTA are left out of its corpus."""
    base = debian("metastudent-data", work) / DEBIAN["metastudent-data"] / ontology
    taken = set() if avoid is None else _ids(avoid)
    terms: dict[str, str] = {}
    with open(base / "goasp_annot.dat") as fh:
        for line in fh:
            acc, *go = line.split()
            terms[acc] = "+".join(sorted(set(go)))
    seqs: dict[str, str] = {}
    for acc, seq in blastdb(base / "goasp.fasta"):
        if acc in taken or acc not in terms or acc in seqs or not 50 <= len(seq) <= 2000:
            continue
        if AMINO.match(seq):
            seqs[acc] = seq
    by_sig: dict[str, list[str]] = defaultdict(list)
    for acc in seqs:
        by_sig[terms[acc]].append(acc)
    rng = np.random.default_rng(seed)
    specific = sorted(s for s, m in by_sig.items() if 8 <= len(m) <= 300)
    picked = [specific[i] for i in rng.choice(len(specific), size=groups, replace=False)]
    labelled: list[tuple[str, str]] = []
    seen_seq: set[str] = set()
    for gi, sig in enumerate(picked):
        members = by_sig[sig]
        take = [members[i] for i in rng.permutation(len(members))]
        kept = []
        for acc in take:
            if seqs[acc] in seen_seq:
                continue
            seen_seq.add(seqs[acc])
            kept.append(acc)
            if len(kept) == 25:
                break
        labelled.extend((acc, f"F{gi:03d}") for acc in kept)
    in_set = {acc for acc, _ in labelled}
    others = [a for a in seqs if a not in in_set]
    fill = []
    for i in rng.permutation(len(others)):
        acc = others[int(i)]
        if seqs[acc] in seen_seq:
            continue
        seen_seq.add(seqs[acc])
        fill.append(acc)
        if len(fill) + len(labelled) >= corpus_size:
            break
    corpus = [(acc, seqs[acc]) for acc, _ in labelled] + [(acc, seqs[acc]) for acc in fill]
    order = rng.permutation(len(corpus))
    _write(out / "corpus.fasta", [corpus[int(i)] for i in order])
    _write(out / "sequences.fasta", [(acc, seqs[acc]) for acc, _ in labelled])
    _labels(out / "labels.csv", labelled)
    (out / "signatures.tsv").write_text(
        "label\tgo_terms\n" + "".join(f"F{i:03d}\t{s}\n" for i, s in enumerate(picked))
    )
    sizes = np.bincount([int(lab[1:]) for _, lab in labelled])
    name = {"MFO": "go-function", "BPO": "go-process", "CCO": "go-component"}[ontology]
    return {
        "set": name,
        "kind": "transductive",
        "corpus": len(corpus),
        "proteins": len(labelled),
        "groups": int((sizes >= 2).sum()),
        "group_size_quartiles": np.percentile(sizes, [25, 50, 75]).tolist(),
        "source": f"Debian metastudent-data 2.0.1 dataset_201401/{ontology} (UniProt 2014 with "
        "GO annotations; GPL-2+ package, UniProt CC BY)"
        + ("" if avoid is None else f"; none of the proteins of {avoid.parent.name}'s corpus"),
        "seed": seed,
    }


def _ids(fasta: Path) -> set[str]:
    return {r.split()[0][1:] for r in fasta.read_text().splitlines() if r.startswith(">")}


def training_corpus(work: Path, out: Path, size: int, seed: int, avoid: Path) -> dict[str, object]:
    """``size`` random metastudent proteins outside the go-function corpus (a raw training
    corpus for zero-shot runs; pass it through ``training_corpus.py --heldout-fasta`` to drop
    the development sets' homologs)."""
    base = debian("metastudent-data", work) / DEBIAN["metastudent-data"] / "MFO"
    taken = _ids(avoid)
    seqs: dict[str, str] = {}
    seen: set[str] = set()
    for acc, seq in blastdb(base / "goasp.fasta"):
        if acc in taken or acc in seqs or seq in seen or not 50 <= len(seq) <= 2000:
            continue
        if AMINO.match(seq):
            seqs[acc] = seq
            seen.add(seq)
    accs = sorted(seqs)
    rng = np.random.default_rng(seed)
    pick = [accs[int(i)] for i in rng.choice(len(accs), size=min(size, len(accs)), replace=False)]
    _write(out / "corpus.fasta", [(a, seqs[a]) for a in pick])
    return {
        "set": "train",
        "proteins": len(pick),
        "pool": len(accs),
        "seed": seed,
        "source": "Debian metastudent-data 2.0.1 dataset_201401/MFO, outside go-function",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path.home() / ".cache/phyloclr/devsets")
    ap.add_argument("--work", type=Path, default=None, help="download directory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-members", type=int, default=6)
    ap.add_argument("--groups", type=int, default=300)
    ap.add_argument("--corpus-size", type=int, default=20000)
    ap.add_argument("--train-size", type=int, default=100000,
                    help="proteins in OUT/TRAIN_NAME/corpus.fasta (0: skip)")  # fmt: skip
    ap.add_argument(
        "--train-name",
        default="train",
        help="folder of the training corpus (the 300,000-protein one: train300)",
    )
    ap.add_argument("--train-seed", type=int, default=None, help="its draw's seed (default --seed)")
    ap.add_argument("--train-only", action="store_true", help="draw the training corpus only")
    args = ap.parse_args()
    work = args.work or args.out / "src"
    work.mkdir(parents=True, exist_ok=True)
    for name, build in (
        ()
        if args.train_only
        else (
            ("orthologs", lambda d: orthologs(work, d, args.max_members, args.seed)),
            (
                "go-function",
                lambda d: go_function(work, d, args.groups, args.corpus_size, args.seed),
            ),
            (
                "go-process",
                lambda d: go_function(
                    work,
                    d,
                    args.groups,
                    args.corpus_size,
                    args.seed,
                    "BPO",
                    avoid=args.out / "go-function" / "corpus.fasta",
                ),
            ),
        )
    ):
        d = args.out / name
        d.mkdir(parents=True, exist_ok=True)
        summary = build(d)
        (d / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary))
    if args.train_size:
        d = args.out / args.train_name
        d.mkdir(parents=True, exist_ok=True)
        avoid = args.out / "go-function" / "corpus.fasta"
        seed = args.seed if args.train_seed is None else args.train_seed
        summary = training_corpus(work, d, args.train_size, seed, avoid)
        (d / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
