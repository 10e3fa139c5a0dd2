"""``phyloclr cluster``: unsupervised clustering of DNA (:func:`phyloclr.cluster.cluster_file`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from phyloclr.cli.app import (
    app,
    err,
    errors,
    out,
    plain,
    progress_bars,
)


# long only by its option declarations: typer reads the options from the signature
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
        typer.Option(
            help="Strong view drawn from at least this many nearest relatives (K given: about "
            "half an expected cluster, up to neighbours_max; 0: mutation-only views). [5]"
        ),
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
    """Cluster DNA sequences without labels (Twin Contrastive Learning; experimental).

    TCL heads and plain k-mer k-means partitions are ranked without labels. Over 15 labelled
    sets, three seeds: mean accuracy 0.913 against 0.847 for 6-mer k-means, below it on 1 set
    (18S genera, by 0.012) (benchmarks/RESULTS.md)."""
    from phyloclr.cluster import cluster_file, load_cluster_config

    with errors():
        given = {"n_clusters": n_clusters, "max_clusters": max_clusters, "input": input_kind,
                 "k": k, "fcgr_channels": fcgr_channels, "runs": runs, "heads": heads,
                 "kmeans": kmeans, "vote": vote, "neighbours": neighbours, "steps": steps,
                 "relatives": relatives,
                 "tree": None if tree is None else str(tree),
                 "msa": None if msa is None else str(msa), "batch_size": batch_size,
                 "device": device, "seed": seed, "threads": threads, "refine": refine,
                 "rank_refined": rank_refined, "orient": orient, "select": select}  # fmt: skip
        cfg = load_cluster_config(config, {k: v for k, v in given.items() if v is not None})
        with progress_bars() as progress:
            job = cluster_file(fasta, out_dir, cfg, labels, embeddings, progress)
    result, counts = job.result, job.counts
    out.print(
        f"{len(result.ids)} sequences → {result.n_clusters} clusters "
        f"(sizes {result.summary['cluster_sizes']}) in {result.summary['seconds']:.0f} s"
    )
    if job.scores is not None:
        s = job.scores
        out.print(f"ACC {s['acc']:.4f}  NMI {s['nmi']:.4f}  ARI {s['ari']:.4f}")
    if counts["ambiguous_bases"]:
        err.print(
            f"[yellow]note:[/] {counts['ambiguous_bases']} ambiguous bases (N, IUPAC) skipped"
        )
    if result.summary["k_chosen"]:
        err.print(
            f"[yellow]note:[/] K = {result.n_clusters} was chosen: the smallest K in "
            f"2..{cfg.max_clusters} "
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
    err.print(f"wrote {plain(out_dir)}/clusters.tsv and summary.json")
