"""``phyloclr search``: nearest database proteins, realignment, label transfer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from phyloclr.cli.app import (
    app,
    err,
    errors,
    plain,
    progress_bars,
)


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
    prefilter: Annotated[
        str,
        typer.Option(
            help="With --realign, which proteins are aligned: embedding (the nearest by "
            "embedding), words (the best by exact spaced-word cosine) or both."
        ),
    ] = "embedding",
    word_mix: Annotated[
        float,
        typer.Option(
            help="With --prefilter words/both and the default model: its CNN's cosine weight "
            "in the words' ranking (0: the words alone)."
        ),
    ] = 0.05,
    hubness: Annotated[
        int,
        typer.Option(
            help="Rank hits by cosine less --hubness-weight × the target's mean cosine to its K "
            "nearest database proteins (hubs demoted; costs one database self-search; 0: off; "
            "100 was best on the development sets). With --prefilter embedding."
        ),
    ] = 0,
    hubness_weight: Annotated[float, typer.Option(help="The weight of --hubness.")] = 0.5,
    hubness_keep: Annotated[
        bool,
        typer.Option(
            help="Keep the database's --hubness densities beside it (DB.h5.hubness-K.npz) and "
            "reuse them while the database file is unchanged."
        ),
    ] = True,
    method: Annotated[
        str,
        typer.Option(
            help="auto, exact, ivf (approximate: k-means cells scored exactly; large "
            "databases) or faiss (approximate: an HNSW graph)."
        ),
    ] = "auto",
    ef_search: Annotated[
        int, typer.Option(help="faiss: the graph's search breadth (more: better recall, slower).")
    ] = 256,
    ef_construction: Annotated[
        int, typer.Option(help="faiss: the graph's build breadth (more: better recall, slower).")
    ] = 40,
    hnsw_m: Annotated[int, typer.Option(help="faiss: the graph's links per row.")] = 32,
    hnsw_storage: Annotated[
        str, typer.Option(help="faiss: the rows in the graph as float16, float32 or int8.")
    ] = "float16",
    threads: Annotated[int, typer.Option(help="CPU threads (0 = torch's default).")] = 0,
) -> None:
    """Nearest database proteins of each query by embedding, or their likeliest label.

    Hits are optionally realigned (bit scores, E-values); with --labels, the label the nearest
    hits most likely share is transferred, with a calibrated reliability."""
    from phyloclr.neighbours import NeighbourConfig
    from phyloclr.search import SearchConfig, write_hits
    from phyloclr.search import search as run_search
    from phyloclr.transfer import transfer_labels, write_transfers

    with errors():
        cfg = SearchConfig(top=top, min_score=min_score, realign=realign,
                           realign_depth=realign_depth, threads=threads,
                           prefilter=prefilter, word_mix=word_mix,  # type: ignore[arg-type]
                           hubness=hubness, hubness_weight=hubness_weight,
                           hubness_keep=hubness_keep,
                           neighbours=NeighbourConfig(
                               method=method, ef_search=ef_search, hnsw_m=hnsw_m,
                               hnsw_ef_construction=ef_construction,
                               hnsw_storage=hnsw_storage))  # fmt: skip
        lab = None
        if labels is not None:
            from phyloclr.evaluate import read_labels

            lab = read_labels(labels)
        with progress_bars() as progress:
            result = run_search(queries, db, model=model, config=cfg, db_fasta=db_fasta,
                                progress=progress)  # fmt: skip
        for warning in result.warnings:
            err.print(f"[yellow]warning:[/] {plain(warning)}", highlight=False, soft_wrap=True)
        if lab is not None:
            transfers = transfer_labels(result, lab, cfg)
            write_transfers(out_tsv, transfers, cfg, result, db)
            found = sum(t.label is not None for t in transfers)
            err.print(f"wrote {plain(out_tsv)}: a label for {found} of {len(transfers)} queries")
        else:
            n = write_hits(out_tsv, result, cfg, db)
            err.print(
                f"wrote {plain(out_tsv)}: {n} hits for {len(result.query_ids)} queries "
                f"({result.method} search of {len(result.db_ids)} proteins)"
            )
