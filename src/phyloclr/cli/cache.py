"""``phyloclr cache``: what the family cache holds, and clearing it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from phyloclr.cli.app import app, err, errors, out, plain


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} TB"  # pragma: no cover


@app.command()
def cache(
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Cache directory (default: $PHYLOCLR_CACHE, else ~/.cache/phyloclr)."),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the entries listed (none in use by a run).")
    ] = False,
    older_than: Annotated[
        float | None,
        typer.Option(help="Only the entries not used for this many days.", min=0),
    ] = None,
) -> None:
    """The family cache's entries (built families, de novo search work): size and last use.

    `families` and `pretrain` keep what they build there, keyed by input contents and settings,
    and never remove it. With --clear the entries listed are removed (each is rebuilt when next
    needed); an entry that a run is using is skipped. Preview with --older-than alone."""
    from phyloclr.families.cache import cache_entries, clear_cache, default_cache_dir

    with errors():
        root = cache_dir if cache_dir is not None else default_cache_dir()
        if clear:
            removed, kept = clear_cache(root, older_than)
            freed = sum(e.size for e in removed)
            err.print(f"removed {len(removed)} entries ({_size(freed)}) from {plain(root)}")
            for e, why in kept:
                err.print(f"[yellow]warning:[/] {e.kind} entry {e.key} kept: {why}",
                          highlight=False)  # fmt: skip
            return
        entries = cache_entries(root, older_than)
        if not entries:
            err.print(
                f"no entries in the cache at {plain(root)}"
                + (f" unused for {older_than:g} days" if older_than is not None else "")
            )
            return
        table = Table("kind", "key", "families", "size", "last used", "inputs")
        for e in entries:
            more = f" (+{len(e.inputs) - 3})" if len(e.inputs) > 3 else ""
            shown = ", ".join(e.inputs[:3]) + more
            table.add_row(
                e.kind,
                e.key,
                "" if e.families is None else str(e.families),
                _size(e.size),
                time.strftime("%Y-%m-%d %H:%M", time.localtime(e.used)),
                plain(shown),
            )
        out.print(table)
        err.print(f"{len(entries)} entries, {_size(sum(e.size for e in entries))}, in "
                  f"{plain(root)}")  # fmt: skip
