"""The .h5ad reader: cells as sparse rows (`CellCounts`) sharing their file's gene array,
counts from X / layers['counts'] / .raw (dense or sparse, any chunking), clear errors for
log-normalised or scaled data, gene ids with Ensembl ↔ symbol aliases."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.data.packaged import package_file
from biofm.data.records import SkipLog
from biofm.errors import BiofmError
from biofm.modalities.singlecell import CellCounts, read_h5ad
from biofm.modalities.singlecell.datasets import PBMC68K
from tests.modalities.singlecell.cells import write_h5ad

GENES = ["CD3E", "MS4A1", "LYZ", "NKG7"]
COUNTS = np.array([[3, 0, 1, 0],
                   [0, 5, 0, 2],
                   [7, 1, 0, 0]], dtype=float)
EXPECTED = [{"CD3E": 3, "LYZ": 1}, {"MS4A1": 5, "NKG7": 2}, {"CD3E": 7, "MS4A1": 1}]


def profiles(records) -> list[dict[str, float]]:
    return [r.data.to_dict() for r in records]


def test_a_cell_is_a_sparse_row_over_its_files_shared_genes(tmp_path):
    records = list(read_h5ad(write_h5ad(tmp_path / "x.h5ad", COUNTS, GENES)))
    first = records[0].data
    assert isinstance(first, CellCounts) and all(r.data.genes is first.genes for r in records)
    assert first.genes.tolist() == GENES and first.indices.tolist() == [0, 2]
    assert first.indices.dtype == np.int32 and first.counts.dtype == np.float32
    assert first.counts.tolist() == [3.0, 1.0] and first.expressed.tolist() == ["CD3E", "LYZ"]
    assert len(first) == 2 and CellCounts.from_dict({"CD3E": 3, "LYZ": 1, "NKG7": 0}).to_dict() \
        == EXPECTED[0]  # zeros are not stored


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("chunk_rows", [1, 2, 256])
def test_reads_counts_from_x_dense_or_sparse_in_any_chunking(tmp_path, sparse, chunk_rows):
    path = write_h5ad(tmp_path / "x.h5ad", COUNTS, GENES, sparse=sparse)
    records = list(read_h5ad(path, chunk_rows=chunk_rows))
    assert [r.id for r in records] == ["cell0", "cell1", "cell2"]
    assert profiles(records) == EXPECTED
    assert records[1].line == 2 and records[1].source == str(path)


def test_counts_in_a_layer_or_raw_are_found_when_x_is_log_normalised(tmp_path):
    logged = np.log1p(COUNTS / COUNTS.sum(1, keepdims=True) * 1e4)
    in_layer = write_h5ad(tmp_path / "layer.h5ad", logged, GENES, layers={"counts": COUNTS})
    in_raw = write_h5ad(tmp_path / "raw.h5ad", logged, GENES, raw=COUNTS)
    assert profiles(read_h5ad(in_layer)) == EXPECTED
    assert profiles(read_h5ad(in_raw)) == EXPECTED


def test_float_counts_with_rounding_noise_are_counts(tmp_path):
    noisy = COUNTS + np.where(COUNTS > 0, 1e-9, 0)  # as celltypist's sample stores them
    path = write_h5ad(tmp_path / "noisy.h5ad", noisy.astype(np.float64), GENES, sparse=False)
    assert profiles(read_h5ad(path)) == EXPECTED


def test_log_normalised_data_without_counts_is_refused_with_where_counts_live(tmp_path):
    logged = np.log1p(COUNTS)
    path = write_h5ad(tmp_path / "lognorm.h5ad", logged, GENES)
    with pytest.raises(BiofmError) as info:
        list(read_h5ad(path))
    message = str(info.value)
    assert str(path) in message and "non-integer" in message and "'cell0'" in message
    assert "'CD3E'" in message and "layers['counts']" in message and ".raw" in message


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_values_are_not_counts(tmp_path, bad):
    counts = COUNTS.copy()
    counts[1, 3] = bad
    path = write_h5ad(tmp_path / "nan.h5ad", counts, GENES)
    with pytest.raises(BiofmError, match=r"X holds NaN or infinite values .*'cell1'.*'NKG7'"):
        list(read_h5ad(path))
    many = np.tile(COUNTS, (400, 1))  # 1,200 cells: the bad one lies past the first check
    many[1100, 0] = bad
    path = write_h5ad(tmp_path / "late.h5ad", many, GENES)
    with pytest.raises(BiofmError, match=r"'cell1100', row 1101\): X holds (nan|inf), not a "
                                         r"count, for gene 'CD3E'"):
        list(read_h5ad(path))


def test_scaled_data_is_refused_as_negative():
    """The real scanpy file: X scaled (negatives), raw.X log-normalised, no counts anywhere."""
    path = package_file(*PBMC68K)
    with pytest.raises(BiofmError, match="X holds negative values.*raw.X holds non-integer"):
        list(read_h5ad(path))


def test_a_named_layer_that_is_missing(tmp_path):
    path = write_h5ad(tmp_path / "x.h5ad", COUNTS, GENES, layers={"spliced": COUNTS})
    with pytest.raises(BiofmError, match=r"no layers\['counts'\].*X, spliced") as caught:
        list(read_h5ad(path, layer="counts"))
    assert "embed --layer NAME" in caught.value.fix  # the flag a user types, not a config key
    assert profiles(read_h5ad(path, layer="spliced")) == EXPECTED


def test_empty_cells_raise_or_are_skipped(tmp_path):
    counts = np.vstack([COUNTS, np.zeros(4)])
    path = write_h5ad(tmp_path / "empty.h5ad", counts, GENES)
    with pytest.raises(BiofmError, match="cell 'cell3'.*no counts") as caught:
        list(read_h5ad(path))
    assert "filter_cells" in caught.value.fix  # a fix every command can follow
    skipped = SkipLog()
    assert len(list(read_h5ad(path, on_error="skip", skipped=skipped))) == 3
    assert len(skipped) == 1


def test_ensembl_ids_and_symbols_become_aliases(tmp_path):
    ensembl = ["ENSG00000198851", "ENSG00000105369", "ENSG00000090382", "ENSG00000105374"]
    by_id = write_h5ad(tmp_path / "ids.h5ad", COUNTS, ensembl, var={"gene_symbols": GENES})
    by_symbol = write_h5ad(tmp_path / "sym.h5ad", COUNTS, GENES, var={"gene_ids": ensembl})
    expected = {"ENSG00000198851|CD3E": 3, "ENSG00000090382|LYZ": 1}
    assert next(iter(read_h5ad(by_id))).data.to_dict() == expected
    assert next(iter(read_h5ad(by_symbol))).data.to_dict() == expected


def test_not_an_h5ad_file(tmp_path):
    path = tmp_path / "cells.h5ad"
    path.write_text("not hdf5\n")
    with pytest.raises(BiofmError, match="not a readable AnnData"):
        list(read_h5ad(path))


def test_a_non_count_after_the_inspected_rows_is_still_refused(tmp_path, monkeypatch):
    from biofm.modalities.singlecell import reader

    monkeypatch.setattr(reader, "CHECK_ROWS", 2)  # the decision looks at 2 rows only
    counts = COUNTS.copy()
    counts[2, 0] = 0.5
    path = write_h5ad(tmp_path / "late.h5ad", counts, GENES)
    with pytest.raises(BiofmError, match=r"late.h5ad \(cell 'cell2', row 3\): X holds 0.5, not"):
        list(read_h5ad(path, chunk_rows=1))
