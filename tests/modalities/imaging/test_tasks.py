"""The atlas tasks: real subjects, the splits they promise, prompts that match masks."""

from __future__ import annotations

import numpy as np
import pytest

from tests.modalities.imaging.conftest import require


@pytest.fixture(scope="module", autouse=True)
def _data():
    require("colin27"), require("mni152"), require("aal", "atlas")


def _z(ids):
    return np.array([int(i.split(":")[1][1:]) for i in ids])


def test_mni152_carries_aal_by_an_integer_shift():
    from biofm.modalities.imaging.atlas import subject

    mni = subject("mni152")
    assert "integer shift of (-8, -9, -1) voxels" in mni.note
    assert mni.labels.shape == mni.image.shape and len(np.unique(mni.labels)) == 117
    assert mni.image.array.min() == 0.0 and mni.image.array.max() == 1.0


def test_region_patches_train_on_colin27_test_on_mni152():
    from biofm.modalities.imaging.tasks import brain_region_patch

    task = brain_region_patch()
    splits = task.load(0)
    assert task.kind == "classification" and len(task.classes) == 7
    assert all(i.startswith("colin27:") for i in splits.train.ids + splits.valid.ids)
    assert all(i.startswith("mni152:") for i in splits.test.ids)
    assert splits.train.inputs[0].shape == (1, 64, 64)
    assert set(np.bincount(splits.train.labels)) == {120}  # balanced
    train_z = np.array([int(i.split("z")[-1]) for i in splits.train.ids])
    valid_z = np.array([int(i.split("z")[-1]) for i in splits.valid.ids])
    assert np.abs(train_z[:, None] - valid_z[None]).min() > 10  # mm (1 mm slices)


@pytest.mark.parametrize("split", ["subject", "slab"])
def test_box_prompts_frame_their_masks(split):
    from biofm.modalities.imaging.tasks import JITTER, box_seg_splits

    train, valid, test = box_seg_splits(split)
    for data in (train, test):
        assert len(data) > 20 and data.images.shape[1:] == (1, 64, 64)
        prompts = data.prompts(point=True)
        for k in range(len(data)):
            r0, c0, r1, c1 = data.boxes[k]
            rows, cols = np.flatnonzero(data.masks[k].any(1)), np.flatnonzero(data.masks[k].any(0))
            assert abs(rows[0] - r0) <= JITTER and abs(rows[-1] + 1 - r1) <= JITTER
            assert abs(cols[0] - c0) <= JITTER and abs(cols[-1] + 1 - c1) <= JITTER
            assert prompts[k, 0].sum() == (r1 - r0) * (c1 - c0)
            assert data.masks[k][tuple(data.points[k])]  # the point lies in the structure
            assert prompts[k, 1][tuple(data.points[k])] == 1.0


def test_test_data_never_overlaps_training():
    from biofm.modalities.imaging.tasks import box_seg_splits

    train, valid, test = box_seg_splits("slab")
    seen = np.concatenate([_z(train.ids), _z(valid.ids)])
    assert np.abs(_z(test.ids)[:, None] - seen[None]).min() >= 10  # mm: a slab apart
    assert np.abs(_z(valid.ids)[:, None] - _z(train.ids)[None]).min() >= 10
    train, valid, test = box_seg_splits("subject")
    assert all(i.startswith("mni152:") for i in test.ids)
    assert not any(i.startswith("mni152:") for i in train.ids + valid.ids)
