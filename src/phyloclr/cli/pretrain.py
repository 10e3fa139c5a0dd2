"""``phyloclr pretrain``: train an encoder on families
(:func:`phyloclr.train.job.pretrain_files`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from phyloclr.cli.app import (
    DenovoMethodOption,
    WorkersOption,
    app,
    err,
    errors,
    plain,
    progress_bars,
)


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


# long only by its option declarations: typer reads the options from the signature
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
    from dataclasses import replace

    from phyloclr.families.model import FamilySet
    from phyloclr.train import load_pretrain_config
    from phyloclr.train.job import pretrain_files, run_config

    with errors():
        cfg = run_config(out_dir, None if config is None else load_pretrain_config(config), resume)
        fam: dict[str, Any] = {
            "hmm_db": None if hmm_db is None else str(hmm_db),
            "label_pattern": label_pattern,
            "denovo_method": denovo_method,
            "workers": workers,
        }
        budget = None if time_budget is None else parse_duration(time_budget)
        run: dict[str, Any] = {
            "device": device,
            "alphabet": alphabet,
            "seed": seed,
            "max_steps": max_steps,
            "time_budget_s": budget,
        }
        run = {k: v for k, v in run.items() if v is not None}  # given on the command line
        if max_steps is not None and time_budget is None:  # one stopping rule given: only it
            run["time_budget_s"] = None
        if time_budget is not None and max_steps is None:
            run["max_steps"] = None
        cfg = replace(  # each replaced part is validated as it is built
            cfg,
            families=replace(cfg.families, **{k: v for k, v in fam.items() if v is not None}),
            run=replace(cfg.run, **run),
            views=cfg.views if views is None else replace(cfg.views, mode=views),  # type: ignore[arg-type]
        )
        excluded = [] if exclude_families is None else _read_ids(exclude_families)

        phase = ["families"]

        def on_families(fset: FamilySet, missing: list[str]) -> None:
            phase[0] = "training"
            bar_stack.close()  # the families' progress bars end here
            if missing:
                err.print(
                    f"[yellow]warning:[/] {len(missing)} ids in {plain(exclude_families)} match no "
                    f"family: {plain(', '.join(missing[:10]))}",
                    highlight=False,
                )
            for warning in fset.warnings:
                err.print(f"[yellow]warning:[/] {plain(warning)}", highlight=False, soft_wrap=True)
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
            stage_bars = [bar_stack.enter_context(progress_bars())]

            def progress(stage: str, done: int, total: int | None) -> None:
                if stage == "training":  # drawn by on_step's bar
                    return
                if phase == ["training"]:  # the stages after it (profiles, memory): new bars
                    phase[0] = "after"
                    bar_stack.close()
                    stage_bars[0] = bar_stack.enter_context(progress_bars())
                stage_bars[0](stage, done, total)

            job = pretrain_files(
                inputs, out_dir, cfg, trees=trees, cache_dir=cache_dir,
                exclude_families=excluded, resume=resume, progress=progress,
                on_families=on_families, on_step=on_step,
            )  # fmt: skip
        result = job.result
    memory = getattr(result.model.encoder, "memory", None)
    profiles = getattr(result.model.encoder, "profiles", None)
    held = [f"{profiles.count:,} family profile HMMs"] if profiles is not None else []
    held += [f"{memory.size:,} corpus embeddings to smooth over"] if memory is not None else []
    kept = f" (keeping {' and '.join(held)})" if held else ""
    err.print(
        f"trained {result.steps} steps in {result.elapsed_s:.0f} s (final loss "
        f"{result.final_loss:.3f}); wrote {plain(out_dir)}/model.pt{kept}, checkpoint.pt, "
        "metrics.csv"
    )
