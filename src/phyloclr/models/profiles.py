"""A profile block: profile HMMs of the training corpus's own families, appended to the embedding.

After training, every family of at least ``min_members`` members (the largest ``max_profiles``
of them) becomes a profile HMM (pyhmmer's ``Builder``) of its alignment (the families stage's
MSA; FAMSA, via pyfamsa, where a family has none), built from a seeded sample of at most
``max_members`` rows. A protein's profile vector holds, for each profile it hits at E ≤
``evalue`` (``hmmsearch``, E-values against a database of ``z`` sequences, the training corpus's
size, so that a protein's hits do not depend on what it is embedded with), the square root of the
hit's bit score. Before that, each HMM may be rebuilt from its best hits in the corpus, as a
round of jackhmmer would (:func:`refine_hmms`; one round by default in ``pretrain``). The encoder
appends the unit vector beside its own at cosine weight ``weight``
(:func:`~phyloclr.models.spectrum.side_by_side`); a protein that hits no profile gets zeros there.

Alignment-free embeddings miss homologs that share no words; a family's profile finds them
(HMMER's sensitivity), and the corpus's memory then carries the link to the family's members:
on the transductive development sets +0.017 / +0.014 mAP over the default without it (3-seed
means, benchmarks/RESULTS.md, "The profile block in ``pretrain``"). The HMMs are stored in the
model file as one zlib-compressed HMMER3 binary stream (a uint8 buffer).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import nn

from phyloclr.heap import release_free_memory

if TYPE_CHECKING:
    import pyhmmer.plan7

    from phyloclr.families.model import Family

T = TypeVar("T")

#: the length an optimised profile is first configured for (hmmsearch reconfigures it per target)
_CONFIGURE_LENGTH = 400
#: letters an aligned row may hold that easel reads as gaps or unknowns
_ROW_SAFE = str.maketrans({".": "-", "~": "-", "*": "X", "#": "X"})


def profile_families(
    families: Sequence[Family], min_members: int, max_profiles: int
) -> list[Family]:
    """The families that get a profile: at least ``min_members`` members, the
    ``max_profiles`` largest (ties in input order), in input order."""
    big = [i for i, f in enumerate(families) if f.size >= min_members]
    big = sorted(sorted(big, key=lambda i: -families[i].size)[:max_profiles])
    return [families[i] for i in big]


def build_hmms(
    families: Sequence[Family],
    max_members: int,
    seed: int = 0,
    threads: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[pyhmmer.plan7.HMM]:
    """One protein profile HMM per family, named by the family id, from a seeded sample of at
    most ``max_members`` of its aligned rows (families without an alignment are aligned by
    FAMSA first); ``progress(done, total)`` as they are built. The builds are split over
    ``threads`` threads (0: every core), each HMM with a builder of its own (reseeded per
    build), so the bytes do not depend on the thread count."""
    import pyhmmer

    from phyloclr.families.align import align_famsa, available_threads

    alphabet = pyhmmer.easel.Alphabet.amino()
    rng = np.random.default_rng([seed, 13])
    msas = []  # drawn in family order: the sample does not depend on the threads
    for fam in families:
        records = fam.records
        if len(records) > max_members:
            keep = np.sort(rng.choice(len(records), max_members, replace=False))
            records = [records[i] for i in keep]
        if not all(r.aligned is not None for r in records):
            records = align_famsa(records, available_threads(threads))
        rows = [(r.aligned or "").upper().translate(_ROW_SAFE) for r in records]
        msa = pyhmmer.easel.TextMSA(
            name=fam.id.encode(),
            sequences=[
                pyhmmer.easel.TextSequence(name=str(i).encode(), sequence=row)
                for i, row in enumerate(rows)
            ],
        )
        msas.append(msa.digitize(alphabet))

    def build(j: int) -> pyhmmer.plan7.HMM:
        builder = pyhmmer.plan7.Builder(alphabet, seed=42)
        hmm, _, _ = builder.build_msa(msas[j], pyhmmer.plan7.Background(alphabet))
        hmm.creation_time = None  # the same families give the same bytes (a resumed run)
        hmm.command_line = None
        return hmm

    hmms: list[pyhmmer.plan7.HMM] = []
    with ThreadPoolExecutor(max(1, available_threads(threads))) as pool:  # builds drop the GIL
        for hmm in pool.map(build, range(len(msas))):
            hmms.append(hmm)
            if progress is not None:
                progress(len(hmms), len(msas))
    return hmms


def refine_hmms(
    hmms: Sequence[pyhmmer.plan7.HMM],
    seqs: Sequence[str],
    z: int,
    evalue: float = 1e-3,
    max_hits: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> list[pyhmmer.plan7.HMM]:
    """One jackhmmer-like round: every HMM searched against ``seqs`` (E-values against ``z``
    sequences), then rebuilt from the domain alignments of its best ``max_hits`` hits at E ≤
    ``evalue`` (sequence and domain E-values, jackhmmer's inclusion rule), trimmed to its
    match columns; an HMM with fewer than 2 such hits (or domains) is kept as it is. Same HMMs
    and sequences give the same bytes, whatever the number of threads
    (``torch.get_num_threads()``, the HMMs split over them); ``progress(done, total)`` as
    HMMs are done (from those threads)."""
    import threading

    import pyhmmer

    alphabet = pyhmmer.easel.Alphabet.amino()
    lock, done = threading.Lock(), [0]

    def rebuild(j: int, top: Any) -> pyhmmer.plan7.HMM:
        hmm = _rebuild(j, top)
        if progress is not None:
            with lock:
                done[0] += 1
                progress(done[0], len(hmms))
        return hmm

    def _rebuild(j: int, top: Any) -> pyhmmer.plan7.HMM:
        included = [hit for hit in top if hit.included]  # sorted, best first
        if len(included) < 2:
            return hmms[j]
        for hit in included[max_hits:]:
            hit.included = False
        msa = top.to_msa(alphabet, trim=True, digitize=True, all_consensus_cols=True)
        if len(msa.sequences) < 2:  # included hits whose domains all missed the domain E-value
            return hmms[j]
        msa.name = hmms[j].name
        # a builder and background of its own: its calibration then draws the same random
        # sequences whatever the thread or order (and threads sharing a background would race)
        builder = pyhmmer.plan7.Builder(alphabet, seed=42)
        hmm, _, _ = builder.build_msa(msa, pyhmmer.plan7.Background(alphabet))
        hmm.creation_time = None
        hmm.command_line = None
        return hmm

    if not any(seqs):
        return list(hmms)
    block = ProfileBlock.from_hmms(hmms, evalue, z)
    try:
        return block.each_search(seqs, rebuild)
    finally:  # its profiles and pipelines (grown by the longest hits): handed back now
        del block
        release_free_memory()


def pack_hmms(hmms: Sequence[pyhmmer.plan7.HMM]) -> torch.Tensor:
    """(bytes,) uint8: the HMMs as one zlib-compressed HMMER3 binary stream."""
    buf = io.BytesIO()
    for hmm in hmms:
        hmm.write(buf, binary=True)
    packed = zlib.compress(buf.getvalue(), 6)
    return torch.frombuffer(bytearray(packed), dtype=torch.uint8).clone()


def unpack_hmms(packed: torch.Tensor) -> list[pyhmmer.plan7.HMM]:
    """The HMMs :func:`pack_hmms` packed."""
    import pyhmmer

    raw = zlib.decompress(packed.cpu().numpy().tobytes())
    alphabet = pyhmmer.easel.Alphabet.amino()
    with pyhmmer.plan7.HMMFile(io.BytesIO(raw), alphabet=alphabet) as fh:
        hmms = list(fh)
    return hmms


class ProfileBlock(nn.Module):
    """``count`` profile HMMs (a packed stream of ``size`` bytes) and how a sequence's hits
    become its profile vector (see the module docstring): sequences → (B, count). One call at
    a time: its search pipelines are reused from call to call."""

    def __init__(self, count: int, size: int, evalue: float, z: int):
        super().__init__()
        if count < 1 or size < 1 or evalue <= 0 or z < 1:
            raise ValueError("a profile block needs ≥ 1 profile, an E-value > 0 and z ≥ 1")
        self.count = count
        self.evalue = evalue
        self.z = z
        self.register_buffer("packed", torch.zeros(size, dtype=torch.uint8))
        self._profiles: list[Any] | None = None  # optimised profiles, unpacked on first use
        self._pipelines: list[Any] = []  # one search pipeline per thread, made on first use

    @classmethod
    def from_hmms(cls, hmms: Sequence[pyhmmer.plan7.HMM], evalue: float, z: int) -> ProfileBlock:
        """A block holding ``hmms``."""
        packed = pack_hmms(hmms)
        block = cls(len(hmms), len(packed), evalue, z)
        block.buffer.copy_(packed)
        return block

    @property
    def buffer(self) -> torch.Tensor:
        """(size,) uint8: the packed HMMs (:func:`pack_hmms`)."""
        packed: torch.Tensor = self.packed  # type: ignore[assignment]
        return packed

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._profiles = None

    def _optimised(self) -> list[Any]:
        if self._profiles is None:
            import pyhmmer

            alphabet = pyhmmer.easel.Alphabet.amino()
            background = pyhmmer.plan7.Background(alphabet)
            profiles = []
            for hmm in unpack_hmms(self.buffer):
                profile = pyhmmer.plan7.Profile(hmm.M, alphabet)
                profile.configure(hmm, background, L=_CONFIGURE_LENGTH)
                profiles.append(profile.to_optimized())
            if len(profiles) != self.count:
                raise ValueError(f"the model holds {len(profiles)} profiles, not {self.count}")
            self._profiles = profiles
        return self._profiles

    def release_pipelines(self) -> None:
        """Drop the search pipelines, whose dynamic-programming matrices stay at the size of the
        longest hits they met (about 1 GB each at a million proteins), and hand their memory
        back; the next search makes new ones."""
        self._pipelines.clear()
        release_free_memory()

    def each_search(self, seqs: Sequence[str], visit: Callable[[int, Any], T]) -> list[T]:
        """``visit(j, top)`` for every profile j, ``top`` its ``TopHits`` among
        ``seqs`` (named by their index; E-values against ``z`` sequences, reported and included
        at E ≤ ``evalue``), the profiles split over ``torch.get_num_threads()`` threads
        (``visit`` is called from them) → the results, in profile order. ``seqs`` must hold a
        sequence that is not empty."""
        import pyhmmer

        alphabet = pyhmmer.easel.Alphabet.amino()
        digital = [
            pyhmmer.easel.TextSequence(name=str(i).encode(), sequence=s).digitize(alphabet)
            for i, s in enumerate(seqs)
            if s
        ]
        if not digital:
            raise ValueError("no sequence to search")
        block = pyhmmer.easel.DigitalSequenceBlock(alphabet, digital)
        profiles = self._optimised()
        threads = max(1, min(torch.get_num_threads(), self.count))
        while len(self._pipelines) < threads:
            # kept and reused, cleared between profiles: a process searching batch after
            # batch grew by ~0.3 GB per 1,000 proteins with a new pipeline per call (and
            # with ``hmmsearch``), and stays flat with these (pyhmmer 0.12)
            self._pipelines.append(
                pyhmmer.plan7.Pipeline(
                    alphabet, Z=self.z, E=self.evalue, incE=self.evalue, incdomE=self.evalue
                )
            )

        def search(part: tuple[int, np.ndarray]) -> list[T]:
            thread, chosen = part
            pipeline = self._pipelines[thread]
            out = []
            for j in chosen.tolist():
                out.append(visit(j, pipeline.search_hmm(profiles[j], block)))
                pipeline.clear()
            return out

        parts = enumerate(np.array_split(np.arange(self.count), threads))
        with ThreadPoolExecutor(threads) as pool:  # pyhmmer releases the GIL searching
            return [result for part in pool.map(search, parts) for result in part]

    def hits(self, seqs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (sequence, profile) hit at E ≤ ``evalue``: (H,) int64 sequence rows, (H,) int64
        profile columns and (H,) float32 bit scores, sorted by row then column."""

        def found(j: int, top: Any) -> list[tuple[int, int, float]]:
            return [(int(hit.name), j, float(hit.score)) for hit in top]

        if not any(seqs):
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        table = sorted(hit for part in self.each_search(seqs, found) for hit in part)
        arr = np.array(table, dtype=np.float64).reshape(-1, 3)
        return (arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64),
                arr[:, 2].astype(np.float32))  # fmt: skip

    @torch.no_grad()
    def forward(self, seqs: Sequence[str]) -> torch.Tensor:
        """(B, count) float32: √(bit score) of each profile each sequence hits at E ≤
        ``evalue`` (0 elsewhere; :meth:`hits`)."""
        out = np.zeros((len(seqs), self.count), dtype=np.float32)
        rows, cols, bits = self.hits(seqs)
        out[rows, cols] = np.sqrt(np.maximum(bits, 0.0))
        return torch.from_numpy(out)


def decode_tokens(tokens: torch.Tensor, letters: str) -> list[str]:
    """(B, L) token ids (``phyloclr.models.alphabet``) → the B sequences as text (padding
    dropped; masked and unknown residues as X)."""
    from phyloclr.models.alphabet import N_SPECIAL, PAD

    table = np.full(max(256, N_SPECIAL + len(letters)), ord("X"), dtype=np.uint8)
    table[N_SPECIAL : N_SPECIAL + len(letters)] = np.frombuffer(letters.encode(), np.uint8)
    ids = tokens.cpu().numpy()
    lengths = (ids != PAD).sum(1)
    text = table[ids]
    return [text[i, : lengths[i]].tobytes().decode() for i in range(len(ids))]


def attach_profiles(encoder: nn.Module, hmms: Sequence[pyhmmer.plan7.HMM], z: int) -> None:
    """Give ``encoder`` (a k-mer spectrum encoder without one) a profile block of ``hmms``,
    E-values against ``z`` sequences; its saved architecture records it (``spec.profile_*``),
    so a loaded model appends the same block."""
    from dataclasses import replace

    if not hasattr(encoder, "profiles"):
        raise ValueError(f"a {type(encoder).__name__} encoder keeps no profile block")
    if encoder.profiles is not None or getattr(encoder, "memory", None) is not None:
        raise ValueError("attach the profile block before any neighbour memory, and once")
    if not hmms:
        raise ValueError("no profile HMMs to attach")
    spec = encoder.spec
    block = ProfileBlock.from_hmms(hmms, spec.profile_evalue, z)
    encoder.spec = replace(spec, profile_count=block.count, profile_bytes=len(block.buffer),
                           profile_z=z)  # fmt: skip
    encoder.profiles = block.to(next(encoder.buffers()).device)
