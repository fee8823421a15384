from biofm.bench.recipes import pretrain_and_compare


def test_pretrain_and_compare_cell_types_on_tiny_settings(tmp_path):
    table = pretrain_and_compare(tmp_path, preset="cell-geneformer-tiny", task="pbmc-celltype",
                                 quick=True, corpus="pbmc68k-reduced", modes=("full",))
    methods = [row["method"] for row in table.rows]
    assert methods == ["LogReg on PCA (log-norm)", "pretrained: fine-tune"]
    for row in table.rows:
        assert row["task"] == "pbmc-celltype" and 0.0 <= row["macro_f1"] <= 1.0
    assert table.rows[0]["accuracy"] > 0.5  # real PBMC types are easy for the baseline
