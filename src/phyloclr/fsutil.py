"""File-system helpers shared by the writers."""

from __future__ import annotations

import os
from pathlib import Path


def umask_mode(path: str | os.PathLike[str]) -> None:
    """Give a file made by ``tempfile.mkstemp`` (mode 0600) the usual 0666 & ~umask mode."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(Path(path), 0o666 & ~mask)
