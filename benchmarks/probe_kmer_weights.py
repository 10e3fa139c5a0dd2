"""Evolution-derived k-mer weights against the idf, on the sparse spaced-word vectors (issue 19).

    python -m benchmarks.probe_kmer_weights --sets DEVSETS [--train DEVSETS/train300/clean.fasta]

The default model's input, the centred log-tf-idf vectors of four Murphy-10 words (1111, 11011,
110101, 101011), with each k-mer weighted by
- ``idf``: ln((1 + N) / (1 + df)) + 1 (what the model ships with);
- ``homology``: :func:`phyloclr.kmers.homology_weights`, the log-odds that a homolog keeps the
  k-mer, from up to 10 random member pairs of every cluster of the training corpus
  (``family=`` in its headers, benchmarks/training_corpus.py --method mmseqs;
  :func:`phyloclr.kmers.member_pairs`, as pretraining draws them);
- two controls that shift the idf as ``homology`` does but give every k-mer the same share
  kept (the mean over occurrences, ``flat-occurrence``, or over k-mers, ``flat-kmer``): if
  they match ``homology``, the gain is the shift, not evolution.
Weights and the mean row are fitted on ``--n-train`` proteins of the training corpus (seed 0;
the development sets' homologs were removed from it), so every score is zero-shot; mAP of the
mean cosine over the words on each development set, as ``bench_protein``'s spaced rows.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from benchmarks.bench_protein import DEFAULT_SETS, DevSet, score
from benchmarks.bench_search import emit
from phyloclr.io.fasta import read_fasta
from phyloclr.kmers import (
    centred_cosines,
    homology_weights,
    inverse_document_frequency,
    kept_shares,
    log_tfidf,
    member_pairs,
    spectrum_counts,
)

WORDS = ("1111", "11011", "110101", "101011")


def flat_weights(counts: object, pairs: np.ndarray, per: str) -> np.ndarray:
    """The homology weights' shift with one share kept for every k-mer (a control): the share
    over all occurrences (``occurrence``) or the mean of the k-mers' smoothed shares."""
    kept, mean, chance = kept_shares(counts, pairs)
    share = mean if per == "occurrence" else float(kept.mean())
    return np.maximum(np.log(share / chance), 0.0).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=Path, default=DEFAULT_SETS)
    ap.add_argument("--train", type=Path, default=None, help="default: SETS/train300/clean.fasta")
    ap.add_argument("--n-train", type=int, default=30_000)
    ap.add_argument("--kinds", nargs="+", default=["idf", "homology", "flat-occurrence",
                                                     "flat-kmer"])  # fmt: skip
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    records = read_fasta(args.train or args.sets / "train300" / "clean.fasta")
    pick = np.sort(np.random.default_rng(0).choice(len(records), min(args.n_train, len(records)),
                                                   replace=False))  # fmt: skip
    seqs = [records[i].seq for i in pick]
    label = re.compile(r"family=(\S+)")
    families = np.array([m.group(1) if (m := label.search(records[i].description or "")) else ""
                         for i in pick])  # fmt: skip
    pairs = member_pairs(families, 0)
    train = {w: spectrum_counts(seqs, w, "murphy10") for w in WORDS}
    sets = [DevSet(args.sets / n) for n in ("go-function", "orthologs", "go-process")]
    for kind in args.kinds:
        weights = {}
        for w, counts in train.items():
            if kind == "idf":
                weights[w] = inverse_document_frequency(counts)
            elif kind == "homology":
                weights[w] = homology_weights(counts, pairs)
            else:
                weights[w] = flat_weights(counts, pairs, kind.split("-")[1])
        row: dict[str, object] = {"kind": kind, "n_train": len(seqs), "pairs": len(pairs)}
        for ds in sets:
            sim = np.zeros((len(ds.seqs), len(ds.seqs)))
            for w in WORDS:
                mean = np.asarray(log_tfidf(train[w], weights[w]).mean(0)).ravel()
                x = log_tfidf(spectrum_counts(ds.seqs, w, "murphy10"), weights[w])
                sim += centred_cosines(x, mean) / len(WORDS)
            row[ds.name] = score(sim, ds.labels)["map"]
        emit(row, args.out)


if __name__ == "__main__":
    main()
