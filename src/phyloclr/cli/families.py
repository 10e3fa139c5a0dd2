"""``phyloclr families``: the families phyloclr reads from its inputs, as a table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from phyloclr.cli.app import (
    DenovoMethodOption,
    WorkersOption,
    app,
    err,
    errors,
    fmt_distance,
    out,
    parse_shard,
    plain,
    progress_bars,
)
from phyloclr.config import load_config


# long only by its option declarations: typer reads the options from the signature
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
    max_family_size: Annotated[
        int | None,
        typer.Option(help="Split de novo families above this many members (0 = never)."),
    ] = None,
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
    shard: Annotated[
        str | None,
        typer.Option(
            help="i/n: search only shard i of n (0-based) of a protein corpus's de novo homology "
            "search into the cache (one per machine, sharing --cache-dir); then run without it."
        ),
    ] = None,
) -> None:
    """Show (and write) the families phyloclr reads from INPUTS, with their distances."""
    from phyloclr.families import FamiliesConfig, build_families
    from phyloclr.fsutil import remove_stale_temporaries
    from phyloclr.tables import write_tsv

    with errors():
        cfg = load_config(FamiliesConfig, config, "families") if config else FamiliesConfig()
        overrides: dict[str, Any] = {
            "hmm_db": None if hmm_db is None else str(hmm_db),
            "label_pattern": label_pattern,
            "unaligned": unaligned,
            "distance_model": distance,
            "threads": threads,
            "build_nj": True if nj else None,
            "denovo_method": denovo_method,
            "max_family_size": max_family_size,
            "workers": workers,
        }
        changes = {k: v for k, v in overrides.items() if v is not None}
        if changes:
            from dataclasses import replace

            cfg = replace(cfg, **changes)  # validated as it is built
        if shard is not None:
            _search_part(inputs, shard, cfg, cache_dir, no_cache)
            return
        with progress_bars() as progress:
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
            # a run killed while writing left its hidden temporary; this rerun owns the output
            remove_stale_temporaries(out_tsv.parent, out_tsv.name)
            write_tsv(out_tsv, rows, "families", fset.config_json)
    table = Table(title=f"{len(fset)} families, {fset.n_sequences} sequences")
    columns = ["family", "members", "alphabet", "aligned", "tree", "distance", "median", "max"]
    for col in columns:
        table.add_column(col, justify="right" if col in ("members", "median", "max") else "left")
    for row in rows[:max_rows]:
        table.add_row(
            plain(row["family"]),
            str(row["members"]),
            str(row["alphabet"]),
            str(row["aligned"]),
            str(row["tree"]),
            str(row["distance"]),
            fmt_distance(row["median_distance"]),
            fmt_distance(row["max_distance"]),
        )
    out.print(table)
    if len(rows) > max_rows:
        out.print(f"… {len(rows) - max_rows} more families (all of them are in --out)")
    for warning in fset.warnings:
        err.print(f"[yellow]warning:[/] {plain(warning)}", highlight=False, soft_wrap=True)
    if fset.from_cache:
        err.print(f"[dim]families read from the cache ({fset.cache_key})[/]")
    if out_tsv is not None:
        err.print(f"wrote {plain(out_tsv)}")


def _search_part(
    inputs: list[Path], shard: str, cfg: Any, cache_dir: Path | None, no_cache: bool
) -> None:
    """``--shard i/n``: one machine's share of the homology search, into the shared cache."""
    from phyloclr.errors import ConfigError
    from phyloclr.families.build import search_part

    i, n = parse_shard(shard)
    if no_cache or len(inputs) != 1:
        raise ConfigError("--shard needs one corpus FASTA and the cache (no --no-cache)")
    with progress_bars() as progress:
        searched = search_part(inputs[0], i, n, cfg, cache_dir=cache_dir, progress=progress)
    err.print(
        f"shard {i}/{n}: searched {searched} sequences into the cache; once every shard is "
        "done, run the same command without --shard"
    )
