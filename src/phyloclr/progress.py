"""The progress callback every long job takes: ``progress(stage, done, total)``.

``total`` is None when unknown. The library never prints; the CLI draws these as rich
progress bars.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int | None], None]
