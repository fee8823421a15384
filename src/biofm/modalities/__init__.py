"""Modalities register readers, tokenizers, corpora and tasks on import."""

from biofm.modalities import dna, molecules, proteins, singlecell, timeseries  # noqa: F401
from biofm.modalities import text  # noqa: F401
from biofm.modalities import ehr  # noqa: F401
from biofm.modalities import imaging  # noqa: F401
