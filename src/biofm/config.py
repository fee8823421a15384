"""Typed, frozen, validated configs that round-trip through YAML.

Components are named by string (registry keys), never by class. Named presets
are YAML files under `biofm/configs/` (shipped inside the package so that
`biofm demo` works from an installed wheel).
"""

from __future__ import annotations

import inspect
import math
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from biofm.errors import BiofmError
from biofm.io import atomic_write_text

C = TypeVar("C", bound="Config")


class Config(BaseModel):
    """Base: frozen, unknown keys rejected, YAML in and out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_yaml(self) -> str:
        """YAML of every field: the class's own fields first, then inherited groups of
        settings (e.g. `LoraSettings`), so a saved config reads from its main fields."""
        data = self.model_dump(mode="json")
        own = [name for name in inspect.get_annotations(type(self)) if name in data]
        return yaml.safe_dump({name: data[name] for name in own} | data, sort_keys=False)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.to_yaml())

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any], *, source: str | Path | None = None) -> C:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
            raise BiofmError(f"invalid {cls.__name__}: {problems}", path=source,
                             fix="fix the named fields (see `biofm pretrain --help`)") from None

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        path = Path(path)
        if not path.is_file():
            raise BiofmError("config file does not exist", path=path,
                             fix="check the path, or use a preset name")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise BiofmError(f"config is not valid YAML ({exc})", path=path,
                             fix="fix the YAML syntax") from None
        return cls.from_dict(data, source=path)

    def replace(self: C, **changes: Any) -> C:
        """A validated copy with some fields changed (nested dicts merge)."""
        return type(self).from_dict(deep_merge(self.model_dump(mode="json"), changes))


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["train.lr=1e-3", "backbone.size=small"]` → nested dict (YAML-typed values)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise BiofmError(f"override {item!r} is not KEY=VALUE",
                             fix="write overrides like train.lr=1e-3")
        key, raw = item.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _scalar(raw)
    return out


def _scalar(raw: str) -> Any:
    """YAML typing, plus floats like 1e-3 that YAML 1.1 leaves as strings."""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def preset_path(kind: str, name: str) -> Path:
    """Path of a preset YAML shipped in the package, e.g. ("pretrain", "protein-mlm-tiny")."""
    root = resources.files("biofm") / "configs" / kind
    path = Path(str(root / f"{name}.yaml"))
    if not path.is_file():
        names = sorted(p.stem for p in Path(str(root)).glob("*.yaml"))
        raise BiofmError(f"unknown {kind} preset {name!r}", fix=f"choose one of: {', '.join(names)}")
    return path


def preset_exists(kind: str, name: str) -> bool:
    return (Path(str(resources.files("biofm") / "configs" / kind)) / f"{name}.yaml").is_file()


def load_sizes() -> dict[str, dict[str, int]]:
    return yaml.safe_load((resources.files("biofm") / "configs" / "sizes.yaml").read_text())


# ---------------------------------------------------------------------------
# The configs of the pipeline axes
# ---------------------------------------------------------------------------

class BackboneConfig(Config):
    """The shared transformer core.

    Args:
        kind: registry name, "encoder" (bidirectional) or "decoder" (causal).
        size: a named size from `configs/sizes.yaml` (fills d_model, n_layers,
            n_heads, d_ff unless they are given explicitly).
        vocab_size: filled from the tokenizer when left at 0.
        max_len: the longest input in tokens (special tokens included).
        position: "rope" (rotary, ESM-2 style) or "learned" (absolute).
        token_dropout: ESM-2's rescaling of embeddings by the observed mask
            fraction; on for ESM-2 checkpoints.
        pad_id / mask_id: filled from the tokenizer.
        values: a second input beside the token ids, added to their embedding:
            "none"; "bins" (scGPT-style expression bins, `Batch.values` (B, T)
            long in [0, value_size)); "patches" (time-series patches,
            `Batch.values` (B, T, value_size) float, projected linearly).
        value_size: the number of bins, or the patch length.
        norm: "pre" (ESM-2 / GPT: x + f(LN(x)), a final LayerNorm) or "post"
            (BERT: LN(x + f(x)) after attention and after the MLP, no final
            LayerNorm).
        embed_norm: a LayerNorm (then dropout) on the summed embeddings, as in BERT.
        type_vocab_size: BERT's token-type (segment) embeddings; > 0 adds the
            embedding of type 0 to every token (0 = none).
        activation: the MLP's non-linearity, "gelu" (exact erf GELU; ESM,
            BERT), "gelu_tanh" (its tanh approximation; GPT-2), "relu"
            (Geneformer) or "quick_gelu" (x sigmoid(1.702 x); OpenAI CLIP).
        image_size / patch_size / channels: set together, they make the
            encoder a ViT (`biofm.backbones.vision`): images (channels, H, W) or
            volumes (channels, D, H, W) of `image_size`, cut into patches of
            `patch_size` (2 or 3 numbers, dividing `image_size`), fed as
            `values: patches` of channels * prod(patch_size) pixels after a
            [CLS] token. values, value_size and max_len (1 + patches) are
            filled from them.
        final_norm: where the final LayerNorm of a pre-norm backbone applies:
            "tokens" (every hidden state) or "pooled" (only the pooled vector,
            after mean pooling: timm's fc_norm; the hidden states stay
            un-normalised, as timm's forward_features gives them).
        position: for a ViT also "sincos": a fixed (not trained) 2D / 3D
            sin-cos table over the patch grid, [CLS] at zero (MAE); "learned"
            is timm's learned table over [CLS] + patches.
    """

    kind: Literal["encoder", "decoder"] = "encoder"
    size: str | None = "tiny"
    vocab_size: int = 0
    d_model: int = 0
    n_layers: int = 0
    n_heads: int = 0
    d_ff: int = 0
    max_len: int = 1026
    position: Literal["rope", "learned", "sincos"] = "rope"
    dropout: float = 0.0
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    token_dropout: bool = False
    pad_id: int = 0
    mask_id: int = -1
    gradient_checkpointing: bool = False
    values: Literal["none", "bins", "patches"] = "none"
    value_size: int = 0
    norm: Literal["pre", "post"] = "pre"
    embed_norm: bool = False
    type_vocab_size: int = 0
    activation: Literal["gelu", "gelu_tanh", "relu", "quick_gelu"] = "gelu"
    image_size: tuple[int, ...] = ()
    patch_size: tuple[int, ...] = ()
    channels: int = 0
    final_norm: Literal["tokens", "pooled"] = "tokens"

    @model_validator(mode="after")
    def _fill_size(self) -> "BackboneConfig":
        if self.size is not None:
            sizes = load_sizes()
            if self.size not in sizes:
                raise ValueError(f"unknown size {self.size!r}; known: {', '.join(sizes)}")
            for key, value in sizes[self.size].items():
                if getattr(self, key) == 0:
                    object.__setattr__(self, key, value)
        for key in ("d_model", "n_layers", "n_heads", "d_ff"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key} must be positive (set it or choose a size)")
        self._fill_image()
        if self.values != "none" and self.value_size <= 0:
            raise ValueError(f"values={self.values!r} needs value_size > 0 "
                             "(the number of bins, or the patch length)")
        if self.d_model % self.n_heads:
            raise ValueError("d_model must be a multiple of n_heads")
        if self.position == "rope" and (self.d_model // self.n_heads) % 2:
            raise ValueError("d_model / n_heads must be an even integer (RoPE rotates pairs)")
        if self.final_norm == "pooled" and self.norm != "pre":
            raise ValueError("final_norm=pooled needs norm=pre (post-norm blocks end normalised)")
        if self.type_vocab_size < 0:
            raise ValueError("type_vocab_size must be >= 0")
        return self

    def _fill_image(self) -> None:
        """A ViT's patch input and context from its image geometry."""
        image, patch = self.image_size, self.patch_size
        if not (image or patch or self.channels):
            if self.position == "sincos":
                raise ValueError("position=sincos needs a patch grid (set image_size, "
                                 "patch_size and channels)")
            return
        if len(image) not in (2, 3) or len(patch) != len(image) or self.channels < 1:
            raise ValueError(f"a ViT needs image_size and patch_size of 2 (H, W) or 3 (D, H, W) "
                             f"numbers each and channels >= 1; got image_size={list(image)}, "
                             f"patch_size={list(patch)}, channels={self.channels}")
        if any(p < 1 or i % p for i, p in zip(image, patch)):
            raise ValueError(f"image_size {list(image)} is not divisible by patch_size "
                             f"{list(patch)}: choose a patch size that divides each side "
                             "(or crop / pad the images to a multiple of it)")
        object.__setattr__(self, "max_len", 1 + math.prod(self.grid))  # [CLS] + patches
        object.__setattr__(self, "values", "patches")
        object.__setattr__(self, "value_size", self.channels * math.prod(patch))

    @property
    def grid(self) -> tuple[int, ...]:
        """Patches along each axis of a ViT's input (empty for other backbones)."""
        return tuple(i // p for i, p in zip(self.image_size, self.patch_size))

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class ObjectiveConfig(Config):
    """Pretraining objective.

    Args:
        name: registry name ("mlm" or "clm").
        mask_rate: fraction of maskable tokens selected (MLM).
        mask_token_fraction / random_token_fraction: of the selected tokens,
            the share replaced by <mask> and by a random token; the rest is kept
            (the 80/10/10 rule by default).
        norm_window: masked-patch: per-series loc / scale from the last
            `norm_window` visible values (0: every visible value). Saved with the
            checkpoint, so forecasting normalises as pretraining did.
        quantiles: quantile objectives (masked-patch, next-patch): the levels
            predicted and trained with the pinball loss, strictly increasing in
            (0, 1). None: the 23 CDC FluSight levels (`objectives.patch.
            DEFAULT_QUANTILES`), as in checkpoints saved before this field existed.
            Other objectives refuse it.
        decoder_dim / decoder_layers: mae: the width and depth of the light
            decoder that reconstructs the masked patches (0: half the encoder's
            width, at least 32, and a third of its depth, at least 1). Other
            objectives refuse them.
    """

    name: str = "mlm"
    mask_rate: float = 0.15
    mask_token_fraction: float = 0.8
    random_token_fraction: float = 0.1
    norm_window: int = 0
    quantiles: tuple[float, ...] | None = None
    decoder_dim: int = 0
    decoder_layers: int = 0

    @model_validator(mode="after")
    def _check(self) -> "ObjectiveConfig":
        if self.decoder_dim < 0 or self.decoder_layers < 0:
            raise ValueError("decoder_dim and decoder_layers must be >= 0 (0: the default)")
        if not 0.0 < self.mask_rate < 1.0:
            raise ValueError("mask_rate must be in (0, 1)")
        if self.mask_token_fraction + self.random_token_fraction > 1.0:
            raise ValueError("mask_token_fraction + random_token_fraction must be <= 1")
        if self.norm_window < 0:
            raise ValueError("norm_window must be >= 0 (0: every visible value)")
        q = self.quantiles
        if q is not None and (not q or any(not 0.0 < x < 1.0 for x in q)
                              or any(a >= b for a, b in zip(q, q[1:]))):
            raise ValueError(f"quantiles must be a non-empty, strictly increasing list of levels "
                             f"in (0, 1), e.g. [0.1, 0.5, 0.9]; got {list(q)}")
        return self


class TrainConfig(Config):
    """The training loop.

    Args:
        max_steps: optimizer steps (each over `batch_size * grad_accum` sequences).
        batch_size: the global micro-batch in sequences; under torchrun each
            rank runs its share of it, so the optimizer sees the same batches
            (and the same loss curve) as one process with the same config.
        lr / weight_decay / betas: AdamW.
        warmup_steps: linear warmup, then cosine decay to `min_lr_ratio * lr`.
        eval_every / save_every: in optimizer steps (0 = only at the end).
        patience: early stopping after this many evaluations without
            improvement of the validation loss (0 = off).
        precision: "auto" uses bf16 autocast on CUDA and fp32 on CPU.
        packing: concatenate sequences into rows of `row_tokens` (default: one
            row per micro-batch) with per-document attention, batches filled to
            `tokens_per_batch` real tokens (default: batch_size * max_len).
        shuffle_buffer: for a prepared (sharded) corpus, sequences per shuffle
            window; shards are visited in a seeded order and each window of
            consecutive shards is shuffled, so reads stay local.
        strategy: data parallelism under torchrun: "auto" (DDP), "ddp", or
            "fsdp2" (parameters, gradients and optimizer state sharded with
            `fully_shard`, per transformer block); one process ignores it.
        compile: `torch.compile` each transformer block (helps on GPUs; the
            first steps pay the compilation time).
    """

    seed: int = 0
    max_steps: int = 200
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 20
    grad_clip: float = 1.0
    eval_every: int = 50
    save_every: int = 50
    patience: int = 0
    log_every: int = 10
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    device: str = "auto"
    num_workers: int = 0
    progress: bool = True
    tensorboard: bool = False
    packing: bool = False
    row_tokens: int = 0
    tokens_per_batch: int = 0
    shuffle_buffer: int = 8192
    strategy: Literal["auto", "ddp", "fsdp2"] = "auto"
    compile: bool = False

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        for name in ("max_steps", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)} "
                                 "(an untrained model is not a result)")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.warmup_steps < 0 or self.eval_every < 0 or self.save_every < 0:
            raise ValueError("warmup_steps, eval_every and save_every must be >= 0")
        return self


class DataConfig(Config):
    """Where pretraining sequences come from.

    Args:
        modality: registry name ("protein", "molecule").
        input: a file path, a packaged corpus name (see `biofm list`), or a
            directory written by `biofm prepare` (recognised by its index.json;
            read lazily from memory-mapped shards, its tokenizer and its
            train/valid split are used).
        column: SMILES column for CSV input.
        valid_fraction: held out for validation loss (by record, seeded).
        max_records: cap on records read (0 = all).
        on_error: "raise" or "skip" bad records.
        window / stride: DNA only: cut records into windows of this many bases
            (0 = whole records), `stride` apart (0 = window).
        rc_prob: DNA only: probability of reverse-complementing each training
            sequence (strand augmentation).
        memory_budget_mb: for a prepared corpus, the most shard data kept
            mapped at once (per split); the corpus itself may be far larger.
        layer: single cell only: the matrix of raw counts in an .h5ad ("X",
            "raw" or a layer name); None picks the first of X,
            layers['counts'], raw.X that holds counts.
        min_gene_overlap: single cell only: the least fraction of a file's
            expressed genes that must be in the model's gene vocabulary.
    """

    modality: str = "protein"
    input: str = "proteome"
    column: str | None = None
    tokenizer: str | None = None
    valid_fraction: float = 0.05
    max_records: int = 0
    on_error: Literal["raise", "skip"] = "raise"
    memory_budget_mb: float = 1024.0
    window: int = 0
    stride: int = 0
    rc_prob: float = 0.0
    layer: str | None = None
    min_gene_overlap: float = 0.5


class PretrainConfig(Config):
    """Everything `biofm pretrain` needs; saved as `config.yaml` in checkpoints."""

    data: DataConfig = DataConfig()
    backbone: BackboneConfig = BackboneConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    train: TrainConfig = TrainConfig()


def pretrain_config(config: str | None = None, *, modality: str | None = None,
                    objective: str | None = None, size: str | None = None,
                    data: dict[str, Any] | None = None, train: dict[str, Any] | None = None,
                    overrides: list[str] = ()) -> PretrainConfig:
    """The config of `biofm pretrain`: a YAML file or preset (`config`; default: the
    modality's preset for `objective`, else the generic defaults), then the flags,
    then `--set` overrides. `None` flags are unset.

    A new `size` replaces the preset's explicit shape; an `objective` sets the
    backbone kind it needs (encoder / decoder).
    """
    from biofm.registry import MODALITIES, OBJECTIVES

    if modality is not None and objective is not None:
        fitting = MODALITIES.get(modality).objectives()
        if objective not in fitting:
            OBJECTIVES.get(objective)  # an unknown name: the registry's error lists them all
            raise BiofmError(f"objective {objective!r} does not fit {modality} data",
                             fix=f"choose --objective among: {', '.join(fitting)}")
    if config is None:
        config = MODALITIES.get(modality or "protein").preset_for(objective)
    if config is None:  # a modality without presets: the generic tiny defaults
        base, where = PretrainConfig.from_dict({"backbone": {"size": "tiny"}}).model_dump(
            mode="json"), "the defaults"
    else:
        path = Path(config) if Path(config).suffix in (".yaml", ".yml") \
            else preset_path("pretrain", config)
        base, where = PretrainConfig.load(path).model_dump(mode="json"), path.name
    backbone: dict[str, Any] = {"size": size}
    if size:
        backbone.update(d_model=0, n_layers=0, n_heads=0, d_ff=0)
    if objective:
        backbone["kind"] = OBJECTIVES.get(objective).backbone_kind
    flags = {"data": {"modality": modality, **(data or {})}, "objective": {"name": objective},
             "backbone": backbone, "train": train or {}}
    flags = {k: {f: v for f, v in sect.items() if v is not None} for k, sect in flags.items()}
    merged = deep_merge(deep_merge(base, flags), parse_overrides(list(overrides)))
    # the preset itself was validated when loaded: what fails now comes from the options
    return PretrainConfig.from_dict(merged, source=f"the command-line options (flags, --set) "
                                                   f"over {where}")
