"""Nothing lost, nothing silent: run directories, resume settings, output files."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from biofm.config import PretrainConfig
from biofm.errors import BiofmError
from biofm.io import atomic_write_text, check_new_output
from biofm.train.runs import check_run_dir
from tests.helpers import squeeze

TINY = ("--modality", "protein", "--steps", "4", "--batch-size", "8", "--set",
        "data.max_records=64", "--set", "backbone.max_len=48", "--set", "train.save_every=2",
        "--set", "train.eval_every=2", "--no-progress")


def test_pretrain_refuses_to_replace_a_run_and_resumes_with_its_own_settings(cli, tmp_path):
    run_dir = tmp_path / "run"
    first = cli("pretrain", *TINY, "--output", run_dir)
    assert first.code == 0, first.err
    assert (run_dir / "loss.png").stat().st_size > 0
    metrics = (run_dir / "metrics.jsonl").read_text()

    again = cli("pretrain", *TINY, "--output", run_dir)
    assert again.code == 2 and "alreadyholdsapretrainingrun" in squeeze(again.err)
    assert "--resume" in squeeze(again.err) and "--overwrite" in squeeze(again.err)
    assert (run_dir / "metrics.jsonl").read_text() == metrics  # nothing lost

    shutil.rmtree(run_dir / "final")  # as if killed before the end: no final/ yet
    resumed = cli("pretrain", "--resume", "--output", run_dir, "--no-progress")
    assert resumed.code == 0, resumed.err
    assert (run_dir / "final" / "config.yaml").is_file()

    changed = cli("pretrain", *TINY, "--seed", "7", "--resume", "--output", run_dir)
    assert changed.code == 2 and "train.seed:0intherun,7now" in squeeze(changed.err)

    replaced = cli("pretrain", *TINY, "--seed", "7", "--overwrite", "--output", run_dir)
    assert replaced.code == 0, replaced.err


def _checkpointed_run(run_dir, config: PretrainConfig) -> None:
    """A run directory whose latest checkpoint was written with `config`."""
    step = run_dir / "step-0000004"
    step.mkdir(parents=True)
    config.save(step / "config.yaml")
    (step / "train_state.pt").write_bytes(b"")
    (run_dir / "latest").write_text(step.name + "\n")


def test_a_run_resumes_under_another_strategy_and_compiled(tmp_path):
    run = PretrainConfig.from_dict({"objective": {"name": "mlm"}})
    _checkpointed_run(tmp_path, run)
    said: list[str] = []
    check_run_dir(tmp_path, run.replace(train={"strategy": "fsdp2", "compile": True}),
                  resume=True, overwrite=False, log=said.append)
    assert said == []
    with pytest.raises(BiofmError, match="train.seed: 0 in the run, 7 now"):
        check_run_dir(tmp_path, run.replace(train={"seed": 7}), resume=True, overwrite=False)


def test_resume_without_a_run_says_so(cli, tmp_path):
    run = cli("pretrain", "--resume", "--output", tmp_path / "nothing")
    assert run.code == 2 and "noruntoresumehere" in squeeze(run.err)


@pytest.mark.parametrize("steps", ["0", "-3"])
def test_no_steps_is_refused(cli, tmp_path, steps):
    run = cli("pretrain", "--steps", steps, "--output", tmp_path / "run")
    assert run.code == 2 and "max_stepsmustbeatleast1" in squeeze(run.err)
    assert not (tmp_path / "run" / "final").exists()


def test_unknown_modality_names_the_modalities(cli, tmp_path):
    run = cli("pretrain", "--modality", "rna", "--output", tmp_path / "run")
    assert run.code == 2 and "unknownmodality'rna'" in squeeze(run.err)
    assert "singlecell" in squeeze(run.err) and "preset" not in run.err


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_unwritable_outputs_are_clear_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(BiofmError, match="is a file"):
        atomic_write_text(tmp_path / "file" / "sub" / "out.txt", "x")
    if not os.path.isdir("/sys/kernel"):
        pytest.skip("no read-only directory to try")
    with pytest.raises(BiofmError, match="cannot write here"):  # sysfs refuses new files
        atomic_write_text("/sys/biofm-test-output.txt", "x")


def test_existing_outputs_need_overwrite(tmp_path):
    path = tmp_path / "out.parquet"
    path.write_text("x")
    with pytest.raises(BiofmError, match="already exists.*--overwrite"):
        check_new_output(path, overwrite=False)
    assert check_new_output(path, overwrite=True) == path


def test_an_objective_that_does_not_fit_names_those_that_do(cli, tmp_path):
    run = cli("pretrain", "--modality", "protein", "--objective", "masked-patch",
              "--output", tmp_path / "run")
    text = squeeze(run.err)
    assert run.code == 2 and "'masked-patch'doesnotfitproteindata" in text
    assert "mlm" in text and "clm" in text


def test_a_dna_window_longer_than_the_context_is_refused(cli, tmp_path):
    genome = tmp_path / "g.fna"
    genome.write_text(">chr\n" + "ACGT" * 200 + "\n")
    run = cli("pretrain", "--modality", "dna", "--input", genome, "--steps", "2",
              "--set", "data.window=200", "--set", "backbone.max_len=64", "--no-progress",
              "--output", tmp_path / "run")
    text = squeeze(run.err)
    assert run.code == 2 and "awindowof200basesis202tokens" in text
    assert "--setbackbone.max_len=202" in text


def test_a_dna_file_is_not_read_as_proteins(cli, tmp_path):
    genome = tmp_path / "g.fasta"
    genome.write_text("".join(f">r{i}\nACGTTGCAACGTAGGCTTAACGNNACGT\n" for i in range(5)))
    run = cli("pretrain", "--modality", "protein", "--input", genome, "--steps", "2",
              "--output", tmp_path / "run")
    text = squeeze(run.err)
    assert run.code == 2 and "holdsnucleotidesequences" in text and "--modalitydna" in text
