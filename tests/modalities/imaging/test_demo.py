"""The demo's imaging rows run end to end (quick mode: seconds of training)."""

from __future__ import annotations

from tests.modalities.imaging.conftest import require


def test_quick_demo_rows(tmp_path):
    require("colin27"), require("mni152"), require("head-ct"), require("aal", "atlas")
    from biofm.modalities.imaging.demo import run
    from biofm.modalities.imaging.segmentation import load_segmenter

    table = run(tmp_path / "imaging", seeds=1, quick=True, say=lambda line: None)
    methods = {(r["task"], r["method"]) for r in table.rows}
    assert ("brain-region-patch", "pretrained: probe") in methods
    assert ("brain-region-patch", "RF on pooled pixels") in methods
    for method in ("box prompt (filled box)", "MONAI UNet (scratch)", "pretrained: fine-tune"):
        assert ("brain-box-seg", method) in methods
    assert all(0.0 <= r["dice"] <= 1.0 for r in table.rows if "dice" in r)
    assert (tmp_path / "imaging" / "results.md").is_file()
    model, info = load_segmenter(tmp_path / "imaging" / "segmenter")
    assert info["mode"] == "full" and info["task"] == "brain-box-seg"


def test_demo_skips_with_the_install_hint_when_data_is_missing(monkeypatch, tmp_path):
    from biofm.modalities.imaging import demo, locate

    monkeypatch.setattr(locate, "debian_roots", lambda: [tmp_path])
    lines = []
    table = demo.run(tmp_path / "out", seeds=1, quick=True, say=lines.append)
    assert len(table) == 0 and "imaging rows skipped" in lines[0] and "make data" in lines[0]
