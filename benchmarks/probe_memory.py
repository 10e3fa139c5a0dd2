"""Screen the neighbour memory's settings on a transductive development set (issue 18).

    python -m benchmarks.probe_memory --set DEVSETS/go-function --run RUN [--out rows.jsonl]
    python -m benchmarks.probe_memory --set DEVSETS/go-function --run RUN --second-order

RUN is a model pretrained on the set's corpus (``phyloclr pretrain SET/corpus.fasta``; any
memory it holds is left out). The corpus is embedded once; each labelled protein's embedding q
becomes q + Σ w_j b_j over its k nearest corpus embeddings b_j but its own (w_j = max(cos, 0)^α,
α = 0: equal weights), unit-normed, and is scored by same-label retrieval as
``benchmarks/bench_protein.py`` scores rows. Variants: k ∈ {2, 3, 5, 10, 20} × α ∈ {0, 1, 3};
with the shipped default's layout (map 512 | sketch 4,096 | CNN 128), k × α = 1 smoothing only
the map's columns, or only the map's and the sketch's.

``--second-order`` screens the second-order memory instead (session 38): every corpus
embedding is first smoothed over its kb nearest other corpus embeddings (α = 1), and the raw
labelled embeddings are smoothed over their kq nearest rows of that smoothed bank but their own:
kb ∈ {5, 10, 20, 40, 80} at kq = 10, kq ∈ {5, 20} at kb = 10, the bank smoothed twice
(kb = 10, 10), the first-order smoothed query smoothed again over the kb = 10 bank, and at
kb = 20 the own row's weight (1 elsewhere) 0 or 3 in the bank, 0.5 or 2 for the query.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_protein import DevSet, embed_model, score

KS = (2, 3, 5, 10, 20)
ALPHAS = (0.0, 1.0, 3.0)
#: the shipped default's column blocks: the map, then the sketch, then the CNN
MAP, MAP_AND_SKETCH = slice(0, 512), slice(0, 4608)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def smoothed(corpus: np.ndarray, rows: np.ndarray, k: int, alpha: float,
             cols: slice = slice(None)) -> np.ndarray:  # fmt: skip
    """The labelled ``rows`` of ``corpus`` (N, D) smoothed over their k nearest other rows
    (neighbours found and columns smoothed within ``cols``; other columns kept)."""
    block = _unit(corpus[:, cols])
    sims = block[rows] @ block.T
    sims[np.arange(len(rows)), rows] = -np.inf  # its own row
    nb = np.argpartition(-sims, k, axis=1)[:, :k]
    w = np.clip(np.take_along_axis(sims, nb, axis=1), 0.0, None)
    w = w**alpha if alpha else np.ones_like(w)
    out = _unit(corpus[rows]).copy()
    scale = np.linalg.norm(out[:, cols], axis=1, keepdims=True)
    mixed = block[rows] + (w[:, :, None] * block[nb]).sum(1)
    out[:, cols] = _unit(mixed) * scale
    return out


def smoothed_bank(corpus: np.ndarray, kb: int, own: float = 1.0, block: int = 2048) -> np.ndarray:
    """Every row of ``corpus`` (N, D) smoothed over its ``kb`` nearest other rows (α = 1), its
    own row weighted ``own``."""
    unit = _unit(corpus).astype(np.float32)
    out = np.empty_like(unit)
    for start in range(0, len(unit), block):  # bounded: (block, N) similarities at a time
        rows = np.arange(start, min(start + block, len(unit)))
        out[rows] = over_bank(unit[rows], rows, unit, kb, own)
    return out


def over_bank(queries: np.ndarray, rows: np.ndarray, bank: np.ndarray, k: int,
              own: float = 1.0) -> np.ndarray:  # fmt: skip
    """``queries`` (n, D), the corpus rows ``rows`` (n,), weighted ``own`` and smoothed over
    their k nearest rows of ``bank`` (N, D) but their own."""
    q = _unit(queries)
    sims = q @ bank.T
    sims[np.arange(len(rows)), rows] = -np.inf
    nb = np.argpartition(-sims, k, axis=1)[:, :k]
    w = np.clip(np.take_along_axis(sims, nb, axis=1), 0.0, None)
    return _unit(own * q + (w[:, :, None] * bank[nb]).sum(1))


def second_order(emb: np.ndarray, rows: np.ndarray, labels: list[str]) -> list[dict]:
    """The ``--second-order`` variants' scores (see the module docstring)."""
    raw = _unit(emb).astype(np.float32)
    out = []

    def add(name: str, v: np.ndarray) -> None:
        out.append({"variant": name, **score(v @ v.T, labels)})

    first = over_bank(raw[rows], rows, raw, 10)
    add("first order kq=10", first)
    banks = {kb: smoothed_bank(raw, kb) for kb in (5, 10, 20, 40, 80)}
    for kb, bank in banks.items():
        add(f"second order kb={kb} kq=10", over_bank(raw[rows], rows, bank, 10))
    for kq in (5, 20):
        add(f"second order kb=10 kq={kq}", over_bank(raw[rows], rows, banks[10], kq))
    add("bank smoothed twice kb=10,10 kq=10",
        over_bank(raw[rows], rows, smoothed_bank(banks[10], 10), 10))  # fmt: skip
    add("first-order query over the kb=10 bank, kq=10", over_bank(first, rows, banks[10], 10))
    for own in (0.0, 3.0):
        bank = smoothed_bank(raw, 20, own)
        add(f"kb=20, bank rows' own weight {own:g}", over_bank(raw[rows], rows, bank, 10))
    for own in (0.5, 2.0):
        add(f"kb=20, the query's own weight {own:g}",
            over_bank(raw[rows], rows, banks[20], 10, own))  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", type=Path, required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--second-order", action="store_true", help="screen the second order")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = DevSet(args.set)
    rows = ds.corpus_rows()
    emb = embed_model(args.run, ds.corpus, args.threads, memory=False)  # the raw embeddings
    results = [{"variant": "none", **score(_unit(emb[rows]) @ _unit(emb[rows]).T, ds.labels)}]
    if args.second_order:
        results += second_order(emb, rows, ds.labels)
    for k in KS if not args.second_order else ():
        for alpha in ALPHAS:
            v = smoothed(emb, rows, k, alpha)
            results.append({"variant": f"k={k} alpha={alpha:g}", **score(v @ v.T, ds.labels)})
        if emb.shape[1] == 4736:
            for name, cols in (("map", MAP), ("map+sketch", MAP_AND_SKETCH)):
                v = smoothed(emb, rows, k, 1.0, cols)
                results.append(
                    {"variant": f"k={k} alpha=1 {name} only", **score(v @ v.T, ds.labels)}
                )
    for r in results:
        r.update(set=ds.name, run=str(args.run))
        print(json.dumps(r))
        if args.out:
            with args.out.open("a") as fh:
                fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
