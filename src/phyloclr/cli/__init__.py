"""The ``phyloclr`` command line: a thin typer layer over the library (parsing, progress, exits).

One module per command; importing them registers the commands on :data:`app` in this order."""

# the commands register in the order of `phyloclr --help`
from phyloclr.cli import families  # noqa: F401

# isort: split
from phyloclr.cli import pretrain  # noqa: F401

# isort: split
from phyloclr.cli import embed  # noqa: F401

# isort: split
from phyloclr.cli import search  # noqa: F401

# isort: split
from phyloclr.cli import evaluate  # noqa: F401

# isort: split
from phyloclr.cli import cluster  # noqa: F401

# isort: split
from phyloclr.cli.app import EXIT_INPUT, app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["EXIT_INPUT", "app", "main"]
