"""``phyloclr embed`` and ``phyloclr merge``: embeddings of a FASTA file into HDF5, and
merging shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from phyloclr.cli.app import (
    app,
    err,
    errors,
    parse_shard,
    plain,
    progress_bars,
)


@app.command()
def embed(
    fasta: Annotated[Path, typer.Argument(help="FASTA file (plain or gzipped).")],
    out_h5: Annotated[Path, typer.Option("--out", help="HDF5 file to write.")],
    model: Annotated[
        Path | None,
        typer.Option(
            help="Run directory, model.pt, or a shipped model: default (CNN + k-mer sketch) or "
            "sketch (the sketch alone, 8x faster)."
        ),
    ] = None,
    batch_tokens: Annotated[int, typer.Option(help="Residues per batch (padded).")] = 32768,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[str, typer.Option(help="How embeddings are stored: float32 or float16.")] = (
        "float32"
    ),
    precision: Annotated[
        str,
        typer.Option(
            help="How residue CNNs compute: float32, bfloat16, or auto (bfloat16 where the CPU "
            "or GPU has it natively; 1.4-1.6x faster on such a CPU, the same mAP)."
        ),
    ] = "float32",
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
    no_memory: Annotated[
        bool,
        typer.Option(
            "--no-memory",
            help="Leave out the smoothing over the model's corpus embeddings (a pretrained "
            "model's neighbour memory).",
        ),
    ] = False,
) -> None:
    """Write embeddings of every sequence in FASTA to one HDF5 file, in input order.

    Under torchrun each rank embeds its shard and rank 0 merges them into --out."""
    from phyloclr.embed import EmbedConfig, embed_fasta_torchrun

    with errors():
        index, count = parse_shard(shard)
        cfg = EmbedConfig(batch_tokens=batch_tokens, device=device, dtype=dtype,  # type: ignore[arg-type]
                          precision=precision,  # type: ignore[arg-type]
                          per_residue=per_residue, dedupe=dedupe, threads=threads,
                          shard_index=index, shard_count=count, part_size=part_size,
                          memory=not no_memory)  # fmt: skip
        with progress_bars() as progress:
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
        f"wrote {result.n_sequences} embeddings to {plain(result.out)} in {result.elapsed_s:.1f} s"
        f"{extra}"
    )


@app.command()
def merge(
    shards: Annotated[list[Path], typer.Argument(help="The files of embed --shard i/n, all i.")],
    out_h5: Annotated[Path, typer.Option("--out", help="Merged HDF5 file to write.")],
) -> None:
    """Merge the shard files of `phyloclr embed --shard i/n` into one file, in input order."""
    from phyloclr.embed import merge_shards

    with errors():
        n = merge_shards(shards, out_h5)
    err.print(f"wrote {n} embeddings to {plain(out_h5)}")
