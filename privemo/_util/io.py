"""Atomic file writes: write to a temporary name in the same folder, then rename, so no reader sees half a file.

A write that fails because of the machine, not privemo (no space left, a disk quota, a read-only file system, a folder
without write permission: ``WRITE_ERRNOS``), raises ``WriteError``: a ``UserError`` whose one line names the path and
says what to do. The commands print it as that one line. The file that was there before is untouched (the temporary
file is removed), so a run stopped this way continues with ``--resume`` once the disk has space again. ``writing(path)``
gives any other writer (a feature shard, a saved network, a figure) the same error; ``atomic_output(path)`` gives a
writer that needs a file name (a training checkpoint) the same temporary-name-and-rename write.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

from privemo._util.validation import UserError

#: errno -> what to do about it, for the write failures that are the user's set-up (not a bug in privemo)
WRITE_ERRNOS = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space within your quota",
    errno.EROFS: "write to a writable file system (or remount it read-write)",
    errno.EACCES: "make the folder writable",
    errno.EPERM: "make the folder writable",
}


class WriteError(UserError):
    """A file privemo could not write because of the disk or the folder (see ``WRITE_ERRNOS``): one line naming the
    path. ``path`` and ``errno`` say which and why."""

    path: str | None = None
    errno: int | None = None


def write_error(path: str | os.PathLike, exc: BaseException) -> WriteError | None:
    """The ``WriteError`` for ``exc`` raised while writing ``path``, or None when ``exc`` is not such a failure (a bug, or
    another kind of error, which the caller re-raises unchanged). Recognises ``OSError``s whose ``errno`` is in
    ``WRITE_ERRNOS`` and h5py's errors, which carry the errno only in their text (``errno = 28``)."""
    if isinstance(exc, WriteError):
        return exc
    if not isinstance(exc, OSError):
        return None
    code = exc.errno
    if code is None:
        found = re.search(r"errno\s*=\s*(\d+)", str(exc))
        code = int(found.group(1)) if found else None
    if code not in WRITE_ERRNOS:
        return None
    error = WriteError(f"{os.fspath(path)}: cannot write: {os.strerror(code)}. {WRITE_ERRNOS[code].capitalize()}, then "
                       "run the command again (a reproduce or distributed run continues where it stopped with --resume).")
    error.path, error.errno = os.fspath(path), code
    return error


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Inside the block, a write failure of the disk or folder (``write_error``) raises ``WriteError`` naming ``path``;
    every other exception passes unchanged."""
    try:
        yield
    except OSError as exc:
        error = write_error(path, exc)
        if error is None:
            raise
        raise error from exc


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it to ``path`` (the write layer: one place)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """For a writer that needs a file name (Keras' ``save_weights``, h5py): yields a temporary path in ``path``'s folder
    whose name ends with ``path``'s whole name (``.<random>.checkpoint.weights.h5``: a writer that checks the suffix
    accepts it); when the block ends normally the file is flushed to disk and renamed to ``path``, so a reader sees the
    old file or the new one, never half of one. If the block raises (a full disk, Ctrl-C) the temporary file is removed
    and ``path`` keeps its old contents; a full disk or unwritable folder is a ``WriteError`` naming ``path``. A
    process killed inside the block leaves only the hidden temporary file, which nothing reads."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".", suffix=f".{path.name}", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creating parent folders). A full disk or an unwritable folder raises
    ``WriteError`` naming ``path``; the file that was there stays as it was."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_file(path, data)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")
