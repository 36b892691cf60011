"""Output files: where nirbridge may write, and atomic replacement.

`writable_target(path, inputs)` says which file a write to `path` replaces, or refuses with a
`FileAccessError` before anything is written:

- a path ending in '/' names a directory, and an existing directory, FIFO, device or socket is
  not a file to replace: refused;
- a symbolic link is followed: the regular file it points to gets the new content and the link
  stays a link (a link to nothing, or a loop of links, is refused);
- an existing file the user may not write (its permissions) is refused, as a plain write would be;
- a file that is one of `inputs` (same device and inode, whatever path or link reaches it) is
  refused: a command never writes over what it reads.

`replacing(path)` writes through a temporary file beside that target, fsyncs it and renames it
into place, so the target holds the old bytes or the new ones, never a mix. On any exception,
and on SIGTERM, SIGHUP or SIGINT, the temporary file is removed first (the signal then takes
its usual effect). SIGKILL cannot be caught: it may leave one temporary file,
`.<name>.<12 hex digits>.nirbridge-partial`; the writer holds a lock on it while it lives (an
open-file-description lock, Linux: it does not stand in the way of HDF5's own flock), and the
next write to the same place removes every such file whose lock is free. Failures of the
operating system (no space left, permission, read-only file system) become one
`FileAccessError` naming the user's path, never the temporary name.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import stat
import struct
import threading
from collections.abc import Iterable, Iterator

from .errors import FileAccessError

try:
    from fcntl import F_OFD_SETLK, F_OFD_SETLKW, F_RDLCK, F_WRLCK, fcntl
except ImportError:  # no open-file-description locks (not Linux): temporary files left by a killed writer stay
    fcntl = None

SUFFIX = ".nirbridge-partial"
NAME_MAX = 255  # bytes in one file name (Linux, macOS)
_TOKEN = 12  # hex digits
_SIGNALS = tuple(getattr(signal, s) for s in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, s))
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def os_error(exc: OSError, path: str | os.PathLike) -> FileAccessError:
    """`exc` as one line naming the user's `path`: 'no space left on device: out.nir'."""
    reason = os.strerror(exc.errno) if exc.errno else "input/output failed"  # never the text (it may name the temporary file)
    error = FileAccessError(f"{reason[:1].lower()}{reason[1:]}: {os.fspath(path)}")
    error.file, error.errno = os.fspath(path), exc.errno
    return error


def writable_target(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = ()) -> str:
    """The absolute path of the regular file that a write to `path` replaces (or creates);
    raises `FileAccessError` for every output refused (see the module docstring)."""
    given = os.fspath(path)

    def refuse(message: str) -> FileAccessError:
        return FileAccessError(message, file=given)

    if not given:
        raise FileAccessError("the output path is empty")
    if given.endswith(("/", os.sep)):
        raise refuse("names a directory (ends in '/'); give a file name")
    try:
        st = os.stat(given)  # follows links
    except FileNotFoundError:
        st = None
    except OSError as exc:  # a loop of links, a file used as a directory, no search permission
        raise os_error(exc, given) from None
    if st is None:
        if os.path.islink(given):
            raise refuse(f"is a symbolic link to {os.readlink(given)!r}, which does not exist; not writing through it")
        directory = os.path.realpath(os.path.dirname(os.path.abspath(given)))
        if not os.path.isdir(directory):
            raise refuse(f"directory {os.path.dirname(given) or '.'!r} does not exist")
        return os.path.join(directory, os.path.basename(given))
    if stat.S_ISDIR(st.st_mode):
        raise refuse("is a directory; give a file name")
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise refuse(f"is {kind}, not a regular file; nirbridge replaces only regular files")
    for source in inputs:
        if source is None:
            continue
        with contextlib.suppress(OSError):
            if os.path.samestat(st, os.stat(source)):
                same = "" if os.fspath(source) == given else f" ({os.fspath(source)})"
                raise refuse(f"is an input of this command{same}; write the output to another file")
    if not os.access(given, os.W_OK):
        raise os_error(PermissionError(13, os.strerror(13)), given)
    return os.path.realpath(given)


@contextlib.contextmanager
def replacing(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = ()) -> Iterator[str]:
    """Yield a temporary path beside the file `path` names; when the block succeeds, fsync it
    and rename it over that file, else delete it. The new file keeps an existing file's
    permissions, else gets 0o666 less the umask. See the module docstring for what is refused."""
    given = os.fspath(path)
    target = writable_target(given, inputs)
    directory, base = os.path.split(target)
    prefix = _prefix(base)
    _remove_stale(directory, prefix)
    with _signals_raise():
        try:
            fd, tmp = _create(directory, prefix)
        except OSError as exc:
            raise os_error(exc, given) from None
        try:
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(fd, stat.S_IMODE(os.stat(target).st_mode))
            yield tmp
            os.fsync(fd)
            os.replace(tmp, target)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise os_error(exc, given) from None
            raise
        finally:
            os.close(fd)  # releases the lock
    with contextlib.suppress(OSError):  # make the rename durable where directories can be fsynced
        _fsync(directory)


def write_bytes(path: str | os.PathLike, data, *, inputs: Iterable[str | os.PathLike | None] = ()) -> None:
    """Replace the file `path` names with `data` (bytes-like) atomically, every write checked."""
    view = memoryview(data).cast("B")
    with replacing(path, inputs=inputs) as tmp:
        fd = os.open(tmp, os.O_WRONLY)
        try:
            while view:
                view = view[os.write(fd, view[: 1 << 30]) :]
        finally:
            os.close(fd)


# ----------------------------------------------------------------------------- temporary files


def _prefix(base: str) -> str:
    """`base` shortened (whole characters) so that `.<prefix>.<token><SUFFIX>` fits in
    NAME_MAX bytes: file names are limited in bytes, and UTF-8 takes up to 4 per character."""
    room = NAME_MAX - 2 - _TOKEN - len(SUFFIX)
    while len(os.fsencode(base)) > room:
        base = base[:-1]
    return base


def _lock(fd: int, kind: int, command: int) -> None:
    """An open-file-description lock on the whole file (`struct flock`: type, whence, start,
    length 0 = to the end, pid 0); released when the descriptor closes or the process dies."""
    fcntl(fd, command, struct.pack("hhqqi4x", kind, os.SEEK_SET, 0, 0, 0))


def _create(directory: str, prefix: str) -> tuple[int, str]:
    """A new temporary file, open and write-locked for as long as this process holds it."""
    while True:
        tmp = os.path.join(directory, f".{prefix}.{secrets.token_hex(_TOKEN // 2)}{SUFFIX}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        if fcntl is None:
            return fd, tmp
        try:
            _lock(fd, F_WRLCK, F_OFD_SETLKW)  # waits while another save checks whether it is stale
        except OSError:  # no such locks here: no one can tell it is stale, so no one removes it
            return fd, tmp
        try:
            if os.path.samestat(os.fstat(fd), os.lstat(tmp)):
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)  # removed as stale between its creation and the lock: take another name


def _remove_stale(directory: str, prefix: str) -> None:
    """Remove the temporary files of writes to this target whose writer is gone (no lock on it)."""
    if fcntl is None:
        return
    head = f".{prefix}."
    try:
        names = [e.name for e in os.scandir(directory) if e.name.startswith(head) and e.name.endswith(SUFFIX)]
    except OSError:
        return
    for name in names:
        token = name[len(head) : -len(SUFFIX)]
        if len(token) != _TOKEN or token.strip("0123456789abcdef"):
            continue
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            _lock(fd, F_RDLCK, F_OFD_SETLK)  # refused while its writer holds the write lock
            if os.path.samestat(os.fstat(fd), os.lstat(path)):
                os.unlink(path)
        except OSError:  # locked (its writer is alive), or no such locks here
            pass
        finally:
            os.close(fd)


class _Signalled(BaseException):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise(signum, frame):
    raise _Signalled(signum)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """While the block runs, SIGTERM, SIGHUP and SIGINT, where they would end the process
    outright (their default action), raise instead, so that cleanup runs; afterwards the
    signal is sent again with its default action. Handlers the program set are left alone.
    Python handles signals in the main thread only; elsewhere this changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in _SIGNALS if signal.getsignal(s) == signal.SIG_DFL}
    try:
        yield
    except _Signalled as exc:
        for s, handler in previous.items():
            signal.signal(s, handler)
        previous = {}
        os.kill(os.getpid(), exc.signum)
        raise SystemExit(128 + exc.signum) from None  # reached only if the signal is blocked
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
