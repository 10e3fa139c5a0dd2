"""The typer app, its consoles, and what every command shares: library errors turned into one
red line and an exit code, progress bars fed by the library's callbacks, shared options."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from phyloclr import __version__
from phyloclr.errors import PhyloclrError

app = typer.Typer(
    name="phyloclr",
    help="Contrastive embeddings of biological sequences with evolution as the augmentation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # a docstring's paragraphs reflowed to the terminal
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


def plain(value: object) -> str:
    """``value`` as text that rich prints as it is: file names, ids and messages may hold
    square brackets, which rich markup would take for style tags and drop."""
    return escape(str(value))


@contextmanager
def errors() -> Iterator[None]:
    """Turn library errors into one red line and a non-zero exit code."""
    try:
        yield
    except PhyloclrError as exc:
        err.print(f"[bold red]error:[/] {plain(exc)}", highlight=False, soft_wrap=True)
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
        err.print(f"[bold red]error:[/] {plain(failure)}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INPUT) from None


@contextmanager
def progress_bars() -> Iterator[Callable[[str, int, int | None], None]]:
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
            tasks[stage] = bars.add_task(plain(stage), total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update


def fmt_distance(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    return str(value)


#: options shared by `families` and `pretrain` (de novo corpus families)
DenovoMethodOption = Annotated[
    str | None,
    typer.Option(
        help="De novo corpus families: 'prefilter' (fast, proteins), 'mmseqs' (MMseqs2 "
        "all against all, more sensitive), 'mmseqs-cluster' (its cascaded clustering), "
        "'mmseqs-linclust' (linear time, close homologs) or 'phmmer'."
    ),
]


WorkersOption = Annotated[
    int | None, typer.Option(help="Processes for the de novo homology search (0 = all).")
]


def parse_shard(text: str | None, option: str = "--shard") -> tuple[int, int]:
    """'i/n' (0 ≤ i < n) as (i, n); (0, 1) for None; a BadParameter naming ``option`` else."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise typer.BadParameter(f"{option} takes i/n, e.g. 0/4, not {text!r}") from None
    if not 0 <= i < n:
        raise typer.BadParameter(f"{option} {text}: i must lie in 0..n-1")
    return i, n
