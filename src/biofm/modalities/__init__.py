"""Modalities register readers, tokenizers, corpora and tasks on import."""

from biofm.modalities import dna, molecules, proteins, singlecell, timeseries  # noqa: F401
