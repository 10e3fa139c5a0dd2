"""Fast zero-shot probes of k-mer maps: what a linear map of the tf-idf spectrum keeps on
families it never saw (issue 19).

    python -m benchmarks.probe_transfer --sets DEVSETS --variant NAME [--steps N] [--seed S]

Trains one map of the Murphy-10 4-mer log-tf-idf vector on the MMseqs2 de novo families of the
held-out-clean training corpus (``DEVSETS/train/clean.fasta``; positives are two members of
one family, InfoNCE, no projection head) and scores it every ``--every`` steps on the zero-shot
sets (go-function, orthologs), with the idf of the training corpus. The phyloclr pipeline
(views, heads, crops) is not used: this is a probe for choosing what to try in it, and every
variant runs the same loop, so their differences are the variant's. Prints JSON lines.

Variants (one change each):
- ``tfidf``: the sparse input itself (no map);
- ``random``: the untrained Gaussian projection (the encoder's initialisation);
- ``lsa``: a truncated SVD of the training corpus's tf-idf (untrained, unsupervised);
- ``infonce``: the Gaussian map trained with InfoNCE (what ``phyloclr pretrain`` does);
- ``lsa+infonce``: the same from the SVD;
- ``geom``: InfoNCE plus ``--geom`` × the squared error between the batch's embedding cosines
  and its tf-idf cosines (keep the input's geometry, add homology);
- ``lsa+geom``: the same from the SVD;
- ``geomonly``: the geometry term alone, no InfoNCE (a learned compression of the tf-idf);
- ``rank``: InfoNCE plus ``--geom`` × the KL divergence from each row's softmax of the tf-idf
  cosines to its softmax of the embedding cosines (temperature ``--kd-tau``; the neighbour
  ranking of the input rather than its raw cosines);
- ``scale``: a learned weight per k-mer (a learned idf, init 1) before the fixed Gaussian
  projection, trained with InfoNCE; also scored sparse (``*-sparse``: the reweighted tf-idf);
- ``scale+geom``: the same with the geometry term.

``--centre`` subtracts the training corpus's mean tf-idf vector from every input before the
map (and from the sparse rows the ``tfidf`` variant and the geometry term score), so cosines
measure what a protein shares with another beyond the corpus's common composition.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from benchmarks.bench_protein import DevSet, score
from phyloclr.families import build_families
from phyloclr.families.config import FamiliesConfig
from phyloclr.io.fasta import read_fasta
from phyloclr.kmers import (
    centred_cosines,
    inverse_document_frequency,
    log_tfidf,
    spectrum_counts,
)


def to_torch(x) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """scipy CSR (N, V) → torch sparse CSR float32."""
    return torch.sparse_csr_tensor(
        torch.from_numpy(x.indptr.astype(np.int64)),
        torch.from_numpy(x.indices.astype(np.int64)),
        torch.from_numpy(x.data.astype(np.float32)),
        size=x.shape,
    )


def sims(e: np.ndarray) -> np.ndarray:
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return e @ e.T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=Path, required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--alphabet", default="murphy10")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--geom", type=float, default=1.0)
    ap.add_argument("--kd-tau", type=float, default=0.05)
    ap.add_argument("--coverage", type=float, default=0.5)
    ap.add_argument("--max-families", type=int, default=0, help="train on the first N only")
    ap.add_argument(
        "--train",
        type=Path,
        default=None,
        help="training FASTA (default SETS/train/clean.fasta, families built here)",
    )
    ap.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="with --train: id<TAB>family TSV (training_corpus.py --method mmseqs)",
    )
    ap.add_argument("--eval", nargs="+", default=["go-function", "orthologs"])
    ap.add_argument("--centre", action="store_true", help="subtract the corpus mean input")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()

    train_fa = args.train or args.sets / "train" / "clean.fasta"
    records = read_fasta(train_fa)
    seqs = [r.seq for r in records]
    where = {r.id: i for i, r in enumerate(records)}
    if args.labels is not None:
        members: dict[str, list[int]] = {}
        for line in args.labels.read_text().splitlines():
            pid, fam = line.split("\t")[:2]
            members.setdefault(fam, []).append(where[pid])
        groups = [np.array(m) for m in members.values() if len(m) > 1]
    else:
        fams = build_families(
            [train_fa], FamiliesConfig(denovo_method="mmseqs", denovo_min_coverage=args.coverage)
        )
        groups = [
            np.array([where[r.id] for r in f.records]) for f in fams.families if len(f.records) > 1
        ]
    if args.max_families:
        order = rng.permutation(len(groups))[: args.max_families]
        groups = [groups[i] for i in order]
    counts = spectrum_counts(seqs, args.k, args.alphabet)
    idf = inverse_document_frequency(counts)
    x_train = log_tfidf(counts, idf).astype(np.float32).tocsr()
    mu = np.asarray(x_train.mean(0)).ravel() if args.centre else np.zeros(x_train.shape[1])
    mu_t = torch.from_numpy(mu.astype(np.float32))
    evals = {}
    for name in args.eval:
        ds = DevSet(args.sets / name)
        evals[name] = (log_tfidf(spectrum_counts(ds.seqs, args.k, args.alphabet), idf), ds.labels)
    info = {
        "variant": args.variant,
        "train": train_fa.parent.name,
        "families": len(groups),
        "proteins": int(sum(len(g) for g in groups)),
        "dim": args.dim,
        "seed": args.seed,
        "centre": args.centre,
    }

    def report(step: int, emb) -> None:  # type: ignore[no-untyped-def]
        row = dict(info, step=step, s=round(time.time() - t0, 1))
        for name, (x, labels) in evals.items():
            e = emb(x)
            if e is not None:
                sim = sims(e)
            else:
                sim = centred_cosines(x, mu) if args.centre else (x @ x.T).toarray()
            row[name] = score(sim, labels)["map"]
        print(json.dumps(row), flush=True)

    v = args.variant
    if v == "tfidf":
        report(0, lambda x: None)
        return
    vocab = x_train.shape[1]
    if v.startswith("lsa"):
        from sklearn.decomposition import TruncatedSVD

        svd = TruncatedSVD(args.dim, random_state=args.seed).fit(x_train)
        w0 = torch.from_numpy(svd.components_.T.astype(np.float32).copy())  # (V, D)
    else:
        w0 = torch.randn(vocab, args.dim) / np.sqrt(args.dim)
    scaled = v.startswith("scale")
    w = torch.nn.Parameter(w0.clone(), requires_grad=not scaled)
    s = torch.nn.Parameter(torch.zeros(vocab), requires_grad=scaled)  # log weight per k-mer

    def embed(x):  # type: ignore[no-untyped-def]
        wt = np.exp(s.detach().numpy())[None, :]
        m = w.detach().numpy()
        return x.multiply(wt).tocsr() @ m - (mu[None, :] * wt) @ m

    def input_cosines(xb):  # type: ignore[no-untyped-def]
        return centred_cosines(xb, mu) if args.centre else (xb @ xb.T).toarray()

    report(0, embed)
    if v in ("random", "lsa"):
        return
    opt = torch.optim.AdamW(
        [s] if scaled else [w], lr=args.lr, weight_decay=0.0 if scaled else 0.01
    )
    geom = args.geom if "geom" in v else 0.0
    for step in range(1, args.steps + 1):
        pick = rng.choice(len(groups), size=min(args.pairs, len(groups)), replace=False)
        pairs = np.stack([rng.choice(groups[g], 2, replace=False) for g in pick])  # (n, 2)
        a, b = pairs[:, 0], pairs[:, 1]
        rows = np.concatenate([a, b])
        xb = x_train[rows]
        weights = w * s.exp()[:, None] if scaled else w
        e = F.normalize(to_torch(xb) @ weights - mu_t[None, :] @ weights, dim=1)
        n = len(a)
        logits = e[:n] @ e[n:].T / args.tau
        target = torch.arange(n)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        if v == "geomonly":
            loss = loss * 0.0
        if v == "rank":
            ref = torch.from_numpy(input_cosines(xb).astype(np.float32))
            off = torch.eye(2 * n, dtype=torch.bool)
            t = args.kd_tau
            p_ref = F.softmax((ref / t).masked_fill(off, -1e9), dim=1)
            log_q = F.log_softmax(((e @ e.T) / t).masked_fill(off, -1e9), dim=1)
            loss = loss + args.geom * F.kl_div(log_q, p_ref, reduction="batchmean")
        elif geom:
            ref = torch.from_numpy(input_cosines(xb).astype(np.float32))
            off = ~torch.eye(2 * n, dtype=torch.bool)
            loss = loss + geom * ((e @ e.T - ref)[off] ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.every == 0:
            report(step, embed)
            if scaled:
                info["variant"] = v + "-sparse"
                wt = np.exp(s.detach().numpy())[None, :]
                report(step, lambda x, wt=wt: x.multiply(wt).tocsr().toarray() - mu[None, :] * wt)
                info["variant"] = v


if __name__ == "__main__":
    main()
