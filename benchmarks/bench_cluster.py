"""Clustering benchmark on every labelled dataset in ../shared/data/dna (and ``--data`` folders).

Rows per dataset: 6-mer frequencies + k-means (3 seeds, scikit-learn, n_init=10); phyloclr
cluster with its defaults (k-mer input, 3 runs × 6 heads, each head's partition also refined by
k-means, k-mer k-means partitions in the pool, the 3 best ranked by ``select``, voted and refined
by k-means: method ``default``) for 3 seeds, and from the same runs the vote before refinement
(``vote``), the same pipeline ranking the raw heads only (``rawrank``), the vote of the 3 best
raw heads by silhouette (``silvote``) and the single-run result (best raw head of run 1,
``single``); ``--set FIELD=VALUE --tag=-name`` runs other settings under other method names.
``--save`` keeps every candidate partition for ``cluster_selection.py``;
optionally the FCGR input (``--fcgr``); with ``--choose-k`` only phyloclr with K not given
(``autok``; the K it chose and every K's stability are recorded). Each result is appended as
one JSON line to ``--out`` (an interrupted benchmark resumes where it stopped); ``summarise.py
cluster`` makes the table.

    python benchmarks/bench_cluster.py --out cluster.jsonl [--datasets a,b] [--threads 1]
        [--device cpu|cuda|auto]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from phyloclr.cluster import Candidate, ClusterConfig, assign, cluster_sequences, read_dna
from phyloclr.evaluate import hungarian_accuracy
from phyloclr.io.sequences import SeqRecord
from phyloclr.metrics import kmer_composition

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dna"


def scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {"acc": hungarian_accuracy(y, pred), "nmi": float(normalized_mutual_info_score(y, pred)),
            "ari": float(adjusted_rand_score(y, pred))}  # fmt: skip


def datasets(names: list[str] | None, roots: list[Path] | None = None) -> list[Path]:
    """Labelled dataset folders under ``roots`` (default: ../shared/data/dna), small first,
    those whose name contains one of ``names`` when given."""
    found = sorted(d for r in roots or [DATA] for d in r.iterdir() if (d / "labels.csv").exists())
    found.sort(key=lambda d: sum(f.stat().st_size for f in d.iterdir()))  # small first
    return [d for d in found if names is None or any(n in d.name for n in names)]


def dataset_fasta(folder: Path) -> Path:
    """The sequences of a labelled dataset folder (its .fas or .fasta file)."""
    return next(p for p in folder.iterdir() if p.suffix in (".fas", ".fasta"))


def kmeans_6mer(records: list[SeqRecord], k: int, seed: int) -> np.ndarray:
    """The baseline: 6-mer frequencies + scikit-learn k-means (n_init = 10) → (N,) labels."""
    x = kmer_composition([r.seq.upper() for r in records], 6, "ACGT")
    return KMeans(k, n_init=10, random_state=seed).fit_predict(x)


def _save(path: Path, y: np.ndarray, candidates: list[Candidate]) -> None:
    """Every candidate partition and its scores, for looking at selection rules."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, y=y, cut=np.array([c.cut for c in candidates]),
        silhouette=np.array([c.silhouette for c in candidates]),
        separation=np.array([c.separation for c in candidates]),
        run=np.array([c.run for c in candidates]), k=np.array([c.n_clusters for c in candidates]),
        source=np.array([c.source for c in candidates]),
        refined=np.array([c.refined for c in candidates]),
        labels=np.stack([c.labels for c in candidates]),
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--datasets", default=None)
    ap.add_argument("--data", type=Path, action="append", default=None,
                    help="folder of labelled dataset folders (repeatable; default "
                    "../shared/data/dna), e.g. benchmarks/dna_devsets.py's output")  # fmt: skip
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first..first+seeds-1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--fcgr", action="store_true", help="also the FCGR input (slow on CPU)")
    ap.add_argument("--fcgr-only", action="store_true")
    ap.add_argument("--fcgr-channels", type=int, default=ClusterConfig.fcgr_channels,
                    help="FCGR CNN width (CGRclust: 128); rows at another width or batch "
                    "are named phyloclr-fcgr-c<width>b<batch>-*")  # fmt: skip
    ap.add_argument("--fcgr-batch", type=int, default=ClusterConfig.batch_size)
    ap.add_argument("--save", type=Path, default=None, help="folder for every candidate partition")
    ap.add_argument("--choose-k", action="store_true", help="only phyloclr with K not given")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a ClusterConfig field for the phyloclr rows (YAML value, repeatable); "
                    "needs --tag")  # fmt: skip
    ap.add_argument("--tag", default="", help="appended to the phyloclr rows' input name")
    args = ap.parse_args()
    import yaml

    overrides = {f: yaml.safe_load(v) for f, v in (x.split("=", 1) for x in args.set)}
    if overrides and not args.tag:
        ap.error("--set needs --tag (rows of other settings must not share a method name)")
    if isinstance(overrides.get("relative_window"), list):
        overrides["relative_window"] = tuple(overrides["relative_window"])
    done = set()
    if args.out.exists():
        done = {(r["dataset"], r["method"], r["seed"]) for r in map(json.loads, args.out.open())}
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {args.threads} thread(s), device {args.device}"
    for d in datasets(args.datasets.split(",") if args.datasets else None, args.data):
        fasta = dataset_fasta(d)
        records, _ = read_dna(fasta)
        labels = dict(csv.reader((d / "labels.csv").open()))
        y = np.array([labels[r.id] for r in records])
        k = len(set(y))

        def emit(method: str, seed: int, pred: np.ndarray, seconds: float, d: Path = d,
                 y: np.ndarray = y, k: int = k, **extra: object) -> None:  # fmt: skip
            row = {"dataset": d.name, "n": len(y), "k": k, "method": method, "seed": seed,
                   **scores(y, pred), "seconds": seconds, "machine": machine, **extra}  # fmt: skip
            with args.out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)

        if args.choose_k:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                if (d.name, f"phyloclr-kmer{args.tag}-autok", seed) in done:
                    continue
                cfg = ClusterConfig(n_clusters=0, seed=seed * 100, threads=args.threads,
                                    device=args.device)  # fmt: skip
                cfg = replace(cfg, **overrides)  # --set applies here too
                t = time.perf_counter()
                res = cluster_sequences(records, cfg)
                seconds = time.perf_counter() - t
                if args.save is not None:
                    _save(args.save / f"{d.name}-autok{args.tag}-{seed}.npz", y, res.candidates)
                emit(f"phyloclr-kmer{args.tag}-autok", seed, res.clusters, seconds,
                     k_chosen=res.n_clusters, cluster_sizes=res.summary["cluster_sizes"],
                     k_scores=res.summary["k_scores"])  # fmt: skip
            continue
        if not args.fcgr_only:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                if (d.name, "kmeans-6mer", seed) in done:
                    continue
                t = time.perf_counter()
                pred = kmeans_6mer(records, k, seed)
                emit("kmeans-6mer", seed, pred, time.perf_counter() - t)
        inputs = ["fcgr"] if args.fcgr_only else ["kmer"] + (["fcgr"] if args.fcgr else [])
        for kind in inputs:
            name, width, batch = (
                kind + args.tag,
                ClusterConfig.fcgr_channels,
                ClusterConfig.batch_size,
            )
            if kind == "fcgr":
                width, batch = args.fcgr_channels, args.fcgr_batch
                if (width, batch) != (ClusterConfig.fcgr_channels, ClusterConfig.batch_size):
                    name = f"fcgr-c{width}b{batch}"
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                if (d.name, f"phyloclr-{name}-default", seed) in done:
                    continue
                cfg = ClusterConfig(n_clusters=k, input=kind, seed=seed * 100,  # type: ignore[arg-type]
                                    threads=args.threads, device=args.device,
                                    fcgr_channels=width, batch_size=batch)  # fmt: skip
                cfg = replace(cfg, **overrides)
                t = time.perf_counter()
                res = cluster_sequences(records, cfg)
                seconds = time.perf_counter() - t
                if args.save is not None:  # every candidate, for looking at selection rules
                    _save(args.save / f"{d.name}-{name}-{seed}.npz", y, res.candidates)
                first = next(c for c in res.candidates if c.run == 0 and not c.refined)
                emit(f"phyloclr-{name}-single", seed, first.labels, seconds / cfg.runs,
                     cut=first.cut, silhouette=first.silhouette)  # fmt: skip
                assert res.voted is not None and res.space is not None
                voters = res.summary["candidates"][: cfg.vote]  # type: ignore[index]
                emit(f"phyloclr-{name}-vote", seed, res.voted, seconds, voters=voters)
                # the same runs' partitions, other selection rules (labels decide the vote)
                eye = np.eye(cfg.n_clusters)
                pool = [(c, eye[c.labels]) for c in res.candidates]
                again = assign(pool, res.space, k, cfg).final
                assert np.array_equal(again, res.clusters), "the default is not reproduced"
                raw_rank = assign(pool, res.space, k, replace(cfg, rank_refined=False)).final
                emit(f"phyloclr-{name}-rawrank", seed, raw_rank, seconds)
                by_sil = replace(cfg, select="silhouette", rank_refined=False, refine=False)
                sil_vote = assign(pool, res.space, k, by_sil).final  # the vote, not refined
                emit(f"phyloclr-{name}-silvote", seed, sil_vote, seconds)
                emit(f"phyloclr-{name}-default", seed, res.clusters, seconds,
                     reverse_complemented=res.summary["reverse_complemented"])  # fmt: skip


if __name__ == "__main__":
    main()
