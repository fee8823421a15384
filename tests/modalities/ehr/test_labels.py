"""MEDS labels: inputs stop at the prediction time (the look-ahead guard), subjects stay in one
split, and label-file errors name the file, the column and the subject."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biofm.adapt import FinetuneConfig, finetune
from biofm.adapt.finetune import task_metrics
from biofm.bench.compare import baselines
from biofm.config import pretrain_config
from biofm.errors import BiofmError
from biofm.modalities.ehr import EHR
from biofm.modalities.ehr.labels import subject_split
from tests.modalities.ehr.conftest import T0, cohort, day, meds_frame, write_meds_dir


def _task(tmp_path, frame, labels, split="random", name="labels.parquet"):
    data = write_meds_dir(tmp_path / "meds", frame)
    labels.to_parquet(tmp_path / name, index=False)
    return EHR.task_from_file(data, label=str(tmp_path / name), kind=None, split=split, seed=0)


def _no_event_after_the_prediction_time(splits) -> bool:
    return all(len(t) and (np.isnat(t.times) | (t.times <= t.end)).all()
               for part in (splits.train, splits.valid, splits.test) for t in part.inputs)


def _aucs(tmp_path, planted_after: bool) -> dict[str, float]:
    """Test ROC-AUC of the baselines, and of a probe and a fine-tune of a model pretrained
    on the full timelines (planted codes included), on the 600-subject cohort."""
    import biofm

    frame, labels = cohort(600, seed=0, planted_after=planted_after)
    task = _task(tmp_path, frame, labels)
    splits = task.load(0)
    assert _no_event_after_the_prediction_time(splits)
    config = pretrain_config("ehr-mlm-tiny", data={"input": str(tmp_path / "meds")},
                             train={"max_steps": 5, "batch_size": 16, "progress": False,
                                    "eval_every": 5, "save_every": 5, "warmup_steps": 0})
    model = biofm.load(biofm.pretrain(config.replace(backbone={"max_len": 48}),
                                      tmp_path / "run").model_dir)
    aucs = {label: m["roc_auc"] for label, m in baselines(task, splits, 0).items()}
    for mode in ("probe", "full"):
        result = finetune(model, splits, task.kind,
                          FinetuneConfig(mode=mode, epochs=2, lr=3e-3, batch_size=32))
        aucs[mode] = task_metrics(task.kind, splits.test.labels, result.test_predictions)[
            "roc_auc"]
    return aucs


def test_a_code_planted_after_the_prediction_time_does_not_raise_any_metric(tmp_path):
    """Label-1 subjects get ICD10CM/Z99.9 after the prediction time; had any of it leaked
    into the inputs, the methods would score far above chance (the control below)."""
    aucs = _aucs(tmp_path, planted_after=True)
    assert len(aucs) == 4 and all(auc < 0.75 for auc in aucs.values()), aucs


def test_the_same_code_before_the_prediction_time_is_found(tmp_path):
    """Positive control: planted before the prediction time, the code decides the label and
    the baselines and the probe find it."""
    aucs = _aucs(tmp_path, planted_after=False)
    assert min(aucs[k] for k in aucs if k != "full") > 0.95, aucs


def test_several_label_rows_per_subject_stay_in_one_split(tmp_path):
    frame, labels = cohort(90, seed=1)
    later = labels.assign(prediction_time=labels["prediction_time"] + pd.Timedelta(days=30))
    task = _task(tmp_path, frame, pd.concat([labels, later], ignore_index=True))
    for seed in (0, 1):
        splits = task.load(seed)
        subjects = [{i.split("@")[0] for i in part.ids} for part in
                    (splits.train, splits.valid, splits.test)]
        assert sum(map(len, subjects)) == 90 and not (subjects[0] & subjects[1]) \
            and not (subjects[0] & subjects[2]) and not (subjects[1] & subjects[2])
    assert len(task.load(0).train) + len(task.load(0).valid) + len(task.load(0).test) == 180
    assert task.load(0).train.ids != task.load(1).train.ids


def test_subject_split_is_by_subject_and_given_splits_are_used():
    subjects = np.array(["a", "a", "b", "c", "c", "c"])
    index = subject_split(subjects, np.zeros(6), "regression", 0,
                          given={"a": "train", "b": "tuning", "c": "held_out"})
    assert [i.tolist() for i in index] == [[0, 1], [2], [3, 4, 5]]
    with pytest.raises(BiofmError, match="subject c: 1 labeled subject"):
        subject_split(subjects, np.zeros(6), "regression", 0, given={"a": "train", "b": "train"})


def test_given_split_reads_meds_subject_splits(tmp_path):
    frame, labels = cohort(30, seed=2)
    data = write_meds_dir(tmp_path / "meds", frame)
    (data / "metadata").mkdir()
    names = ["train"] * 20 + ["tuning"] * 5 + ["held_out"] * 5
    pd.DataFrame({"subject_id": np.arange(1, 31), "split": names}).to_parquet(
        data / "metadata" / "subject_splits.parquet")
    labels.to_parquet(tmp_path / "l.parquet")
    task = EHR.task_from_file(data, label=str(tmp_path / "l.parquet"), kind=None, split="given",
                              seed=5)
    splits = task.load(5)
    assert sorted(int(i.split("@")[0]) for i in splits.test.ids) == list(range(26, 31))


def test_label_file_naming_unknown_subjects(tmp_path):
    frame, labels = cohort(20, seed=3)
    labels.loc[len(labels)] = [999, T0, True]
    with pytest.raises(BiofmError) as err:
        _task(tmp_path, frame, labels)
    message = str(err.value)
    assert "labels.parquet" in message and "column 'subject_id'" in message
    assert "1 subject(s) of the label file are not in the data (e.g. 999)" in message


def test_prediction_time_before_the_first_event(tmp_path):
    frame, labels = cohort(20, seed=3)
    labels.loc[0, "prediction_time"] = day(-365 * 200)
    with pytest.raises(BiofmError) as err:
        _task(tmp_path, frame, labels)
    message = str(err.value)
    assert "labels.parquet" in message and "column 'prediction_time', subject 1" in message
    assert "before the subject's first event" in message


def test_label_file_form_errors(tmp_path):
    frame, labels = cohort(20, seed=3)
    with pytest.raises(BiofmError, match="missing label column\\(s\\) 'prediction_time'"):
        _task(tmp_path, frame, labels.drop(columns="prediction_time"))
    with pytest.raises(BiofmError, match="no label values"):
        _task(tmp_path, frame, labels.drop(columns="boolean_value"))
    data = write_meds_dir(tmp_path / "meds2", frame)
    with pytest.raises(BiofmError, match="names the MEDS label file"):
        EHR.task_from_file(data, label="boolean_value", kind=None, split="random", seed=0)
    task = _task(tmp_path, frame, labels.assign(boolean_value=labels["boolean_value"].where(
        labels.index > 1)), name="l2.parquet")  # two rows without a label: left out, said
    assert task.notes == ("left out 2 label row(s) without a boolean_value or a "
                          "prediction_time",)
    assert len(task.load(0).train) + len(task.load(0).valid) + len(task.load(0).test) == 18


def test_float_labels_are_regression(tmp_path):
    frame, labels = cohort(40, seed=4)
    labels = labels.drop(columns="boolean_value").assign(float_value=np.linspace(0, 1, 40))
    task = _task(tmp_path, frame, labels)
    assert task.kind == "regression" and task.load(0).train.labels.dtype == np.float32


def test_prediction_time_at_or_after_death(tmp_path):
    frame, labels = cohort(20, seed=3)
    death = meds_frame([(2, day(-5), "MEDS_DEATH", None)])
    frame = pd.concat([frame, death]).sort_values(["subject_id", "time"], na_position="first")
    with pytest.raises(BiofmError) as err:  # subject 2 died 5 days before its prediction time
        _task(tmp_path, frame, labels)
    message = str(err.value)
    assert "labels.parquet" in message and "column 'prediction_time', subject 2" in message
    assert "at or after the subject's death" in message
    _task(tmp_path, frame, labels.assign(prediction_time=day(-6)), name="before.parquet")
