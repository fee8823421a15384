"""One training loop, atomic checkpoints, LR schedules."""

from biofm.train.loop import TrainResult, train

__all__ = ["TrainResult", "train"]
