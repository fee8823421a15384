"""The GPU check's figures against its targets (run by gpu_check.sh).

    python benchmarks/gpu_summary.py OUT_DIR

Reads train_{150m,650m}.json and embed_{150m,650m}.json from OUT_DIR, prints
one line each, and exits 1 when a file is missing or a target is missed:
speedup_vs_hf_best >= 2.5 in training, biofm's MFU >= 45% at 650M.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RUNS = ("train_150m", "train_650m", "embed_150m", "embed_650m")
TRAIN_SPEEDUP, MFU_650M = 2.5, 0.45


def summarise(out: Path) -> tuple[list[str], bool]:
    lines, ok = [], True
    for name in RUNS:
        path = out / f"{name}.json"
        if not path.is_file():
            lines.append(f"{name}: no JSON (the run failed)")
            ok = False
            continue
        figures = json.loads(path.read_text())
        mfu = figures.get("mfu", figures.get("cpu_mfu", {}))
        best = figures.get("hf_best_variant", "hf_best")
        speedup = figures["speedup_vs_hf_best"]["median"]
        lines.append(f"{name}: {speedup:.2f}x HF best practice ({best}), implementation only "
                     f"{figures['speedup_implementation_only']['median']:.2f}x, MFU biofm "
                     f"{mfu.get('biofm', 0):.1%}, {best} {mfu.get(best, 0):.1%}")
        if name.startswith("train") and speedup < TRAIN_SPEEDUP:
            lines.append(f"  target missed: speedup_vs_hf_best >= {TRAIN_SPEEDUP}")
            ok = False
        if name == "train_650m" and mfu.get("biofm", 0) < MFU_650M:
            lines.append(f"  target missed: MFU >= {MFU_650M:.0%} at 650M")
            ok = False
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    lines, ok = summarise(Path(args[0]))
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
