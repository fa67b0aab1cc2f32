"""Resuming pre-training refuses arguments that would define another run, and applies those that only change the
reporting or extend the run."""

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from test_checkpoints import run
from test_pretraining import TINY, one_thread_and_fresh_accelerate, read_log  # noqa: F401 - the fixture is autouse

from maskspec_hf.training.checkpoints import RESUME_CHANGEABLE_ARGS, list_checkpoints


STEPS = 4


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume_arguments")
    (root / "tiny.json").write_text(json.dumps(TINY))
    return root


def run_args(root: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        "--config_name", str(root / "tiny.json"),
        "--synthetic_num_clips", "8",
        "--max_length_seconds", "1",
        "--per_device_train_batch_size", "4",
        "--max_steps", str(STEPS),
        "--learning_rate", "0.05",
        "--checkpointing_steps", "2",
        "--image_steps", "0",
        "--dataloader_num_workers", "0",
        "--report_to", "none",
        "--seed", "7",
        "--output_dir", str(output_dir),
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(workdir, tmp_path_factory):
    output_dir = workdir / "straight"
    torch.set_num_threads(1)
    (workdir / "maskspec_cache").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MASKSPEC_HF_CACHE", str(workdir / "maskspec_cache"))
        run(run_args(workdir, output_dir))
    assert [s for s, _ in list_checkpoints(output_dir)] == [2]
    return output_dir


@pytest.fixture
def resumable(finished_run, tmp_path, monkeypatch):
    """A copy of the finished run as a killed run would have left it: the step-2 checkpoint, no final/."""
    monkeypatch.setenv("MASKSPEC_HF_CACHE", str(finished_run.parent / "maskspec_cache"))
    output_dir = tmp_path / "out"
    shutil.copytree(finished_run, output_dir)
    shutil.rmtree(output_dir / "final")
    return output_dir


def test_changed_run_defining_arguments_are_refused_naming_old_and_new_values(workdir, resumable):
    before = sorted(p.relative_to(resumable) for p in resumable.rglob("*"))
    args = run_args(workdir, resumable, "--resume_from_checkpoint", "latest")
    changed = {
        "--learning_rate": ("0.05", "0.1"),
        "--seed": ("7", "3"),
        "--model_name_or_path": ("'base'", "'tiny'"),
        "--config_overrides": ("None", "'decoder_num_hidden_layers=2'"),
        "--per_device_train_batch_size": ("4", "2"),
        "--mask_ratio": ("None", "0.5"),
        "--weight_decay": ("0.05", "0.1"),
        "--warmup_steps": ("None", "1"),
        "--lr_scheduler_type": ("'cosine'", "'linear'"),
        "--max_length_seconds": ("1.0", "2.0"),
        "--synthetic_num_clips": ("8", "12"),
    }
    extra = [a for name, (_, new) in changed.items() for a in (name, new.strip("'"))]
    with pytest.raises(ValueError, match="Cannot resume .*step-2 with other arguments") as caught:
        run(args + extra)
    message = str(caught.value)
    for name, (old, new) in changed.items():
        assert f"{name}: {old} in the checkpoint, {new} now" in message, name
    assert "--output_dir:" not in message and "--resume_from_checkpoint:" not in message
    assert sorted(p.relative_to(resumable) for p in resumable.rglob("*")) == before  # nothing was run or written


def test_a_shorter_run_is_refused_and_a_longer_one_is_applied_and_recorded(workdir, resumable, caplog):
    args = run_args(workdir, resumable, "--resume_from_checkpoint", "latest")
    with pytest.raises(ValueError, match=r"--max_steps: 4 in the checkpoint, 3 now"):
        run(args + ["--max_steps", "3"])
    # Reporting, checkpointing and time-limit options may change; a larger --max_steps extends the run.
    with caplog.at_level(logging.WARNING, logger="maskspec_hf.training.checkpoints"):
        summary = run(
            args
            + [
                "--max_steps",
                "6",
                "--logging_steps",
                "1",
                "--checkpointing_steps",
                "1",
                "--checkpoints_total_limit",
                "1",
                "--max_train_minutes",
                "60",
            ]
        )
    assert any("as a longer run (--max_steps 4 -> 6)" in r.getMessage() for r in caplog.records)
    assert summary["resumed_from"].endswith("step-2") and summary["step"] == summary["total_steps"] == 6
    assert [r["step"] for r in read_log(resumable)] == list(range(1, 7))
    assert [s for s, _ in list_checkpoints(resumable)] == [5]
    assert "| total_steps | 6 |" in (resumable / "final" / "README.md").read_text()


def test_a_checkpoint_without_its_arguments_still_resumes_with_a_warning(workdir, resumable, finished_run, caplog):
    state_file = resumable / "checkpoints" / "step-2" / "training_state.json"
    state = json.loads(state_file.read_text())
    del state["args"]  # as an older version wrote it
    state_file.write_text(json.dumps(state))
    with caplog.at_level(logging.WARNING, logger="maskspec_hf.training.checkpoints"):
        summary = run(run_args(workdir, resumable, "--resume_from_checkpoint", "latest"))
    assert any("does not record the arguments of its run" in r.getMessage() for r in caplog.records)
    assert summary["resumed_from"].endswith("step-2") and summary["step"] == STEPS
    for expected, got in zip(read_log(finished_run), read_log(resumable)):
        assert got["loss"] == pytest.approx(expected["loss"], abs=1e-5), got["step"]


def test_a_checkpoint_of_the_argparse_version_resumes_under_the_new_option_names(
    workdir, resumable, finished_run, caplog
):
    # The previous version recorded --model_size, --clip_seconds and --min_clip_seconds (and options since dropped).
    state_file = resumable / "checkpoints" / "step-2" / "training_state.json"
    state = json.loads(state_file.read_text())
    saved = state["args"]
    saved["clip_seconds"], saved["min_clip_seconds"] = saved.pop("max_length_seconds"), saved.pop("min_length_seconds")
    saved["model_size"], saved["model_name_or_path"] = saved.pop("model_name_or_path"), None
    saved["an_option_since_dropped"] = 3
    state_file.write_text(json.dumps(state))
    args = run_args(workdir, resumable, "--resume_from_checkpoint", "latest")
    with pytest.raises(ValueError, match=r"--max_length_seconds: 1\.0 in the checkpoint, 2\.0 now") as caught:
        run(args + ["--max_length_seconds", "2"])  # the old name's value is checked under the new name
    assert "--model_name_or_path" not in str(caught.value)  # --model_size base is the default model
    with caplog.at_level(logging.WARNING, logger="maskspec_hf.training.checkpoints"):
        summary = run(args)
    assert any(
        "records arguments this version does not have (an_option_since_dropped)" in r.getMessage()
        for r in caplog.records
    )
    assert summary["resumed_from"].endswith("step-2") and summary["step"] == STEPS
    for expected, got in zip(read_log(finished_run), read_log(resumable)):
        assert got["loss"] == pytest.approx(expected["loss"], abs=1e-5), got["step"]


def test_only_existing_arguments_are_listed_as_changeable():
    # A typo in the list would silently make an argument run-defining (the safe default) or hide a stale entry.
    import dataclasses

    from maskspec_hf.data.arguments import DataArguments
    from maskspec_hf.loading import ModelArguments
    from maskspec_hf.training.pretraining import PretrainingArguments

    names = {f.name for cls in (ModelArguments, DataArguments, PretrainingArguments) for f in dataclasses.fields(cls)}
    assert RESUME_CHANGEABLE_ARGS <= names
