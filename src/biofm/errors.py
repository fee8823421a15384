"""One exception type for everything a user can get wrong.

The CLI prints a `BiofmError` as one paragraph without a traceback and exits
with status 2. Messages name the file, the record (line or id) and the fix.
"""

from __future__ import annotations

from pathlib import Path


class BiofmError(Exception):
    """A problem with the user's input, config or files (not a bug in biofm)."""

    def __init__(self, message: str, *, path: str | Path | None = None,
                 record: str | int | None = None, fix: str | None = None) -> None:
        parts = []
        where = ""
        if path is not None:
            where = f"{path}"
            if record is not None:
                where += f" ({record})" if not isinstance(record, int) else f" (line {record})"
            where += ": "
        parts.append(where + message.rstrip("."))
        if fix:
            parts.append(fix[:1].upper() + fix[1:].rstrip("."))
        super().__init__(". ".join(parts) + ".")
        self.path = None if path is None else str(path)
        self.record = record
        self.fix = fix


def require_file(path: str | Path, what: str = "input file") -> Path:
    """Return `path` as a Path if it is a readable, non-empty file; raise otherwise."""
    p = Path(path)
    if not p.exists():
        raise BiofmError(f"{what} does not exist", path=p,
                         fix="check the path and the current directory")
    if p.is_dir():
        raise BiofmError(f"{what} is a directory, expected a file", path=p,
                         fix="pass the file inside it")
    if p.stat().st_size == 0:
        raise BiofmError(f"{what} is empty", path=p,
                         fix="pass a file with at least one record")
    return p
