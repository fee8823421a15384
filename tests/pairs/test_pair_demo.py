"""The drug-target demo row: KIBA cold-target at the demo size, on given towers."""

from biofm.model import FoundationModel
from biofm.pairs.compare import LABELS
from biofm.pairs.demo import KIBA_DEMO, kiba_demo


def test_kiba_demo_returns_the_comparison_table(protein_mlm_run, molecule_mlm_run):
    towers = [FoundationModel.load(run / "final") for run in (protein_mlm_run, molecule_mlm_run)]
    lines: list[str] = []
    table = kiba_demo(towers[0], towers[1], quick=True, say=lines.append, device="cpu")
    assert {r["task"] for r in table.rows} == {"kiba (cold-target)"}
    methods = [r["method"] for r in table.rows]
    assert methods[-4:] == [LABELS[m] for m in ("scratch", "probe", "lora", "full")]
    assert methods[0].startswith("GBT on") and len(methods) == 7
    assert {"ci", "mse", "target_spearman", "target_ef10"} <= set(table.metric_names)
    assert all(0 <= r["ci"] <= 1 for r in table.rows)
    assert any("training pairs capped at 60" in line for line in lines)
    assert (KIBA_DEMO.max_train, KIBA_DEMO.epochs, KIBA_DEMO.max_tokens) == (800, 6, 256)
