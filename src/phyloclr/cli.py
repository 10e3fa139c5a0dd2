"""The ``phyloclr`` command line: a thin typer layer over the library (parsing, progress, exits)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from phyloclr import __version__
from phyloclr.config import load_config
from phyloclr.errors import PhyloclrError

app = typer.Typer(
    name="phyloclr",
    help="Contrastive embeddings of biological sequences with evolution as the augmentation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
#: under torchrun only rank 0 talks
_QUIET = int(os.environ.get("RANK", "0")) != 0
out = Console(width=None if sys.stdout.isatty() else 220, quiet=_QUIET)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 220, quiet=_QUIET)

EXIT_INPUT = 2


def _version(value: bool) -> None:
    if value:
        out.print(f"phyloclr {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """phyloclr: homologous sequences are two views of a common ancestor."""


@contextmanager
def _errors() -> Iterator[None]:
    """Turn library errors into one red line and a non-zero exit code."""
    try:
        yield
    except PhyloclrError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_INPUT) from None
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]")
        raise typer.Exit(130) from None
    except (OSError, RuntimeError) as exc:
        from phyloclr.fsutil import write_failure

        # a write that failed outside the library's atomic writers (full disk, quota, ...)
        failure = write_failure(exc, getattr(exc, "filename", None) or "(output)")
        if failure is None:
            raise
        err.print(f"[bold red]error:[/] {failure}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_INPUT) from None


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int | None], None]]:
    """A rich progress bar fed by the library's ``progress(stage, done, total)`` callback."""
    bars = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update


def _fmt_distance(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    return str(value)


#: options shared by `families` and `pretrain` (de novo corpus families)
DenovoMethodOption = Annotated[
    str | None,
    typer.Option(
        help="De novo corpus families: 'prefilter' (fast, proteins), 'mmseqs' (MMseqs2, "
        "more sensitive) or 'phmmer'."
    ),
]
WorkersOption = Annotated[
    int | None, typer.Option(help="Processes for the de novo homology search (0 = all).")
]


@app.command()
def families(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Stockholm/aligned FASTA/A3M files, directories of them, or a FASTA corpus."
        ),
    ],
    trees: Annotated[
        Path | None, typer.Option(help="Newick file or directory of trees (matched by family id).")
    ] = None,
    hmm_db: Annotated[
        Path | None,
        typer.Option(help="HMM database (e.g. Pfam-A.hmm): assign a corpus by hmmscan."),
    ] = None,
    label_pattern: Annotated[
        str | None,
        typer.Option(
            help="Regex on FASTA headers whose group 'family' (or 1) is the family label."
        ),
    ] = None,
    unaligned: Annotated[
        str | None,
        typer.Option(help="An unaligned FASTA is a 'corpus', one 'family', or 'auto'."),
    ] = None,
    distance: Annotated[
        str | None, typer.Option(help="MSA distance: auto, p, jc69, poisson or kimura.")
    ] = None,
    nj: Annotated[
        bool, typer.Option("--nj", help="Build neighbour-joining trees for families without one.")
    ] = False,
    threads: Annotated[
        int | None, typer.Option(help="Threads for pyhmmer/FAMSA (0 = all).")
    ] = None,
    denovo_method: DenovoMethodOption = None,
    workers: WorkersOption = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML config; its 'families' section is used.")
    ] = None,
    out_tsv: Annotated[Path | None, typer.Option("--out", help="Write the table as TSV.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Cache directory.")] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither read nor write the cache.")
    ] = False,
    max_rows: Annotated[int, typer.Option(help="Rows to print (the TSV has them all).")] = 60,
) -> None:
    """Show (and write) the families phyloclr reads from INPUTS, with their distances."""
    from phyloclr.families import FamiliesConfig, build_families
    from phyloclr.tables import write_tsv

    with _errors():
        cfg = load_config(FamiliesConfig, config, "families") if config else FamiliesConfig()
        overrides: dict[str, Any] = {
            "hmm_db": None if hmm_db is None else str(hmm_db),
            "label_pattern": label_pattern,
            "unaligned": unaligned,
            "distance_model": distance,
            "threads": threads,
            "build_nj": True if nj else None,
            "denovo_method": denovo_method,
            "workers": workers,
        }
        changes = {k: v for k, v in overrides.items() if v is not None}
        if changes:
            from phyloclr.config import config_from_dict, config_to_dict

            cfg = config_from_dict(FamiliesConfig, {**config_to_dict(cfg), **changes})
        with _progress() as progress:
            fset = build_families(
                inputs,
                cfg,
                trees=trees,
                cache_dir=cache_dir,
                use_cache=not no_cache,
                progress=progress,
            )
        rows = fset.table()
        if out_tsv is not None:
            write_tsv(out_tsv, rows, "families", fset.config_json)
    table = Table(title=f"{len(fset)} families, {fset.n_sequences} sequences")
    columns = ["family", "members", "alphabet", "aligned", "tree", "distance", "median", "max"]
    for col in columns:
        table.add_column(col, justify="right" if col in ("members", "median", "max") else "left")
    for row in rows[:max_rows]:
        table.add_row(
            str(row["family"]),
            str(row["members"]),
            str(row["alphabet"]),
            str(row["aligned"]),
            str(row["tree"]),
            str(row["distance"]),
            _fmt_distance(row["median_distance"]),
            _fmt_distance(row["max_distance"]),
        )
    out.print(table)
    if len(rows) > max_rows:
        out.print(f"… {len(rows) - max_rows} more families (all of them are in --out)")
    for warning in fset.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if fset.from_cache:
        err.print(f"[dim]families read from the cache ({fset.cache_key})[/]")
    if out_tsv is not None:
        err.print(f"wrote {out_tsv}")


def _read_ids(path: Path) -> list[str]:
    from phyloclr.errors import InputError

    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(path, f"cannot open: {exc.strerror or exc}") from exc
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h30m', '2h' or plain seconds → seconds."""
    import re

    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise typer.BadParameter(f"cannot read the duration {text!r} (e.g. 90s, 10m, 1h30m)")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


@app.command()
def pretrain(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Alignments, directories of them, or a FASTA corpus (see families)."),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory to write.")],
    config: Annotated[
        Path | None, typer.Option(help="YAML preset, e.g. configs/cpu-small.yaml.")
    ] = None,
    trees: Annotated[Path | None, typer.Option(help="Newick file or directory of trees.")] = None,
    hmm_db: Annotated[Path | None, typer.Option(help="HMM database for corpus families.")] = None,
    label_pattern: Annotated[
        str | None, typer.Option(help="Regex on FASTA headers giving family labels.")
    ] = None,
    denovo_method: DenovoMethodOption = None,
    workers: WorkersOption = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    time_budget: Annotated[
        str | None, typer.Option(help="Stop after this much training time (e.g. 10m).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    alphabet: Annotated[str | None, typer.Option(help="auto, protein or dna.")] = None,
    views: Annotated[str | None, typer.Option(help="phylo or mutation views.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from RUN_DIR/checkpoint.pt.")
    ] = False,
    cache_dir: Annotated[Path | None, typer.Option(help="Family cache directory.")] = None,
    exclude_families: Annotated[
        Path | None,
        typer.Option(help="File of family ids (one per line) to leave out, e.g. held-out ones."),
    ] = None,
) -> None:
    """Train an encoder with phylogenetic contrastive learning (evolution as augmentation)."""
    from phyloclr.config import config_from_dict, config_to_dict
    from phyloclr.families.model import FamilySet
    from phyloclr.train import PretrainConfig, load_pretrain_config
    from phyloclr.train.job import pretrain_files, run_config

    with _errors():
        data = config_to_dict(
            run_config(out_dir, None if config is None else load_pretrain_config(config), resume)
        )
        fam = data["families"]
        if hmm_db is not None:
            fam["hmm_db"] = str(hmm_db)
        if label_pattern is not None:
            fam["label_pattern"] = label_pattern
        if denovo_method is not None:
            fam["denovo_method"] = denovo_method
        if workers is not None:
            fam["workers"] = workers
        run = data["run"]
        if max_steps is not None:
            run["max_steps"] = max_steps
            if time_budget is None:
                run["time_budget_s"] = None
        if time_budget is not None:
            run["time_budget_s"] = parse_duration(time_budget)
            if max_steps is None:
                run["max_steps"] = None
        for key, value in (("device", device), ("alphabet", alphabet), ("seed", seed)):
            if value is not None:
                run[key] = value
        if views is not None:
            data["views"]["mode"] = views
        cfg = config_from_dict(PretrainConfig, data)
        excluded = [] if exclude_families is None else _read_ids(exclude_families)

        def on_families(fset: FamilySet, missing: list[str]) -> None:
            bar_stack.close()  # the families' progress bars end here
            if missing:
                err.print(
                    f"[yellow]warning:[/] {len(missing)} ids in {exclude_families} match no "
                    f"family: {', '.join(missing[:10])}",
                    highlight=False,
                )
            for warning in fset.warnings:
                err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
            err.print(
                f"{len(fset)} families, {fset.n_sequences} sequences → training "
                f"{cfg.model.encoder} (dim {cfg.model.dim}, {cfg.model.layers} layers), "
                f"{cfg.views.mode} views"
            )
            bar_stack.enter_context(bars)

        bars = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "loss {task.fields[loss]:.3f}  MI≥{task.fields[mi]:.2f}  "
                "{task.fields[sps]:.0f} seq/s"
            ),
            TimeElapsedColumn(),
            console=err,
            disable=not err.is_terminal,
        )
        task = bars.add_task(
            "training", total=cfg.run.max_steps, loss=float("nan"), mi=float("nan"), sps=0.0
        )

        def on_step(row: dict[str, float]) -> None:
            bars.update(task, completed=row["step"], loss=row["loss"], mi=row["mi_bound"],
                        sps=row["seqs_per_s"])  # fmt: skip

        with contextlib.ExitStack() as bar_stack:
            progress = bar_stack.enter_context(_progress())
            job = pretrain_files(
                inputs, out_dir, cfg, trees=trees, cache_dir=cache_dir,
                exclude_families=excluded, resume=resume, progress=progress,
                on_families=on_families, on_step=on_step,
            )  # fmt: skip
        result = job.result
    err.print(
        f"trained {result.steps} steps in {result.elapsed_s:.0f} s (final loss "
        f"{result.final_loss:.3f}); wrote {out_dir}/model.pt, checkpoint.pt, metrics.csv"
    )


@app.command()
def embed(
    fasta: Annotated[Path, typer.Argument(help="FASTA file (plain or gzipped).")],
    out_h5: Annotated[Path, typer.Option("--out", help="HDF5 file to write.")],
    model: Annotated[
        Path | None, typer.Option(help="Run directory or model.pt (default: the shipped model).")
    ] = None,
    batch_tokens: Annotated[int, typer.Option(help="Residues per batch (padded).")] = 32768,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[str, typer.Option(help="float32 or float16.")] = "float32",
    per_residue: Annotated[
        bool, typer.Option("--per-residue", help="Also store per-residue embeddings.")
    ] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    dedupe: Annotated[
        bool, typer.Option("--dedupe", help="Keep the first of duplicate ids instead of failing.")
    ] = False,
    threads: Annotated[int, typer.Option(help="CPU threads (0 = torch's default).")] = 0,
    shard: Annotated[
        str | None,
        typer.Option(help="Embed only shard i/n (rows i, i+n, ...); join with phyloclr merge."),
    ] = None,
    part_size: Annotated[
        int, typer.Option(help="Sequences per committed part (what an interruption can lose).")
    ] = 4096,
) -> None:
    """Write embeddings of every sequence in FASTA to one HDF5 file, in input order.

    Under torchrun each rank embeds its shard and rank 0 merges them into --out."""
    from phyloclr.config import config_from_dict
    from phyloclr.embed import EmbedConfig, embed_fasta_torchrun

    with _errors():
        index, count = _parse_shard(shard)
        cfg = config_from_dict(
            EmbedConfig,
            {"batch_tokens": batch_tokens, "device": device, "dtype": dtype,
             "per_residue": per_residue, "dedupe": dedupe, "threads": threads,
             "shard_index": index, "shard_count": count, "part_size": part_size},
        )  # fmt: skip
        with _progress() as progress:
            result = embed_fasta_torchrun(
                fasta, out_h5, model, cfg, resume=resume, progress=progress
            )
    if result.n_windowed:
        err.print(
            f"[yellow]warning:[/] {result.n_windowed} sequences were longer than the model's "
            "context and were embedded in overlapping windows"
        )
    if result.n_duplicates_skipped:
        err.print(f"[yellow]warning:[/] skipped {result.n_duplicates_skipped} duplicate ids")
    extra = f" (resumed after {result.resumed_rows} rows)" if result.resumed_rows else ""
    err.print(
        f"wrote {result.n_sequences} embeddings to {result.out} in {result.elapsed_s:.1f} s{extra}"
    )


def _parse_shard(text: str | None) -> tuple[int, int]:
    if text is None:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise typer.BadParameter(f"--shard takes i/n, e.g. 0/4, not {text!r}") from None
    return i, n


@app.command()
def merge(
    shards: Annotated[list[Path], typer.Argument(help="The files of embed --shard i/n, all i.")],
    out_h5: Annotated[Path, typer.Option("--out", help="Merged HDF5 file to write.")],
) -> None:
    """Merge the shard files of ``phyloclr embed --shard i/n`` into one file, in input order."""
    from phyloclr.embed import merge_shards

    with _errors():
        n = merge_shards(shards, out_h5)
    err.print(f"wrote {n} embeddings to {out_h5}")


@app.command()
def search(
    queries: Annotated[
        Path, typer.Argument(help="FASTA of queries, or an HDF5 of their embeddings.")
    ],
    db: Annotated[Path, typer.Option(help="HDF5 of the database's embeddings (phyloclr embed).")],
    out_tsv: Annotated[
        Path, typer.Option("--out", help="TSV: query target score rank (with --labels: transfers).")
    ],
    model: Annotated[
        Path | None,
        typer.Option(help="The database's model, when not at the path it recorded."),
    ] = None,
    top: Annotated[int, typer.Option(help="Hits per query.")] = 50,
    min_score: Annotated[float, typer.Option(help="Lowest cosine reported.")] = -1.0,
    labels: Annotated[
        Path | None,
        typer.Option(help="CSV id,label of database proteins: write label transfers instead."),
    ] = None,
    realign: Annotated[
        bool, typer.Option("--realign", help="Align hits (Smith-Waterman): bits, E-value.")
    ] = False,
    realign_depth: Annotated[
        int,
        typer.Option(
            help="With --realign: nearest proteins aligned per query, the --top best "
            "by bit score kept (0: the --top hits)."
        ),
    ] = 400,
    db_fasta: Annotated[
        Path | None, typer.Option(help="The database's sequences (for --realign).")
    ] = None,
    method: Annotated[
        str, typer.Option(help="auto, exact or faiss (approximate, large databases).")
    ] = "auto",
    threads: Annotated[int, typer.Option(help="CPU threads (0 = torch's default).")] = 0,
) -> None:
    """Nearest database proteins of every query by embedding, optionally realigned, or the
    label they most likely share (annotation transfer)."""
    from phyloclr.config import config_from_dict
    from phyloclr.search import SearchConfig, write_hits
    from phyloclr.search import search as run_search
    from phyloclr.transfer import transfer_labels, write_transfers

    with _errors():
        cfg = config_from_dict(
            SearchConfig,
            {"top": top, "min_score": min_score, "realign": realign,
             "realign_depth": realign_depth, "threads": threads,
             "neighbours": {"method": method}},
        )  # fmt: skip
        lab = None
        if labels is not None:
            from phyloclr.evaluate import read_labels

            lab = read_labels(labels)
        with _progress() as progress:
            result = run_search(queries, db, model=model, config=cfg, db_fasta=db_fasta,
                                progress=progress)  # fmt: skip
        if lab is not None:
            transfers = transfer_labels(result, lab, cfg)
            write_transfers(out_tsv, transfers, cfg, result, db)
            found = sum(t.label is not None for t in transfers)
            err.print(f"wrote {out_tsv}: a label for {found} of {len(transfers)} queries")
        else:
            n = write_hits(out_tsv, result, cfg, db)
            err.print(
                f"wrote {out_tsv}: {n} hits for {len(result.query_ids)} queries "
                f"({result.method} search of {len(result.db_ids)} proteins)"
            )


@app.command()
def evaluate(
    embeddings: Annotated[Path, typer.Argument(help="HDF5 file written by phyloclr embed.")],
    labels: Annotated[Path, typer.Option(help="CSV with columns id,label.")],
    plot: Annotated[Path | None, typer.Option(help="Write a 2-D map (PNG).")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the scores as JSON.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for k-means, the probe's folds and the map.")] = 0,
) -> None:
    """Score embeddings against labels: 1-NN, mAP, linear probe, k-means, geometry."""
    import json

    from phyloclr.evaluate import evaluate_embeddings, finite_or_none, plot_map, read_labels
    from phyloclr.io.hdf5 import read_embeddings

    with _errors():
        store = read_embeddings(embeddings)
        lab = read_labels(labels)
        result = evaluate_embeddings(store.ids, store.embeddings, lab, seed=seed)
        method = None
        if plot is not None:
            keep = [i for i, x in enumerate(store.ids) if x in lab]
            method = plot_map(
                store.embeddings[keep], [lab[store.ids[i]] for i in keep], plot, seed=seed
            )
    table = Table(title=f"{result.n} labelled embeddings, {result.n_labels} labels")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, name in (
        ("map", "mAP (same-label retrieval)"), ("nn1", "1-NN accuracy (leave one out)"),
        ("linear_probe", "linear probe accuracy (CV)"), ("kmeans_acc", "k-means ACC"),
        ("kmeans_nmi", "k-means NMI"), ("kmeans_ari", "k-means ARI"),
        ("alignment", "alignment (same label)"), ("uniformity", "uniformity"),
    ):  # fmt: skip
        table.add_row(name, f"{getattr(result, key):.4f}")
    out.print(table)
    for kind, names in (("ids without a label", result.unmatched_ids),
                        ("labels without an embedding", result.unmatched_labels)):  # fmt: skip
        if names:
            shown = ", ".join(names[:10]) + (
                f" … ({len(names) - 10} more)" if len(names) > 10 else ""
            )
            err.print(f"[yellow]warning:[/] {len(names)} {kind}: {shown}", highlight=False)
    if json_out is not None:
        data = {k: finite_or_none(v) if isinstance(v, float) else v
                for k, v in result.as_dict().items()}  # fmt: skip
        data["plot_method"] = method
        json_out.write_text(json.dumps(data, indent=2) + "\n")
    if plot is not None:
        err.print(f"wrote {plot} ({method})")


@app.command()
def cluster(
    fasta: Annotated[Path, typer.Argument(help="DNA/RNA FASTA file (plain or gzipped).")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory for clusters.tsv, summary.json.")
    ],
    n_clusters: Annotated[
        int | None,
        typer.Option(
            help="K; 0 chooses K in 2..--max-clusters: the smallest K whose partition the runs "
            "reproduce (summary.json k_scores)."
        ),
    ] = None,
    max_clusters: Annotated[
        int | None,
        typer.Option(help="Largest K tried when K is chosen (one head per K per run). [20]"),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="CSV id,label: report ACC (Hungarian), NMI and ARI.")
    ] = None,
    input_kind: Annotated[
        str | None,
        typer.Option("--input", help="kmer, fcgr or phylo (relatives from --tree/--msa). [kmer]"),
    ] = None,
    tree: Annotated[
        Path | None, typer.Option(help="--input phylo: Newick tree whose leaves are the ids.")
    ] = None,
    msa: Annotated[
        Path | None, typer.Option(help="--input phylo: aligned FASTA of the same ids.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="YAML file of ClusterConfig fields (every setting, the mutation rates of the "
            "weak/strong views included); options given on the command line override it."
        ),
    ] = None,
    k: Annotated[int | None, typer.Option(help="k-mer size (FCGR image 2^k × 2^k). [6]")] = None,
    fcgr_channels: Annotated[
        int | None,
        typer.Option(
            help="--input fcgr: the CNN's width (CGRclust: 128); narrower is faster. [128]"
        ),
    ] = None,
    runs: Annotated[int | None, typer.Option(help="Independent training runs. [3]")] = None,
    heads: Annotated[
        int | None,
        typer.Option(help="Cluster heads per run when K is given (candidate partitions). [6]"),
    ] = None,
    kmeans: Annotated[
        int | None,
        typer.Option(
            help="K given: k-mer k-means partitions (each the best of 10 starts) added to the "
            "ranked pool, per k-mer space (standardised, raw). [3]"
        ),
    ] = None,
    vote: Annotated[
        int | None,
        typer.Option(
            help="Best partitions (see --select) combined by majority vote; 0: 1 with K "
            "given, 3 when K is chosen. [0]"
        ),
    ] = None,
    select: Annotated[
        str | None,
        typer.Option(
            help="Rank partitions by the worse of their ranks by neighbour-graph cut, "
            "silhouette and clade separation (three), by cut and silhouette (both), or by one "
            "of them (cut, silhouette). [three]"
        ),
    ] = None,
    neighbours: Annotated[
        int | None,
        typer.Option(help="Strong view drawn from one of this many nearest relatives. [5]"),
    ] = None,
    relatives: Annotated[
        str | None,
        typer.Option(
            help="Relatives for the strong view: nearest in the k-mer space (kmer) or within "
            "relative_window substitutions/site by Mash distance (mash; window in --config). "
            "[kmer]"
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            help="Optimiser steps per run; 0 grows them with the data (20 epochs, 60..300). [0]"
        ),
    ] = None,
    refine: Annotated[
        bool | None,
        typer.Option(
            help="Refine the voted partition by k-means in the PCA space (from its centroids). [on]"
        ),
    ] = None,
    rank_refined: Annotated[
        bool | None,
        typer.Option(
            help="Rank each head's partition refined by k-means beside the raw ones (--refine)."
            " [on]"
        ),
    ] = None,
    orient: Annotated[
        bool | None,
        typer.Option(
            help="Reverse-complement sequences that their relatives show on the other strand. [on]"
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences per step. [256]")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda. [auto]")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the first run. [0]")] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads (0 = torch's default). [0]")
    ] = None,
    embeddings: Annotated[
        bool,
        typer.Option("--embeddings", help="Also write DIR/embeddings.h5 (the best run's)."),
    ] = False,
) -> None:
    """[experimental] Cluster DNA sequences without labels (Twin Contrastive Learning).

    TCL heads and plain k-mer k-means partitions are ranked without labels. Over 15 labelled
    sets, three seeds: mean accuracy 0.913 against 0.847 for 6-mer k-means, below it on 1 set
    (18S genera, by 0.012) (benchmarks/RESULTS.md)."""
    from phyloclr.cluster import (
        cluster_sequences,
        load_cluster_config,
        read_dna,
        score,
        write_outputs,
    )

    with _errors():
        given = {"n_clusters": n_clusters, "max_clusters": max_clusters, "input": input_kind,
                 "k": k, "fcgr_channels": fcgr_channels, "runs": runs, "heads": heads,
                 "kmeans": kmeans, "vote": vote, "neighbours": neighbours, "steps": steps,
                 "relatives": relatives,
                 "tree": None if tree is None else str(tree),
                 "msa": None if msa is None else str(msa), "batch_size": batch_size,
                 "device": device, "seed": seed, "threads": threads, "refine": refine,
                 "rank_refined": rank_refined, "orient": orient, "select": select}  # fmt: skip
        cfg = load_cluster_config(config, {k: v for k, v in given.items() if v is not None})
        records, counts = read_dna(fasta)
        lab = None
        if labels is not None:
            from phyloclr.evaluate import read_labels

            lab = read_labels(labels)
        with _progress() as progress:
            result = cluster_sequences(records, cfg, progress)
        extra: dict[str, Any] = {"input_file": str(fasta), **counts}
        if lab is not None:
            extra["scores"] = score(result.ids, result.clusters, lab)
        write_outputs(result, out_dir, extra)
        if embeddings:
            from phyloclr.io import hdf5

            hdf5.write_array_file(
                out_dir / "embeddings.h5", result.ids, result.embeddings,
                {"model": json.dumps({"name": "tcl-backbone"}),
                 "config": json.dumps(result.summary["config"])},
            )  # fmt: skip
    out.print(
        f"{len(result.ids)} sequences → {result.k} clusters "
        f"(sizes {result.summary['cluster_sizes']}) in {result.summary['seconds']:.0f} s"
    )
    if lab is not None:
        s = extra["scores"]
        out.print(f"ACC {s['acc']:.4f}  NMI {s['nmi']:.4f}  ARI {s['ari']:.4f}")
    if counts["ambiguous_bases"]:
        err.print(
            f"[yellow]note:[/] {counts['ambiguous_bases']} ambiguous bases (N, IUPAC) skipped"
        )
    if result.summary["k_chosen"]:
        err.print(
            f"[yellow]note:[/] K = {result.k} was chosen: the smallest K in 2..{cfg.max_clusters} "
            f"whose partition the {cfg.runs} runs reproduce (mean ARI between runs "
            f"{result.summary['stability_of_k']:.2f}); data nested at several ranks may "
            "hold other answers (summary.json k_scores); pass --n-clusters for a known rank"
        )
    if result.summary["reverse_complemented"]:
        err.print(
            f"[yellow]note:[/] {result.summary['reverse_complemented']} sequences were on the "
            "other strand from their relatives and were clustered reverse-complemented "
            "(summary.json names them)"
        )
    err.print(f"wrote {out_dir}/clusters.tsv and summary.json")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
