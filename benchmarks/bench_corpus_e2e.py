"""A whole corpus end to end (issue 22): families, pretraining, embedding, evaluation.

    python -m benchmarks.bench_corpus_e2e --corpus metastudent.fasta --out DIR \\
        --labels DEVSETS/go-function/labels.csv --labels DEVSETS/go-process/labels.csv \\
        [--method mmseqs-cluster] [--max-family-size 2000] [--budget 900] [--workers 2] \\
        [--set KEY=VALUE ...] [--embed-labelled]

Each stage is the CLI a user runs, in a fresh process whose process tree's memory is sampled
(peak summed PSS, peak largest RSS): ``phyloclr families`` (de novo families, MSAs and
distances, into ``DIR/cache``), ``phyloclr pretrain`` (``configs/cpu-small.yaml`` with the
families engine and size cap given here, ``--set`` families settings and a training budget;
it reads the families from the cache), ``phyloclr embed`` (float16; of the whole corpus, or with
``--embed-labelled`` of the labelled proteins only, for a model whose profile block makes the
whole corpus's embedding take hours) and ``phyloclr evaluate`` on each labelled subset (ids
matched to the corpus's ``source|id`` by their part after the last ``|``). One JSON line per
stage goes to ``DIR/e2e.jsonl``; a stage already there is skipped, so a rerun continues.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.bench_families import MemoryWatch, machine

ROOT = Path(__file__).resolve().parents[1]


def config(
    out: Path, method: str, max_family_size: int, budget: float, workers: int,
    settings: list[str] | None = None,
) -> Path:  # fmt: skip
    """cpu-small with this run's families engine, size cap, workers, ``KEY=VALUE`` families
    settings (values read as YAML) and training budget."""
    cfg = yaml.safe_load((ROOT / "configs" / "cpu-small.yaml").read_text())
    cfg["families"].update(denovo_method=method, max_family_size=max_family_size, workers=workers)
    for item in settings or []:
        key, _, value = item.partition("=")
        cfg["families"][key] = yaml.safe_load(value)
    cfg["run"].update(time_budget_s=budget, max_steps=None)
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def stage(out: Path, name: str, argv: list[str], extra: dict | None = None) -> None:
    """Run one CLI stage (unless DIR/e2e.jsonl has it) and append its row."""
    log = out / "e2e.jsonl"
    done = {json.loads(x)["stage"] for x in log.read_text().splitlines()} if log.exists() else set()
    if name in done:
        return
    t0 = time.perf_counter()
    with open(out / f"{name}.log", "w") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
        watch = MemoryWatch(proc.pid)
        proc.wait()
        watch.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit {proc.returncode}); see {out / f'{name}.log'}")
    row = {"stage": name, "wall_s": round(time.perf_counter() - t0, 1),
           "peak_pss_mib": watch.peak_pss >> 20, "peak_rss_mib": watch.peak_rss >> 20,
           **(extra or {}), "command": " ".join(argv[1:]), "machine": machine()}  # fmt: skip
    with log.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def corpus_labels(labels: Path, corpus: Path, out: Path) -> Path:
    """``labels`` with each id replaced by the first corpus id it names (``source|id``)."""
    full = {}
    with open(corpus) as fh:
        for line in fh:
            if line.startswith(">"):
                cid = line[1:].split()[0]
                full.setdefault(cid.rsplit("|", 1)[-1], cid)  # the first: copies come later
    rows = [ln.split(",", 1) for ln in labels.read_text().splitlines()[1:] if ln.strip()]
    path = out / f"labels-{labels.parent.name}.csv"
    path.write_text("id,label\n" + "".join(f"{full[i]},{lab}\n" for i, lab in rows if i in full))
    return path


def labelled_fasta(corpus: Path, labels: list[Path], out: Path) -> Path:
    """The corpus's records that a labels file (``corpus_labels``'s) names, in corpus order."""
    want = {ln.split(",", 1)[0] for p in labels for ln in p.read_text().splitlines()[1:] if ln}
    path = out / "labelled.fasta"
    keep = False
    with open(corpus) as fh, path.open("w") as dst:
        for line in fh:
            if line.startswith(">"):
                keep = line[1:].split()[0] in want
            if keep:
                dst.write(line)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--labels", type=Path, action="append", default=[])
    ap.add_argument("--method", default="mmseqs-cluster")
    ap.add_argument("--max-family-size", type=int, default=2000)
    ap.add_argument("--budget", type=float, default=900.0, help="training seconds")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a families setting of the config (repeatable)")  # fmt: skip
    ap.add_argument("--embed-labelled", action="store_true",
                    help="embed only the labelled proteins (not the whole corpus)")  # fmt: skip
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg = config(out, args.method, args.max_family_size, args.budget, args.workers, args.set)
    cli = [sys.executable, "-m", "phyloclr.cli"]
    corpus = str(args.corpus.resolve())
    cache = ["--cache-dir", str(out / "cache")]
    with open(corpus) as fh:
        n = sum(1 for line in fh if line.startswith(">"))
    stage(out, "families", [*cli, "families", corpus, "--config", str(cfg), *cache,
                            "--out", str(out / "families.tsv")], {"sequences": n})  # fmt: skip
    stage(out, "pretrain", [*cli, "pretrain", corpus, "--config", str(cfg), *cache,
                            "--out", str(out / "run")])  # fmt: skip
    labs = [corpus_labels(labels, args.corpus, out) for labels in args.labels]
    embed_in = str(labelled_fasta(args.corpus, labs, out)) if args.embed_labelled else corpus
    stage(out, "embed", [*cli, "embed", embed_in, "--model", str(out / "run"), "--dtype",
                         "float16", "--out", str(out / "embeddings.h5")])  # fmt: skip
    for labels, lab in zip(args.labels, labs, strict=True):
        name = f"evaluate-{labels.parent.name}"
        stage(out, name, [*cli, "evaluate", str(out / "embeddings.h5"), "--labels", str(lab),
                          "--json", str(out / f"{name}.json")])  # fmt: skip


if __name__ == "__main__":
    main()
