"""One optimizer step and fit loop, pretraining on top of it, atomic checkpoints, LR schedules."""

from biofm.train.loop import TrainResult, train
from biofm.train.trainer import EarlyStopping, FitConfig, Loss, StepOutput, Trainer, fit

__all__ = ["EarlyStopping", "FitConfig", "Loss", "StepOutput", "TrainResult", "Trainer", "fit",
           "train"]
