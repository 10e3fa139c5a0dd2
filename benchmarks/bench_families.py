"""De novo family building at corpus scale (issue 6): quality and scaling.

Quality — the eggNOG alignments pooled and unlabelled (../shared/data/protein/trimal_eggnog,
69 orthologous groups): how well de novo families recover the groups (adjusted Rand index,
precision and recall of same-family pairs), for the prefilter path on the whole pool and, side
by side on a subset (at most ``--per-group`` members of each group), the prefilter path and
pyhmmer phmmer all-against-all with the same edge rule and components (the slow reference):

    python benchmarks/bench_families.py quality --out families.jsonl [--per-group 30]

Scaling — ``phyloclr families``' library call (family building, MSAs and distances) on nested
random samples of a FASTA corpus (see make_corpus.py), each in a fresh process whose whole
process tree's memory is sampled (peak summed PSS, peak largest RSS):

    python benchmarks/bench_families.py scale --fasta corpus.fasta --sizes 20000,50000 \\
        --out families.jsonl [--workers 2]

(each row also holds ``stage_starts_s``: the seconds at which each progress stage began).
``--cache`` measures what ``phyloclr families`` does: the build writes its cache entry (in a
temporary directory; the time and memory include it), and a second process then reads it back
(``cache_load_s``, ``cache_load_peak_pss_mib``), as a later run on the same corpus does.

Engines on a protein development set (benchmarks/protein_devsets.py): the de novo families of
its corpus by each engine (the prefilter, MMseqs2), scored against the set's labels: the share
of same-label pairs that land in one family (recall) and of same-family pairs with one label
(precision), and the mAP of a ranking that puts a protein's own family first (ordered by
Murphy-10 4-mer tf-idf cosine) and the rest after it, by the same cosine. That last figure is
the ceiling of a model that learns its families exactly:

    python benchmarks/bench_families.py devset --set DEVSETS/go-function --out families.jsonl

The giant-family split (``families.max_family_size``) on the eggNOG groups pooled as one:

    python benchmarks/bench_families.py split --out families.jsonl [--per-group 40]

``--method`` (scale) and ``--methods`` (quality, devset) choose the engines: prefilter, mmseqs
(all against all), mmseqs-cluster (cascaded), mmseqs-linclust (linear), phmmer (quality only).
``--set FIELD=VALUE`` (quality, scale; repeatable) sets a ``FamiliesConfig`` field, for example
``--set denovo_mmseqs_sensitivity=7.5 --set denovo_mmseqs_rejoin=4 --set align_refine=false``;
the rows then carry those settings and are told apart by them.
Each result is one JSON line appended to ``--out``; a row already there is skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.cluster import contingency_matrix

from phyloclr.families.build import MMSEQS_METHODS, mmseqs_settings, search_settings
from phyloclr.families.config import FamiliesConfig
from phyloclr.families.corpus import Assignment, de_novo, de_novo_mmseqs, de_novo_prefilter
from phyloclr.io.fasta import read_aligned_fasta, read_fasta
from phyloclr.io.sequences import SeqRecord

EGGNOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "protein" / "trimal_eggnog"


def machine() -> str:
    return f"{psutil.cpu_count()}-core {platform.machine()}, {platform.python_version()}"


def pair_scores(truth: list[int], pred: list[int]) -> dict[str, float]:
    """ARI and precision / recall of same-family pairs."""
    c = contingency_matrix(truth, pred, sparse=True).astype(np.int64)
    both = int((c.data * (c.data - 1) // 2).sum())
    rows = np.asarray(c.sum(axis=1)).ravel()
    cols = np.asarray(c.sum(axis=0)).ravel()
    same_true = int((rows * (rows - 1) // 2).sum())
    same_pred = int((cols * (cols - 1) // 2).sum())
    return {
        "ari": float(adjusted_rand_score(truth, pred)),
        "pair_precision": both / same_pred if same_pred else 1.0,
        "pair_recall": both / same_true if same_true else 1.0,
    }


def parse_settings(pairs: list[str]) -> dict[str, object]:
    """``FIELD=VALUE`` strings → FamiliesConfig overrides (VALUE read as YAML: 7.5, false)."""
    import yaml

    out: dict[str, object] = {}
    for pair in pairs:
        field, _, value = pair.partition("=")
        loaded = yaml.safe_load(value)
        if isinstance(loaded, str):  # YAML reads 1e-5 as text: a number if it is one
            with contextlib.suppress(ValueError):
                loaded = float(loaded)
        out[field] = loaded
    FamiliesConfig(**out)  # type: ignore[arg-type]  # a bad field or value fails here
    return out


def labels_of(assignment: Assignment, n: int) -> list[int]:
    lab = [-1] * n
    for k, members in enumerate(assignment.groups.values()):
        for rec in members:
            lab[int(rec.id)] = k
    return lab


def run_engine(
    method: str, records: list[SeqRecord], cfg: FamiliesConfig, workers: int
) -> Assignment:
    """Families of ``records`` (proteins) by one engine, as ``phyloclr families`` builds them."""
    if method == "prefilter":
        return de_novo_prefilter(records, search_settings(cfg), workers=workers)
    if method in MMSEQS_METHODS:
        settings = mmseqs_settings(replace(cfg, denovo_method=method))  # type: ignore[arg-type]
        return de_novo_mmseqs(records, "protein", settings, threads=workers)
    return de_novo(records, "protein", evalue=cfg.denovo_evalue,
                   min_coverage=cfg.denovo_min_coverage, threads=workers)  # fmt: skip


def quality(
    out: Path, per_group: int, workers: int, methods: list[str], settings: dict[str, object]
) -> None:
    pooled: list[tuple[str, int]] = []
    subset: list[tuple[str, int]] = []
    for g, f in enumerate(sorted(EGGNOG.glob("*.fasta"))):
        recs = read_aligned_fasta(f)
        pooled += [(r.seq, g) for r in recs]
        subset += [(r.seq, g) for r in recs[:per_group]]
    cfg = FamiliesConfig(**settings)  # type: ignore[arg-type]
    done = _done(out, "set")
    for name, data, allowed in (
        ("eggnog pooled", pooled, ("prefilter", *MMSEQS_METHODS)),
        (f"eggnog ≤{per_group} per group", subset, ("prefilter", *MMSEQS_METHODS, "phmmer")),
    ):
        records = [SeqRecord(str(i), s) for i, (s, _) in enumerate(data)]
        truth = [g for _, g in data]
        for method in methods:
            if (name, method, _tag(settings)) in done or method not in allowed:
                continue
            t0 = time.perf_counter()
            a = run_engine(method, records, cfg, workers)
            wall = time.perf_counter() - t0
            row = {"kind": "quality", "set": name, "method": method, "sequences": len(records),
                   "groups": len(set(truth)), "families": len(a.groups), "wall_s": round(wall, 1),
                   **pair_scores(truth, labels_of(a, len(records))), "workers": workers,
                   "settings": settings, "machine": machine()}  # fmt: skip
            _append(out, row)


def split(out: Path, per_group: int) -> None:
    """The giant-family split (families/split.py) on the eggNOG groups pooled as one family
    (at most ``per_group`` members each), parts of at most ``per_group``: the share of parts
    holding one group (purity), and of same-group pairs kept in one part (recall)."""
    from phyloclr.families.split import split_members

    seqs, truth = [], []
    for g, f in enumerate(sorted(EGGNOG.glob("*.fasta"))):
        recs = read_aligned_fasta(f)[:per_group]
        seqs += [r.seq for r in recs]
        truth += [g] * len(recs)
    t0 = time.perf_counter()
    parts = split_members(seqs, per_group)
    wall = time.perf_counter() - t0
    labels = np.empty(len(seqs), dtype=np.int64)
    for k, rows in enumerate(parts):
        labels[rows] = k
    row = {"kind": "split", "sequences": len(seqs), "groups": len(set(truth)),
           "max_size": per_group, "parts": len(parts),
           "pure_parts": round(float(np.mean([len({truth[i] for i in p}) == 1 for p in parts])), 4),
           **pair_scores(truth, labels.tolist()), "wall_s": round(wall, 1),
           "machine": machine()}  # fmt: skip
    _append(out, row)


def _tag(settings: dict[str, object]) -> str:
    return json.dumps(settings, sort_keys=True)


def _done(out: Path, key: str) -> set:
    if not out.exists():
        return set()
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    if key == "set":
        return {(r["set"], r["method"], _tag(r.get("settings", {}))) for r in rows
                if r["kind"] == "quality"}  # fmt: skip
    if key == "devset":
        return {(r["set"], r["method"]) for r in rows if r["kind"] == "devset"}
    return {(r["source"], r["sequences"], r.get("method", "prefilter"),
             _tag(r.get("settings", {})), r.get("cache", False))
            for r in rows if r["kind"] == "scale"}  # fmt: skip


def _append(out: Path, row: dict) -> None:
    with out.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


class MemoryWatch:
    """Peak summed PSS and peak single-process RSS of a process and its descendants; each
    sample is also filed under ``stage`` (set by the caller) in ``stages`` (first and last
    second, peaks in MiB) and, with ``log``, written as a line (seconds, stage, PSS MiB)."""

    def __init__(self, pid: int, every: float = 1.0, log: Path | None = None):
        self.proc = psutil.Process(pid)
        self.every = every
        self.peak_pss = 0
        self.peak_rss = 0
        self.stage = ""
        self.stages: dict[str, dict[str, float]] = {}
        self._log = log
        self._t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            pss, rss = 0, 0
            for p in procs:
                try:
                    info = p.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                pss += info.pss
                rss = max(rss, info.rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_rss = max(self.peak_rss, rss)
            self._file(pss >> 20, rss >> 20)
            self._stop.wait(self.every)

    def _file(self, pss: int, rss: int) -> None:
        now, stage = round(time.perf_counter() - self._t0, 1), self.stage
        s = self.stages.setdefault(stage, {"first_s": now, "peak_pss_mib": 0, "peak_rss_mib": 0})
        s["last_s"] = now
        s["peak_pss_mib"] = max(s["peak_pss_mib"], pss)
        s["peak_rss_mib"] = max(s["peak_rss_mib"], rss)
        if self._log is not None:
            with self._log.open("a") as fh:
                fh.write(f"{now}\t{stage}\t{pss}\n")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def child(
    fasta: str, workers: int, method: str, settings: dict[str, object], cache: str = ""
) -> None:
    """Run in a fresh process: build families of ``fasta`` and print stage times as JSON;
    with ``cache`` (a directory), through the family cache there."""
    from phyloclr.families.build import build_families

    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    def progress(stage: str, done: int, total: int | None) -> None:
        if stage not in marks:  # each stage's start, live on stderr for a long run
            marks[stage] = time.perf_counter() - t0
            print(f"{marks[stage]:.1f} s: {stage}", file=sys.stderr, flush=True)

    cfg = FamiliesConfig(**{**settings, "workers": workers,  # type: ignore[arg-type]
                            "denovo_method": method})  # fmt: skip
    fset = build_families([fasta], cfg, use_cache=bool(cache), cache_dir=cache or None,
                          progress=progress)  # fmt: skip
    wall = time.perf_counter() - t0
    sizes = np.array([f.size for f in fset])
    print(json.dumps({
        "wall_s": round(wall, 1),
        "homology_s": round(marks.get("distances", float("nan")), 1),
        "stage_starts_s": {k: round(v, 1) for k, v in marks.items()},
        "families": len(sizes), "non_singleton": int((sizes > 1).sum()),
        "largest": int(sizes.max()), "in_families_of_2plus": int(sizes[sizes > 1].sum()),
    }))  # fmt: skip


def load_child(
    fasta: str, workers: int, method: str, settings: dict[str, object], cache: str
) -> None:
    """Run in a fresh process: read the families that :func:`child` cached (what a later
    ``phyloclr pretrain`` or ``families`` of the same corpus does) and print the time."""
    from phyloclr.families.build import build_families

    cfg = FamiliesConfig(**{**settings, "workers": workers,  # type: ignore[arg-type]
                            "denovo_method": method})  # fmt: skip
    t0 = time.perf_counter()
    fset = build_families([fasta], cfg, cache_dir=cache)
    if not fset.from_cache:
        raise SystemExit("the cache entry was not read back")
    print(json.dumps({"cache_load_s": round(time.perf_counter() - t0, 1)}))


def _watched(argv: list[str], what: str) -> tuple[dict, MemoryWatch]:
    """Run ``argv`` under a :class:`MemoryWatch`; its last stdout line as JSON, and the watch."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    watch = MemoryWatch(proc.pid)
    stdout, _ = proc.communicate()
    watch.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed (exit {proc.returncode})")
    return json.loads(stdout.strip().splitlines()[-1]), watch


def scale(
    fasta: Path, sizes: list[int], out: Path, workers: int, seed: int, method: str,
    settings: dict[str, object], cache: bool = False,
) -> None:  # fmt: skip
    records = read_fasta(fasta)
    order = np.random.default_rng(seed).permutation(len(records))
    done = _done(out, "source")
    for n in sizes:
        if (fasta.name, n, method, _tag(settings), cache) in done or n > len(records):
            continue
        sample = [records[i] for i in sorted(order[:n].tolist())]  # nested samples
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"sample{n}.fasta"
            path.write_text("".join(f">{r.id}\n{r.seq}\n" for r in sample))
            argv = [sys.executable, __file__, "child", str(path), str(workers), method,
                    json.dumps(settings), str(Path(tmp) / "cache") if cache else ""]  # fmt: skip
            result, watch = _watched(argv, f"sample of {n}")
            if cache:  # read back in a fresh process: its own time and peak
                argv[2] = "load"
                loaded, load_watch = _watched(argv, f"sample of {n}'s cache read")
                result.update(loaded, cache_load_peak_pss_mib=load_watch.peak_pss >> 20)
        row = {"kind": "scale", "source": fasta.name, "sequences": n,
               "residues": sum(len(r.seq) for r in sample), **result,
               "peak_pss_mib": watch.peak_pss >> 20, "peak_rss_mib": watch.peak_rss >> 20,
               "method": method, "settings": settings, "workers": workers,
               "machine": machine(), **({"cache": True} if cache else {})}  # fmt: skip
        _append(out, row)


def devset(root: Path, out: Path, workers: int, methods: list[str]) -> None:
    """Each engine's families of a development set's corpus, scored against its labels."""
    from phyloclr.evaluate import read_labels
    from phyloclr.kmers import inverse_document_frequency, log_tfidf, spectrum_counts
    from phyloclr.metrics import retrieval_scores

    label_of = read_labels(root / "labels.csv")
    corpus = read_fasta(root / "corpus.fasta")
    row_of = {r.id: i for i, r in enumerate(corpus)}
    ids = [r.id for r in read_fasta(root / "sequences.fasta")]
    at = np.array([row_of[i] for i in ids])
    idf = inverse_document_frequency(spectrum_counts([r.seq for r in corpus], 4, "murphy10"))
    x = log_tfidf(spectrum_counts([corpus[i].seq for i in at], 4, "murphy10"), idf)  # unit rows
    cos = (x @ x.T).toarray()
    labels = np.array([label_of[i] for i in ids])
    same_label = labels[:, None] == labels[None, :]
    np.fill_diagonal(same_label, False)
    done = _done(out, "devset")
    cfg = FamiliesConfig()
    records = [SeqRecord(str(i), r.seq) for i, r in enumerate(corpus)]
    for method in methods:
        if (root.name, method) in done:
            continue
        t0 = time.perf_counter()
        a = run_engine(method, records, cfg, workers)
        wall = time.perf_counter() - t0
        fam = np.array(labels_of(a, len(records)))[at]
        same = fam[:, None] == fam[None, :]
        np.fill_diagonal(same, False)
        sizes = np.array([len(m) for m in a.groups.values()])
        row = {"kind": "devset", "set": root.name, "method": method, "corpus": len(records),
               "wall_s": round(wall, 1), "families_2plus": int((sizes > 1).sum()),
               "in_families_2plus": int(sizes[sizes > 1].sum()), "largest": int(sizes.max()),
               "pair_recall": round(float((same & same_label).sum() / same_label.sum()), 4),
               "pair_precision": round(float((same & same_label).sum() / max(1, same.sum())), 4),
               "family_ceiling_map": round(retrieval_scores(same * 10.0 + cos, list(labels))[0], 4),
               "workers": workers, "machine": machine()}  # fmt: skip
        _append(out, row)


def main() -> None:
    if len(sys.argv) == 7 and sys.argv[1] in ("child", "load"):
        run = child if sys.argv[1] == "child" else load_child
        run(sys.argv[2], int(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5]), sys.argv[6])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--per-group", type=int, default=30)
    sp = sub.add_parser("split")
    sp.add_argument("--per-group", type=int, default=40)
    sp.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("scale")
    s.add_argument("--fasta", type=Path, required=True)
    s.add_argument("--sizes", default="20000,50000,100000,200000")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--method", default="prefilter", choices=("prefilter", *MMSEQS_METHODS))
    s.add_argument("--cache", action="store_true",
                   help="write the family cache and read it back, as the command does")  # fmt: skip
    d = sub.add_parser("devset")
    d.add_argument("--set", type=Path, required=True, help="a protein_devsets.py set directory")
    for p in (q, d):
        p.add_argument("--methods", default="prefilter,mmseqs",
                       help="comma-separated: prefilter, mmseqs, mmseqs-cluster, "
                       "mmseqs-linclust, phmmer (quality)")  # fmt: skip
    for p in (q, s, d):
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--workers", type=int, default=2)
    for p in (q, s):
        p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="a FamiliesConfig field (repeatable)")  # fmt: skip
    args = ap.parse_args()
    settings = parse_settings(args.set) if args.cmd in ("quality", "scale") else {}
    if args.cmd == "quality":
        quality(args.out, args.per_group, args.workers, args.methods.split(","), settings)
    elif args.cmd == "split":
        split(args.out, args.per_group)
    elif args.cmd == "devset":
        devset(args.set, args.out, args.workers, args.methods.split(","))
    else:
        scale(args.fasta, [int(x) for x in args.sizes.split(",")], args.out, args.workers,
              args.seed, args.method, settings, args.cache)  # fmt: skip


if __name__ == "__main__":
    main()
