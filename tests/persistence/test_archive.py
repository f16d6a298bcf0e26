"""sk_dim.persistence.archive: the zip file, written atomically, read with caps."""

import io
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import zipfile

import pytest
import torch

from sk_dim.persistence import load, save
from sk_dim.persistence.archive import _tmp_prefix

pytestmark = pytest.mark.filterwarnings("ignore:n_negatives=:UserWarning")


def test_saved_file_permissions_follow_the_umask(saved, tmp_path):
    (tmp_path / "plain").write_bytes(b"")
    assert saved.stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_format_1_files_are_refused(saved, zips):
    # Format 1 (weights pickled in weights.pt) was never released: only format 2 is read,
    # and the pickle is never unpickled.
    metadata = json.loads(zips.entries(saved)["metadata.json"])
    del metadata["written_by"]
    metadata["format_version"] = 1
    buffer = io.BytesIO()
    torch.save({**zips.weights(saved), "x": Boom()}, buffer)
    old = {"metadata.json": json.dumps(metadata), "weights.pt": buffer.getvalue()}
    with pytest.raises(ValueError, match=r"format 'sk_dim' version 1 .*reads 'sk_dim' version 2"):
        load(zips.rewrite(old))
    assert EXPLODED == [], "loading must never run code from the file"


def test_interrupted_save_leaves_no_file(fitted, saved, tmp_path, monkeypatch):
    before = saved.read_bytes()
    calls = []

    def failing_writestr(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) % 2 == 0:  # the second entry of each file
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    original = zipfile.ZipFile.writestr
    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    with pytest.raises(OSError, match="disk full"):
        save(fitted, saved)
    with pytest.raises(OSError, match="disk full"):
        save(fitted, tmp_path / "new.skdim")
    assert os.listdir(tmp_path) == ["dim.skdim"]  # no temporary file, no half file
    assert saved.read_bytes() == before


EXPLODED = []


class Boom:
    def __reduce__(self):
        return (EXPLODED.append, ("code ran",))


def test_damaged_zip_files_are_refused(saved, tmp_path):
    data = saved.read_bytes()
    (tmp_path / "truncated").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a file written by sk_dim"):
        load(tmp_path / "truncated")
    # A flipped byte inside the deflated metadata: zlib.error or a CRC error.
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo("metadata.json")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for offset in (start + 5, start + info.compress_size // 2):
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        (tmp_path / "flipped").write_bytes(bytes(flipped))
        with pytest.raises(ValueError, match="metadata.json is damaged"):
            load(tmp_path / "flipped")


def test_size_caps(saved, zips):
    entries = zips.entries(saved)
    # 20 MB of spaces deflate to ~20 KB: the declared size is refused before reading.
    padded = entries["metadata.json"] + b" " * (20 << 20)
    with pytest.raises(ValueError, match="metadata.json is 2.* bytes, more than"):
        load(zips.rewrite({**entries, "metadata.json": padded}))
    # Empty JSON objects cost 3 bytes each in the file, ~70 bytes each in memory.
    bomb = json.loads(entries["metadata.json"])
    bomb["history"] = [{}] * (1 << 20)
    with pytest.raises(ValueError, match="more than 1048576 JSON objects"):
        load(zips.rewrite({**entries, "metadata.json": json.dumps(bomb)}))
    deep = json.loads(entries["metadata.json"])
    deep["params"]["lr"] = "DEEP"
    deep = json.dumps(deep).replace('"DEEP"', "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply|not valid JSON"):
        load(zips.rewrite({**entries, "metadata.json": deep}))
    # Weights that deflate too well (a zip bomb) are refused before reading.
    zeros = bytes(32 << 20)
    with pytest.raises(ValueError, match="weights.safetensors claims 33554432 bytes from"):
        load(zips.rewrite({**entries, "weights.safetensors": zeros}))


def _is_save(path):
    with zipfile.ZipFile(path) as archive:
        return sorted(archive.namelist()) == ["metadata.json", "weights.safetensors"]


def _temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def _orphan(folder, target, pid, host_tag=None):
    """A temporary file named as save() names them, as if left by process ``pid``."""
    prefix = _tmp_prefix(target)
    if host_tag is not None:
        prefix = re.sub(r"\.[0-9a-f]{8}\.$", f".{host_tag}.", prefix)
    path = folder / f"{prefix}{pid}.0badcafe.tmp"
    path.write_bytes(b"half a zip")
    return path


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _in_thread(function, timeout=30):
    """Run ``function()`` in a thread for up to ``timeout`` s: the thread, and its exception."""
    outcome = {}

    def run():
        try:
            function()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return thread, outcome.get("error")


def test_save_refuses_empty_and_folder_paths(dim, tmp_path):
    with pytest.raises(ValueError, match="save\\(\\): path is empty"):
        save(dim, "")
    with pytest.raises(ValueError, match=f"path '{re.escape(str(tmp_path))}' is a directory"):
        save(dim, tmp_path)
    with pytest.raises(ValueError, match="names a folder"):
        save(dim, f"{tmp_path / 'new'}{os.sep}")
    assert os.listdir(tmp_path) == []


def test_save_refuses_paths_that_are_not_regular_files(dim, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="'.*fifo' is a FIFO \\(named pipe\\), not a regular"):
        save(dim, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)

    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock"))
        with pytest.raises(ValueError, match="is a socket"):
            save(dim, tmp_path / "sock")
        assert stat.S_ISSOCK(os.lstat(tmp_path / "sock").st_mode)

    # A symlink to a device is followed, then refused: /dev/null stays a device (and so
    # does the link: the test replaces neither, even run as root on broken code).
    null = tmp_path / "null"
    null.symlink_to(os.devnull)
    with pytest.raises(
        ValueError, match=r"null' \(which resolves to '/dev/null'\) is a character device"
    ):
        save(dim, null)
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode) and null.is_symlink()
    assert _temporaries(tmp_path) == []


def test_save_follows_symlinks(dim, tmp_path, digits):
    target = tmp_path / "models" / "dim.skdim"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "latest.skdim"
    link.symlink_to(target)
    save(dim, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert _is_save(target)
    assert (load(link).transform(digits) == dim.transform(digits)).all()
    # A dangling link: its target is created.
    dangling = tmp_path / "dangling.skdim"
    dangling.symlink_to(tmp_path / "models" / "new.skdim")
    save(dim, dangling)
    assert dangling.is_symlink() and _is_save(tmp_path / "models" / "new.skdim")


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604])
def test_save_keeps_an_existing_files_permissions(dim, tmp_path, mode):
    path = tmp_path / "dim.skdim"
    path.write_bytes(b"old")
    path.chmod(mode)
    save(dim, path)
    assert stat.S_IMODE(path.stat().st_mode) == mode and _is_save(path)
    # Through a symlink, those of the file it points to.
    link = tmp_path / "link.skdim"
    link.symlink_to(path)
    save(dim, link)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_new_files_follow_the_umask(dim, tmp_path):
    old = os.umask(0o027)
    try:
        save(dim, tmp_path / "dim.skdim")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "dim.skdim").stat().st_mode) == 0o640


def test_save_syncs_the_file_before_the_rename(dim, tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd):
        kind = "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        size = os.fstat(fd).st_size
        events.append(("fsync", kind, size))
        fsync(fd)

    def recording_replace(src, dst):
        events.append(("replace", os.path.basename(dst), os.path.getsize(src)))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    save(dim, tmp_path / "dim.skdim")
    size = (tmp_path / "dim.skdim").stat().st_size
    assert [event[:2] for event in events] == [
        ("fsync", "file"),
        ("replace", "dim.skdim"),
        ("fsync", "folder"),
    ]
    # The whole file, flushed, is on disk before it takes the name; then the rename is.
    assert events[0][2] == events[1][2] == size


def test_failed_save_names_the_target_not_a_temporary(dim, tmp_path):
    missing = tmp_path / "no-such-folder" / "dim.skdim"
    with pytest.raises(FileNotFoundError, match=re.escape(repr(str(missing)))) as info:
        save(dim, missing)
    assert ".tmp" not in str(info.value)


def test_temporaries_are_named_after_the_target_and_the_process(dim, tmp_path, monkeypatch):
    seen = []
    replace = os.replace

    def recording_replace(src, dst):
        seen.append(os.path.basename(src))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    save(dim, tmp_path / "dim.skdim")
    (name,) = seen
    assert re.fullmatch(
        rf"\.dim\.skdim\.sk_dim-save\.[0-9a-f]{{8}}\.{os.getpid()}\.[0-9a-f]+\.tmp", name
    )


def test_save_removes_orphans_of_dead_processes_only(dim, tmp_path):
    dead = _dead_pid()
    orphan = _orphan(tmp_path, "dim.skdim", dead)
    mine = _orphan(tmp_path, "dim.skdim", os.getpid())  # e.g. another thread's save
    other_target = _orphan(tmp_path, "other.skdim", dead)
    other_host = _orphan(tmp_path, "dim.skdim", dead, host_tag="00000000")
    not_ours = tmp_path / f".dim.skdim.{dead}.tmp"
    not_ours.write_bytes(b"")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        try:
            alives = _orphan(tmp_path, "dim.skdim", alive.pid)
            save(dim, tmp_path / "dim.skdim")
            assert not orphan.exists()
            assert mine.exists() and alives.exists() and other_target.exists()
            assert other_host.exists() and not_ours.exists()
        finally:
            alive.kill()
    # Once the writer has died, the next save removes its temporary too.
    save(dim, tmp_path / "dim.skdim")
    assert not alives.exists() and mine.exists()
    assert _is_save(tmp_path / "dim.skdim")


CHILD = """
import sys, time, zipfile
from sk_dim.persistence import load, save

model = load(sys.argv[1])
writestr = zipfile.ZipFile.writestr

def stall(self, *args, **kwargs):  # killed here, half-way through the file
    writestr(self, *args, **kwargs)
    print("writing", flush=True)
    time.sleep(120)

zipfile.ZipFile.writestr = stall
save(model, sys.argv[2])
"""


def test_a_save_killed_midway_leaves_an_orphan_the_next_save_removes(saved, dim, tmp_path):
    target = tmp_path / "target.skdim"
    target.write_bytes(b"previous")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(saved), str(target)],
        stdout=subprocess.PIPE,
        text=True,
    )
    timer = threading.Timer(120, child.kill)  # never hangs the test
    timer.start()
    try:
        assert child.stdout.readline() == "writing\n"
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        timer.cancel()
        child.kill()
        child.stdout.close()
    (orphan,) = _temporaries(tmp_path)
    assert f".{child.pid}." in orphan
    assert target.read_bytes() == b"previous"  # the kill left the old file whole
    save(dim, target)
    assert _temporaries(tmp_path) == [] and _is_save(target)


def test_load_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "model.skdim"
    os.mkfifo(fifo)
    thread, error = _in_thread(lambda: load(fifo))
    if thread.is_alive():  # blocked in open(): a writer end releases it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        pytest.fail("load() blocked on a FIFO")
    assert isinstance(error, ValueError)
    assert re.search(
        f"{re.escape(str(fifo))} is a FIFO \\(named pipe\\), not a regular", str(error)
    )


@pytest.fixture
def never_opened(monkeypatch):
    """Fail the test at once if the path in ``paths`` is opened (os.open or open)."""
    paths = set()
    os_open, io_open = os.open, io.open

    def guard(path):
        if os.fspath(path) in paths:
            raise AssertionError(f"{path} was opened")

    def guarded_os_open(path, *args, **kwargs):
        guard(path)
        return os_open(path, *args, **kwargs)

    def guarded_io_open(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike):
            guard(file)
        return io_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_os_open)
    monkeypatch.setattr(io, "open", guarded_io_open)
    return paths


def test_load_refuses_devices_before_opening_them(tmp_path, never_opened):
    # Read, /dev/zero never ends (7 GB in 20 s): the guard fails the test first.
    never_opened.add("/dev/zero")
    with pytest.raises(ValueError, match="/dev/zero is a character device, not a regular file"):
        load("/dev/zero")
    link = tmp_path / "zero.skdim"
    link.symlink_to("/dev/zero")
    never_opened.add(str(link))
    with pytest.raises(ValueError, match="zero.skdim is a character device"):
        load(link)
    with pytest.raises(ValueError, match="is a directory, not a regular file"):
        load(tmp_path)


def test_load_checks_again_once_the_file_is_open(saved, tmp_path, monkeypatch):
    # As if a FIFO took the file's place between the check and the open.
    fifo = tmp_path / "swapped.skdim"
    os.mkfifo(fifo)
    regular = os.stat(saved)
    real_stat = os.stat
    monkeypatch.setattr(
        os, "stat", lambda p, *a, **k: regular if p == fifo else real_stat(p, *a, **k)
    )
    thread, error = _in_thread(lambda: load(fifo))
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        pytest.fail("load() blocked on a FIFO")
    assert isinstance(error, ValueError) and "is a FIFO" in str(error)
