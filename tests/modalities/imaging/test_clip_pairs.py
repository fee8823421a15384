"""The atlas crop–name CLIP demonstration: names as text, prompts per group, a quick run."""

import math

from biofm.modalities.imaging.clip_pairs import group_prompts, region_text, run
from tests.modalities.imaging.conftest import require


def test_region_names_are_written_out():
    assert region_text("Frontal_Sup_Orb_L") == "frontal sup orb left"
    assert region_text("Cerebelum_Crus1_R") == "cerebelum crus1 right"
    assert region_text("Vermis_1_2") == "vermis 1 2"


def test_every_aal_region_describes_one_group():
    require("aal", kind="atlas")
    prompts = group_prompts()
    assert len(prompts) == 7 and sum(map(len, prompts.values())) == 116
    assert "hippocampus left" in prompts["limbic"]


def test_quick_run_reports_chance_and_the_trained_towers():
    require("colin27")
    require("mni152")
    table = run(quick=True, say=lambda line: None)
    methods = [r["method"] for r in table.rows]
    assert methods == ["chance", "scratch ViT"]
    for row in table.rows:
        assert 0.0 <= row["zero_shot_accuracy"] <= 1.0
        assert math.isfinite(row["image_to_text_recall@5"])
