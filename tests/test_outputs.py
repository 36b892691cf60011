"""Writing files never destroys data: what `save` (and every `-o`) refuses to replace, symbolic
links, signals and killed writers, a full disk, long names.

Signals, SIGKILL and full disks are real: a child process is paused inside the write (its
`os.write` sleeps after the first half) and killed, or runs under RLIMIT_FSIZE, or on a
256 KiB tmpfs mounted in its own user and mount namespace."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nirbridge import FileAccessError
from nirbridge.atomic import SUFFIX, writable_target
from nirbridge.io import load, save

#: builds `small()` (a few KiB on disk) and `big()` (1.4 MB of random float32 weights, as
#: large compressed) in the child processes and here
GRAPHS = textwrap.dedent('''
    import numpy as np
    from nirbridge.ir import LIF, Graph, Input, Linear, Output
    
    def graph(n, seed=0, tau=0.01):
        rng = np.random.default_rng(seed)
        f = lambda v: np.full(n, v, np.float32)
        return Graph(
            nodes={"in": Input(shape=np.array([n])), "fc": Linear(weight=rng.standard_normal((n, n)).astype(np.float32)),
                   "lif": LIF(tau=f(tau), r=f(1), v_leak=f(0), v_threshold=f(1), v_reset=f(0)), "out": Output(shape=np.array([n]))},
            edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")],
        )

    def small():
        return graph(3)

    def big():
        return graph(600, seed=1)
''')
namespace: dict = {}
exec(GRAPHS, namespace)
small, big = namespace["small"], namespace["big"]

#: saves big() to argv[1]; its os.write writes half, prints "writing" and sleeps
PAUSED_SAVE = GRAPHS + textwrap.dedent('''
    import os, signal, sys, time
    from nirbridge.io import save

    for s in (signal.SIGTERM, signal.SIGHUP):  # as in a program started from a terminal
        signal.signal(s, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    real_write = os.write

    def paused_write(fd, data):
        n = real_write(fd, data[: len(data) // 2])
        print("writing", flush=True)
        time.sleep(120)
        return n

    os.write = paused_write
    save(big(), sys.argv[1])
''')

#: saves small() to argv[1], then big() with compression argv[2] under a file size limit of
#: argv[3] bytes; prints the error and what the directory holds afterwards
LIMITED_SAVE = GRAPHS + textwrap.dedent('''
    import json, os, resource, signal, sys
    from nirbridge.io import save

    path, compression, limit = sys.argv[1], None if sys.argv[2] == "none" else sys.argv[2], int(sys.argv[3])
    save(small(), path)
    before = open(path, "rb").read()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as Python sets it: a write past the limit fails with EFBIG
    if limit:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        save(big(), path, compression=compression)
        error = None
    except Exception as exc:
        error = {"class": type(exc).__name__, "message": str(exc), "errno": getattr(exc, "errno", None)}
    print(json.dumps({
        "error": error, "listing": sorted(os.listdir(os.path.dirname(path))),
        "old_file_intact": open(path, "rb").read() == before,
    }))
''')


def run_child(tmp_path: Path, code: str, *args, prefix=(), **kwargs) -> subprocess.CompletedProcess:
    script = tmp_path / "child.py"
    script.write_text(code)
    return subprocess.run([*prefix, sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kwargs)


def start_paused_save(tmp_path: Path, target: Path) -> subprocess.Popen:
    script = tmp_path / "paused.py"
    script.write_text(PAUSED_SAVE)
    proc = subprocess.Popen([sys.executable, str(script), str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "writing":
        proc.kill()
        raise AssertionError(f"the child did not start writing: {line!r} {proc.communicate()[1]}")
    return proc


def temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(SUFFIX))


@pytest.fixture
def out_dir(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


@pytest.fixture
def existing(out_dir) -> tuple[Path, bytes]:
    path = out_dir / "net.nir"
    save(small(), path)
    return path, path.read_bytes()


# ----------------------------------------------------------------------------- what is never replaced


def make_fifo(p: Path) -> None:
    os.mkfifo(p)


def make_socket(p: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    s.close()


def make_link_to_device(p: Path) -> None:
    p.symlink_to("/dev/null")


@pytest.mark.parametrize(
    "make, message",
    [
        (Path.mkdir, "is a directory; give a file name"),
        (make_fifo, "is a FIFO, not a regular file; nirbridge replaces only regular files"),
        (make_socket, "is a socket, not a regular file; nirbridge replaces only regular files"),
        (make_link_to_device, "is a character device, not a regular file; nirbridge replaces only regular files"),
    ],
    ids=["directory", "fifo", "socket", "link-to-device"],
)
def test_save_never_replaces_what_is_not_a_regular_file(out_dir, make, message):
    path = out_dir / "net.nir"
    make(path)
    kind = stat.S_IFMT(os.lstat(path).st_mode)
    with pytest.raises(FileAccessError) as info:
        save(small(), path)
    assert str(info.value) == f"{path}: {message}"
    assert stat.S_IFMT(os.lstat(path).st_mode) == kind  # still what it was
    assert [p.name for p in out_dir.iterdir()] == ["net.nir"]


@pytest.mark.parametrize("exists", [False, True], ids=["missing", "existing-file"])
def test_a_path_ending_in_a_slash_names_a_directory(existing, exists):
    path, before = existing
    name = f"{path if exists else path.with_name('new.nir')}/"
    with pytest.raises(FileAccessError, match="names a directory \\(ends in '/'\\); give a file name"):
        save(small(), name)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["net.nir"]


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path, existing):
    """The link keeps pointing where it did; the file it points to gets the new graph, and the
    temporary file is made beside that file (so the rename stays on one file system)."""
    path, _ = existing
    links = tmp_path / "links"
    links.mkdir()
    link = links / "latest.nir"
    link.symlink_to(os.path.relpath(path, links))
    save(small_tau := small().model_copy(update={"metadata": {"run": 2}}), link)
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(path, links)
    assert load(path) == small_tau
    assert [p.name for p in links.iterdir()] == ["latest.nir"]
    assert [p.name for p in path.parent.iterdir()] == ["net.nir"]


def test_dangling_links_and_loops_are_refused(out_dir):
    dangling = out_dir / "dangling.nir"
    dangling.symlink_to("nowhere.nir")
    with pytest.raises(FileAccessError, match="is a symbolic link to 'nowhere.nir', which does not exist; not writing through it"):
        save(small(), dangling)
    loop = out_dir / "loop.nir"
    loop.symlink_to("loop.nir")
    with pytest.raises(FileAccessError, match=f"too many levels of symbolic links: {loop}"):
        save(small(), loop)
    assert sorted(p.name for p in out_dir.iterdir()) == ["dangling.nir", "loop.nir"]


def test_outputs_that_are_inputs_are_found_by_inode(existing, tmp_path):
    """Through another spelling, a hard link or a symbolic link: the same file."""
    path, _ = existing
    hard = path.with_name("hard.nir")
    os.link(path, hard)
    soft = tmp_path / "soft.nir"
    soft.symlink_to(path)
    for spelling in (str(path), f"{path.parent}/./net.nir", hard, soft):
        with pytest.raises(FileAccessError, match="is an input of this command"):
            writable_target(spelling, [path])
    assert writable_target(path.with_name("other.nir"), [path]) == str(path.with_name("other.nir"))
    assert writable_target(soft, []) == str(path)  # a link is written through


# ----------------------------------------------------------------------------- permissions (without root's override)


def unprivileged() -> list[str]:
    """A command prefix that runs a child without the power to override file permissions."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root, and setpriv (util-linux) is not there to drop the capabilities")
    return ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]


SAVE_ONE = GRAPHS + textwrap.dedent('''
    import json, sys
    from nirbridge.io import save
    try:
        save(small().model_copy(update={"metadata": {"new": 1}}), sys.argv[1])
        print(json.dumps(None))
    except Exception as exc:
        print(json.dumps({"class": type(exc).__name__, "message": str(exc)}))
''')


def test_a_file_without_write_permission_is_not_replaced(existing, tmp_path):
    path, before = existing
    path.chmod(0o444)
    proc = run_child(tmp_path, SAVE_ONE, path, prefix=unprivileged())
    assert json.loads(proc.stdout) == {"class": "FileAccessError", "message": f"permission denied: {path}"}, proc.stderr
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["net.nir"]


def test_a_directory_without_write_permission_names_the_users_path(out_dir, tmp_path):
    out_dir.chmod(0o555)
    try:
        proc = run_child(tmp_path, SAVE_ONE, out_dir / "new.nir", prefix=unprivileged())
    finally:
        out_dir.chmod(0o755)
    assert json.loads(proc.stdout) == {"class": "FileAccessError", "message": f"permission denied: {out_dir / 'new.nir'}"}, proc.stderr
    assert list(out_dir.iterdir()) == []


# ----------------------------------------------------------------------------- signals and killed writers


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_during_save_removes_the_temporary_file(tmp_path, existing, signum):
    path, before = existing
    proc = start_paused_save(tmp_path, path)
    assert len(temporaries(path.parent)) == 1  # caught in the middle of the write
    proc.send_signal(signum)
    proc.wait(timeout=60)
    assert proc.returncode == -signum, proc.stderr.read()  # the signal still ends the process
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["net.nir"]
    proc.stdout.close()
    proc.stderr.close()


def test_temporary_files_of_killed_writers_are_removed_by_the_next_save(tmp_path, existing):
    """SIGKILL cannot be caught: a killed writer leaves its temporary file, and the next save to
    the same target removes it, so the litter never grows; a living writer's file is left alone."""
    path, before = existing
    left = []
    for _ in range(3):
        proc = start_paused_save(tmp_path, path)
        proc.kill()
        proc.communicate(timeout=60)
        left.append(temporaries(path.parent))
    assert [len(names) for names in left] == [1, 1, 1] and len({names[0] for names in left}) == 3
    assert path.read_bytes() == before

    living = start_paused_save(tmp_path, path)
    mine = small().model_copy(update={"metadata": {"by": "parent"}})
    save(mine, path)
    assert len(temporaries(path.parent)) == 1  # the living writer's, still locked
    assert load(path) == mine
    living.terminate()
    living.communicate(timeout=60)
    assert [p.name for p in path.parent.iterdir()] == ["net.nir"]
    assert load(path) == mine


def test_stale_files_of_a_254_byte_name_are_recognised(tmp_path, out_dir):
    path = out_dir / ("é" * 125 + ".nir")
    assert len(os.fsencode(path.name)) == 254
    save(small(), path)
    proc = start_paused_save(tmp_path, path)
    proc.kill()
    proc.communicate(timeout=60)
    [left] = temporaries(out_dir)
    assert len(os.fsencode(left)) <= 255
    save(small(), path)
    assert [p.name for p in out_dir.iterdir()] == [path.name]


# ----------------------------------------------------------------------------- a full disk


@pytest.mark.parametrize("compression", ["none", "gzip", "lzf"])
def test_a_write_past_the_file_size_limit_ends_in_one_error(tmp_path, out_dir, compression):
    """RLIMIT_FSIZE makes the kernel refuse the write (EFBIG), as a full disk does (ENOSPC).
    HDF5 writing the file itself died here with SIGSEGV (compressed) or raised its own text."""
    path = out_dir / "net.nir"
    proc = run_child(tmp_path, LIMITED_SAVE, path, compression, 200_000)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["error"] == {"class": "FileAccessError", "message": f"file too large: {path}", "errno": errno.EFBIG}
    assert result["listing"] == ["net.nir"] and result["old_file_intact"]


@pytest.mark.parametrize("compression", ["none", "gzip", "lzf"])
def test_a_full_file_system_ends_in_one_error(tmp_path, compression):
    """A 256 KiB tmpfs, mounted in the child's own user and mount namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    mount = tmp_path / "small"
    mount.mkdir()
    path = mount / "net.nir"
    shell = 'mount -t tmpfs -o size=256k tmpfs "$1" || exit 97; shift; exec "$@"'
    proc = run_child(tmp_path, LIMITED_SAVE, path, compression, 0,
                     prefix=["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", shell, "sh", str(mount)])
    if proc.returncode == 97 or (proc.returncode != 0 and proc.stderr.startswith("unshare:")):
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["error"] == {"class": "FileAccessError", "message": f"no space left on device: {path}", "errno": errno.ENOSPC}
    assert result["listing"] == ["net.nir"] and result["old_file_intact"]


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EDQUOT, "Disk quota exceeded"),
                                     KeyboardInterrupt()], ids=["ENOSPC", "EDQUOT", "KeyboardInterrupt"])
@pytest.mark.parametrize("compression", [None, "gzip"])
def test_a_write_failing_half_way_keeps_the_old_file(existing, monkeypatch, failure, compression):
    path, before = existing
    real_write, written = os.write, []

    def failing(fd, data):
        if written:
            raise failure
        written.append(real_write(fd, data[:1000]))
        return written[-1]

    monkeypatch.setattr(os, "write", failing)
    with pytest.raises(FileAccessError if isinstance(failure, OSError) else KeyboardInterrupt) as info:
        save(big(), path, compression=compression)
    monkeypatch.undo()
    assert written == [1000]  # it failed after the first piece was on disk
    if isinstance(failure, OSError):
        assert str(info.value) == f"{os.strerror(failure.errno).lower()}: {path}"
        assert info.value.file == str(path) and info.value.errno == failure.errno
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["net.nir"]


# ----------------------------------------------------------------------------- names


def test_a_254_byte_utf8_name_works(out_dir):
    """File names are limited to 255 bytes, not characters: 125 two-byte characters + '.nir'."""
    path = out_dir / ("é" * 125 + ".nir")
    assert len(os.fsencode(path.name)) == 254
    save(small(), path)
    save(big(), path)  # replacing it too
    assert load(path) == big()
    assert [p.name for p in out_dir.iterdir()] == [path.name]


def test_the_new_file_is_complete_and_synced(existing, monkeypatch):
    """Every byte reaches the file even when the OS writes less than asked each time."""
    path, _ = existing
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:4093]))
    save(big(), path)
    monkeypatch.undo()
    assert load(path) == big()


LIMITED_RECORDING = textwrap.dedent('''
    import json, os, resource, sys
    import nir, numpy as np
    from nirbridge.recording import save_recording

    path = sys.argv[1]
    data = nir.NIRGraphData({"lif": nir.NIRNodeData({"v": nir.TimeGriddedData(
        np.random.default_rng(0).standard_normal((4, 200, 500)).astype(np.float32), 1e-4)})})
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    try:
        save_recording(data, path, compression="gzip")
        error = None
    except Exception as exc:
        error = [type(exc).__name__, str(exc)]
    print(json.dumps({"error": error, "listing": sorted(os.listdir(os.path.dirname(path)))}))
''')


def test_a_compressed_recording_past_the_file_size_limit_ends_in_one_error(tmp_path, out_dir):
    """Recordings (NIR's data format) are written the same way: HDF5 writing the file itself
    died here with SIGSEGV and left its temporary file."""
    path = out_dir / "run.h5"
    proc = run_child(tmp_path, LIMITED_RECORDING, path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == {"error": ["FileAccessError", f"file too large: {path}"], "listing": []}
