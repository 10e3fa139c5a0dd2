"""File-system helpers shared by the writers."""

from __future__ import annotations

import errno
import glob
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from phyloclr.errors import OutputError, PhyloclrError

#: below this many free bytes a write failure without an errno is put down to a full disk
LOW_SPACE = 1 << 20


def umask_mode(path: str | os.PathLike[str]) -> None:
    """Give a file made by ``tempfile.mkstemp`` (mode 0600) the usual 0666 & ~umask mode."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(Path(path), 0o666 & ~mask)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``path``; when the block ends well it gets the usual
    file mode and is renamed over ``path``, otherwise it is removed. A reader (or a crash) never
    sees a half-written ``path``. The temporary's name holds this host and process
    (``.NAME.HOST.PID.XXXXXXXX.tmp``), so the next write of ``path`` removes what a killed
    process on this host left (its PID no longer runs); other hosts' and live processes'
    temporaries are left alone."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(final)
    prefix = f".{final.name}.{_owner_tag()}."
    if len(prefix.encode()) > 240:  # a long name: the old form still fits in 255 bytes
        prefix = f".{final.name}."
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask_mode(tmp)
        os.replace(tmp, final)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        failure = write_failure(exc, final)
        if failure is not None:
            raise failure from exc
        raise


def _host() -> str:
    return socket.gethostname().replace(".", "-") or "host"


def _owner_tag() -> str:
    """``HOST.PID`` of this process, as its temporaries' names carry it."""
    return f"{_host()}.{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_orphans(final: Path) -> None:
    """Remove the temporaries of ``final`` whose process, on this host, no longer runs."""
    head = f".{final.name}.{_host()}."
    for tmp in final.parent.glob(glob.escape(head) + "*.tmp"):
        parts = tmp.name[len(head) :].split(".")  # PID, mkstemp's random part, 'tmp'
        if len(parts) == 3 and parts[0].isdigit() and not _alive(int(parts[0])):
            tmp.unlink(missing_ok=True)


def remove_stale_temporaries(directory: str | os.PathLike[str], name: str = "") -> int:
    """Remove the hidden temporaries :func:`atomic_path` left in ``directory`` (for the file
    ``name`` only, when given) when its process was killed; returns how many. Call it only on
    a directory this process owns (an output being resumed)."""
    d = Path(directory)
    if not d.is_dir():
        return 0
    gone = 0
    for tmp in d.glob(f".{name or ''}*.tmp"):
        if name and not tmp.name.startswith(f".{name}."):
            continue
        tmp.unlink(missing_ok=True)
        gone += 1
    return gone


def require_space(path: str | os.PathLike[str], nbytes: int) -> None:
    """Raise OutputError naming ``path`` unless its file system has room for ``nbytes`` more
    (with a 10 % + 1 MiB margin). Writers whose libraries cannot recover from a full disk
    mid-write (HDF5 keeps a file it failed to flush open) check first."""
    p = Path(path)
    try:
        free = shutil.disk_usage(p.parent if p.parent.exists() else Path.cwd()).free
    except OSError:
        return
    need = int(nbytes * 1.1) + LOW_SPACE
    if free < need:
        raise OutputError(
            p, f"{os.strerror(errno.ENOSPC)} (needs about {need >> 20} MiB, {free >> 20} MiB free)"
        )


def write_failure(exc: BaseException, path: str | os.PathLike[str]) -> OutputError | None:
    """An OutputError naming ``path`` when ``exc`` is a failed write (full disk, quota, file
    size limit, read-only or forbidden target), else None. Writers that report a full disk
    without an errno (torch's zip writer, HDF5) are recognised by the free space left."""
    if isinstance(exc, PhyloclrError) or not isinstance(exc, (OSError, RuntimeError)):
        return None
    code = getattr(exc, "errno", None)
    if code is not None and code in WRITE_ERRNOS:
        return OutputError(path, os.strerror(code))
    if code is None and "write" in str(exc).lower():
        try:
            free = shutil.disk_usage(Path(path).parent).free
        except OSError:
            free = None
        if free is not None and free < LOW_SPACE:
            return OutputError(path, os.strerror(errno.ENOSPC))
        return OutputError(path, (str(exc).splitlines() or [type(exc).__name__])[0][:200])
    return None


WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
)


@contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[int]:
    """Hold an exclusive advisory lock (``flock``) on ``path`` (created if missing) for the
    block; another process asking for it waits. The kernel drops the lock when every holder of
    the yielded file descriptor has exited, so a killed run never leaves a stale lock; child
    processes given the descriptor (``pass_fds``) hold it as long as they run."""
    with _flock(path, wait=True) as fd:
        assert fd is not None
        yield fd


@contextmanager
def try_file_lock(path: str | os.PathLike[str]) -> Iterator[bool]:
    """As :func:`file_lock`, without waiting: yields whether the lock was free (and is now
    held for the block) or another process holds it."""
    with _flock(path, wait=False) as fd:
        yield fd is not None


@contextmanager
def _flock(path: str | os.PathLike[str], wait: bool) -> Iterator[int | None]:
    """The exclusive ``flock`` on ``path`` (created if missing) for the block: its file
    descriptor, or None when ``wait`` is off and another process holds it."""
    import fcntl

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        try:
            yield fh.fileno()
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
