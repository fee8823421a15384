"""Electronic health records: MEDS / OMOP CDM / events-CSV readers, BEHRT-style code
tokens with age, time-gap and visit bins, MEDS labels with no look-ahead, the nafld
and pbcseq cohorts (real, R `survival`) and Eunomia (synthetic OMOP), and count /
last-value baselines.

Importing this package registers the "ehr" modality, the tokenizer "ehr-codes",
the corpora "nafld-meds", "pbcseq-meds", "eunomia-omop" and the tasks
"nafld-death-5y", "nafld-cvd-5y", "nafld-survival".
"""

from __future__ import annotations

from biofm.modalities.ehr import datasets  # noqa: F401  (register)
from biofm.modalities.ehr.convert import convert_to_meds, write_meds
from biofm.modalities.ehr.labels import labeled_task, read_labels
from biofm.modalities.ehr.modality import EHR, EhrModality
from biofm.modalities.ehr.readers import load_timelines, read_timelines, source_format
from biofm.modalities.ehr.timeline import ReadReport, Timeline
from biofm.modalities.ehr.tokenizer import EhrTokenizer

__all__ = ["EHR", "EhrModality", "EhrTokenizer", "ReadReport", "Timeline", "convert_to_meds",
           "labeled_task", "load_timelines", "read_labels", "read_timelines", "source_format",
           "write_meds"]
