"""Adaptation: linear probe on frozen embeddings, full fine-tune, LoRA, zero-shot."""

from biofm.adapt.finetune import FinetuneConfig, FinetuneResult, TaskModel, finetune
from biofm.adapt.saving import AdaptedModel, load_finetuned, save_finetuned

__all__ = ["AdaptedModel", "FinetuneConfig", "FinetuneResult", "TaskModel", "finetune",
           "load_finetuned", "save_finetuned"]
