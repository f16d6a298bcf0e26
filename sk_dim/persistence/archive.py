"""The zip file: written atomically, read with caps, only from a regular file.

A save is written under a temporary name next to its target, synced, then
renamed over it, so the target holds the old file or the whole new one. A
load opens only regular files (never a FIFO or a device) and reads no entry
larger than its cap, so that a file cannot make it allocate much more than
the file's own size.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import stat
import zipfile
import zlib
from collections.abc import Iterator

from .._version import __version__
from .codec import MAX_JSON_BYTES, parse_object, short

FORMAT = "sk_dim"
FORMAT_VERSION = 2
# Weights are stored, not deflated, and bounded by the file's size; what is
# deflated (the JSON entries, the skops file's own entries) may claim at most
# this ratio: no zip bombs.
MAX_DEFLATE_RATIO = 20
# Errors of a damaged zip file, as zipfile and zlib raise them.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)


# -- writing ------------------------------------------------------------------------


def write_archive(entries: dict[str, tuple[bytes, int]], path) -> None:
    """Write ``entries`` to the zip file ``path``, atomically.

    Parameters
    ----------
    entries : dict of str to (bytes, int)
        Each entry's content and ``zipfile`` compression.
    path : str or os.PathLike
        The file to write; a symlink is followed. An existing regular file is
        replaced and keeps its permission bits (and, where allowed, owner).

    Raises
    ------
    ValueError
        If ``path`` is empty, names a folder, or something that is not a
        regular file: it is left as it was.
    OSError
        If the folder cannot be written; the message names ``path``.
    """
    target, existing = _save_target(path)
    folder, name = os.path.split(target)
    _remove_orphans(folder, name)
    # Written to a temporary file next to the target, then renamed: a failure
    # never leaves half a file, and the temporary file is removed.
    tmp = os.path.join(folder, f"{_tmp_prefix(name)}{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # Created as open() would (permissions from the umask, unlike mkstemp's 0600).
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(tmp, flags, 0o666)
    except OSError as exc:  # named after the target: the temporary name means nothing to users
        raise OSError(
            exc.errno, f"cannot write {os.fsdecode(path)!r}: {exc.strerror}", folder
        ) from None
    try:
        with os.fdopen(fd, "wb") as file:
            if existing is not None:
                _keep_owner_and_mode(file.fileno(), tmp, existing)
            with zipfile.ZipFile(file, "w") as archive:
                for entry, (data, compression) in entries.items():
                    archive.writestr(entry, data, compress_type=compression)
            # On disk before the rename: a crash never leaves the name on an empty file.
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
        _fsync_folder(folder)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def _save_target(path) -> tuple[str, os.stat_result | None]:
    """The file written for ``path`` (a symlink followed) and its status if it exists.

    Anything but a regular file there is refused, before a byte is written.
    """
    path = os.fsdecode(os.fspath(path))
    if not path:
        raise ValueError("save(): path is empty; pass the name of the file to write")
    if path.endswith(("/", os.sep)):
        raise ValueError(f"save(): path {path!r} names a folder; pass the name of a file")
    target = os.path.realpath(path)
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        return target, None
    if not stat.S_ISREG(existing.st_mode):
        shown = repr(path)
        if target != os.path.abspath(path):
            shown += f" (which resolves to {target!r})"
        raise ValueError(
            f"save(): path {shown} is {_file_kind(existing.st_mode)}, not a regular file; "
            "refusing to replace it"
        )
    return target, existing


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def _tmp_prefix(name: str) -> str:
    # A PID means something only on the host that wrote it (think of network
    # folders): the host's tag keeps save from judging other hosts' temporaries.
    host = zlib.crc32(socket.gethostname().encode("utf-8", "replace"))
    return f".{name}.sk_dim-save.{host:08x}."


def _remove_orphans(folder: str, name: str) -> None:
    """Remove temporaries of ``name`` whose writer (a process on this host) has died."""
    if os.name != "posix":  # os.kill(pid, 0) would signal, not probe, on Windows
        return
    pattern = re.compile(re.escape(_tmp_prefix(name)) + r"(\d+)\.[0-9a-f]+\.tmp")
    with contextlib.suppress(OSError), os.scandir(folder) as listing:
        for entry in listing:
            match = pattern.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False) and _is_dead(int(match[1])):
                with contextlib.suppress(OSError):
                    os.remove(entry.path)


def _is_dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # PermissionError: alive, another user's
        pass
    return False


def _keep_owner_and_mode(fd: int, tmp: str, existing: os.stat_result) -> None:
    # The replacement keeps the replaced file's permissions and, where allowed
    # (as root), its owner; never setuid or setgid bits, which a data file needs not.
    if hasattr(os, "fchown") and (existing.st_uid, existing.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(OSError):
            os.fchown(fd, existing.st_uid, existing.st_gid)
    os.chmod(tmp, stat.S_IMODE(existing.st_mode) & 0o777)


def _fsync_folder(folder: str) -> None:
    # Makes the rename itself durable; not possible on Windows or some file systems.
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- reading --------------------------------------------------------------------------


@contextlib.contextmanager
def open_archive(path) -> Iterator[zipfile.ZipFile]:
    """The zip file at ``path``, if ``path`` is a regular file (a symlink is followed).

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Yields
    ------
    archive : zipfile.ZipFile

    Raises
    ------
    ValueError
        If ``path`` is not a regular file, or not a zip file.
    """
    with _open_regular_file(path) as file:
        try:
            archive = zipfile.ZipFile(file)
        except ZIP_ERRORS as exc:
            raise ValueError(f"{path} is not a file written by sk_dim's save(): {exc}") from None
        with archive:
            yield archive


def _open_regular_file(path):
    """``path`` opened for reading, if it is a regular file (a symlink is followed).

    Anything else is refused before it is opened: a FIFO would block, a device
    such as ``/dev/zero`` be read without end, and opening some devices acts.
    """

    def refuse(mode):
        return ValueError(
            f"{path} is {_file_kind(mode)}, not a regular file; load() reads only files "
            "written by save()"
        )

    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise refuse(mode)
    # Checked again once open, non-blocking (no effect on a regular file): a
    # FIFO put in the file's place since the stat is refused, not waited on.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise refuse(mode)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_json(archive: zipfile.ZipFile, name: str, path) -> dict:
    """The JSON object in the entry ``name``, refused above :data:`~.codec.MAX_JSON_BYTES`.

    Parameters
    ----------
    archive : zipfile.ZipFile
        The open file.
    name : str
        The entry.
    path : str or os.PathLike
        The file, for messages.

    Returns
    -------
    value : dict
    """
    info = archive.getinfo(name)
    if info.file_size > MAX_JSON_BYTES:
        raise ValueError(
            f"{path}: {name} is {info.file_size} bytes, more than the {MAX_JSON_BYTES} "
            "a save file's metadata may hold"
        )
    return parse_object(_read_bytes(archive, info, path), name, path)


def read_binary(archive: zipfile.ZipFile, name: str, path) -> bytes:
    """The bytes of the entry ``name``, once its compression ratio is checked.

    Parameters
    ----------
    archive : zipfile.ZipFile
        The open file.
    name : str
        The entry.
    path : str or os.PathLike
        The file, for messages.

    Returns
    -------
    data : bytes
    """
    info = archive.getinfo(name)
    check_ratio(info, name, path)
    return _read_bytes(archive, info, path)


def check_ratio(info: zipfile.ZipInfo, name: str, path) -> None:
    """Refuse an entry that claims more than :data:`MAX_DEFLATE_RATIO` times its compressed size.

    Parameters
    ----------
    info : zipfile.ZipInfo
        The entry, as the zip file's directory describes it.
    name : str
        Its name, for the message.
    path : str or os.PathLike
        The file, for the message.

    Raises
    ------
    ValueError
        If the entry would unpack to far more than it holds (a zip bomb).
    """
    if info.file_size > MAX_DEFLATE_RATIO * info.compress_size + (1 << 20):
        raise ValueError(
            f"{path}: {name} claims {info.file_size} bytes from {info.compress_size} "
            "compressed; refusing it"
        )


def _read_bytes(archive, info, path) -> bytes:
    try:
        with archive.open(info) as file:
            return file.read()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
            RuntimeError) as exc:  # fmt: skip
        raise ValueError(f"{path}: the entry {info.filename} is damaged: {exc}") from None


def check_format(header: dict, name: str, path) -> None:
    """Refuse a header of another format, or of another format version.

    Parameters
    ----------
    header : dict
        ``metadata.json`` or ``composite.json``, as read.
    name : str
        The entry, for the message.
    path : str or os.PathLike
        The file, for the message.

    Raises
    ------
    ValueError
        Naming the format and version the file has and the one this sk_dim reads.
    """
    version = header.get("format_version")
    if header.get("format") == FORMAT and version == FORMAT_VERSION:
        return
    # Version 1 (weights pickled in weights.pt) was never released: it is not read.
    unreleased = " (a development format, never released)" if version == 1 else ""
    raise ValueError(
        f"{path}: {name}: unsupported format {short(header.get('format'))} version "
        f"{short(version)}{unreleased}; this sk_dim ({__version__}) reads {FORMAT!r} "
        f"version {FORMAT_VERSION} only"
    )
