"""The "timeseries" modality: pretraining examples are windows of series cut into
patches (not one record each), and labeled work is forecasting (`biofm forecast`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from biofm.errors import BiofmError
from biofm.modalities.base import Modality
from biofm.tokenizer import Tokenizer

if TYPE_CHECKING:
    from biofm.config import PretrainConfig
    from biofm.data.tasks import Task
    from biofm.model import FoundationModel


@dataclass(frozen=True)
class TimeSeriesModality(Modality):
    """Series from long / wide CSVs or packaged corpora."""

    def pretraining_data(self, config: "PretrainConfig",
                         new_model: Callable[[Callable[[], Tokenizer]], "FoundationModel"]
                         ) -> tuple["FoundationModel", Sequence, Sequence | None]:
        from biofm.modalities.timeseries.pretraining import timeseries_run_data

        return timeseries_run_data(config, new_model)

    def task_from_file(self, path: Path, *, label: str, kind: str | None, split: str,
                       seed: int, column: str | None = None, layer: str | None = None,
                       classes: Sequence[str] | None = None) -> "Task":
        raise BiofmError("time series are forecast, not fine-tuned on a label column",
                         path=path, fix=f"run `biofm forecast MODEL {path} --mode full "
                                        "--evaluate --output DIR`")


__all__ = ["TimeSeriesModality"]
