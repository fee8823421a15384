"""The "imaging" modality is registered and reads images as typed records."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.errors import BiofmError
from biofm.modalities.imaging import Image
from biofm.registry import MODALITIES


def test_registered_with_image_suffixes():
    imaging = MODALITIES.get("imaging")
    assert imaging.default_objective == "mae" and imaging.values == ("patches",)
    for name in ("a.nii.gz", "a.nii", "b.dcm", "c.png", "d.tiff", "e.npy", "f.inv3"):
        assert imaging.matches(name), name
    assert not imaging.matches("notes.csv")


def test_records_of_a_folder(tmp_path):
    from PIL import Image as PILImage

    (tmp_path / "sub").mkdir()
    PILImage.fromarray(np.zeros((4, 5), np.uint8)).save(tmp_path / "a.png")
    np.save(tmp_path / "sub" / "b.npy", np.ones((3, 3, 3), np.float32))
    records = MODALITIES.get("imaging").load(tmp_path, "raise", None)
    assert [r.id for r in records] == ["a.png", "sub/b.npy"]
    assert all(isinstance(r.data, Image) for r in records)
    assert records[1].data.shape == (3, 3, 3)


def test_bad_image_is_skipped_and_logged_on_request(tmp_path):
    from biofm.data.records import SkipLog

    (tmp_path / "x.png").write_bytes(b"garbage")
    imaging = MODALITIES.get("imaging")
    with pytest.raises(BiofmError, match=r"x\.png: not a readable image"):
        imaging.load(tmp_path / "x.png", "raise", None)
    skipped = SkipLog()
    records = list(imaging.read(tmp_path / "x.png", on_error="skip", skipped=skipped))
    assert records == [] and len(skipped) == 1


def test_skip_in_a_folder_goes_on_after_a_bad_image(tmp_path):
    from PIL import Image as PILImage

    from biofm.data.records import SkipLog
    from biofm.modalities.imaging import read_image_records

    (tmp_path / "a.png").write_bytes(b"junk bytes")
    for k, name in enumerate("bcd", start=1):
        PILImage.fromarray(np.full((4, 4), k, np.uint8)).save(tmp_path / f"{name}.png")
    skipped = SkipLog()
    records = list(read_image_records(tmp_path, on_error="skip", skipped=skipped))
    assert [r.id for r in records] == ["b.png", "c.png", "d.png"]
    assert [r.line for r in records] == [2, 3, 4]
    assert len(skipped) == 1 and "a.png" in skipped.entries[0][2]
    with pytest.raises(BiofmError, match=r"a\.png: not a readable image"):
        list(read_image_records(tmp_path))


def test_pretraining_corpora_are_listed_and_hold_the_volumes():
    from biofm.registry import CORPORA
    from tests.modalities.imaging.conftest import require

    require("colin27")
    records = CORPORA.get("colin27-slices")()
    assert [r.id for r in records] == ["ch2.nii.gz"]
    assert isinstance(records[0].data, Image) and records[0].data.modality == "MR"
    assert "atlas-slices" in CORPORA
