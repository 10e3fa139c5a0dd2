"""Families from a raw, unlabelled FASTA corpus: by header pattern, by hmmscan, or de novo."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyhmmer.easel as easel
import pyhmmer.hmmer as hmmer
import pyhmmer.plan7 as plan7
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from phyloclr.errors import InputError
from phyloclr.families.align import available_threads
from phyloclr.families.config import SearchSettings
from phyloclr.families.homology import HomologyResult, homology_components
from phyloclr.families.mmseqs import MmseqsSettings, search_edges
from phyloclr.io.sequences import Alphabet, SeqRecord
from phyloclr.progress import Progress


@dataclass
class Assignment:
    """Groups of records keyed by family label, and the ids that got none."""

    groups: dict[str, list[SeqRecord]]
    unassigned: list[str] = field(default_factory=list)
    hmms: dict[str, plan7.HMM] = field(default_factory=dict)
    accessions: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)


def by_pattern(records: Sequence[SeqRecord], pattern: str) -> Assignment:
    """Family label from each header (``id description``) by a regex.

    The label is the named group ``family`` if present, else group 1, else the whole match.
    """
    rx = re.compile(pattern)
    groups: dict[str, list[SeqRecord]] = {}
    unassigned = []
    for rec in records:
        header = f"{rec.id} {rec.description}".strip()
        m = rx.search(header)
        if m is None:
            unassigned.append(rec.id)
            continue
        if "family" in rx.groupindex:
            label = m.group("family")
        elif rx.groups:
            label = m.group(1)
        else:
            label = m.group(0)
        if not label:
            unassigned.append(rec.id)
            continue
        groups.setdefault(label, []).append(rec)
    return Assignment(groups, unassigned)


def _alphabet(alphabet: Alphabet) -> easel.Alphabet:
    return easel.Alphabet.dna() if alphabet == "dna" else easel.Alphabet.amino()


def _digitize(records: Sequence[SeqRecord], alphabet: Alphabet) -> easel.DigitalSequenceBlock:
    abc = _alphabet(alphabet)
    block = easel.DigitalSequenceBlock(abc)
    for i, rec in enumerate(records):
        block.append(easel.TextSequence(name=str(i).encode(), sequence=rec.seq).digitize(abc))
    return block


def read_hmms(path: str | Path) -> list[plan7.HMM]:
    """All profiles of an HMMER3 file; an InputError naming the file if it is not one."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such HMM database")
    try:
        with plan7.HMMFile(str(p)) as hmm_file:
            hmms = list(hmm_file)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(p, f"not a readable HMMER3 profile database: {exc}") from exc
    if not hmms:
        raise InputError(p, "HMM database holds no profile")
    return hmms


def by_hmmscan(
    records: Sequence[SeqRecord],
    hmm_db: str | Path,
    alphabet: Alphabet,
    *,
    use_gathering: bool = True,
    evalue: float = 1e-5,
    regions: str = "domain",
    threads: int = 0,
    progress: Progress | None = None,
) -> Assignment:
    """Assign each sequence to its best-scoring profile (bit score) among included hits.

    Gathering thresholds (``GA``) are used when every profile has them and ``use_gathering``;
    otherwise hits need E ≤ ``evalue``. With ``regions='domain'`` the member is the envelope
    spanning the hit's included domains, named ``id/start-end`` as in Pfam.
    """
    hmms = read_hmms(hmm_db)
    hmm_alphabet = hmms[0].alphabet
    if (hmm_alphabet.is_nucleotide()) != (alphabet == "dna"):
        raise InputError(
            hmm_db, f"HMM alphabet does not match the {alphabet} sequences being searched"
        )
    gathering = use_gathering and all(h.cutoffs.gathering_available() for h in hmms)
    block = _digitize(records, alphabet)
    by_name = {_name(h): h for h in hmms}
    groups: dict[str, list[SeqRecord]] = {}
    unassigned = []
    total = len(records)
    for done, hits in enumerate(
        hmmer.hmmscan(
            block,
            hmms,
            cpus=available_threads(threads),
            bit_cutoffs="gathering" if gathering else None,
            E=evalue,
        ),
        start=1,
    ):
        rec = records[int(_text(hits.query.name))]
        best = max(hits.included, key=lambda h: h.score, default=None)
        if best is None:
            unassigned.append(rec.id)
        else:
            label = _text(best.name)
            member = rec
            if regions == "domain":
                domains = list(best.domains.included) or [best.best_domain]
                start = min(d.env_from for d in domains)
                end = max(d.env_to for d in domains)
                member = SeqRecord(
                    f"{rec.id}/{start}-{end}", rec.seq[start - 1 : end], rec.description
                )
            groups.setdefault(label, []).append(member)
        if progress is not None and (done % 200 == 0 or done == total):
            progress("hmmscan", done, total)
    result = Assignment(groups, unassigned)
    for label in groups:
        hmm = by_name[label]
        result.hmms[label] = hmm
        if hmm.accession:
            result.accessions[label] = _text(hmm.accession)
        if hmm.description:
            result.descriptions[label] = _text(hmm.description)
    return result


def de_novo(
    records: Sequence[SeqRecord],
    alphabet: Alphabet,
    *,
    evalue: float = 1e-5,
    min_coverage: float = 0.5,
    threads: int = 0,
    progress: Progress | None = None,
) -> Assignment:
    """Homology graph by pyhmmer phmmer (all against all), families = connected components.

    An edge joins two sequences when a hit has E ≤ ``evalue`` and its best domain covers at
    least ``min_coverage`` of both sequences. Singletons are kept as families of one.
    Families are labelled ``denovo_00001``... by decreasing size.
    """
    n = len(records)
    block = _digitize(records, alphabet)
    lengths = np.array([len(r.seq) for r in records])
    rows: list[int] = []
    cols: list[int] = []
    if alphabet == "dna":
        search = hmmer.nhmmer(block, block, cpus=available_threads(threads), E=evalue)
    else:
        search = hmmer.phmmer(block, block, cpus=available_threads(threads), E=evalue)
    for done, hits in enumerate(search, start=1):
        q = int(_text(hits.query.name))
        for hit in hits.included:
            t = int(_text(hit.name))
            if t == q or hit.evalue > evalue:
                continue
            dom = hit.best_domain
            aln = dom.alignment
            q_cov = (abs(aln.hmm_to - aln.hmm_from) + 1) / lengths[q]
            t_cov = (abs(aln.target_to - aln.target_from) + 1) / lengths[t]
            if q_cov >= min_coverage and t_cov >= min_coverage:
                rows.append(q)
                cols.append(t)
        if progress is not None and (done % 100 == 0 or done == n):
            progress("homology search", done, n)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return _components(records, labels)


def de_novo_prefilter(
    records: Sequence[SeqRecord],
    settings: SearchSettings,
    *,
    store_dir: Path | None = None,
    workers: int = 0,
    progress: Progress | None = None,
) -> Assignment:
    """Protein families by :func:`phyloclr.families.homology.homology_components` (k-mer
    prefilter, SIMD Smith-Waterman, connected components, process shards, edge store under
    ``store_dir``). Labelled ``denovo_00001``... by decreasing size, as :func:`de_novo`."""
    return _components(
        records, prefilter_search(records, settings, store_dir, workers, progress).labels
    )


def prefilter_search(
    records: Sequence[SeqRecord],
    settings: SearchSettings,
    store_dir: Path | None,
    workers: int = 0,
    progress: Progress | None = None,
    part: tuple[int, int] | None = None,
) -> HomologyResult:
    """The prefilter's homology search over ``records`` (or one ``part`` of its queries)."""
    processes = available_threads(workers)
    return homology_components(
        [r.seq for r in records],
        settings=settings,
        store_dir=store_dir,
        workers=processes,
        shard_size=max(50, min(1000, len(records) // (4 * processes))),
        progress=progress,
        part=part,
    )


def de_novo_mmseqs(
    records: Sequence[SeqRecord],
    alphabet: Alphabet,
    settings: MmseqsSettings,
    *,
    work_root: Path | None = None,
    threads: int = 0,
    progress: Progress | None = None,
) -> Assignment:
    """Families by MMseqs2 all-against-all search (:mod:`phyloclr.families.mmseqs`), connected
    components of its edges, labelled as :func:`de_novo`. The work directory lives under
    ``work_root`` (a temporary one without) until the search is done, so a rerun resumes it."""
    seqs = [r.seq for r in records]
    if work_root is None:
        with tempfile.TemporaryDirectory(prefix="phyloclr-mmseqs-") as tmp:
            q, t = search_edges(seqs, alphabet, settings, Path(tmp), available_threads(threads),
                                progress)  # fmt: skip
    else:
        work = work_root / f"mmseqs-{settings.key(seqs)}"
        q, t = search_edges(seqs, alphabet, settings, work, available_threads(threads), progress)
        shutil.rmtree(work, ignore_errors=True)
    n = len(records)
    graph = coo_matrix((np.ones(len(q)), (q, t)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return _components(records, labels)


def _components(records: Sequence[SeqRecord], labels: np.ndarray) -> Assignment:
    """Groups from component labels, ``denovo_00001``... by decreasing size (ties: first
    member first)."""
    members: dict[int, list[int]] = {}
    for i, lab in enumerate(labels.tolist()):
        members.setdefault(int(lab), []).append(i)
    ordered = sorted(members.values(), key=lambda m: (-len(m), m[0]))
    width = max(5, len(str(len(ordered))))
    groups = {
        f"denovo_{k + 1:0{width}d}": [records[i] for i in idx] for k, idx in enumerate(ordered)
    }
    return Assignment(groups, [])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _name(hmm: plan7.HMM) -> str:
    return _text(hmm.name)
