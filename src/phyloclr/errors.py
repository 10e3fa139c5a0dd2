"""Errors that name the file and the record at fault, so the CLI can print one clear line."""

from __future__ import annotations

from os import PathLike


class PhyloclrError(Exception):
    """Base class for every error phyloclr raises on purpose."""


class InputError(PhyloclrError, ValueError):
    """Bad input: names the file and, where there is one, the record.

    ``str(err)`` is one line: ``FILE: record 'ID': message``.
    """

    def __init__(self, path: str | PathLike[str] | None, message: str, record: str | None = None):
        self.path = None if path is None else str(path)
        self.record = record
        self.message = " ".join(str(message).split())  # always a single line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if self.record is not None:
            parts.append(f"record {self.record!r}")
        parts.append(self.message)
        return ": ".join(parts)


class ConfigError(PhyloclrError, ValueError):
    """An invalid configuration value."""


class OutputError(PhyloclrError, OSError):
    """A file could not be written (full disk, quota, read-only, permissions): names the file.

    ``str(err)`` is one line: ``FILE: cannot write: reason``.
    """

    def __init__(self, path: str | PathLike[str], reason: str):
        self.path = str(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.path}: cannot write: {self.reason}"
