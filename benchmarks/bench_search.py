"""`phyloclr search` on the protein development sets (issue 23): recall, realignment, speed.

    python -m benchmarks.bench_search --sets DEVSETS [--model NAME=MODEL ...] [--mmseqs] \\
        [--top 50] [--depth 0 200 ...] [--prefilter embedding words both] [--out rows.jsonl]

Each set's labelled proteins are embedded (``phyloclr.embed.embed_fasta``, the database) and
searched all against all with ``phyloclr.search.search`` (top ``--top`` + 1, the query itself
dropped), then realigned (``--realign``: Smith-Waterman bit scores). With ``--depth D`` the
``D`` nearest proteins are realigned (``SearchConfig.realign_depth``) and the top hits are the
``--top`` best of them by bit score; one row per depth. With ``--prefilter words`` or ``both``
the proteins realigned are chosen by ``SearchConfig.prefilter`` instead (the queries as FASTA,
so ``search`` also times their embedding and the word index). Per set, model, prefilter and
depth:
- ``group_found``: share of queries whose top hits (after realignment) hold a protein of their
  own group;
- ``member_recall``: share of same-group pairs among the top hits;
- ``map_cosine``: mAP of the full cosine ranking (the harness row);
- ``map_realign``: mAP when each query's top hits are ranked by bit score and every other
  protein ranks last (as the MMseqs2 row ranks pairs without a hit);
- with ``--mmseqs``: MMseqs2 ``easy-search -s 7.5`` all-vs-all mAP and the share of its
  same-group hit pairs that the embedding's top hits keep (the prefilter's sensitivity);
- wall times of embedding, search and realignment (and of MMseqs2, same threads).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_protein import DEFAULT_SETS, DevSet, hits_matrix, mmseqs_all_vs_all, score
from phyloclr.embed import EmbedConfig, default_model_path, embed_fasta
from phyloclr.metrics import retrieval_scores
from phyloclr.search import SearchConfig, SearchResult, realign, search


def evaluate_set(
    ds: DevSet, name: str, model: Path, top: int, threads: int, mmseqs: np.ndarray | None,
    depths: list[int], prefilters: tuple[str, ...] = ("embedding",), hubness: int = 0,
) -> list[dict[str, object]]:  # fmt: skip
    """One row per prefilter and realignment depth (the proteins aligned per query); with
    ``hubness`` the embedding's hits are ranked as ``search --hubness`` ranks them."""
    fasta = ds.root / "sequences.fasta"
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "db.h5"
        t0 = time.perf_counter()
        embed_fasta(fasta, db, model, EmbedConfig(threads=threads))
        t_embed = time.perf_counter() - t0
        cfg = SearchConfig(top=max([top, *depths]) + 1, threads=threads, hubness=hubness)
        t0 = time.perf_counter()
        nearest = search(db, db, config=cfg)
        t_search = time.perf_counter() - t0
        rows = []
        for prefilter in prefilters:
            if prefilter == "embedding":
                continue
            for depth in depths:
                d = max(top, depth) + 1
                cfg = SearchConfig(top=d, realign=True, realign_depth=d, threads=threads,
                                   prefilter=prefilter)  # type: ignore[arg-type]  # fmt: skip
                t0 = time.perf_counter()
                result = search(fasta, db, config=cfg, db_fasta=fasta)
                row = _score(ds, name, result, top, mmseqs)
                row.update(prefilter=prefilter, depth=d - 1,
                           search_realign_s=round(time.perf_counter() - t0, 2))  # fmt: skip
                rows.append(row)
    if "embedding" not in prefilters:
        return rows
    for depth in depths:
        d = max(top, depth) + 1
        result = dataclasses.replace(nearest, index=nearest.index[:, :d].copy(),
                                     scores=nearest.scores[:, :d].copy())  # fmt: skip
        t0 = time.perf_counter()
        realign(result, ds.seqs, fasta, threads)
        t_realign = time.perf_counter() - t0
        row = _score(ds, name, result, top, mmseqs, cfg)
        row.update(prefilter="embedding", depth=max(top, depth), embed_s=round(t_embed, 2),
                   search_s=round(t_search, 2), realign_s=round(t_realign, 2))  # fmt: skip
        rows.append(row)
    return rows


def _score(
    ds: DevSet, name: str, result: SearchResult, top: int, mmseqs: np.ndarray | None,
    cfg: SearchConfig | None = None,
) -> dict[str, object]:  # fmt: skip
    """Recall of the realigned top hits, realigned and cosine mAP (with ``cfg.hubness``, also
    of the full ranking by the hubness-adjusted score), MMseqs2's pairs kept."""
    where = {x: i for i, x in enumerate(ds.ids)}
    labels = np.array(ds.labels)
    found, members, pairs, hits = [], 0, 0, []
    group_size = {lab: int((labels == lab).sum()) for lab in set(ds.labels)}
    assert result.bits is not None
    for qi, qid in enumerate(result.query_ids):
        row = [int(t) for t in result.index[qi] if t >= 0 and int(t) != where[qid]][:top]
        same = sum(labels[t] == labels[qi] for t in row)
        others = group_size[labels[qi]] - 1
        if others:
            found.append(same > 0)
            members += same
            pairs += others
        for j, t in enumerate(result.index[qi]):
            if t >= 0 and int(t) != qi:
                hits.append((str(qi), str(int(t)), float(result.bits[qi, j])))
    realigned = hits_matrix([str(i) for i in range(len(ds.ids))], hits)
    emb_sim = None
    row: dict[str, object] = {
        "set": ds.name, "model": name, "n": len(ds.ids), "top": top,
        "group_found": round(float(np.mean(found)), 4),
        "member_recall": round(members / max(pairs, 1), 4),
        "map_realign": round(retrieval_scores(realigned, ds.labels)[0], 4),
        "method": result.method,
    }  # fmt: skip
    if result.db_embeddings is not None:
        x = result.db_embeddings / np.linalg.norm(result.db_embeddings, axis=1, keepdims=True)
        emb_sim = x @ x.T
        row["map_cosine"] = score(emb_sim, ds.labels)["map"]
        if cfg is not None and cfg.hubness:
            assert result.density is not None  # the search's own densities
            adjusted = emb_sim - cfg.hubness_weight * result.density[None, :]
            row.update(hubness=cfg.hubness, hubness_weight=cfg.hubness_weight,
                       map_hubness=score(adjusted, ds.labels)["map"])  # fmt: skip
    if mmseqs is not None:
        row["map_mmseqs"] = round(retrieval_scores(mmseqs, ds.labels)[0], 4)
        same = labels[:, None] == labels[None, :]
        np.fill_diagonal(same, False)
        found_by_mmseqs = np.isfinite(mmseqs) & same
        kept = found_by_mmseqs & np.isfinite(realigned)
        row["mmseqs_pairs_kept"] = round(float(kept.sum() / max(found_by_mmseqs.sum(), 1)), 4)
    return row


def emit(row: dict[str, object], out: Path | None) -> None:
    """Add the machine to ``row``, print it and append it to ``out`` (JSON lines)."""
    row["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    print(json.dumps(row), flush=True)
    if out:
        with open(out, "a") as fh:
            fh.write(json.dumps(row) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=Path, default=DEFAULT_SETS)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--model", action="append", default=[], help="NAME=MODEL (repeatable)")
    ap.add_argument("--top", type=int, default=50)
    ap.add_argument(
        "--depth",
        type=int,
        nargs="+",
        default=[0],
        help="realign this many nearest proteins, keep the top by bits (0: --top)",
    )
    ap.add_argument("--prefilter", nargs="+", default=["embedding"],
                    choices=["embedding", "words", "both"])  # fmt: skip
    ap.add_argument("--mmseqs", action="store_true", help="add MMseqs2 all-vs-all (slow)")
    ap.add_argument("--hubness", type=int, default=0,
                    help="rank the embedding's hits as search --hubness K does")  # fmt: skip
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    models = [m.split("=", 1) for m in args.model] or [["default", str(default_model_path())]]
    for root in sorted(p for p in args.sets.iterdir() if (p / "labels.csv").exists()):
        if args.only and root.name not in args.only:
            continue
        ds = DevSet(root)
        t0 = time.perf_counter()
        mm = mmseqs_all_vs_all(ds, args.threads) if args.mmseqs else None
        mm_s = time.perf_counter() - t0
        for name, path in models:
            for row in evaluate_set(
                ds,
                name,
                Path(path),
                args.top,
                args.threads,
                mm,
                args.depth,
                tuple(args.prefilter),
                args.hubness,
            ):
                if mm is not None:
                    row["mmseqs_s"] = round(mm_s, 1)
                row["threads"] = args.threads
                emit(row, args.out)


if __name__ == "__main__":
    main()
