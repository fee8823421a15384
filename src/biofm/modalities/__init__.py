"""Modalities register readers, tokenizers, corpora and tasks on import."""

from biofm.modalities import molecules, proteins  # noqa: F401
