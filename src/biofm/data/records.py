"""What readers yield, and how they report bad records.

Every reader takes `on_error`: "raise" stops at the first bad record with a
`BiofmError` naming file and line; "skip" drops it and notes it in a
`SkipLog`, which the CLI prints at the end (how many and which).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from biofm.errors import BiofmError

OnError = Literal["raise", "skip"]


@dataclass(frozen=True)
class Record:
    """One input of a modality: its id, its payload and where it came from.

    `data` is what the modality's tokenizer encodes: a `str` for sequences and
    SMILES, a typed numeric payload for cells (`CellCounts`) and series
    (`Series`); nothing numeric is formatted to text and parsed back.
    """

    id: str
    data: Any
    source: str = ""
    line: int = 0


@dataclass
class SkipLog:
    """Bad records that were skipped under `on_error="skip"`."""

    entries: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, why)

    def add(self, error: BiofmError, source: str, line: int) -> None:
        self.entries.append((source, line, str(error)))

    def __len__(self) -> int:
        return len(self.entries)

    def summary(self, limit: int = 10) -> str:
        if not self.entries:
            return "no records skipped"
        lines = [f"skipped {len(self.entries)} bad record(s):"]
        # the error text already names the file and line
        lines += [f"  {why}" if src in why else f"  {src}:{line}: {why}"
                  for src, line, why in self.entries[:limit]]
        if len(self.entries) > limit:
            lines.append(f"  ... and {len(self.entries) - limit} more")
        return "\n".join(lines)


def handle_bad_record(error: BiofmError, on_error: OnError, skipped: SkipLog | None,
                      source: str, line: int) -> None:
    """Raise `error`, or log it when the caller asked to skip bad records."""
    if on_error == "raise":
        raise error
    if on_error != "skip":
        raise BiofmError(f"unknown on_error policy {on_error!r}", fix="use 'raise' or 'skip'")
    if skipped is not None:
        skipped.add(error, source, line)
