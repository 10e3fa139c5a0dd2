"""The ``phyloclr`` command line: a thin typer layer over the library (parsing, progress, exits).

One module per command; importing them registers the commands on :data:`app` in this order."""

import contextlib
import logging
import os
import sys
import traceback

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
from phyloclr.cli import cache  # noqa: F401

# isort: split
from phyloclr.cli.app import EXIT_INPUT, app


def main() -> None:
    """Console-script entry point. A process that torchrun launched (WORLD_SIZE > 1) ends with
    ``os._exit`` once the command has returned and every stream is flushed: its outputs are
    closed by then, and neither destroying the process group nor interpreter finalization gets to
    tear gloo's C++ threads down, which aborted finished runs (SIGABRT, "terminate called
    without an active exception", rank 1 of two-node runs)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        app()
        return
    from phyloclr.train import distributed

    distributed.ends_with_os_exit()
    code = 1
    try:
        app()
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # an uncaught error still prints its traceback, then exits 1
        traceback.print_exc()
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to say
                stream.flush()
        os._exit(code)


def _exit_code(code: object) -> int:
    """The process exit status ``sys.exit(code)`` would give."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


__all__ = ["EXIT_INPUT", "app", "main"]
