"""``phyloclr evaluate``: scores of an embedding file against labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from phyloclr.cli.app import (
    app,
    err,
    errors,
    out,
    plain,
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

    from phyloclr.evaluate import evaluate_file

    with errors():
        job = evaluate_file(embeddings, labels, plot=plot, seed=seed)
    result, method = job.result, job.plot_method
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
            err.print(f"[yellow]warning:[/] {len(names)} {kind}: {plain(shown)}", highlight=False)
    if json_out is not None:
        with errors():
            job.write_json(json_out)
    if plot is not None:
        err.print(f"wrote {plain(plot)} ({method})")
