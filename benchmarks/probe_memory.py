"""Screen the neighbour memory's settings on a transductive development set (issue 18).

    python -m benchmarks.probe_memory --set DEVSETS/go-function --run RUN [--out rows.jsonl]

RUN is a model pretrained on the set's corpus (``phyloclr pretrain SET/corpus.fasta``; any
memory it holds is left out). The corpus is embedded once; each labelled protein's embedding q
becomes q + Σ w_j b_j over its k nearest corpus embeddings b_j but its own (w_j = max(cos, 0)^α,
α = 0: equal weights), unit-normed, and is scored by same-label retrieval as
``benchmarks/bench_protein.py`` scores rows. Variants: k ∈ {2, 3, 5, 10, 20} × α ∈ {0, 1, 3};
with the shipped default's layout (map 512 | sketch 4,096 | CNN 128), k × α = 1 smoothing only
the map's columns, or only the map's and the sketch's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_protein import DevSet, score
from phyloclr.embed import embed_sequences
from phyloclr.io.fasta import read_fasta
from phyloclr.models.memory import detach_memory
from phyloclr.models.store import load_model

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", type=Path, required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = DevSet(args.set)
    corpus = read_fasta(args.set / "corpus.fasta")
    where = {r.id: i for i, r in enumerate(corpus)}
    rows = np.array([where[i] for i in ds.ids])
    loaded = load_model(args.run)
    detach_memory(loaded.encoder)  # the raw embeddings
    emb, _ = embed_sequences(loaded.encoder, loaded.alphabet, [r.seq for r in corpus])
    results = [{"variant": "none", **score(_unit(emb[rows]) @ _unit(emb[rows]).T, ds.labels)}]
    for k in KS:
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
