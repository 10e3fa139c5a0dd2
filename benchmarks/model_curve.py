"""Training curve of a pretraining run: its loss and its development-set scores at every kept
checkpoint model (issue 19: choose the number of steps from the curve).

    python -m benchmarks.model_curve RUN --sets DEVSETS [--only SET ...] \\
        [--out curve.jsonl] [--plot benchmarks/default_model_curve.png]

RUN must have been trained with ``run.keep_models: true`` (``RUN/models/step-NNNNNNN.pt``).
Every kept model embeds every set's labelled proteins and is scored like the harness's rows
(mAP, 1-NN, recall at 1 % false positives; ``benchmarks/bench_protein.py``). The plot has the
training loss (``metrics.csv``, smoothed over 50 steps) on the left and each set's mAP on the
right; dashed lines mark each set's Murphy-10 4-mer tf-idf (the encoder's input, with the
idf, and for a centred encoder the mean, of the run's own model; for encoders of that spectrum
only).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_protein import DevSet, cosine, score
from phyloclr.embed import embed_sequences
from phyloclr.kmers import centred_cosines, log_tfidf, spectrum_counts
from phyloclr.models.store import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--sets", type=Path, required=True)
    ap.add_argument("--only", nargs="+", default=["go-function", "orthologs", "go-process"])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = sorted((args.run / "models").glob("step-*.pt"))
    if not models:
        raise SystemExit(f"{args.run}: no models/step-*.pt (train with run.keep_models: true)")
    sets = [DevSet(args.sets / name) for name in args.only]
    rows: list[dict[str, object]] = []
    baseline: dict[str, float] = {}
    for path in models:
        loaded = load_model(path)
        step = int(path.stem.split("-")[1])
        row: dict[str, object] = {"run": str(args.run), "step": step}
        for ds in sets:
            emb, _ = embed_sequences(loaded.encoder, loaded.alphabet, ds.seqs)
            row[ds.name] = score(cosine(emb), ds.labels)
            spec = loaded.encoder.spec
            plain = spec.spectrum == "murphy10:4" and not spec.buckets
            if plain and ds.name not in baseline:  # the input alone, with this run's idf
                idf = loaded.encoder.idf.numpy()  # type: ignore[union-attr, operator]
                x = log_tfidf(spectrum_counts(ds.seqs, 4), idf)
                if spec.centre:  # the input as the encoder sees it, less its corpus mean
                    mean = loaded.encoder.mean.numpy()  # type: ignore[union-attr, operator]
                    sim = centred_cosines(x, mean)
                else:
                    sim = (x @ x.T).toarray()
                baseline[ds.name] = score(sim, ds.labels)["map"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out is not None:
        with args.out.open("a") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
    if args.plot is not None:
        plot(args.run, rows, baseline, [ds.name for ds in sets], args.plot)


def plot(
    run: Path,
    rows: list[dict[str, object]],
    baseline: dict[str, float],
    names: list[str],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with (run / "metrics.csv").open() as fh:
        metrics = list(csv.DictReader(fh))
    steps = np.array([int(r["step"]) for r in metrics])
    loss = np.array([float(r["loss"]) for r in metrics])
    smooth = np.convolve(loss, np.ones(50) / 50, mode="valid") if len(loss) >= 50 else loss
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(steps[len(steps) - len(smooth) :], smooth, color="black")
    left.set_xlabel("step")
    left.set_ylabel("training loss (50-step mean)")
    left.set_title(run.name)
    at = [int(r["step"]) for r in rows]  # type: ignore[call-overload]
    for i, name in enumerate(names):
        colour = f"C{i}"
        right.plot(at, [r[name]["map"] for r in rows], "o-", color=colour, label=name)  # type: ignore[index]
        if name in baseline:
            right.axhline(baseline[name], color=colour, ls="--", lw=1)
    right.set_xlabel("step")
    right.set_ylabel("mAP (zero-shot); dashed: tf-idf input")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
