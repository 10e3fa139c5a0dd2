"""Screen changes to the shipped profile block on a ``probe_profiles`` work dir (issue 18).

    python -m benchmarks.probe_profile_variants --set DEVSETS/go-function --run RUN --work DIR \
        [--variants form links pairs iterate memory prefilter] [--threads 2] [--out rows.jsonl]

DIR is ``benchmarks.probe_profiles``'s work dir for RUN on SET (its ``profiles.h3m``, its
``hits.npz``, searched at E ≥ 0.1 as by default, and ``corpus_embeddings.npy``; run that
first). Every row is the
shipped setting, the profile vector at E ≤ 0.1 beside the raw embedding at cosine weight 0.2 and
smoothed by the second-order memory (bank rows over their 20 nearest, queries over their 10
nearest), with one change, scored as ``benchmarks.homology_split`` scores (mAP, over the pairs
MMseqs2 links and the others, the oracle):

- ``form``: a hit's value is 1, log(1 + bits) or bits instead of √bits; or √bits × idf^a of the
  profile (idf = log((N + 1) / (proteins hitting it + 1)), a = 0.5, 1).
- ``links``: profiles linked by the proteins that hit both (a fusion or multi-domain protein
  ties two families: the "Rosetta stone"); a vector v becomes v + β v C with C the cosine of the
  profiles' binary hit columns over the corpus (zero diagonal), β = 1, 2, 4, and v + vC + vC².
- ``pairs``: profiles of the two-member families added (the shipped block takes ≥ 3).
- ``iterate``: one jackhmmer-like round: each profile rebuilt from its best 100 corpus hits at
  E ≤ 10⁻³ (``TraceAligner``, trimmed), the corpus searched again. (Since session 42
  ``pretrain`` does such a round itself, from the search's domain alignments: the "shipped
  block" here is session 40's, without it.)
- ``memory``: the bank's and the queries' neighbour counts, and the bank smoothed 2 or 3 times.
- ``prefilter``: only the hits whose family's centroid (mean unit raw embedding of its members)
  is among the protein's K nearest centroids count (K = 25, 100): what a search that scans only
  those profiles would keep (it would be K / profiles of the work).

New HMMs and hits are kept in DIR (``pairs.h3m``, ``iterated.h3m``, ``hits_*.npz``), as is
the MMseqs2 link matrix (``linked.npy``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_protein import DevSet, mmseqs_all_vs_all
from benchmarks.homology_split import split_rows
from benchmarks.probe_memory import _unit
from benchmarks.probe_profiles import (
    build_profiles,
    hit_matrix,
    run_families,
    search_profiles,
    with_memory,
)

EVALUE, WEIGHT = 0.1, 0.2  # the shipped block's settings


def cohit_links(dense: np.ndarray) -> np.ndarray:
    """(P, P) float32: the cosine of the profiles' binary hit columns of ``dense`` (N, P), zero
    on the diagonal (a profile no protein hits links to nothing)."""
    hit = (dense > 0).astype(np.float32)
    co = hit.T @ hit
    norm = np.sqrt(np.diag(co)) + 1e-12
    links = co / norm[:, None] / norm[None, :]
    np.fill_diagonal(links, 0.0)
    return links.astype(np.float32)


def iterate_profiles(
    hmm_path: Path, hits: dict[str, np.ndarray], seqs: list[str], out: Path,
    evalue: float = 1e-3, cap: int = 100,
) -> int:  # fmt: skip
    """Write to ``out`` each profile of ``hmm_path`` rebuilt from its best ``cap`` hits among
    ``seqs`` at E ≤ ``evalue`` (aligned to it, trimmed); a profile with fewer than 2 such hits
    is kept as it is. The number rebuilt."""
    import pyhmmer

    alphabet = pyhmmer.easel.Alphabet.amino()
    builder = pyhmmer.plan7.Builder(alphabet, seed=42)
    background = pyhmmer.plan7.Background(alphabet)
    aligner = pyhmmer.plan7.TraceAligner()
    with pyhmmer.plan7.HMMFile(hmm_path) as fh:
        hmms = list(fh)
    rebuilt = 0
    with out.with_suffix(".part").open("wb") as fh:
        for j, hmm in enumerate(hmms):
            found = np.flatnonzero((hits["col"] == j) & (hits["evalue"] <= evalue))
            found = found[np.argsort(-hits["bits"][found], kind="stable")][:cap]
            if len(found) >= 2:
                block = pyhmmer.easel.DigitalSequenceBlock(alphabet, [
                    pyhmmer.easel.TextSequence(name=str(i).encode(), sequence=seqs[i]).digitize(
                        alphabet
                    )
                    for i in hits["row"][found].tolist()
                ])  # fmt: skip
                traces = aligner.compute_traces(hmm, block)
                msa = aligner.align_traces(hmm, block, traces, digitize=True, trim=True,
                                           all_consensus_cols=True)  # fmt: skip
                msa.name = hmm.name
                hmm, _, _ = builder.build_msa(msa, background)
                rebuilt += 1
            hmm.write(fh, binary=True)
    out.with_suffix(".part").replace(out)
    return rebuilt


def centroid_ranks(
    raw: np.ndarray, members: list[np.ndarray], rows: np.ndarray, cols: np.ndarray,
    block: int = 2000,
) -> np.ndarray:  # fmt: skip
    """(H,) int: for each hit (corpus row ``rows[h]``, profile ``cols[h]``), the rank (0 =
    nearest) of the profile's family centroid among all centroids by cosine to the row's unit
    raw embedding; ``members[p]`` holds the corpus rows of profile p's family."""
    unit = _unit(raw).astype(np.float32)
    cent = _unit(np.stack([unit[m].mean(0) for m in members])).astype(np.float32)
    ranks = np.empty(len(rows), dtype=np.int64)
    for start in range(0, len(unit), block):
        order = np.argsort(-(unit[start : start + block] @ cent.T), axis=1, kind="stable")
        pos = np.empty_like(order)
        np.put_along_axis(pos, order, np.arange(len(cent))[None, :], axis=1)
        sel = (rows >= start) & (rows < start + block)
        ranks[sel] = pos[rows[sel] - start, cols[sel]]
    return ranks


def _searched(work: Path, name: str, hmm: Path, seqs: list[str], threads: int) -> dict:
    path = work / f"hits_{name}.npz"
    if not path.exists():
        np.savez(path, **search_profiles(hmm, seqs, 1.0, threads))
    return dict(np.load(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", type=Path, required=True)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--variants", nargs="+", default=["form", "links", "pairs", "iterate",
                                                      "memory", "prefilter"])  # fmt: skip
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    ds = DevSet(args.set)
    rows, seqs = ds.corpus_rows(), ds.corpus
    n = len(seqs)
    linked_path = args.work / "linked.npy"
    if not linked_path.exists():
        np.save(linked_path, np.isfinite(mmseqs_all_vs_all(ds, args.threads)))
    linked = np.load(linked_path)
    raw = _unit(np.load(args.work / "corpus_embeddings.npy")).astype(np.float32)
    hits = dict(np.load(args.work / "hits.npz"))
    if "searched_at" in hits and float(hits["searched_at"]) < EVALUE:
        at = float(hits["searched_at"])
        raise SystemExit(
            f"{args.work}/hits.npz: searched at E ≤ {at:g}, below the block's {EVALUE:g} "
            "(run probe_profiles with --evalue 0.1)"
        )
    base = hit_matrix(hits, n, EVALUE)

    def add(name: str, prof: np.ndarray, kb: int = 20, kq: int = 10, times: int = 1,
            **extra: object) -> None:  # fmt: skip
        emb = np.hstack([raw * np.sqrt(1 - WEIGHT), _unit(prof) * np.sqrt(WEIGHT)])
        v = with_memory(emb, rows, kb, kq, times)
        row = {"row": name, **extra, **split_rows(v @ v.T, ds.labels, linked),
               "set": ds.name, "run": str(args.run)}  # fmt: skip
        print(json.dumps(row), flush=True)
        if args.out:
            with args.out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")

    hit_any = (base > 0).any(1)
    add("the shipped block", base, coverage=round(float(hit_any[rows].mean()), 4),
        hits_per_protein=round(float((base > 0).sum(1)[hit_any].mean()), 3))  # fmt: skip
    if "form" in args.variants:
        add("value 1", hit_matrix(hits, n, EVALUE, value=lambda b: (b > 0).astype(np.float32)))
        add("value log(1 + bits)", hit_matrix(hits, n, EVALUE, value=np.log1p))
        add("value bits", hit_matrix(hits, n, EVALUE, value=lambda b: b))
        df = (base > 0).sum(0)
        for a in (0.5, 1.0):
            add(f"√bits × idf^{a:g}", base * (np.log((n + 1) / (df + 1)) ** a)[None, :])
    if "links" in args.variants:
        links = cohit_links(base)
        for beta in (1.0, 2.0, 4.0):
            add(f"co-hit links, β = {beta:g}", base + beta * (base @ links))
        once = base @ links
        add("co-hit links, v + vC + vC²", base + once + once @ links)
    families = (
        run_families(args.set, args.run) if {"pairs", "prefilter"} & set(args.variants) else []
    )
    if "pairs" in args.variants:
        pairs_hmm = args.work / "pairs.h3m"
        pairs = [m for m in families if len(m) == 2]
        if not pairs_hmm.exists():
            build_profiles(pairs, pairs_hmm, 50, args.threads)
        more = hit_matrix(_searched(args.work, "pairs", pairs_hmm, seqs, args.threads), n, EVALUE)
        add(
            "with two-member families' profiles", np.hstack([base, more]), profiles_added=len(pairs)
        )
    if "iterate" in args.variants:
        hmm = args.work / "iterated.h3m"
        t0 = time.perf_counter()
        if not hmm.exists():
            iterate_profiles(args.work / "profiles.h3m", hits, seqs, hmm)
        again = hit_matrix(_searched(args.work, "iterated", hmm, seqs, args.threads), n, EVALUE)
        add(
            "one jackhmmer-like round",
            again,
            seconds=round(time.perf_counter() - t0),
            hits_per_protein=round(float((again > 0).sum(1)[(again > 0).any(1)].mean()), 3),
        )
    if "memory" in args.variants:
        for kb, kq in [(10, 10), (40, 10), (20, 5), (20, 20), (40, 20)]:
            add(f"memory: bank {kb}, queries {kq}", base, kb, kq)
        for times in (2, 3):
            add(f"memory: the bank smoothed {times} times", base, times=times)
    if "prefilter" in args.variants:
        index = {s: i for i, s in enumerate(seqs)}
        members = [np.array([index[s] for s in m]) for m in families if len(m) >= 3]
        if len(members) != base.shape[1]:
            raise SystemExit(f"{args.work}: {base.shape[1]} profiles, {len(members)} families")
        keep = hits["evalue"] <= EVALUE
        sub = {key: hits[key][keep] for key in ("row", "col", "bits", "evalue")}
        ranks = centroid_ranks(raw, members, sub["row"], sub["col"])
        for k in (25, 100):
            near = ranks < k
            kept = hit_matrix({**{key: v[near] for key, v in sub.items()},
                               "profiles": hits["profiles"]}, n, EVALUE)  # fmt: skip
            add(
                f"prefilter: the {k} nearest centroids",
                kept,
                hits_kept=round(float(near.mean()), 4),
            )


if __name__ == "__main__":
    main()
