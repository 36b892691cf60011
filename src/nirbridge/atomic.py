"""Atomic file replacement: write beside the target, fsync, rename into place."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside `path`; when the block succeeds, fsync it and rename it
    over `path`, else delete it, so `path` holds the old bytes or the new ones, never a mix.
    The new file keeps an existing file's permissions, else gets 0o666 less the umask."""
    target = os.path.abspath(os.fspath(path))
    directory, base = os.path.split(target)
    tmp = os.path.join(directory, f".{base[:200]}.{secrets.token_hex(6)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
    try:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where directories can be fsynced
        _fsync(directory)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
