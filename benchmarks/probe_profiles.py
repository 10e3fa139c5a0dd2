"""Screen a profile block: HMMs of the corpus's own de novo families appended to the embedding.

    python -m benchmarks.probe_profiles --set DEVSETS/go-function --run RUN --work DIR \
        [--evalue 0.001 0.1 1] [--weight 0.1 0.2 0.3] [--threads 2] [--out rows.jsonl]

RUN is a model pretrained on the set's corpus without a profile block of its own (``phyloclr
pretrain SET/corpus.fasta`` with ``model.profiles: false``, or a run of sessions ≤ 39). Its
families (``build_families`` with the run's saved config: the family cache, so no rebuild)
with at least ``--min-members`` members are aligned by FAMSA (pyfamsa; at most
``--max-members`` members, a seeded sample) and made profile HMMs (pyhmmer's ``Builder``).
Every corpus protein is searched by every profile (``hmmsearch``); its profile vector holds
√(bit score) of each profile it hits at E ≤ the variant's ``--evalue``, unit-normed. The
embedding becomes the unit raw embedding and the profile vector side by side at cosine weight
``w`` (√(1 − w) and √w), and is then smoothed as the default's second-order memory smooths
(bank rows over their 20 nearest, queries over their 10 nearest smoothed rows, own rows left
out; ``benchmarks.probe_memory``). Rows are scored as ``benchmarks.homology_split`` scores them
(mAP, over the pairs MMseqs2 links and over the others, and the oracle). The HMMs, the hits
and the corpus's raw embeddings are kept in ``--work`` (with the build and search times) and
reused by a later call (hits are searched again when a larger ``--evalue`` asks for more); a
new run, set or family setting needs a new ``--work``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_protein import DevSet, embed_model, mmseqs_all_vs_all
from benchmarks.homology_split import split_rows
from benchmarks.probe_memory import _unit, over_bank, smoothed_bank
from phyloclr.families import build_families
from phyloclr.models.store import load_model
from phyloclr.train.config import load_pretrain_config


def build_profiles(
    families: list[list[str]], path: Path, max_members: int, threads: int, seed: int = 0
) -> float:
    """Write one profile HMM per family (its member sequences) to ``path`` (binary HMMER3);
    the seconds it took."""
    import pyfamsa
    import pyhmmer

    alphabet = pyhmmer.easel.Alphabet.amino()
    builder = pyhmmer.plan7.Builder(alphabet)
    background = pyhmmer.plan7.Background(alphabet)
    aligner = pyfamsa.Aligner(guide_tree="upgma", threads=threads)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    with path.with_suffix(".part").open("wb") as fh:
        for i, members in enumerate(families):
            if len(members) > max_members:
                members = [
                    members[j]
                    for j in np.sort(rng.choice(len(members), max_members, replace=False))
                ]
            msa = aligner.align(
                pyfamsa.Sequence(str(j).encode(), s.encode()) for j, s in enumerate(members)
            )
            rows = [
                pyhmmer.easel.TextSequence(name=r.id, sequence=r.sequence.decode()) for r in msa
            ]
            text = pyhmmer.easel.TextMSA(name=f"p{i}".encode(), sequences=rows)
            hmm, _, _ = builder.build_msa(text.digitize(alphabet), background)
            hmm.write(fh, binary=True)
    path.with_suffix(".part").replace(path)
    return time.perf_counter() - t0


def search_profiles(
    hmm_path: Path, seqs: list[str], evalue: float, threads: int
) -> dict[str, np.ndarray]:
    """Every hit at E ≤ ``evalue`` of the profiles in ``hmm_path`` among ``seqs``: row
    (sequence), col (profile), bits, evalue, each (H,); the number of profiles, the E-value
    searched at and the seconds it took."""
    import pyhmmer

    alphabet = pyhmmer.easel.Alphabet.amino()
    with pyhmmer.plan7.HMMFile(hmm_path) as fh:
        hmms = list(fh)
    block = pyhmmer.easel.DigitalSequenceBlock(
        alphabet,
        [
            pyhmmer.easel.TextSequence(name=str(i).encode(), sequence=s).digitize(alphabet)
            for i, s in enumerate(seqs)
        ],
    )
    t0 = time.perf_counter()
    row, col, bits, ev = [], [], [], []
    for j, top in enumerate(pyhmmer.hmmer.hmmsearch(hmms, block, cpus=threads, E=evalue)):
        for hit in top:
            row.append(int(hit.name))
            col.append(j)
            bits.append(hit.score)
            ev.append(hit.evalue)
    return {
        "row": np.asarray(row, dtype=np.int64),
        "col": np.asarray(col, dtype=np.int64),
        "bits": np.asarray(bits, dtype=np.float32),
        "evalue": np.asarray(ev, dtype=np.float64),
        "profiles": np.asarray(len(hmms)),
        "searched_at": np.asarray(evalue),
        "seconds": np.asarray(time.perf_counter() - t0),
    }


def hit_matrix(
    hits: dict[str, np.ndarray], n: int, evalue: float,
    value: Callable[[np.ndarray], np.ndarray] = np.sqrt,
) -> np.ndarray:  # fmt: skip
    """(n, profiles) float32, not normed: ``value(bits)`` of each profile's best hit at E ≤
    ``evalue`` (bits below 0 read as 0)."""
    keep = hits["evalue"] <= evalue
    dense = np.zeros((n, int(hits["profiles"])), dtype=np.float32)
    values = value(np.maximum(hits["bits"][keep], 0.0)).astype(np.float32)
    np.maximum.at(dense, (hits["row"][keep], hits["col"][keep]), values)
    return dense


def profile_vectors(hits: dict[str, np.ndarray], n: int, evalue: float) -> np.ndarray:
    """(n, profiles) unit vectors: √(best bit score) of each profile hit at E ≤ ``evalue``."""
    return _unit(hit_matrix(hits, n, evalue))


def run_families(set_dir: Path, run: Path, min_members: int = 1) -> list[list[str]]:
    """The member sequences of the de novo families of ``set_dir``'s corpus under ``run``'s
    saved config (the family cache, so no rebuild) with at least ``min_members`` members."""
    cfg = load_pretrain_config(run / "config.json")
    fset = build_families([set_dir / "corpus.fasta"], cfg.families)
    return [[r.seq for r in f.records] for f in fset.families if f.size >= min_members]


def with_memory(
    emb: np.ndarray, rows: np.ndarray, kb: int = 20, kq: int = 10, times: int = 1
) -> np.ndarray:
    """The corpus ``rows`` of ``emb`` (N, D) as the default's second-order memory smooths them:
    the bank (every row) smoothed ``times`` over its ``kb`` nearest, then each of ``rows`` over
    its ``kq`` nearest smoothed rows, own rows left out: (len(rows), D) unit."""
    bank = emb.astype(np.float32)
    for _ in range(times):
        bank = smoothed_bank(bank, kb)
    return over_bank(emb[rows], rows, bank, kq)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", type=Path, required=True)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--evalue", type=float, nargs="+", default=[1e-3, 0.1, 1.0])
    ap.add_argument("--weight", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    ap.add_argument("--min-members", type=int, default=3)
    ap.add_argument("--max-members", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if load_model(args.run).encoder.spec.profile_count:
        raise SystemExit(f"{args.run}: its model holds a profile block already (screen a run "
                         "pretrained with model.profiles: false)")  # fmt: skip
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    ds = DevSet(args.set)
    rows = ds.corpus_rows()
    seqs = ds.corpus
    results: list[dict[str, object]] = []

    hmm_path = args.work / "profiles.h3m"
    if not hmm_path.exists():
        members = run_families(args.set, args.run, args.min_members)
        seconds = build_profiles(members, hmm_path, args.max_members, args.threads)
        results.append(
            {"row": "profiles built", "profiles": len(members), "seconds": round(seconds, 1)}
        )
    hits_path = args.work / "hits.npz"
    searched_at = float(np.load(hits_path)["searched_at"]) if hits_path.exists() else -1.0
    if searched_at < max(args.evalue):
        np.savez(hits_path, **search_profiles(hmm_path, seqs, max(args.evalue), args.threads))
    hits = dict(np.load(hits_path))
    searched = {"proteins": len(seqs), "profiles": int(hits["profiles"]),
                "seconds": round(float(hits["seconds"]), 1)}  # fmt: skip
    results.append({"row": "corpus searched", **searched})
    emb_path = args.work / "corpus_embeddings.npy"
    if not emb_path.exists():
        np.save(emb_path, embed_model(str(args.run), seqs, args.threads, memory=False))
    raw = _unit(np.load(emb_path)).astype(np.float32)
    linked = np.isfinite(mmseqs_all_vs_all(ds, args.threads))

    def add(name: str, emb: np.ndarray) -> None:
        v = with_memory(emb, rows)
        results.append({"row": name, **split_rows(v @ v.T, ds.labels, linked)})
        print(json.dumps(results[-1]), flush=True)

    for r in results:
        print(json.dumps(r), flush=True)
    add("the default (second-order memory)", raw)
    for evalue in args.evalue:
        prof = profile_vectors(hits, len(seqs), evalue)
        for w in args.weight:
            emb = np.hstack([raw * np.sqrt(1 - w), prof * np.sqrt(w)]).astype(np.float32)
            add(f"profiles at E <= {evalue:g}, weight {w:g}", emb)
    for r in results:
        r.update(set=ds.name, run=str(args.run))
        if args.out:
            with args.out.open("a") as fh:
                fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
