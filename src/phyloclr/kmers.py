"""k-mer counting shared by composition vectors and chaos-game images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def letter_index(alphabet: str, aliases: dict[str, str] | None = None) -> np.ndarray:
    """(256,) code of every byte: the letter's position in ``alphabet`` (either case), else -1."""
    index = np.full(256, -1, dtype=np.int64)
    for i, ch in enumerate(alphabet):
        index[ord(ch.upper())] = index[ord(ch.lower())] = i
    for src, dst in (aliases or {}).items():
        index[ord(src.upper())] = index[ord(src.lower())] = alphabet.index(dst)
    return index


def kmer_keys(seq: str, k: int, index: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys (base ``size``, first letter most significant) and start positions of the k-mers
    of ``seq``; windows holding a letter outside the alphabet (code < 0) are skipped."""
    codes = index[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)]
    if len(codes) < k:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(codes, k)
    pos = np.flatnonzero((windows >= 0).all(1))
    return (windows[pos] * (size ** np.arange(k - 1, -1, -1))).sum(1), pos


def kmer_counts(seq: str, k: int, index: np.ndarray, size: int) -> np.ndarray:
    """(size**k,) counts of the k-mers of ``seq`` (see :func:`kmer_keys`)."""
    return np.bincount(kmer_keys(seq, k, index, size)[0], minlength=size**k)


#: reduced protein alphabets, as groups of the 20 amino acids (each group is one letter)
REDUCED_ALPHABETS: dict[str, tuple[str, ...]] = {
    "protein": tuple("ACDEFGHIKLMNPQRSTVWY"),
    "dna": tuple("ACGT"),
    # Murphy, Wallqvist & Levy 2000, 10 groups
    "murphy10": ("LVIM", "C", "A", "G", "ST", "P", "FYW", "EDNQ", "KR", "H"),
}


def reduced_index(name: str) -> tuple[np.ndarray, int]:
    """(256,) code of every byte in the reduced alphabet ``name`` (-1 outside it), its size."""
    try:
        groups = REDUCED_ALPHABETS[name]
    except KeyError:
        raise ValueError(
            f"unknown k-mer alphabet {name!r}; choose from {sorted(REDUCED_ALPHABETS)}"
        ) from None
    index = np.full(256, -1, dtype=np.int64)
    for code, group in enumerate(groups):
        for ch in group:
            index[ord(ch)] = index[ord(ch.lower())] = code
    return index, len(groups)


def spectrum_counts(seqs: Sequence[str], k: int, alphabet: str = "murphy10") -> Any:
    """Sparse (N, |A|^k) k-mer counts (scipy CSR, float32) in a (reduced) protein alphabet."""
    from scipy import sparse

    index, size = reduced_index(alphabet)
    indptr = [0]
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for seq in seqs:
        keys, _ = kmer_keys(seq, k, index, size)
        uniq, counts = np.unique(keys, return_counts=True)
        cols.append(uniq)
        vals.append(counts.astype(np.float32))
        indptr.append(indptr[-1] + len(uniq))
    data = np.concatenate(vals) if vals else np.zeros(0, np.float32)
    ind = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    return sparse.csr_matrix((data, ind, np.asarray(indptr)), shape=(len(seqs), size**k))


#: multiplier of the k-mer hash (Knuth's multiplicative hashing, modulo 2^32)
HASH_MULTIPLIER = 2654435761
#: spectrum s of a list is hashed with salt HASH_SALT × s
HASH_SALT = 7919


def hash_kmers(ids: Any, buckets: int, salt: int) -> Any:
    """Bucket of every k-mer id: ((id + salt) × 2654435761 mod 2^32) mod ``buckets``.
    ``ids``: a NumPy array (any integer type) or an int64 torch tensor."""
    if isinstance(ids, np.ndarray):
        ids = ids.astype(np.int64)
    return ((ids + salt) * HASH_MULTIPLIER % (1 << 32)) % buckets


def parse_spectrum(spec: str) -> list[tuple[str, int]]:
    """'protein:4,murphy10:5' → [('protein', 4), ('murphy10', 5)] (validated)."""
    out = []
    for part in spec.split(","):
        name, _, k = part.strip().partition(":")
        if name not in REDUCED_ALPHABETS or not k.isdigit() or not 1 <= int(k) <= 8:
            raise ValueError(
                f"bad k-mer spectrum {part!r}: write ALPHABET:K with ALPHABET one of "
                f"{sorted(REDUCED_ALPHABETS)} and 1 ≤ K ≤ 8, comma-separated"
            )
        out.append((name, int(k)))
    return out


def spectrum_matrix(seqs: Sequence[str], spectrum: str, buckets: int = 0) -> list[Any]:
    """Sparse counts of every spectrum of ``spectrum`` ('ALPHABET:K,...'); with ``buckets`` > 0
    each spectrum's k-mers are hashed into that many columns (salt HASH_SALT × its position)."""
    from scipy import sparse

    out = []
    for s, (alphabet, k) in enumerate(parse_spectrum(spectrum)):
        counts = spectrum_counts(seqs, k, alphabet)
        if buckets:
            coo = counts.tocoo()
            cols = hash_kmers(coo.col, buckets, HASH_SALT * s)
            counts = sparse.csr_matrix((coo.data, (coo.row, cols)), shape=(len(seqs), buckets))
        out.append(counts)
    return out


def inverse_document_frequency(counts: Any) -> np.ndarray:
    """(V,) smooth idf, ln((1 + N) / (1 + df)) + 1, of sparse counts (N, V)."""
    n = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    return (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)


def log_tfidf(counts: Any, idf: np.ndarray) -> Any:
    """Unit-norm rows of log(1 + count) × idf (sparse in, sparse out)."""
    from sklearn.preprocessing import normalize

    x = counts.copy()
    x.data = np.log1p(x.data) * idf[x.indices]
    return normalize(x)


def centred_cosines(x: Any, mean: np.ndarray) -> np.ndarray:
    """(N, N) cosines of the rows of sparse ``x`` (N, V) less the dense row ``mean`` (V,),
    without densifying ``x``: the Gram of the centred rows, then unit-normed."""
    gram = np.asarray((x @ x.T).toarray(), dtype=np.float64)
    a = np.asarray(x @ mean, dtype=np.float64).ravel()
    gram = gram - a[:, None] - a[None, :] + float(mean @ mean)
    d = np.sqrt(np.maximum(np.diag(gram), 1e-12))
    return gram / np.outer(d, d)
