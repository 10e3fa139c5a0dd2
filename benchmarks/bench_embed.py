"""Embedding throughput and peak memory, side by side in one run, each method in its own process.

Methods: phyloclr embed (the default model, or --model), the ESM-2 8M architecture (fair-esm's
ESM2 class, 6 layers, width 320, random weights: only its speed is compared; sequences are
truncated at 1,022 residues as esm-extract does), and 3-mer composition.

Usage:
  python benchmarks/bench_embed.py [--fasta F] [--threads 2] [--precision float32 bfloat16]
  python benchmarks/bench_embed.py --scale 10000 100000 1000000      # bounded memory at scale
(`pip install fair-esm` for the ESM-2 row; it is a benchmark-only dependency.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTEOME = ROOT / "data" / "protein" / "proteome" / "938293.PRJEB85.HG003687.faa"


def _read(fasta: Path) -> tuple[list[str], list[str]]:
    from phyloclr.io.fasta import iter_fasta

    recs = list(iter_fasta(fasta))
    return [r.id for r in recs], [r.seq for r in recs]


def run_phyloclr(
    fasta: Path, out: Path, model: str | None, threads: int, device: str, precision: str
) -> dict:
    from phyloclr.embed import EmbedConfig, embed_fasta

    if out.exists():
        out.unlink()
    shutil.rmtree(out.with_name(out.name + ".parts"), ignore_errors=True)
    t0 = time.perf_counter()
    cfg = EmbedConfig(threads=threads, device=device, precision=precision)  # type: ignore[arg-type]
    res = embed_fasta(fasta, out, model, cfg)
    secs = time.perf_counter() - t0
    _, seqs = _read(fasta) if res.n_sequences <= 100_000 else ([], [])
    residues = sum(map(len, seqs)) if seqs else None
    return {"n": res.n_sequences, "seconds": secs, "residues": residues}


def run_esm(fasta: Path, threads: int, device: str, precision: str) -> dict:
    """ESM-2 8M in float32, or under bfloat16 autocast where ``precision`` resolves to it (as
    phyloclr's CNN runs), so that the ratio compares like with like."""
    import esm
    import torch
    from esm.model.esm2 import ESM2

    from phyloclr.devices import resolve_precision

    bf16 = resolve_precision(precision, torch.device(device)) == "bfloat16"

    torch.set_num_threads(threads)
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    torch.manual_seed(0)
    model = (
        ESM2(num_layers=6, embed_dim=320, attention_heads=20, alphabet=alphabet).eval().to(device)
    )
    converter = alphabet.get_batch_converter()
    ids, seqs = _read(fasta)
    seqs = [s[:1022] for s in seqs]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    t0 = time.perf_counter()
    i = 0
    with torch.no_grad(), torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16):
        while i < len(order):
            batch = [order[i]]
            i += 1
            while i < len(order) and (len(batch) + 1) * (len(seqs[order[i]]) + 2) <= 4096:
                batch.append(order[i])
                i += 1
            _, _, toks = converter([(ids[j], seqs[j]) for j in batch])
            reps = model(toks.to(device), repr_layers=[6])["representations"][6]
            mask = (
                (toks != alphabet.padding_idx)
                & (toks != alphabet.cls_idx)
                & (toks != alphabet.eos_idx)
            )
            (reps * mask.unsqueeze(-1).to(device)).sum(1).cpu()
    return {"n": len(seqs), "seconds": time.perf_counter() - t0, "residues": sum(map(len, seqs))}


def run_kmer(fasta: Path) -> dict:
    from phyloclr.metrics import kmer_composition

    _, seqs = _read(fasta)
    t0 = time.perf_counter()
    kmer_composition(seqs, 3)
    return {"n": len(seqs), "seconds": time.perf_counter() - t0, "residues": sum(map(len, seqs))}


def child(args: argparse.Namespace) -> None:
    fasta = Path(args.fasta)
    if args.child == "phyloclr":
        row = run_phyloclr(
            fasta, Path(args.tmp) / "bench.h5", args.model, args.threads, args.device,
            args.precision[0],
        )  # fmt: skip
    elif args.child == "esm2-8M":
        row = run_esm(fasta, args.threads, args.device, args.precision[0])
    else:
        row = run_kmer(fasta)
    row["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(row))


def spawn(method: str, fasta: Path, args: argparse.Namespace, precision: str = "auto") -> dict:
    cmd = [sys.executable, __file__, "--child", method, "--fasta", str(fasta), "--threads",
           str(args.threads), "--tmp", args.tmp, "--device", args.device,
           "--precision", precision]  # fmt: skip
    if args.model:
        cmd += ["--model", args.model]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_scaled(n: int, path: Path) -> Path:
    """N sequences by repeating the real proteome with distinct ids."""
    if path.exists():
        return path
    _, seqs = _read(PROTEOME)
    with path.open("w") as fh:
        for i in range(n):
            fh.write(f">rep{i // len(seqs)}_{i % len(seqs)}\n{seqs[i % len(seqs)]}\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fasta", default=str(PROTEOME))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tmp", default="/tmp/phyloclr-bench")
    ap.add_argument("--child", default=None)
    ap.add_argument("--scale", type=int, nargs="*", default=None)
    ap.add_argument("--precision", nargs="+", default=["auto"],
                    help="phyloclr rows: auto, float32, bfloat16 (one row each)")  # fmt: skip
    args = ap.parse_args()
    Path(args.tmp).mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args)
        return
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, threads={args.threads}, "
        f"python {platform.python_version()}"
    )
    if args.scale:
        print("| sequences | residues | wall time (s) | residues/s | peak RSS (MiB) |")
        print("|---|---|---|---|---|")
        for n in args.scale:
            fasta = make_scaled(n, Path(args.tmp) / f"scaled_{n}.faa")
            row = spawn("phyloclr", fasta, args, args.precision[0])
            _, seqs = _read(PROTEOME)
            lengths = [len(x) for x in seqs]
            res = sum(lengths) * (n // len(lengths)) + sum(lengths[: n % len(lengths)])
            rate = res / row["seconds"]
            print(
                f"| {n:,} | {res / 1e6:.1f}M | {row['seconds']:.0f} | {rate:,.0f} "
                f"| {row['peak_rss_mib']:.0f} |",
                flush=True,
            )
        return
    fasta = Path(args.fasta)
    rows = {f"phyloclr ({p})": spawn("phyloclr", fasta, args, p) for p in args.precision}
    rows |= {f"esm2-8M ({p})": spawn("esm2-8M", fasta, args, p) for p in args.precision}
    rows["3-mer"] = spawn("3-mer", fasta, args)
    first = rows[f"phyloclr ({args.precision[0]})"]
    base = first["residues"] / first["seconds"]
    print("| method | sequences | residues/s | ratio to phyloclr | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        rate = row["residues"] / row["seconds"]
        print(
            f"| {name} | {row['n']:,} | {rate:,.0f} | {rate / base:.2f} "
            f"| {row['peak_rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
