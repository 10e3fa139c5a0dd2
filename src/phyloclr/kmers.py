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


def word_offsets(word: int | str) -> np.ndarray:
    """Offsets of a word's letters in its window: k → 0..k-1 (a contiguous k-mer); a spaced
    pattern such as '110111' → [0, 1, 3, 4, 5] (the letters under its 1s)."""
    if isinstance(word, str):
        return np.flatnonzero(np.frombuffer(word.encode("ascii"), dtype=np.uint8) == ord("1"))
    return np.arange(word)


def word_weight(word: int | str) -> int:
    """Letters a word holds: k, or the 1s of a spaced pattern (its key has this many digits)."""
    return word.count("1") if isinstance(word, str) else word


def kmer_keys(
    seq: str, k: int | str, index: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keys (base ``size``, first letter most significant) and start positions of the k-mers
    of ``seq``; windows holding a letter outside the alphabet (code < 0) are skipped. ``k`` may
    be a spaced pattern ('110111'): the word is then the letters under its 1s (spaced words
    match across a substitution at a 0, as homology search seeds do)."""
    raw = np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)
    ok, keys = _window_keys(index[raw], word_offsets(k), size)
    pos = np.flatnonzero(ok)
    return keys[pos], pos


def _window_keys(
    codes: np.ndarray, offsets: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """For every window start of ``codes`` (letter codes, < 0 outside the alphabet): whether
    the letters at ``offsets`` are all in the alphabet, and their key (base ``size``, first
    letter most significant); (W,) bool and (W,) int64, W = len(codes) − span + 1 ≥ 0."""
    n_win = max(len(codes) - int(offsets[-1]), 0)
    ok = np.ones(n_win, dtype=bool)
    keys = np.zeros(n_win, dtype=np.int64)
    for off, power in zip(offsets.tolist(), (size ** np.arange(len(offsets))[::-1]).tolist(),
                          strict=True):  # fmt: skip
        letter = codes[off : off + n_win]
        ok &= letter >= 0
        keys += letter * np.int64(power)
    return ok, keys


def kmer_counts(seq: str, k: int | str, index: np.ndarray, size: int) -> np.ndarray:
    """(size**weight,) counts of the k-mers (or spaced words) of ``seq`` (see
    :func:`kmer_keys`)."""
    return np.bincount(kmer_keys(seq, k, index, size)[0], minlength=size ** word_weight(k))


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


def spectrum_counts(
    seqs: Sequence[str], k: int | str, alphabet: str = "murphy10", chunk: int = 1 << 21
) -> Any:
    """Sparse (N, |A|^k) k-mer counts (scipy CSR, float32, each row's columns sorted) in a
    (reduced) protein alphabet; ``k`` may be a spaced pattern (see :func:`kmer_keys`).

    Counted a chunk of about ``chunk`` residues at a time, all sequences of a chunk at once:
    one sort of (row, key) pairs instead of one per sequence. Memory: about 50 bytes per
    residue of a chunk."""
    from scipy import sparse

    index, size = reduced_index(alphabet)
    offsets = word_offsets(k)
    width = size ** word_weight(k)
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    row_nnz = np.zeros(len(seqs), dtype=np.int64)
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    start = 0
    while start < len(seqs):
        stop = start + 1
        total = int(lengths[start])
        # (row, key) pairs stay within int64: rows < 2^20, widths ≤ 20^8
        while stop < len(seqs) and total + lengths[stop] <= chunk and stop - start < 1 << 20:
            total += int(lengths[stop])
            stop += 1
        rows, keys = _chunk_keys(seqs[start:stop], index, offsets, size)
        uniq, counts = _unique_counts(rows * width + keys)
        row_nnz[start:stop] = np.bincount(uniq // width, minlength=stop - start)
        cols.append(uniq % width)
        vals.append(counts.astype(np.float32))
        start = stop
    data = np.concatenate(vals) if vals else np.zeros(0, np.float32)
    ind = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    indptr = np.concatenate([[0], np.cumsum(row_nnz)])
    return sparse.csr_matrix((data, ind, indptr), shape=(len(seqs), width))


def _chunk_keys(
    seqs: Sequence[str], index: np.ndarray, offsets: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row (within ``seqs``) and key of every k-mer of ``seqs`` that holds only letters of the
    alphabet (as :func:`kmer_keys`): the sequences joined by byte 255, which no ASCII encoding
    yields and no alphabet holds, so that no valid window crosses from one into the next."""
    joined = b"\xff".join(s.encode("ascii", "replace") for s in seqs)
    raw = np.frombuffer(joined, dtype=np.uint8)
    ok, keys = _window_keys(index[raw], offsets, size)
    for off in sorted(set(range(int(offsets[-1]) + 1)) - set(offsets.tolist())):
        ok &= raw[off : off + len(ok)] != 255  # a spaced word's gaps must not hold a junction
    # a valid window's row: the separators before it
    return np.cumsum(raw[: len(ok)] == 255)[ok], keys[ok]


def _unique_counts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of ``x`` and how often each occurs (``np.unique``'s, faster)."""
    if len(x) == 0:
        return x, np.zeros(0, np.int64)
    x = np.sort(x)
    first = np.flatnonzero(np.concatenate([[True], x[1:] != x[:-1]]))
    return x[first], np.diff(first, append=len(x))


#: the four Murphy-10 words (weight 4) of the default model and of cpu-small's appended sketch
#: (the strongest 40,000-dimension row of benchmarks/RESULTS.md)
SPACED_WORDS = "murphy10:1111,murphy10:11011,murphy10:110101,murphy10:101011"
#: the five Murphy-10 words (weight 5) of the strongest k-mer row of benchmarks/RESULTS.md, the
#: words of the search's exact prefilter (:mod:`phyloclr.wordsearch`): as sensitive there as the
#: four above, with a tenth of their postings per k-mer
SEARCH_WORDS = ("murphy10:11111,murphy10:110111,murphy10:111011,murphy10:1101011,"
                "murphy10:1110111")  # fmt: skip

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


#: salt of the count sketch's bucket hash; the sign hash uses SKETCH_SALT + 1
SKETCH_SALT = 104729


def mix32(ids: Any, salt: int) -> Any:
    """A well-mixed 32-bit hash of integer ids (NumPy int64 array or int64 torch tensor; the
    same values either way): two xor-shift-multiply rounds of ``(id + salt) mod 2^32``, so
    every output bit depends on every input bit (unlike ``hash_kmers``' low bits)."""
    x = (ids + salt) & 0xFFFFFFFF
    for _ in range(2):
        x = (((x >> 16) ^ x) * 0x45D9F3B) & 0xFFFFFFFF
    return (x >> 16) ^ x


def parse_spectrum(spec: str) -> list[tuple[str, int | str]]:
    """'protein:4,murphy10:110111' → [('protein', 4), ('murphy10', '110111')] (validated).

    A word is K (a contiguous k-mer, 1 ≤ K ≤ 8) or a spaced pattern of 0s and 1s that starts
    and ends with 1, at most 16 long with 2 to 8 ones."""
    out: list[tuple[str, int | str]] = []
    for part in spec.split(","):
        name, _, word = part.strip().partition(":")
        spaced = (
            len(word) >= 3
            and set(word) <= {"0", "1"}
            and word[0] == word[-1] == "1"
            and len(word) <= 16
            and 2 <= word.count("1") <= 8
        )
        if name not in REDUCED_ALPHABETS or not (
            spaced or (word.isdigit() and 1 <= int(word) <= 8)
        ):
            raise ValueError(
                f"bad k-mer spectrum {part!r}: write ALPHABET:K or ALPHABET:PATTERN with "
                f"ALPHABET one of {sorted(REDUCED_ALPHABETS)}, 1 ≤ K ≤ 8, PATTERN 0s and 1s "
                "(first and last 1, 2 to 8 ones, at most 16 long; e.g. 110111), comma-separated"
            )
        out.append((name, word if spaced else int(word)))
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
    return _idf(np.bincount(counts.indices, minlength=counts.shape[1]), counts.shape[0])


def _idf(df: np.ndarray, n: int) -> np.ndarray:
    return (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)


#: sequences whose spectra :func:`corpus_weights` holds at a time (25,000: at a million
#: proteins 0.9 GB instead of 1.6 GB for 50,000, in no more time; a corpus up to this size is
#: counted in one pass, the development sets' 20,000 included)
FIT_CHUNK = 25_000


def corpus_weights(
    seqs: Sequence[str], spectrum: str, buckets: int = 0, centre: bool = True,
    chunk: int | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
    """Per spectrum of ``spectrum`` (as :func:`spectrum_matrix` counts them): the idf (V,) of
    ``seqs``, each one document, and with ``centre`` the mean (V,) of their
    :func:`log_tfidf` rows (else no means), as :func:`inverse_document_frequency` and
    ``log_tfidf(counts, idf).mean(0)`` give them for the whole corpus. Counted ``chunk``
    (default :data:`FIT_CHUNK`) sequences at a time, in two passes when there are more
    (document frequencies, then the rows' sum), so memory holds one chunk's spectra instead of
    the corpus's (benchmarks/RESULTS.md "Pretraining a million proteins"). With one chunk the
    figures are those of the whole-corpus functions to the bit; with more, the mean's float32
    sums are added in float64."""
    n, chunk = len(seqs), chunk or FIT_CHUNK
    parts = [seqs[i : i + chunk] for i in range(0, n, chunk)] or [seqs]
    dfs: list[np.ndarray] = []
    for part in parts:
        mats = spectrum_matrix(part, spectrum, buckets)
        counts = [np.bincount(m.indices, minlength=m.shape[1]) for m in mats]
        dfs = counts if not dfs else [a + b for a, b in zip(dfs, counts, strict=True)]
    kept = mats if len(parts) == 1 else None  # one chunk: its spectra serve both passes
    idfs = [_idf(df, n) for df in dfs]
    if not centre:
        return idfs, []
    sums: list[Any] = [None] * len(idfs)
    for part in parts:
        mats = kept if kept is not None else spectrum_matrix(part, spectrum, buckets)
        for s, (m, idf) in enumerate(zip(mats, idfs, strict=True)):
            x = log_tfidf(m, idf)
            # scipy's own mean, a chunk at a time: each row scaled by 1/N, summed in its dtype
            part_sum = np.asarray((x * (1.0 / n)).sum(axis=0, dtype=x.dtype)).ravel()
            sums[s] = part_sum if sums[s] is None else sums[s].astype(np.float64) + part_sum
    return idfs, sums


def kept_shares(
    counts: Any, pairs: np.ndarray, prior: float = 20.0
) -> tuple[np.ndarray, float, np.ndarray]:
    """From sparse counts (N, V) and homologous ``pairs`` (P, 2) of their rows: (c, c̄, p).
    c (V,) is the share of each k-mer's occurrences in the pairs (both directions) that the
    homolog keeps, smoothed towards c̄ (the share over all occurrences) with ``prior``
    pseudo-occurrences; p (V,) = (1 + df) / (1 + N) is its chance of being in a random row."""
    n, v = counts.shape
    presence = counts.tocsr(copy=True)
    presence.data[:] = 1.0
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    a, b = presence[pairs[:, 0]], presence[pairs[:, 1]]
    both = np.asarray(a.multiply(b).sum(0), dtype=np.float64).ravel()
    one = np.asarray(a.sum(0) + b.sum(0), dtype=np.float64).ravel()
    mean = 2.0 * both.sum() / max(one.sum(), 1.0)
    kept = (2.0 * both + prior * mean) / (one + prior)
    df = np.bincount(presence.indices, minlength=v)
    return kept, mean, (1.0 + df) / (1.0 + n)


def homology_weights(counts: Any, pairs: np.ndarray, prior: float = 20.0) -> np.ndarray:
    """(V,) evolution-derived k-mer weights: the log-odds, floored at 0, that a k-mer present in
    one protein is present in its homolog rather than in a random protein, ln(c / p)
    (:func:`kept_shares`). Used in place of the idf (which is ln(1 / p) + const): a k-mer that
    evolution keeps weighs more than one that is merely rare."""
    kept, _, chance = kept_shares(counts, pairs, prior)
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(kept / chance), 0.0).astype(np.float32)


def member_pairs(groups: np.ndarray, seed: int, per_group: int = 10) -> np.ndarray:
    """(P, 2) row pairs: up to ``per_group`` random pairs of distinct rows within each group
    of ``groups`` (N,) (family labels), groups in order of first appearance, drawn with
    ``numpy.random.default_rng([seed, 11])``."""
    rng = np.random.default_rng([seed, 11])
    _, first, inverse = np.unique(np.asarray(groups), return_index=True, return_inverse=True)
    by_group = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    pairs = []
    for g in np.argsort(first, kind="stable"):
        rows = by_group[g]
        n = len(rows)
        for _ in range(min(per_group, n * (n - 1) // 2)):
            a, b = rng.choice(n, 2, replace=False)
            pairs.append((int(rows[a]), int(rows[b])))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


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
