"""biofm: pretrain biomedical foundation models on unlabeled data of any
modality, transfer them to small labeled tasks, and measure the gain."""

from biofm.adapt import FinetuneConfig, finetune, load_finetuned
from biofm.config import BackboneConfig, DataConfig, ObjectiveConfig, PretrainConfig, TrainConfig
from biofm.errors import BiofmError
from biofm.interop import load_pretrained as load
from biofm.model import FoundationModel
from biofm.registry import BACKBONES, CORPORA, HEADS, MODALITIES, OBJECTIVES, TASKS, TOKENIZERS
from biofm.commands import embed, evaluate, generate, pretrain, score_variants
from biofm.train.loop import TrainResult

__version__ = "0.1.0"

__all__ = ["BACKBONES", "BackboneConfig", "BiofmError", "CORPORA", "DataConfig", "FinetuneConfig",
           "FoundationModel", "HEADS", "MODALITIES", "OBJECTIVES", "ObjectiveConfig",
           "PretrainConfig", "TASKS", "TOKENIZERS", "TrainConfig", "TrainResult", "embed",
           "evaluate", "finetune", "generate", "load", "load_finetuned", "pretrain",
           "score_variants"]
