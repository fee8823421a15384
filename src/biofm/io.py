"""Atomic writes: a temp file in the same directory, fsync, then `os.replace`.

Files get the permissions any new file of the user gets (0666 less the umask),
not `mkstemp`'s private 0600, so a model or an embedding written into a shared
project directory is readable by the others in it. A destination that cannot be
written (a parent that is a file, a read-only directory) is a `BiofmError`
naming the path and the fix, not a traceback.

Reading: `GZIP_ERRORS` are what a truncated or corrupt gzip raises while it is
read (often late, after the first records); `gzip_error` turns one into a
`BiofmError` naming the file and the fix, so every reader of .gz input says the
same thing.

Directories: `swap_in_directory` puts a finished staging directory in the place
of an output (prepared corpora, MEDS), with the umask's permissions.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from biofm.errors import BiofmError


GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)
GZIP_FIX = "re-download or re-compress the file (check it with `gzip -t`)"


def gzip_error(path: str | Path, exc: Exception, record: str | int | None = None) -> BiofmError:
    """The error for a gzip stream that broke while `path` was read (one of `GZIP_ERRORS`)."""
    return BiofmError(f"the gzip stream is truncated or corrupt ({exc})", path=path,
                      record=record, fix=GZIP_FIX)


def umask() -> int:
    """The process umask (read without changing it for longer than the call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_dirs(path: str | Path) -> Path:
    """`mkdir -p path` with a clear error when a parent is a file or not writable."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise BiofmError(f"cannot create the directory: {blocker} is a file", path=path,
                         fix="choose an output path whose parents are directories") from None
    except OSError as exc:
        raise _unwritable(path, exc) from None
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it replaces `path` atomically."""
    path = Path(path)
    make_dirs(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    os.fchmod(fd, 0o666 & ~umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        if path.is_dir():
            raise BiofmError("the output is a directory, expected a file name", path=path,
                             fix="pass a file path (e.g. DIR/out.parquet)")
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _unwritable(path: Path, exc: OSError) -> BiofmError:
    why = {errno.EACCES: "permission denied", errno.EROFS: "read-only file system",
           errno.ENOSPC: "no space left on the device"}.get(exc.errno or 0, exc.strerror or str(exc))
    return BiofmError(f"cannot write here ({why})", path=path,
                      fix="choose an output location you can write to")


def swap_in_directory(staging: Path, target: Path) -> None:
    """Rename the finished `staging` (a `tempfile.mkdtemp` directory) to `target`.

    The directory gets the permissions of any new one (0777 less the umask), not
    mkdtemp's private 0700. An old `target` is renamed aside and deleted only
    once `staging` is in its place (put back if that rename fails).
    """
    staging.chmod(0o777 & ~umask())
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        if old.exists() and not target.exists():
            old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def check_new_output(path: str | Path, overwrite: bool, what: str = "output") -> Path:
    """Refuse to replace an existing file unless `overwrite` (before any work is done)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise BiofmError(f"the {what} already exists", path=path,
                         fix="choose another name, or pass --overwrite to replace it")
    return path
