"""Held-out-family retrieval after pretraining: phylogenetic views vs mutation views vs
baselines, under one CPU time budget per trained run.

Families (eggNOG alignments from ../shared + the Pfam seeds in data/) are split by family into
training and held-out sets; every trained row sees only the training families; all rows are
scored on the held-out families' members (at most --per-family each): mAP of same-family
retrieval and leave-one-out 1-NN accuracy, both by cosine similarity (phmmer: bit score).

Usage:
  python benchmarks/bench_pretrain.py --budget 120 --seeds 0 1 2 --out bench_out
  python benchmarks/bench_pretrain.py --rows phylo-all mutation --budget 60 --seeds 0
Writes OUT/runs.jsonl (one line per run) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path

import numpy as np
import pyhmmer
import torch

from phyloclr.config import config_to_dict
from phyloclr.embed import embed_sequences
from phyloclr.families import build_families
from phyloclr.families.model import FamilySet
from phyloclr.metrics import embedding_retrieval, kmer_composition, retrieval_scores
from phyloclr.models.alphabet import PROTEIN
from phyloclr.train import PretrainConfig, load_pretrain_config, pretrain
from phyloclr.train.loop import build_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "protein"

# name → views overrides (quantile windows: 0 = nearest homolog, 1 = farthest)
ROWS: dict[str, dict[str, object]] = {
    "phylo-near": {"mode": "phylo", "window_start": [0.0, 0.33], "window_end": [0.0, 0.33]},
    "phylo-mid": {"mode": "phylo", "window_start": [0.33, 0.67], "window_end": [0.33, 0.67]},
    "phylo-far": {"mode": "phylo", "window_start": [0.67, 1.0], "window_end": [0.67, 1.0]},
    "phylo-all": {"mode": "phylo", "window_start": [0.0, 1.0], "window_end": [0.0, 1.0]},
    "phylo-near-to-far": {
        "mode": "phylo", "window_start": [0.0, 0.33], "window_end": [0.67, 1.0],
        "schedule": "linear",
    },
    "mutation": {"mode": "mutation"},
    "phylo-all+3mer-branch": {
        "mode": "phylo", "window_start": [0.0, 1.0], "window_end": [0.0, 1.0],
    },
}  # fmt: skip
#: model overrides per row (default: the preset's model)
MODEL_ROWS: dict[str, dict[str, object]] = {"phylo-all+3mer-branch": {"kmer": 3}}


def split_families(fset: FamilySet, held_out_fraction: float) -> tuple[set[str], set[str]]:
    """Deterministic split by a hash of the family id."""
    train, held = set(), set()
    for fam in fset.families:
        h = int(hashlib.sha256(fam.id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (held if h < held_out_fraction else train).add(fam.id)
    return train, held


def held_out_set(
    fset: FamilySet, held: set[str], per_family: int
) -> tuple[list[str], list[str], list[str]]:
    ids, seqs, labels = [], [], []
    rng = np.random.default_rng(0)
    for fam in fset.families:
        if fam.id not in held or fam.size < 2:
            continue
        pick = sorted(rng.choice(fam.size, size=min(per_family, fam.size), replace=False))
        for i in pick:
            ids.append(f"{fam.id}|{fam.records[i].id}")
            seqs.append(fam.records[i].seq)
            labels.append(fam.id)
    return ids, seqs, labels


def phmmer_scores(seqs: list[str], threads: int) -> tuple[np.ndarray, float]:
    abc = pyhmmer.easel.Alphabet.amino()
    block = pyhmmer.easel.DigitalSequenceBlock(
        abc,
        [
            pyhmmer.easel.TextSequence(name=str(i).encode(), sequence=s).digitize(abc)
            for i, s in enumerate(seqs)
        ],
    )
    n = len(seqs)
    sim = np.zeros((n, n))
    t0 = time.perf_counter()
    for hits in pyhmmer.hmmer.phmmer(block, block, cpus=threads, E=10.0):
        q = int(hits.query.name)
        for hit in hits:
            sim[q, int(hit.name)] = max(sim[q, int(hit.name)], hit.score)
    return sim, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", default=str(ROOT / "configs" / "cnn-small.yaml"))
    ap.add_argument("--budget", type=float, default=120.0, help="training seconds per run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rows", nargs="+", default=list(ROWS))
    ap.add_argument("--per-family", type=int, default=30)
    ap.add_argument("--held-out", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--out", default="bench_out")
    ap.add_argument(
        "--score-model", nargs="*", default=None,
        help="only score these trained models (model.pt or run dirs) on the held-out set",
    )  # fmt: skip
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    log = (out / "runs.jsonl").open("a")

    def record(row: dict[str, object]) -> None:
        row["machine"] = f"{platform.machine()} {torch.get_num_threads()} threads"
        log.write(json.dumps(row) + "\n")
        log.flush()
        print(json.dumps(row), flush=True)

    inputs = [SHARED / "trimal_eggnog", ROOT / "data" / "protein" / "seeds"]
    fset = build_families(inputs)
    train_ids, held = split_families(fset, args.held_out)
    train_set = FamilySet(
        [f for f in fset.families if f.id in train_ids], config_json=fset.config_json
    )
    _, seqs, labels = held_out_set(fset, held, args.per_family)
    print(
        f"{len(train_set)} training families ({train_set.n_sequences} seqs); "
        f"{len(held)} held-out families, {len(seqs)} held-out sequences",
        flush=True,
    )
    (out / "split.json").write_text(
        json.dumps({"train": sorted(train_ids), "held_out": sorted(held)}, indent=1)
    )

    if args.score_model is not None:
        from phyloclr.models.store import load_model

        for path in args.score_model:
            loaded = load_model(path)
            t0 = time.perf_counter()
            emb, _ = embed_sequences(loaded.encoder, loaded.alphabet, seqs)
            m, nn1 = embedding_retrieval(emb, labels)
            record({"row": f"model {path} (step {loaded.step})", "seed": None, "map": m,
                    "nn1": nn1, "wall_s": time.perf_counter() - t0})  # fmt: skip
        return
    if not args.no_baselines:
        t0 = time.perf_counter()
        m, nn1 = embedding_retrieval(kmer_composition(seqs, 3), labels)
        record(
            {
                "row": "3-mer composition",
                "seed": None,
                "map": m,
                "nn1": nn1,
                "wall_s": time.perf_counter() - t0,
            }
        )
        sim, secs = phmmer_scores(seqs, args.threads)
        m, nn1 = retrieval_scores(sim, labels)
        record({"row": "phmmer all-vs-all", "seed": None, "map": m, "nn1": nn1, "wall_s": secs})

    base = load_pretrain_config(args.config)
    for seed in args.seeds:
        if not args.no_baselines:
            torch.manual_seed(seed)
            enc = build_model(base, PROTEIN).encoder.eval()
            t0 = time.perf_counter()
            emb, _ = embed_sequences(enc, PROTEIN, seqs)
            m, nn1 = embedding_retrieval(emb, labels)
            record(
                {
                    "row": "untrained encoder",
                    "seed": seed,
                    "map": m,
                    "nn1": nn1,
                    "wall_s": time.perf_counter() - t0,
                }
            )
        for name in args.rows:
            data = config_to_dict(base)
            data["views"].update(ROWS[name])
            data["model"].update(MODEL_ROWS.get(name, {}))
            data["run"].update(
                {
                    "seed": seed,
                    "time_budget_s": args.budget,
                    "max_steps": None,
                    "threads": args.threads,
                }
            )
            from phyloclr.config import config_from_dict

            cfg = config_from_dict(PretrainConfig, data)
            run_dir = out / f"{name}-seed{seed}"
            if (run_dir / "checkpoint.pt").exists():
                import shutil

                shutil.rmtree(run_dir)
            t0 = time.perf_counter()
            result = pretrain(train_set, cfg, run_dir)
            enc = result.model.encoder.eval()
            emb, _ = embed_sequences(enc, PROTEIN, seqs)
            m, nn1 = embedding_retrieval(emb, labels)
            metrics = list((run_dir / "metrics.csv").read_text().splitlines())
            record({
                "row": name, "seed": seed, "map": m, "nn1": nn1, "wall_s": time.perf_counter() - t0,
                "steps": result.steps, "final_loss": result.final_loss,
                "last_metrics": metrics[-1] if len(metrics) > 1 else "",
            })  # fmt: skip


if __name__ == "__main__":
    main()
