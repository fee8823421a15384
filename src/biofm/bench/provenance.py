"""Where a result came from: commit, date, machine, software and seeds.

Every results file that a README number is copied from carries this record, so
each number can be traced to the run that produced it.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch


def provenance(**run: Any) -> dict[str, Any]:
    """{commit, dirty, date, machine, software, **run} (e.g. seeds, elapsed_s)."""
    return {"commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain")),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "software": {"python": platform.python_version(),
                                               "torch": torch.__version__},
            **run}


def machine() -> dict[str, Any]:
    out: dict[str, Any] = {"platform": platform.platform(), "processor": platform.machine(),
                           "cpu_count": os.cpu_count(),
                           "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    try:
        out["load_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return out


def _git(*args: str) -> str | None:
    """Output of a git command in the source checkout, or None outside one."""
    root = Path(__file__).resolve().parents[3]
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


__all__ = ["machine", "provenance"]
