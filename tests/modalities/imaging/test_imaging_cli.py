"""The imaging CLI paths: segment, embed a folder (one row per image), fine-tune on a
CSV of image paths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.modalities.imaging.conftest import require_installed, tiny_vit
from tests.modalities.imaging.test_segmentation import _crops

nib = pytest.importorskip("nibabel")


@pytest.fixture(scope="module")
def segmenter_dir(tmp_path_factory):
    from biofm.modalities.imaging.segmentation import (
        SegmentConfig,
        build_segmenter,
        save_segmenter,
        train_segmenter,
    )

    config = SegmentConfig(mode="unet", epochs=1, batch_size=16, features=8)
    result = train_segmenter(build_segmenter(config), _crops(16), _crops(8, seed=1), config)
    return save_segmenter(result, tmp_path_factory.mktemp("seg") / "seg", intensity_policy="mr")


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    return tiny_vit().save(tmp_path_factory.mktemp("vit") / "vit")


def _volume(path, shape=(90, 100, 6)):
    affine = np.diag([-1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] = [40, -50, 10]
    data = np.zeros(shape, np.float32)
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    data[(rows - 40) ** 2 + (cols - 50) ** 2 <= 64] = 100.0
    nib.save(nib.Nifti1Image(data, affine), path)
    return affine


def test_segment_writes_a_mask_in_the_inputs_space(cli, segmenter_dir, tmp_path):
    affine = _volume(tmp_path / "vol.nii.gz")
    run = cli("segment", "--model", segmenter_dir, "--input", tmp_path / "vol.nii.gz",
              "--box", "30,40,2,51,61,4", "--output", tmp_path / "mask.nii.gz")
    assert run.code == 0, run.err
    mask = nib.load(tmp_path / "mask.nii.gz")
    np.testing.assert_allclose(mask.affine, affine)
    data = np.asanyarray(mask.dataobj)
    assert data.shape == (90, 100, 6) and data.dtype == np.uint8
    assert not data[..., [0, 1, 4, 5]].any()  # only slices 2 and 3 were asked for
    again = cli("segment", "--model", segmenter_dir, "--input", tmp_path / "vol.nii.gz",
                "--box", "30,40,51,61", "--output", tmp_path / "mask.nii.gz")
    assert again.code == 2 and "already exists" in again.err


@pytest.mark.parametrize("box, phrase", [(None, "needs a box"),
                                         ("30,40,2,51,61", "not 4 integers"),
                                         ("30,40,2,95,61,4", "i range 30..95 is outside"),
                                         ("0,0,80,80", "larger than the segmenter's 64 x 64")])
def test_segment_bad_boxes(cli, segmenter_dir, tmp_path, box, phrase):
    _volume(tmp_path / "vol.nii.gz")
    argv = ["segment", "--model", segmenter_dir, "--input", tmp_path / "vol.nii.gz",
            "--output", tmp_path / "m.nii.gz"] + (["--box", box] if box else [])
    run = cli(*argv)
    assert run.code == 2 and phrase in " ".join(run.err.split()), run.err


def test_embed_a_folder_gives_one_row_per_image(cli, vit_dir, tmp_path):
    from PIL import Image as PILImage

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        PILImage.fromarray(rng.integers(0, 255, (70, 80), dtype=np.uint8)).save(folder / f"{k}.png")
    _volume(folder / "vol.nii.gz")
    run = cli("embed", "--model", vit_dir, "--input", folder, "--output", tmp_path / "e.parquet")
    assert run.code == 0, run.err
    frame = pd.read_parquet(tmp_path / "e.parquet")
    assert frame["id"].tolist() == ["0.png", "1.png", "vol.nii.gz"]
    assert len(frame["embedding"][0]) == 64


def test_finetune_on_a_csv_of_image_paths(cli, vit_dir, tmp_path):
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    rows = []
    for k in range(40):
        bright = k % 2
        pixels = rng.integers(0, 80, (64, 64)) + 150 * bright * (np.arange(64)[None] < 32)
        PILImage.fromarray(pixels.astype(np.uint8)).save(tmp_path / f"img{k}.png")
        rows.append({"image": f"img{k}.png", "label": "left" if bright else "none"})
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    run = cli("finetune", "--model", vit_dir, "--input", tmp_path / "labels.csv",
              "--label", "label", "--mode", "probe", "--output", tmp_path / "ft")
    assert run.code == 0, run.err
    assert (tmp_path / "ft" / "metrics.json").is_file()
    folder = tmp_path / "new"
    folder.mkdir()
    for k in range(3):
        (tmp_path / f"img{k}.png").rename(folder / f"img{k}.png")
    run = cli("predict", "--model", tmp_path / "ft", "--input", folder,
              "--output", tmp_path / "pred.csv")
    assert run.code == 0, run.err
    predictions = pd.read_csv(tmp_path / "pred.csv")
    assert predictions["id"].tolist() == ["img0.png", "img1.png", "img2.png"]
    assert set(predictions["prediction"]) <= {"left", "none"}
    PILImage.fromarray(np.zeros((32, 32), np.uint8)).save(folder / "small.png")
    run = cli("predict", "--model", tmp_path / "ft", "--input", folder,
              "--output", tmp_path / "pred2.csv")
    assert run.code == 2 and "image size (32, 32) differs" in " ".join(run.err.split())
    pd.DataFrame([{"image": "missing.png", "label": "none"},
                  {"image": "img1.png", "label": "left"}]).to_csv(tmp_path / "bad.csv",
                                                                  index=False)
    bad = cli("finetune", "--model", vit_dir, "--input", tmp_path / "bad.csv", "--label",
              "label", "--mode", "probe", "--output", tmp_path / "ft2")
    assert bad.code == 2 and "bad.csv (line 2): the image 'missing.png'" in " ".join(
        bad.err.split())


def test_compare_runs_on_the_packaged_region_task(cli, vit_dir, tmp_path):
    require_installed()
    run = cli("compare", "--model", vit_dir, "--task", "brain-region-patch", "--seeds", 1,
              "--mode", "probe", "--mode", "full", "--max-train", 70, "--output", tmp_path)
    assert run.code == 0, run.err
    table = pd.read_csv(tmp_path / "results.csv").set_index("method")
    assert {"pretrained: probe", "pretrained: fine-tune"} <= set(table.index)
    assert table["accuracy"].between(0, 1).all() and len(table) >= 3  # + the pixel baselines


def test_segmentation_task_compares_through_the_shared_compare(vit_dir, monkeypatch):
    """`biofm compare --task brain-box-seg` runs the segmenters (probe = frozen encoder)
    against the filled box and a MONAI UNet; here the quick subset, with --max-train
    and --intervals applied (not dropped)."""
    from biofm.bench.compare import compare
    from biofm.model import FoundationModel
    from biofm.modalities.imaging import segmentation
    from biofm.registry import TASKS

    require_installed()
    trained_on = []
    train = segmentation.train_segmenter
    monkeypatch.setattr(segmentation, "train_segmenter",
                        lambda model, data, *a, **k: trained_on.append(len(data))
                        or train(model, data, *a, **k))
    task = TASKS.get("brain-box-seg")()
    assert task.kind == "segmentation" and task.split == "subject"
    table = compare(FoundationModel.load(vit_dir), task, seeds=1, modes=["probe"], quick=True,
                    device="cpu", max_train=20, intervals=True).frame().set_index("method")
    assert set(table.index) == {"box prompt (filled box)", "pretrained: frozen encoder",
                                "MONAI UNet (scratch)"}
    assert table["dice"].between(0, 1).all() and (table["hd95"] >= 0).all()
    assert trained_on == [20, 20]  # the quick subset holds 48 training crops
    for metric in ("dice", "hd95"):
        assert (table[f"{metric}_lo"] <= table[metric]).all()
        assert (table[metric] <= table[f"{metric}_hi"]).all()
        assert (table[f"{metric}_lo"] < table[f"{metric}_hi"]).any()


def test_segmentation_task_is_refused_by_finetune_with_the_fix(cli, vit_dir, tmp_path):
    run = cli("finetune", "--model", vit_dir, "--task", "brain-box-seg", "--output",
              tmp_path / "ft")
    from tests.helpers import squeeze

    err = squeeze(run.err)
    assert run.code == 2 and "segmentationtask" in err and "biofmcompare" in err
