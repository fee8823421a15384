"""Benchmark results: collect per-seed rows, summarise as mean ± sd, write and plot.

    table = ResultTable()
    table.add("amp", "pretrained+probe", seed=0, metrics={"roc_auc": 0.91, ...})
    table.summary()              # one row per (task, method): seeds, metric, metric_sd, metric_n
    table.render(console)        # rich table in the terminal
    table.to_markdown("report.md"); table.to_csv("report.csv")

The sd is the sample standard deviation over seeds (ddof=1), shown only when
there are at least two seeds. A seed whose metric is undefined (NaN, e.g. ROC-AUC
on a one-class split) is left out of that metric's mean: `metric_n` counts the
seeds each mean is over, and the text tables add "(n=2)" where it is fewer than
the row's seeds.

Interval columns: a metric `m` with companions `m_lo` and `m_hi` (bootstrap bounds,
`bench.metrics.interval_columns`) is shown in the text tables as `m`, then a column
`m 95% CI` with the seed-means of the bounds ("[0.800, 0.902]"); the CSV files keep
`m_lo` / `m_hi` as plain columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from biofm.io import atomic_path, atomic_write_text

KEYS = ("task", "method", "seed")
SD_SUFFIX = "_sd"
N_SUFFIX = "_n"
INTERVAL_SUFFIXES = ("_lo", "_hi")
INTERVAL_HEADER = "{} 95% CI"


@dataclass
class ResultTable:
    """Rows of (task, method, seed, metrics); metric columns keep first-seen order."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    metric_names: list[str] = field(default_factory=list)

    def add(self, task: str, method: str, seed: int, metrics: dict[str, float]) -> None:
        for name in metrics:
            if name not in self.metric_names:
                self.metric_names.append(name)
        self.rows.append({"task": task, "method": method, "seed": seed,
                          **{k: float(v) for k, v in metrics.items()}})

    def extend(self, other: "ResultTable") -> None:
        """Append another table's rows (its new metrics become new columns)."""
        self.rows += other.rows
        self.metric_names += [m for m in other.metric_names if m not in self.metric_names]

    def subset(self, keep: Callable[[dict[str, Any]], bool]) -> "ResultTable":
        """The rows `keep` accepts, with only the metric columns they fill."""
        rows = [r for r in self.rows if keep(r)]
        return ResultTable(rows, [m for m in self.metric_names if any(m in r for r in rows)])

    def save(self, directory: str | Path) -> None:
        """results.md, results.csv (mean ± sd) and results_per_seed.csv in `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.to_markdown(directory / "results.md")
        self.to_csv(directory / "results.csv")
        self.to_csv(directory / "results_per_seed.csv", per_seed=True)

    def __len__(self) -> int:
        return len(self.rows)

    def frame(self) -> pd.DataFrame:
        """One row per (task, method, seed) run."""
        return pd.DataFrame(self.rows, columns=[*KEYS, *self.metric_names])

    def summary(self) -> pd.DataFrame:
        """One row per (task, method) in insertion order: `seeds`, then each
        metric's mean (column `name`), sample sd (`name_sd`) and the number of
        seeds with a defined value that both are over (`name_n`)."""
        columns = ["task", "method", "seeds"]
        for name in self.metric_names:
            columns += [name, name + SD_SUFFIX, name + N_SUFFIX]
        df = self.frame()
        if df.empty:
            return pd.DataFrame(columns=columns)
        grouped = df.groupby(["task", "method"], sort=False)
        out = grouped[self.metric_names].mean()  # NaN values skipped, hence the counts
        sd = grouped[self.metric_names].std(ddof=1).add_suffix(SD_SUFFIX)
        n = grouped[self.metric_names].count().add_suffix(N_SUFFIX)
        out = out.join(sd).join(n)
        out.insert(0, "seeds", grouped["seed"].nunique())
        return out.reset_index()[columns]

    def _intervals(self) -> dict[str, tuple[str, str]]:
        """metric → its (low, high) bound columns, for metrics that have both."""
        names = set(self.metric_names)
        return {m: (m + "_lo", m + "_hi") for m in self.metric_names
                if {m + s for s in INTERVAL_SUFFIXES} <= names}

    def _cells(self, digits: int) -> tuple[list[str], list[list[str]]]:
        """Header and text cells ("0.912 ± 0.013", "[0.870, 0.950]") shared by render and
        markdown."""
        summary = self.summary()
        intervals = self._intervals()
        bounds = {b for pair in intervals.values() for b in pair}
        shown = [m for m in self.metric_names if m not in bounds]
        header = ["task", "method", "seeds"]
        for m in shown:
            header += [m, INTERVAL_HEADER.format(m)] if m in intervals else [m]
        body = []
        for _, row in summary.iterrows():
            seeds = int(row["seeds"])
            cells = [str(row["task"]), str(row["method"]), str(seeds)]
            for m in shown:
                cells.append(_format(row[m], row[m + SD_SUFFIX], digits, int(row[m + N_SUFFIX]),
                                     seeds))
                if m in intervals:
                    cells.append(_interval(*(row[b] for b in intervals[m]), digits))
            body.append(cells)
        return header, body

    def render(self, console: Console | None = None, *, title: str = "Results",
               digits: int = 3) -> Table:
        """Print the summary as a rich table (and return it)."""
        header, body = self._cells(digits)
        table = Table(title=title)
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i < 2 else "right")
        for cells in body:
            table.add_row(*cells)
        (console or Console()).print(table)
        return table

    def to_markdown(self, path: str | Path, *, digits: int = 3) -> Path:
        """Write the summary as a GitHub-flavoured markdown table (atomically)."""
        header, body = self._cells(digits)
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        atomic_write_text(path, "\n".join(lines) + "\n")
        return Path(path)

    def to_csv(self, path: str | Path, *, per_seed: bool = False) -> Path:
        """Write the summary (or, with `per_seed`, every run) as CSV (atomically)."""
        df = self.frame() if per_seed else self.summary()
        atomic_write_text(path, df.to_csv(index=False))
        return Path(path)


def _format(mean: float, sd: float, digits: int, n: int, seeds: int) -> str:
    """Mean ± sd as text ("0.912 ± 0.013"), "(n=2)" added when the mean is over fewer
    than all seeds."""
    if mean is None or math.isnan(mean):
        return "—"
    text = f"{mean:.{digits}f}"
    if sd is not None and not math.isnan(sd):
        text += f" ± {sd:.{digits}f}"
    return text + (f" (n={n})" if n < seeds else "")


def _interval(low: float, high: float, digits: int) -> str:
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return "—"
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def plot_loss_curves(curves: dict[str, list[tuple[int, float]]], path: str | Path, *,
                     title: str = "Training loss", log_y: bool = False) -> Path:
    """Draw one line per named curve of (step, loss) points into a PNG (atomically).

    Uses the Agg canvas directly, so no display and no global pyplot state.
    """
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, points in curves.items():
        if points:
            steps, losses = zip(*points)
            ax.plot(steps, losses, label=label, linewidth=1.5)
    ax.set(xlabel="step", ylabel="loss", title=title)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if any(curves.values()):
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
