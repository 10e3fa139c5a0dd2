"""Probe a trained k-mer spectrum model on a development set: which output retrieves best.

    python -m benchmarks.probe_spectrum RUN_DIR SET_DIR [SET_DIR ...] [--threads 1]

Prints one JSON line per set with the mAP / 1-NN / R@1%FP of:
- ``final``: the embedding as ``phyloclr embed`` writes it;
- ``linear``: the linear map's output, before the residual MLP blocks (only with
  ``model.layers`` > 1; with 1 it is ``final``);
- ``final+linear@W``: the cosines of the two averaged, weight W on the linear one (likewise);
- ``final+tfidf@0.5``: the model's cosine averaged with the cosine of its own input, the
  Murphy-10 4-mer log-tf-idf with the set's corpus idf (what a frozen copy of the input would add);
- ``wise@A``: the weights interpolated with the run's seeded initialisation (WiSE-FT),
  ``A × trained + (1 − A) × init``; the idf is the trained model's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_protein import DevSet, cosine, score, tfidf
from phyloclr.config import config_from_dict
from phyloclr.embed import embed_sequences
from phyloclr.models.spectrum import KmerSpectrum
from phyloclr.models.store import load_model
from phyloclr.train.config import PretrainConfig
from phyloclr.train.loop import build_model


def probe(run: Path, ds: DevSet) -> dict[str, object]:
    """Every variant's scores on one set (see the module docstring)."""
    loaded = load_model(run / "model.pt" if run.is_dir() else run)
    enc = loaded.encoder
    if not isinstance(enc, KmerSpectrum):
        raise SystemExit(f"{run}: not a k-mer spectrum model")
    enc.eval()

    def embed() -> np.ndarray:
        e, _ = embed_sequences(enc, loaded.alphabet, ds.seqs)
        return cosine(e)

    out: dict[str, object] = {"run": str(run), "set": ds.name}
    final = embed()
    out["final"] = score(final, ds.labels)
    if len(enc.blocks):
        blocks = enc.blocks
        enc.blocks = torch.nn.ModuleList()
        linear = embed()
        enc.blocks = blocks
        out["linear"] = score(linear, ds.labels)
        for w in (0.5, 0.7):
            out[f"final+linear@{w}"] = score((1 - w) * final + w * linear, ds.labels)
    x, _ = tfidf(ds, "murphy10", 4)
    out["final+tfidf@0.5"] = score(0.5 * final + 0.5 * (x @ x.T).toarray(), ds.labels)

    cfg = config_from_dict(PretrainConfig, json.loads((run / "config.json").read_text()))
    torch.manual_seed(cfg.run.seed)  # as train.loop does before building the model
    init = build_model(cfg, loaded.alphabet).encoder.state_dict()
    trained = {k: v.clone() for k, v in enc.state_dict().items()}
    for a in (0.7, 0.5):
        enc.load_state_dict({k: a * v + (1 - a) * init[k]
                             if v.is_floating_point() and k != "idf" else v
                             for k, v in trained.items()})  # fmt: skip
        out[f"wise@{a}"] = score(embed(), ds.labels)
    enc.load_state_dict(trained)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a phyloclr pretrain run directory")
    ap.add_argument("sets", type=Path, nargs="+", help="protein_devsets.py set directories")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for root in args.sets:
        print(json.dumps(probe(args.run, DevSet(root))), flush=True)


if __name__ == "__main__":
    main()
