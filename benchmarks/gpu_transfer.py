"""Does a residue encoder trained at GPU scale transfer to unseen families? (issue 19)

The question behind the default model: the k-mer spectrum models transfer no better than their
input, and the CNN that shipped before them, trained 10 minutes on 2 CPU cores, scored 0.452
zero-shot on the orthologs set. This script trains phyloclr's own residue encoders
(:class:`phyloclr.models.encoders.DilatedCNN`, :class:`~phyloclr.models.encoders.Transformer`)
on a GPU for a fixed time on the homolog pairs of a cleaned training corpus (two members of one
MMseqs2 cluster, as ``configs/sketch-model.yaml`` trains on; no MSAs there, so no distance
window), and scores the three development sets at checkpoints, so the curve of zero-shot mAP
against GPU time says whether compute, capacity or data is the limit.

Three steps::

    # here (CPU): tokens of the training corpus and of the development sets' labelled proteins
    python -m benchmarks.gpu_transfer pack --train devsets/train300/clean.fasta \
        --sets devsets --out pack.npz
    # on the GPU machine (needs torch and numpy only; PYTHONPATH=src)
    python -m benchmarks.gpu_transfer train --pack pack.npz --arch cnn --dim 128 --layers 6 \
        --budget-s 300 --out runs/cnn128
    # here: the harness's metrics on the embeddings it wrote, alone and mixed with the sketch model
    python -m benchmarks.gpu_transfer score --pack pack.npz --run runs/cnn128

The data pipeline runs on the device: the corpus's tokens sit in one GPU tensor and each step
draws a family per pair without replacement, two distinct members and a random crop of each.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

SETS = ("orthologs", "go-function", "go-process")


def _tokens(seqs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated (T,) uint8 token ids and (N + 1,) int64 offsets."""
    from phyloclr.models.alphabet import PROTEIN

    parts = [PROTEIN.encode(s).astype(np.uint8) for s in seqs]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in parts])
    return np.concatenate(parts), offsets


def pack(train: Path, sets: Path, out: Path, pattern: str) -> dict:
    """Write the training tokens grouped by family (≥ 2 members) and the sets' tokens."""
    from phyloclr.io.fasta import iter_fasta

    rx = re.compile(pattern)
    fam_of: dict[str, list[str]] = {}
    for rec in iter_fasta(train):
        m = rx.search(f"{rec.id} {rec.description}")
        if m is None:
            raise SystemExit(f"{train}: record {rec.id!r} has no {pattern!r}")
        fam_of.setdefault(m.group(1), []).append(rec.seq)
    fams = [v for v in fam_of.values() if len(v) >= 2]
    seqs = [s for v in fams for s in v]
    tok, off = _tokens(seqs)
    sizes = np.array([len(v) for v in fams], dtype=np.int64)
    arrays: dict[str, np.ndarray] = {
        "train_tokens": tok,
        "train_offsets": off,
        "fam_start": np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
        "fam_size": sizes,
    }
    info = {"train": str(train), "families": len(fams), "proteins": len(seqs), "residues": len(tok)}
    for name in SETS:
        labels = dict(
            line.rstrip("\n").split(",", 1)
            for line in (sets / name / "labels.csv").read_text().splitlines()[1:]
        )
        recs = [(r.id, r.seq) for r in iter_fasta(sets / name / "sequences.fasta")]
        recs = [(i, s) for i, s in recs if i in labels]
        names = sorted({labels[i] for i, _ in recs})
        code = {n: k for k, n in enumerate(names)}
        t, o = _tokens([s for _, s in recs])
        key = name.replace("-", "_")
        arrays[f"{key}_tokens"], arrays[f"{key}_offsets"] = t, o
        arrays[f"{key}_labels"] = np.array([code[labels[i]] for i, _ in recs], dtype=np.int64)
        info[name] = len(recs)
    np.savez_compressed(out, **arrays)
    return info


# ---------------------------------------------------------------------------------------------
# training (torch and numpy only)


def _gather(
    tokens: torch.Tensor, start: torch.Tensor, length: torch.Tensor, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, width) padded tokens of the windows ``start`` (B,), ``length`` (B,) of the
    concatenated ``tokens``, and their mask (True = residue)."""
    pos = torch.arange(width, device=tokens.device)
    mask = pos[None, :] < length[:, None]
    where = torch.where(
        mask, start[:, None] + pos[None, :], torch.zeros_like(mask, dtype=torch.long)
    )
    return torch.where(mask, tokens[where].long(), torch.zeros_like(where)), mask


def _batch_from(
    tokens: torch.Tensor, offsets: torch.Tensor, idx: torch.Tensor, crop: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, crop) tokens of proteins ``idx`` (B,), each a random window of at most ``crop``."""
    start = offsets[idx]
    length = offsets[idx + 1] - start
    take = length.clamp(max=crop)
    shift = (torch.rand(len(idx), device=tokens.device, generator=gen) * (length - take + 1)).long()
    return _gather(tokens, start + shift, take, crop)


def _embed(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    offsets: torch.Tensor,
    max_len: int,
    batch_residues: int = 262144,
) -> torch.Tensor:
    """(N, D) float32 embeddings, proteins batched by length (longer ones truncated)."""
    n = len(offsets) - 1
    lengths = (offsets[1:] - offsets[:-1]).clamp(max=max_len)
    order = torch.argsort(lengths)
    out = torch.empty(n, int(model.dim), device=tokens.device)  # type: ignore[arg-type]
    i = 0
    while i < n:
        j = i
        while j < n and (j - i + 1) * int(lengths[order[j]]) <= batch_residues:
            j += 1
        idx = order[i : max(j, i + 1)]
        batch, mask = _gather(tokens, offsets[idx], lengths[idx], int(lengths[idx].max()))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=tokens.is_cuda):
            out[idx] = model(batch, mask).float()
        i += len(idx)
    return out


def _map(x: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Same-label retrieval mAP and 1-NN of cosine similarities (the harness's definition)."""
    x = torch.nn.functional.normalize(x.float(), dim=1)
    n = len(x)
    aps, hits = [], []
    for s in range(0, n, 2048):
        rows = torch.arange(s, min(n, s + 2048), device=x.device)
        sim = x[rows] @ x.T
        sim[torch.arange(len(rows)), rows] = -math.inf
        same = labels[None, :] == labels[rows, None]
        same[torch.arange(len(rows)), rows] = False
        order = torch.argsort(sim, dim=1, descending=True, stable=True)
        rel = torch.gather(same, 1, order).float()
        n_rel = rel.sum(1)
        ranks = torch.arange(1, n + 1, device=x.device)[None, :]
        ap = (rel * rel.cumsum(1) / ranks).sum(1) / n_rel.clamp(min=1)
        keep = n_rel > 0
        aps.append(ap[keep])
        hits.append(rel[keep, 0])
    return float(torch.cat(aps).mean()), float(torch.cat(hits).mean())


def train(args: argparse.Namespace) -> None:
    from phyloclr.models.alphabet import PROTEIN
    from phyloclr.models.encoders import DilatedCNN, EncoderSpec, Transformer
    from phyloclr.models.store import load_model, save_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    gen = torch.Generator(device=dev)
    gen.manual_seed(args.seed)
    data = np.load(args.pack)
    t = lambda k: torch.from_numpy(data[k]).to(dev)  # noqa: E731
    tokens, offsets = t("train_tokens"), t("train_offsets")
    fam_start, fam_size = t("fam_start"), t("fam_size")
    if args.family_fraction < 1.0:  # a fixed subset of the families, the same for every seed
        perm = np.random.default_rng(1234).permutation(len(fam_size))
        keep = torch.from_numpy(np.sort(perm[: round(args.family_fraction * len(perm))])).to(dev)
        fam_start, fam_size = fam_start[keep], fam_size[keep]
    sets = {
        name: (
            t(f"{name.replace('-', '_')}_tokens"),
            t(f"{name.replace('-', '_')}_offsets"),
            t(f"{name.replace('-', '_')}_labels"),
        )
        for name in SETS
    }
    spec = EncoderSpec(
        name=args.arch,
        dim=args.dim,
        layers=args.layers,
        kernel_size=args.kernel,
        heads=args.heads,
        dropout=args.dropout,
        pooling="mean",
        max_len=max(args.crop, args.eval_len),
    )
    cls = DilatedCNN if args.arch == "cnn" else Transformer
    model = cls(spec, PROTEIN.size).to(dev)
    # the shipped sketch model: its cosines mixed into the scores, and with --residual into the loss
    sketch = load_model(args.sketch_model, dev).encoder.eval() if args.sketch_model else None
    if args.residual and sketch is None:
        raise SystemExit("--residual needs --sketch-model")
    with torch.no_grad():
        sketched = {
            name: F.normalize(_embed(sketch, tk, of, args.eval_len), dim=1)
            for name, (tk, of, _) in sets.items()
        } if sketch is not None else {}  # fmt: skip
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    n_fam = len(fam_size)
    pairs = min(args.pairs, n_fam)
    log = (out / "curve.jsonl").open("a")
    meta = {**vars(args), "params": params, "families": n_fam, "device": str(dev)}
    if dev.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(0)
    (out / "meta.json").write_text(json.dumps(meta, indent=1))

    def evaluate(step: int, elapsed: float, loss: float | None, final: bool = False) -> dict:
        model.eval()
        row: dict = {"step": step, "train_s": round(elapsed, 1), "loss": loss}
        embs = {}
        embed_s, residues = 0.0, 0
        with torch.no_grad():
            for name, (tk, of, lab) in sets.items():
                tick = time.perf_counter()
                e = _embed(model, tk, of, args.eval_len)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                embed_s += time.perf_counter() - tick
                residues += int((of[1:] - of[:-1]).clamp(max=args.eval_len).sum())
                row[name] = _map(e, lab)[0]
                if name in sketched:  # cosine = w × the encoder's + (1 − w) × the sketch's
                    w = args.mix_weight
                    mixed = torch.cat(
                        [math.sqrt(w) * F.normalize(e, dim=1), math.sqrt(1 - w) * sketched[name]], 1
                    )
                    row[f"{name}@mix"] = _map(mixed, lab)[0]
                embs[name] = e
        # embedding speed, bfloat16 on a GPU (shared with the other arms: a lower bound)
        row["embed_residues_per_s"] = round(residues / embed_s)
        model.train()
        print(json.dumps(row), flush=True)
        log.write(json.dumps(row) + "\n")
        log.flush()
        if final:
            np.savez_compressed(
                out / "embeddings.npz",
                **{
                    k.replace("-", "_"): v.cpu().numpy().astype(np.float16) for k, v in embs.items()
                },
            )
        return row

    step, trained, next_eval = 0, 0.0, 0.0
    losses: list[float] = []
    ckpt = out / "checkpoint.pt"
    if args.resume and ckpt.exists():  # continue where the last checkpoint left off
        state = torch.load(ckpt, map_location=dev, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"].cpu())  # a generator state is a CPU byte tensor
        step, trained, next_eval = state["step"], state["trained"], state["next_eval"]

    def done() -> bool:
        return step >= args.max_steps if args.max_steps else trained >= args.budget_s

    def checkpoint() -> None:
        """The resumable state, written atomically."""
        state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step}
        state |= {"trained": trained, "next_eval": next_eval, "gen": gen.get_state()}
        torch.save(state, ckpt.with_suffix(".tmp"))
        ckpt.with_suffix(".tmp").replace(ckpt)

    while not done():
        if trained >= next_eval:
            evaluate(step, trained, float(np.mean(losses[-10:])) if losses else None)
            next_eval += args.eval_every_s
            checkpoint()
        tick = time.perf_counter()
        frac = step / args.max_steps if args.max_steps else trained / args.budget_s
        warm = min(1.0, (step + 1) / args.warmup)
        for g in opt.param_groups:
            g["lr"] = args.lr * warm * 0.5 * (1 + math.cos(math.pi * frac))
        fam = torch.randperm(n_fam, device=dev, generator=gen)[:pairs]
        size = fam_size[fam]
        a = (torch.rand(pairs, device=dev, generator=gen) * size).long()
        b = (a + 1 + (torch.rand(pairs, device=dev, generator=gen) * (size - 1)).long()) % size
        ia, ib = fam_start[fam] + a, fam_start[fam] + b
        xa, ma = _batch_from(tokens, offsets, ia, args.crop, gen)
        xb, mb = _batch_from(tokens, offsets, ib, args.crop, gen)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            z = model(torch.cat([xa, xb]), torch.cat([ma, mb])).float()
        z = F.normalize(z, dim=1)
        za, zb = z[:pairs], z[pairs:]
        sim = za @ zb.T
        if args.residual:  # the loss sees the mix the model is used in: the CNN learns what the
            with torch.no_grad():  # sketch gets wrong (its confident pairs give little gradient)
                s = F.normalize(sketch(torch.cat([xa, xb])).float(), dim=1)  # type: ignore[misc]
            sim = (1 - args.residual) * sim + args.residual * (s[:pairs] @ s[pairs:].T)
        logits = sim / args.temperature
        target = torch.arange(pairs, device=dev)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            losses.append(float(loss.detach()))
        step += 1
        if dev.type == "cuda" and step % 20 == 0:
            torch.cuda.synchronize()
        trained += time.perf_counter() - tick
    if dev.type == "cuda":
        torch.cuda.synchronize()
    row = evaluate(step, trained, float(np.mean(losses[-10:])) if losses else None, final=True)
    checkpoint()  # a later --resume with a larger budget or --max-steps continues from here
    (out / "final.json").write_text(json.dumps({**meta, **row}, indent=1))
    save_model(out / "model.pt", model.cpu(), PROTEIN, json.dumps(meta), step, out.name)


# ---------------------------------------------------------------------------------------------
# scoring here, with the harness's metrics


def score(pack_path: Path, run: Path, mix: list[float]) -> list[dict]:
    """The harness's mAP / 1-NN / R@1%FP of a run's embeddings, alone and mixed with the
    shipped ``sketch`` model's cosines (weight w on the trained encoder's)."""
    from benchmarks.bench_protein import cosine, embed_model
    from benchmarks.bench_protein import score as harness_score
    from phyloclr.embed import bundled_model_path
    from phyloclr.models.alphabet import PROTEIN

    data = np.load(pack_path)
    emb = np.load(run / "embeddings.npz")
    letters = np.array(PROTEIN.tokens)
    rows = []
    for name in SETS:
        key = name.replace("-", "_")
        tok, off, lab = data[f"{key}_tokens"], data[f"{key}_offsets"], data[f"{key}_labels"]
        seqs = ["".join(letters[tok[off[i] : off[i + 1]]]) for i in range(len(off) - 1)]
        trained = cosine(emb[key].astype(np.float32))
        base = cosine(embed_model(str(bundled_model_path("sketch")), seqs, 0))
        labels = [str(v) for v in lab]
        for w in mix:
            rows.append(
                {"set": name, "weight": w, **harness_score(w * trained + (1 - w) * base, labels)}
            )
    return rows


def hybrid(
    cnn: Path, sketch_from: Path | None, weight: float, out: Path, directions: int = 0,
    fit: Path | None = None, sketch_dim: int = 0, exact: bool = False, words: str = "",
) -> dict:  # fmt: skip
    """A phyloclr model file of the trained CNN ``cnn`` with the sketch of ``sketch_from`` (a
    k-mer spectrum model with ``model.map: sketch``; default: the shipped ``sketch`` model)
    appended (:class:`phyloclr.models.hybrid.SketchedCNN`): its cosine is (1 − ``weight``) ×
    the CNN's + ``weight`` × the sketch model's, exactly the mix ``score`` measures. ``cnn``
    is the model file ``train`` wrote, or a hybrid this function wrote (the shipped default
    model): then its CNN is taken and its own sketch dropped. With ``sketch_dim`` > 0 the
    sketch model's words, idf, mean row and word weights are counted into that many columns
    instead of its own width (a wider sketch collides less: RESULTS.md); with ``exact``, into
    one column per k-mer of the words (no hashing, so no collisions). With ``directions`` >
    0, the appended sketch then loses that many top principal directions, fitted on the
    proteins of the FASTA ``fit`` (:mod:`phyloclr.models.directions`). With ``words`` (a
    spectrum, 'murphy10:1111,murphy10:11011,...') the sketch is not taken from a model: it
    counts those words, with their idf and mean row fitted on ``fit`` and every word at weight
    1 (untrained)."""
    from dataclasses import replace

    from phyloclr.embed import bundled_model_path
    from phyloclr.io.fasta import read_fasta
    from phyloclr.models.alphabet import PROTEIN
    from phyloclr.models.directions import fit_directions
    from phyloclr.models.store import load_model

    trained = load_model(cnn)
    if exact and sketch_dim:
        raise SystemExit("--exact sets the width: one column per k-mer (no --sketch-dim)")
    if words:
        return _hybrid_of_words(trained, cnn, words, weight, out, directions, fit, sketch_dim,
                                exact, sketch_from)  # fmt: skip
    sketch = load_model(sketch_from or bundled_model_path("sketch"))
    s = sketch.encoder.spec
    if s.name != "kmer" or s.map != "sketch" or not s.centre or s.sketch:
        raise SystemExit(f"{sketch_from}: not a centred k-mer sketch model")
    if s.sketch_pcs and sketch_dim and sketch_dim != s.dim:
        raise SystemExit(f"{sketch_from}: its directions are fitted at its own width")
    width = sketch.encoder.rows if exact else sketch_dim or s.dim  # type: ignore[union-attr]
    spec = replace(trained.encoder.spec, sketch=s.spectrum, sketch_dim=width, sketch_weight=weight,
                   sketch_pcs=s.sketch_pcs, sketch_exact=exact)  # fmt: skip
    model, cnn_config = _with_cnn(trained, cnn, spec)
    state = sketch.encoder.state_dict()
    if width != s.dim:  # the unused residue embedding is as wide as the sketch: zeros
        state = {k: v for k, v in state.items() if k != "embed.weight"}
        torch.nn.init.zeros_(model.branch.embed.weight)
    keys = model.branch.load_state_dict(state, strict=False)
    if keys.unexpected_keys or set(keys.missing_keys) - {"embed.weight"}:
        raise SystemExit(f"{sketch_from}: weights do not fit its sketch")
    if directions:
        if fit is None:
            raise SystemExit("--directions needs --fit, the FASTA to fit them on")
        fit_directions(model, PROTEIN, [r.seq for r in read_fasta(fit)], directions)
    source = {"path": str(sketch_from or "sketch"), "weights_sha256": sketch.weights_sha256}
    return _save_hybrid(out, model, trained.step, cnn_config, source, width, exact, weight,
                        directions, fit)  # fmt: skip


def _with_cnn(trained: Any, cnn: Path, spec: Any) -> tuple[Any, dict]:
    """A model of ``spec`` holding the CNN of ``trained`` (a ``train`` model or a hybrid, whose
    own sketch is dropped), and the config that records where the CNN came from."""
    from phyloclr.models.alphabet import PROTEIN
    from phyloclr.models.build import build_encoder

    source = {"path": str(cnn), "weights_sha256": trained.weights_sha256}
    cnn_config = {**source, **trained.config}
    own = trained.encoder.state_dict()
    if trained.encoder.spec.sketch:  # a hybrid: its CNN, without its sketch
        cnn_config = {**trained.config["cnn"], "from": source}
        own = {k: v for k, v in own.items() if not k.startswith("branch.")}
    model = build_encoder(spec, PROTEIN.size)
    keys = model.load_state_dict(own, strict=False)
    wrong = [k for k in keys.missing_keys if not k.startswith("branch.")] + keys.unexpected_keys
    if wrong:
        raise SystemExit(f"{cnn}: weights do not fit the CNN ({wrong[:3]})")
    return model, cnn_config


def _hybrid_of_words(
    trained: Any, cnn: Path, words: str, weight: float, out: Path, directions: int,
    fit: Path | None, sketch_dim: int, exact: bool, sketch_from: Path | None,
) -> dict:  # fmt: skip
    """:func:`hybrid` with a sketch of ``words`` fitted on ``fit`` instead of a model's."""
    from dataclasses import replace

    from phyloclr.io.fasta import read_fasta
    from phyloclr.kmers import parse_spectrum, reduced_index, word_weight
    from phyloclr.models.alphabet import PROTEIN
    from phyloclr.models.directions import fit_directions

    if sketch_from is not None:
        raise SystemExit("--words and --sketch-from are two sources of the sketch: give one")
    if fit is None:
        raise SystemExit("--words needs --fit, the FASTA its idf and mean row are fitted on")
    try:
        spectra = parse_spectrum(words)
    except ValueError as e:
        raise SystemExit(f"--words: {e}") from None
    rows = sum(reduced_index(a)[1] ** word_weight(k) for a, k in spectra)
    if not exact and not sketch_dim:
        raise SystemExit("--words needs --exact or --sketch-dim")
    width = rows if exact else sketch_dim
    spec = replace(trained.encoder.spec, sketch=words, sketch_dim=width, sketch_weight=weight,
                   sketch_pcs=0, sketch_exact=exact)  # fmt: skip
    model, cnn_config = _with_cnn(trained, cnn, spec)
    torch.nn.init.zeros_(model.branch.embed.weight)  # unused: zeros, not a random draw
    seqs = [r.seq for r in read_fasta(fit)]
    model.branch.fit_idf(seqs)
    if directions:
        fit_directions(model, PROTEIN, seqs, directions)
    return _save_hybrid(out, model, trained.step, cnn_config, {"words": words, "fit": str(fit)},
                        width, exact, weight, directions, fit)  # fmt: skip


def _save_hybrid(
    out: Path, model: Any, step: int, cnn_config: dict, source: dict, width: int, exact: bool,
    weight: float, directions: int, fit: Path | None,
) -> dict:  # fmt: skip
    """Write the composed ``model`` with the config that records its recipe: the CNN's
    ``cnn_config``, the sketch's ``source`` and width, its weight, and its directions."""
    from phyloclr.models.alphabet import PROTEIN
    from phyloclr.models.directions import SAMPLE
    from phyloclr.models.store import save_model

    config = {
        "recipe": "benchmarks/gpu_transfer.py hybrid",
        "cnn": cnn_config,
        "sketch": {**source, "columns": width, **({"exact": True} if exact else {})},
        "sketch_weight": weight,
        **(
            {"directions": {"count": directions, "fit": str(fit), "sample": SAMPLE}}
            if directions
            else {}
        ),
    }
    save_model(out, model, PROTEIN, json.dumps(config), step, out.stem)
    return {"out": str(out), "dim": model.dim, "cnn_step": step, "sketch_weight": weight}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--train", type=Path, required=True)
    a.add_argument("--sets", type=Path, required=True)
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--label-pattern", default=r"family=(\S+)")
    b = sub.add_parser("train")
    b.add_argument("--pack", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--arch", choices=("cnn", "transformer"), default="cnn")
    b.add_argument("--dim", type=int, default=128)
    b.add_argument("--layers", type=int, default=6)
    b.add_argument("--kernel", type=int, default=5)
    b.add_argument("--heads", type=int, default=8)
    b.add_argument("--dropout", type=float, default=0.1)
    b.add_argument("--crop", type=int, default=512)
    b.add_argument("--eval-len", type=int, default=1024)
    b.add_argument("--pairs", type=int, default=512)
    b.add_argument("--lr", type=float, default=1e-3)
    b.add_argument("--weight-decay", type=float, default=0.01)
    b.add_argument("--warmup", type=int, default=200)
    b.add_argument("--temperature", type=float, default=0.1)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--family-fraction", type=float, default=1.0, help="train on this share")
    b.add_argument("--budget-s", type=float, default=300.0)
    b.add_argument("--max-steps", type=int, default=0, help="train this many steps instead")
    b.add_argument("--eval-every-s", type=float, default=60.0)
    b.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    b.add_argument("--sketch-model", default=None, help="a k-mer sketch model file to mix in")
    b.add_argument("--mix-weight", type=float, default=0.1, help="the encoder's weight in the mix")
    b.add_argument(
        "--residual", type=float, default=0.0, help="the sketch's weight in the training loss"
    )
    c = sub.add_parser("score")
    c.add_argument("--pack", type=Path, required=True)
    c.add_argument("--run", type=Path, required=True)
    c.add_argument("--mix", type=float, nargs="+", default=[1.0, 0.5, 0.3])
    h = sub.add_parser("hybrid")
    h.add_argument("--cnn", type=Path, required=True,
                   help="model.pt that train wrote, or a hybrid (its CNN is taken)")  # fmt: skip
    h.add_argument("--sketch-from", type=Path, default=None, help="default: the sketch model")
    h.add_argument("--weight", type=float, required=True, help="the sketch's cosine weight")
    h.add_argument("--out", type=Path, required=True)
    h.add_argument(
        "--directions",
        type=int,
        default=0,
        help="top principal directions to remove from the sketch (0: none)",
    )
    h.add_argument("--fit", type=Path, default=None, help="the FASTA they are fitted on")
    h.add_argument("--exact", action="store_true",
                   help="one column per k-mer of the words (no hashing)")  # fmt: skip
    h.add_argument("--words", default="",
                   help="a spectrum to sketch instead of a model's, fitted on --fit")  # fmt: skip
    h.add_argument("--sketch-dim", type=int, default=0,
                   help="the sketch model's words counted into N columns (0: its own)")  # fmt: skip
    args = p.parse_args(argv)
    if args.cmd == "pack":
        print(json.dumps(pack(args.train, args.sets, args.out, args.label_pattern)))
    elif args.cmd == "train":
        train(args)
    elif args.cmd == "hybrid":
        print(json.dumps(hybrid(args.cnn, args.sketch_from, args.weight, args.out,
                                args.directions, args.fit, args.sketch_dim,
                                args.exact, args.words)))  # fmt: skip
    else:
        for row in score(args.pack, args.run, args.mix):
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
