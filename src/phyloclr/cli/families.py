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
            "workers": workers,
        }
        changes = {k: v for k, v in overrides.items() if v is not None}
        if changes:
            from dataclasses import replace

            cfg = replace(cfg, **changes)  # validated as it is built
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
            fmt_distance(row["median_distance"]),
            fmt_distance(row["max_distance"]),
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
