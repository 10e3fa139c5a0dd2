"""Where retrieval is lost: same-label pairs that alignment links, and those it cannot (issue 18).

    python -m benchmarks.homology_split --set DEVSETS/go-function --model default=RUN \
        [--model other=RUN2] [--no-memory-too] [--kmer] [--threads 2] [--out rows.jsonl]

A labelled pair is *linked* when MMseqs2 ``easy-search -s 7.5 -e 10 --max-seqs 1000`` of the
set's labelled proteins against themselves finds a hit between them (either direction), as in
``bench_protein``'s MMseqs2 row. Same-label pairs split into linked and unlinked ones, and each
row (MMseqs2's bit score, every model's cosine, with ``--kmer`` the strongest k-mer row) gets:

- ``map``: its mAP over all same-label pairs, as ``bench_protein`` scores it;
- ``map_linked``: mAP when only the linked same-label proteins are sought (the unlinked ones
  are left out of the ranking): how well the row orders what alignment finds;
- ``map_unlinked``: mAP when only the unlinked ones are sought (the linked ones left out):
  what the row finds that no alignment links;
- ``map_oracle``: mAP when the linked same-label proteins are put first (an oracle of
  alignment and labels) and the rest keep the row's order: what perfect homology adds to it.

The set's ``linked share`` (of same-label pairs), its groups' unlinked shares, and the
*homology ceiling*, the mAP of a ranking that puts the linked same-label proteins first and
everything else in a random order, come first. Models are embedded as ``phyloclr embed`` does
(with their memory).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.bench_protein import (
    SPACED,
    DevSet,
    centred_words,
    cosine,
    embed_model,
    mmseqs_all_vs_all,
    score,
)
from phyloclr.metrics import average_precision


def same_label(labels: list[str]) -> np.ndarray:
    """(N, N) bool: the pairs of different items with one label."""
    lab = np.asarray(labels)
    same = lab[:, None] == lab[None, :]
    np.fill_diagonal(same, False)
    return same


def split_ap(sim: np.ndarray, sought: np.ndarray, left_out: np.ndarray) -> float:
    """mAP of ``sim`` (N, N) when each row seeks ``sought`` (N, N bool) and ``left_out``
    (N, N bool) items are removed from its ranking (the row's own item always is); rows with
    nothing sought are skipped; ties ranked pessimistically, as ``bench_protein`` does."""
    aps = []
    for i in range(len(sim)):
        keep = ~left_out[i]
        keep[i] = False
        if sought[i, keep].any():
            aps.append(average_precision(sim[i, keep], sought[i, keep]))
    return float(np.mean(aps))


def split_rows(sim: np.ndarray, labels: list[str], linked: np.ndarray) -> dict[str, float]:
    """The four mAPs of the module docstring for one row's similarities ``sim`` (N, N)."""
    same = same_label(labels)
    none = np.zeros_like(same)
    finite = np.where(np.isfinite(sim), sim, np.min(sim[np.isfinite(sim)]) - 1.0)
    span = float(finite.max() - finite.min()) + 1.0
    return {
        "map": score(sim, labels)["map"],
        "map_linked": round(split_ap(sim, same & linked, same & ~linked), 4),
        "map_unlinked": round(split_ap(sim, same & ~linked, same & linked), 4),
        "map_oracle": round(split_ap(finite + span * (same & linked), same, none), 4),
    }


def set_summary(labels: list[str], linked: np.ndarray, seed: int = 0) -> dict[str, object]:
    """The linked share of same-label pairs, the groups by their unlinked share, and the
    homology ceiling (linked same-label proteins first, the rest in a seeded random order)."""
    lab = np.asarray(labels)
    same = same_label(labels)
    groups = {}
    for g in np.unique(lab):
        rows = lab == g
        pairs = same[rows].sum()
        if pairs:
            groups[str(g)] = float((same[rows] & ~linked[rows]).sum() / pairs)
    share = np.array(list(groups.values()))
    noise = np.random.default_rng(seed).random(same.shape)
    ceiling = split_ap(noise + 2.0 * (same & linked), same, np.zeros_like(same))
    return {
        "linked_share": round(float((same & linked).sum() / same.sum()), 4),
        "groups": len(groups),
        "groups_unlinked_below_0.1": int((share < 0.1).sum()),
        "groups_unlinked_0.1_to_0.5": int(((share >= 0.1) & (share < 0.5)).sum()),
        "groups_unlinked_at_least_0.5": int((share >= 0.5).sum()),
        "homology_ceiling": round(ceiling, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", type=Path, required=True)
    ap.add_argument("--model", action="append", default=[], help="NAME=MODEL (repeatable)")
    ap.add_argument("--kmer", action="store_true", help="add the strongest k-mer row")
    ap.add_argument("--no-memory-too", action="store_true",
                    help="each model also without its memory (embed --no-memory)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    ds = DevSet(args.set)
    bits = mmseqs_all_vs_all(ds, args.threads)
    linked = np.isfinite(bits)
    results: list[dict[str, object]] = [{"row": "set", **set_summary(ds.labels, linked)}]
    rows: list[tuple[str, np.ndarray]] = [("mmseqs2-s7.5", bits)]
    if args.kmer:
        rows.append(("kmer " + "+".join(SPACED[-1]), centred_words(ds, "murphy10", SPACED[-1])[0]))
    for spec in args.model:
        name, _, path = spec.partition("=")
        rows.append((name, cosine(embed_model(path or name, ds.seqs, args.threads))))
        if args.no_memory_too:
            emb = embed_model(path or name, ds.seqs, args.threads, memory=False)
            rows.append((f"{name} (no memory)", cosine(emb)))
    for name, sim in rows:
        results.append({"row": name, **split_rows(sim, ds.labels, linked)})
    for r in results:
        r["set"] = ds.name
        print(json.dumps(r), flush=True)
        if args.out:
            with args.out.open("a") as fh:
                fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
