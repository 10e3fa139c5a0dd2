"""The k-mer spectrum encoder: a sequence's sparse log-tf-idf k-mer vector, mapped by a learned
linear layer and residual MLP blocks to the embedding.

Input (B, L) tokens → k-mer ids in a (reduced) alphabet → per sequence, log(1 + count) × idf,
scaled to unit norm (the same vector as ``phyloclr.kmers.log_tfidf``) → ``EmbeddingBag`` (a
sparse (V, D) matrix product) → ``layers - 1`` pre-norm residual MLP blocks → (B, D).

At initialisation the first layer is a Gaussian random projection, so cosine similarity starts
at that of the tf-idf vectors (Johnson-Lindenstrauss), the strong baseline; training learns a
metric on top of it. The idf is fitted on the training corpus (``fit_idf``) and saved with the
weights; with ``spec.centre`` so is the corpus's mean input vector, which is subtracted before
the map (its cosines then see what two sequences share beyond the corpus's common composition:
on unseen protein families this alone lifts the tf-idf vector's retrieval by 0.02–0.08 mAP).
With ``spec.map == 'sketch'`` the map is not a learned table but a count sketch: each table row
adds its weight, with a hashed sign, to one hashed column of the ``dim``-wide embedding (a
sparse random projection that is never stored, so the embedding can be far wider than a stored
table allows; the cosine noise of a random map falls as 1/√dim). Its learned parameters are one
weight per spectrum. Spectra may be spaced words ('murphy10:11011', ``phyloclr.kmers``).
There are no per-residue features: the encoder has no context limit, sequences are never
windowed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from phyloclr.kmers import (
    HASH_SALT,
    SKETCH_SALT,
    corpus_weights,
    hash_kmers,
    homology_weights,
    log_tfidf,
    mix32,
    parse_spectrum,
    reduced_index,
    spectrum_matrix,
    word_offsets,
    word_weight,
)
from phyloclr.models.alphabet import ALPHABETS, N_SPECIAL
from phyloclr.models.directions import remove_directions
from phyloclr.models.encoders import DilatedCNN, Encoder, EncoderSpec
from phyloclr.models.memory import NeighbourMemory
from phyloclr.models.profiles import ProfileBlock, decode_tokens

#: the letters of each tokeniser, by count (EncoderSpec records only the count)
_LETTERS = {len(a.letters): a.letters for a in ALPHABETS.values()}


class _Block(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        out = nn.Linear(hidden, dim)
        nn.init.zeros_(out.weight)  # blocks start as the identity
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), out
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class KmerSpectrum(Encoder):
    """Sparse k-mer spectra → linear → residual MLP blocks: (B, L) tokens → (B, D).

    ``spec.spectrum`` lists the spectra ('protein:4,murphy10:5'); each one's log-tf-idf vector
    is unit-normed, and the vectors are summed and scaled by 1/√S (their concatenation, exactly
    so without hashing). With ``spec.buckets`` > 0 every spectrum's k-mers are hashed into one
    shared table of that many rows (``phyloclr.kmers.hash_kmers``), so large k fits in memory.
    """

    #: sequences are embedded whole (no windows); no per-residue features
    windowed = False
    per_residue = False

    def __init__(self, spec: EncoderSpec, vocab: int):
        super().__init__(spec, vocab)
        # the base class's residue embedding is not used here: frozen, so DDP finds no
        # parameter without a gradient (kept, so model files keep their keys)
        self.embed.requires_grad_(False)
        letters = _LETTERS.get(spec.alphabet_letters)
        if letters is None:
            raise ValueError(f"no k-mer alphabet for {spec.alphabet_letters} letters")
        self.spectra = parse_spectrum(spec.spectrum)
        if (spec.alphabet_letters == 4) != all(a == "dna" for a, _ in self.spectra):
            raise ValueError(f"k-mer spectrum {spec.spectrum!r} does not suit this alphabet")
        codes, self.sizes, self.offsets = [], [], []
        total = 0
        for alphabet, k in self.spectra:
            index, size = reduced_index(alphabet)
            code = torch.full((vocab,), -1, dtype=torch.long)
            for i, ch in enumerate(letters):
                code[N_SPECIAL + i] = int(index[ord(ch)])
            codes.append(code)
            self.sizes.append(size)
            self.offsets.append(total)  # where this spectrum's idf starts
            total += spec.buckets if spec.buckets else size ** word_weight(k)
        self.rows = spec.buckets if spec.buckets else total  # rows of the table
        self.register_buffer("codes", torch.stack(codes))
        self.register_buffer("idf", torch.ones(total))
        if spec.centre:  # the corpus's mean input row, over the table's rows
            self.register_buffer("mean", torch.zeros(self.rows))
        self.bag: nn.EmbeddingBag | None = None
        if spec.map == "sketch":
            if spec.buckets:
                raise ValueError("a sketched spectrum needs buckets 0")
            if spec.sketch_exact and spec.dim != total:
                raise ValueError(
                    f"an exact sketch has one column per table row: dim {spec.dim} != {total}"
                )
            # log-weight of each spectrum (init 1); the table rows where spectra 1.. start
            self.spectrum_weight = nn.Parameter(torch.zeros(len(self.spectra)))
            self.register_buffer("starts", torch.tensor(self.offsets[1:]), persistent=False)
            if spec.sketch_pcs:  # the corpus's top principal directions, removed (directions.py)
                self.register_buffer("direction_mean", torch.zeros(spec.dim))
                self.register_buffer("directions", torch.zeros(spec.sketch_pcs, spec.dim))
        else:
            self.bag = nn.EmbeddingBag(self.rows, spec.dim, mode="sum")
            nn.init.normal_(self.bag.weight, std=1.0 / math.sqrt(spec.dim))
        self.blocks = nn.ModuleList(
            _Block(spec.dim, spec.hidden, spec.dropout) for _ in range(spec.layers - 1)
        )
        # an appended, untrained sketch of other spectra (spec.sketch): in eval mode only
        self.branch = appended_sketch(spec, vocab) if spec.sketch else None
        # an appended, frozen residue CNN trained elsewhere (the default model's): eval only
        self.cnn = appended_cnn(spec, vocab) if spec.appended_cnn_dim else None
        # profile HMMs of the training corpus's families, appended (models/profiles.py)
        self.profiles = (
            ProfileBlock(spec.profile_count, spec.profile_bytes, spec.profile_evalue,
                         spec.profile_z)
            if spec.profile_count
            else None
        )  # fmt: skip
        # the training corpus's embeddings, which ``embed`` smooths over (models/memory.py)
        self.memory = (
            NeighbourMemory(
                spec.memory_rows, self.dim, spec.memory_neighbours, spec.memory_bank_neighbours
            )
            if spec.memory_rows
            else None
        )

    @property
    def dim(self) -> int:
        """Width of the embedding users get (the map's, plus the appended sketch's, CNN's and
        profile block's)."""
        sketch = self.spec.sketch_dim if self.branch is not None else 0
        return self.spec.dim + sketch + self.spec.appended_cnn_dim + self.spec.profile_count

    def fit_idf(self, seqs: Sequence[str], pairs: np.ndarray | None = None) -> None:
        """Set the idf from a corpus (every sequence one document) and, with ``spec.centre``,
        the mean of its input rows (the vectors ``features`` gives, over the table's rows).
        With ``pairs`` (P, 2) of homologous rows of ``seqs``, the weights are evolution's
        instead of the idf (:func:`phyloclr.kmers.homology_weights`)."""
        if self.branch is not None:
            self.branch.fit_idf(seqs, pairs)
        if pairs is None:  # a chunk of the corpus's spectra in memory at a time
            idfs, means = corpus_weights(
                list(seqs), self.spec.spectrum, self.spec.buckets, self.spec.centre
            )
        else:  # the pairs' rows are anywhere in the corpus: its whole spectra
            mats = spectrum_matrix(list(seqs), self.spec.spectrum, self.spec.buckets)
            idfs = [homology_weights(m, pairs) for m in mats]
            means = [
                np.asarray(log_tfidf(m, idf).mean(0)).ravel()
                for m, idf in zip(mats, idfs, strict=True)
                if self.spec.centre
            ]
        table: torch.Tensor = self.idf  # type: ignore[assignment]
        table.copy_(torch.from_numpy(np.concatenate(idfs).astype(np.float32)))
        if not self.spec.centre:
            return
        mean = np.zeros(self.rows)
        for s, row in enumerate(means):
            part = row / math.sqrt(len(means))
            start = 0 if self.spec.buckets else self.offsets[s]
            mean[start : start + len(part)] += part
        buffer: torch.Tensor = self.mean  # type: ignore[assignment]
        buffer.copy_(torch.from_numpy(mean.astype(np.float32)))

    def _one(
        self, tokens: torch.Tensor, s: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Spectrum ``s`` as unit-norm rows: (sequence, table row, weight) of each non-zero."""
        b, length = tokens.shape
        word = self.spectra[s][1]
        offsets = torch.from_numpy(word_offsets(word)).to(tokens.device)
        span = int(offsets[-1]) + 1
        if length < span:
            return None
        codes = self.codes[s][tokens]  # type: ignore[index]  # (B, L), -1: pad/mask/unknown
        windows = codes.unfold(1, span, 1)  # (B, L-span+1, span)
        if len(offsets) < span:  # a spaced word: the letters under the pattern's 1s
            windows = windows[..., offsets]
        valid = (windows >= 0).all(-1)
        weight = len(offsets)
        powers = self.sizes[s] ** torch.arange(weight - 1, -1, -1, device=tokens.device)
        ids = (windows.clamp_min(0) * powers).sum(-1)
        if self.spec.buckets:
            ids = hash_kmers(ids, self.spec.buckets, HASH_SALT * s)
        width = self.spec.buckets or self.sizes[s] ** weight
        rows = torch.arange(b, device=tokens.device).unsqueeze(1).expand_as(ids)
        uniq, counts = torch.unique((rows * width + ids)[valid], return_counts=True)
        row = uniq // width
        col = uniq % width  # the k-mer (or bucket) within this spectrum
        idf: torch.Tensor = self.idf  # type: ignore[assignment]
        w = torch.log1p(counts.to(idf.dtype)) * idf[col + self.offsets[s]]
        norm = torch.zeros(b, dtype=w.dtype, device=w.device).index_add_(0, row, w * w).sqrt()
        # hashed spectra share one table; exact ones sit side by side, as their idf does
        table_row = col if self.spec.buckets else col + self.offsets[s]
        return row, table_row, w / norm.clamp_min(1e-12)[row]

    def features(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The sparse input rows as (table rows, bag offsets (B,), weights), rows sorted."""
        parts = [p for s in range(len(self.spectra)) if (p := self._one(tokens, s)) is not None]
        idf: torch.Tensor = self.idf  # type: ignore[assignment]
        if not parts:
            empty = tokens.new_zeros(0)
            return empty, tokens.new_zeros(tokens.shape[0]), idf.new_zeros(0)
        row = torch.cat([p[0] for p in parts])
        col = torch.cat([p[1] for p in parts])
        w = torch.cat([p[2] for p in parts]) / math.sqrt(len(self.spectra))
        order = torch.sort(row, stable=True).indices
        row, col, w = row[order], col[order], w[order]
        offsets = torch.searchsorted(row, torch.arange(tokens.shape[0], device=tokens.device))
        return col, offsets, w

    def input_cosines(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, B) cosines of the input rows (centred with ``spec.centre``; no gradient)."""
        return self.feature_cosines(self.features(tokens))

    def feature_cosines(
        self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor], budget: int = 1 << 24
    ) -> torch.Tensor:
        """(B, B) cosines of the input rows ``feats`` (from ``features``), less the mean row
        with ``spec.centre``; no gradient. The Gram is sparse (B, present) × dense slices of
        at most ``budget`` elements, so time goes with the non-zeros and memory stays bounded."""
        cols, offsets, w = feats
        b = len(offsets)
        with torch.no_grad():
            counts = bag_sizes(offsets, len(cols))
            rows = torch.repeat_interleave(torch.arange(b, device=offsets.device), counts)
            present, where = torch.unique(cols, return_inverse=True)
            p = max(len(present), 1)
            # (B, present) in CSR: rows are already grouped by sequence
            with warnings.catch_warnings():  # "CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                sparse_x = torch.sparse_csr_tensor(
                    torch.cat([offsets, offsets.new_tensor([len(cols)])]),
                    where,
                    w.float(),
                    (b, p),
                    check_invariants=False,
                )
            gram = torch.zeros(b, b, device=offsets.device)
            step = max(1, budget // p)
            for start in range(0, b, step):
                sel = (rows >= start) & (rows < start + step)
                dense = torch.zeros(min(step, b - start), p, device=offsets.device)
                dense.index_put_((rows[sel] - start, where[sel]), w[sel].float(), accumulate=True)
                gram[:, start : start + len(dense)] = sparse_x @ dense.T
            if self.spec.centre:
                mean: torch.Tensor = self.mean  # type: ignore[assignment]
                a = torch.zeros(b, device=offsets.device).index_add_(
                    0, rows, w.float() * mean[cols]
                )
                gram = gram - a[:, None] - a[None, :] + mean @ mean
                d = gram.diagonal().clamp_min(1e-12).sqrt()
                gram = gram / (d[:, None] * d[None, :])
            return gram

    def embed_features(
        self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """(B, D) embeddings of the input rows ``feats`` (from ``features``)."""
        rows, offsets, w = feats
        if self.bag is None:
            x = self._sketch(rows, offsets, w)
            if self.spec.sketch_pcs:
                middle: torch.Tensor = self.direction_mean  # type: ignore[assignment]
                top: torch.Tensor = self.directions  # type: ignore[assignment]
                x = remove_directions(x, middle, top)
        else:
            x = self.bag(rows, offsets, per_sample_weights=w.to(self.bag.weight.dtype))
            if self.spec.centre:
                mean: torch.Tensor = self.mean  # type: ignore[assignment]
                x = x - (mean.to(self.bag.weight.dtype) @ self.bag.weight)[None, :]
        for block in self.blocks:
            x = block(x)
        return x

    def _sketch(self, rows: torch.Tensor, offsets: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """(B, D) count sketch of the input rows: each table row adds its weight, times its
        spectrum's learned weight and a hashed sign, to one hashed column (a sparse random
        projection with ±1 entries, as cosine-preserving as a Gaussian one of that width and
        never stored); with ``spec.sketch_exact`` to its own column (D = the table's rows: no
        collisions); with ``spec.centre`` less the sketch of the mean row."""
        b, dim = len(offsets), self.spec.dim
        counts = bag_sizes(offsets, len(rows))
        seq = torch.repeat_interleave(torch.arange(b, device=rows.device), counts)
        scale = torch.exp(self.spectrum_weight)
        starts: torch.Tensor = self.starts  # type: ignore[assignment]

        def scatter(r: torch.Tensor, s: torch.Tensor, v: torch.Tensor, n: int) -> torch.Tensor:
            if self.spec.sketch_exact:  # each table row its own column: the input row itself
                col = r
            else:
                col = mix32(r, SKETCH_SALT) % dim
                v = v * (1.0 - 2.0 * (mix32(r, SKETCH_SALT + 1) & 1).to(v.dtype))
            v = v * scale[torch.bucketize(r, starts, right=True)]
            return v.new_zeros(n * dim).index_add(0, s * dim + col, v).view(n, dim)

        x = scatter(rows, seq, w.to(scale.dtype), b)
        if self.spec.centre:
            mean: torch.Tensor = self.mean  # type: ignore[assignment]
            every = torch.arange(len(mean), device=rows.device)
            x = x - scatter(every, torch.zeros_like(every), mean.to(scale.dtype), 1)
        return x

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) embeddings; with ``spec.sketch``, in eval mode, (B, D + sketch_dim): the
        unit-normed map and sketch side by side, scaled by √(1 − w) and √w (training sees the
        map alone, so the loss and the projection head are those of the map); with
        ``spec.appended_cnn_dim``, the appended CNN's embedding after those, likewise; with
        ``spec.profile_count``, the profile block's vector of the sequences after those
        (:mod:`phyloclr.models.profiles`). In eval mode a sequence with no word of the spectra
        (shorter than every word, or of unknown letters) gets zeros here, not the fixed row
        that centring gives every such sequence (so two of them would have cosine 1)."""
        feats = self.features(tokens)
        x = self.embed_features(feats)
        if self.training:
            return x
        x = x.masked_fill((bag_sizes(feats[1], len(feats[0])) == 0)[:, None], 0.0)
        if self.branch is not None:
            x = side_by_side(x, self.branch(tokens), self.spec.sketch_weight)
        if self.cnn is not None:  # cosine = (1 − w) × the above's + w × the CNN's
            x = side_by_side(x, self.cnn(tokens, mask), self.spec.appended_cnn_weight)
        if self.profiles is not None:  # cosine = (1 − w) × the above's + w × the profiles'
            found = self.profiles(decode_tokens(tokens, _LETTERS[self.spec.alphabet_letters]))
            x = side_by_side(x, found.to(x.device, x.dtype), self.spec.profile_weight)
        return x

    def residues(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise ValueError("the k-mer spectrum encoder has no per-residue features")


def bag_sizes(offsets: torch.Tensor, entries: int) -> torch.Tensor:
    """(B,) input row entries of each sequence, from ``features``' bag offsets (B,) and its
    entry count (0: the sequence has no word of the spectra)."""
    return torch.diff(offsets, append=offsets.new_tensor([entries]))


def appended_sketch(spec: EncoderSpec, vocab: int) -> KmerSpectrum:
    """The untrained, centred count sketch of ``spec.sketch``'s spectra, ``spec.sketch_dim``
    wide, that an encoder appends to its embedding (its idf and mean row come from
    ``fit_idf`` on the training corpus; its spectrum weights stay fixed)."""
    sub = replace(spec, name="kmer", spectrum=spec.sketch, dim=spec.sketch_dim, map="sketch",
                  centre=True, buckets=0, layers=1, sketch="", appended_cnn_dim=0,
                  memory_rows=0, profile_count=0)  # fmt: skip
    branch = KmerSpectrum(sub, vocab)
    branch.requires_grad_(False)  # never trained (and no unused gradients under DDP)
    return branch


def appended_cnn(spec: EncoderSpec, vocab: int) -> DilatedCNN:
    """The frozen residue CNN (``spec.appended_cnn_*``) that a k-mer encoder appends in eval
    mode; its weights come from a trained model (``pretrain`` loads them), never trained here."""
    sub = EncoderSpec(name="cnn", dim=spec.appended_cnn_dim, layers=spec.appended_cnn_layers,
                      kernel_size=spec.appended_cnn_kernel, dropout=spec.dropout,
                      max_len=spec.max_len)  # fmt: skip
    cnn = DilatedCNN(sub, vocab)
    cnn.requires_grad_(False)
    return cnn


def side_by_side(own: torch.Tensor, sketch: torch.Tensor, weight: float) -> torch.Tensor:
    """(B, D + S): the unit-normed ``own`` (B, D) and ``sketch`` (B, S) scaled by √(1 − w) and
    √w, so that cosine = (1 − w) × own's cosine + w × the sketch's."""
    a = torch.nn.functional.normalize(own, dim=1) * math.sqrt(1.0 - weight)
    b = torch.nn.functional.normalize(sketch, dim=1) * math.sqrt(weight)
    return torch.cat([a, b], dim=1)
