"""Pre-training checkpoints: a full disk is a clear error that spares the earlier checkpoints, damaged checkpoints are
skipped by 'latest' (and refused when named), and every file is fsynced before a checkpoint is published."""

import errno
import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from audioset_fixture import write_audiofolder
from test_pretraining import TINY, main, one_thread_and_fresh_accelerate, read_log  # noqa: F401 - autouse fixture

from maskspec_hf.training.checkpoints import (
    CheckpointWriteError,
    checkpoint_problem,
    list_checkpoints,
    resolve_checkpoint,
)


STEPS = 4


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    (root / "tiny.json").write_text(json.dumps(TINY))
    write_audiofolder(root / "af", num_good=7)  # 8 rows, one of them garbage: 2 batches of 4 per epoch
    return root


def run_args(root: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        "--config_name", str(root / "tiny.json"),
        "--data_dir", str(root / "af"),
        "--cache_dir", str(root / "hf_cache"),
        "--max_length_seconds", "1",
        "--per_device_train_batch_size", "4",
        "--max_steps", str(STEPS),
        "--checkpointing_steps", "1",
        "--checkpoints_total_limit", "3",
        "--image_steps", "0",
        "--dataloader_num_workers", "0",
        "--report_to", "none",
        "--output_dir", str(output_dir),
        *extra,
    ]  # fmt: skip


def run(argv: list[str]) -> dict:
    """`main(argv)`, leaving Accelerate's global state fresh for the next run of the same test."""
    from accelerate.state import AcceleratorState, GradientState

    try:
        return main(argv)
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()


@pytest.fixture(scope="module")
def finished_run(workdir):
    """An uninterrupted run: checkpoints after steps 1, 2 and 3, and the reference losses."""
    output_dir = workdir / "straight"
    torch.set_num_threads(1)
    run(run_args(workdir, output_dir))
    assert [s for s, _ in list_checkpoints(output_dir)] == [1, 2, 3]
    return output_dir


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    shutil.rmtree(target / "final")
    return target


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def digests(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    "name, damage, expected",
    [
        ("model.safetensors", truncate, r"model\.safetensors: truncated"),
        ("training_state.json", truncate, r"training_state\.json: JSONDecodeError"),
        ("data_state.rank0.json", truncate, r"data_state\.rank0\.json: JSONDecodeError"),
        ("optimizer.bin", truncate, r"optimizer\.bin: not a whole torch file"),
        ("random_states_0.pkl", truncate, r"random_states_0\.pkl: not a whole torch file"),
        ("scheduler.bin", Path.unlink, r"missing scheduler\.bin"),
    ],
)
def test_checkpoint_problem_names_the_damaged_file(finished_run, tmp_path, name, damage, expected):
    checkpoint = shutil.copytree(finished_run / "checkpoints" / "step-2", tmp_path / "step-2")
    assert checkpoint_problem(checkpoint) is None
    damage(checkpoint / name)
    assert re.search(expected, checkpoint_problem(checkpoint)), checkpoint_problem(checkpoint)


def test_naming_a_damaged_checkpoint_is_a_clear_error(finished_run, tmp_path):
    output_dir = copy_run(finished_run, tmp_path / "out")
    truncate(output_dir / "checkpoints" / "step-3" / "model.safetensors")
    with pytest.raises(ValueError, match=r"step-3' is damaged \(model\.safetensors: truncated"):
        resolve_checkpoint(str(output_dir / "checkpoints" / "step-3"), output_dir)
    for _, path in list_checkpoints(output_dir):
        (path / "training_state.json").write_text("{")
    with pytest.raises(ValueError, match="Every checkpoint in .* is damaged: step-3 .*step-2 .*step-1"):
        resolve_checkpoint("latest", output_dir)


def test_latest_skips_damaged_checkpoints_and_resumes_exactly_from_the_newest_whole_one(
    finished_run, tmp_path, caplog
):
    output_dir = copy_run(finished_run, tmp_path / "out")
    truncate(output_dir / "checkpoints" / "step-3" / "model.safetensors")
    truncate(output_dir / "checkpoints" / "step-2" / "data_state.rank0.json")
    args = run_args(finished_run.parent, output_dir, "--resume_from_checkpoint", "latest")
    # Stop after one step (a time limit saves a checkpoint) and keep one checkpoint: the damaged step-3, from the
    # run's abandoned future, must not survive in place of the new step-2.
    with caplog.at_level(logging.WARNING, logger="maskspec_hf.training.checkpoints"):
        summary = run(args + ["--max_train_minutes", "1e-6", "--checkpoints_total_limit", "1"])
    assert summary["resumed_from"].endswith("step-1") and summary["step"] == 2 and summary["stopped_by_time_limit"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "skipping the damaged checkpoint" in w and "step-3" in w and "model.safetensors: truncated" in w
        for w in warnings
    ), warnings
    assert any("step-2" in w and "data_state.rank0.json: JSONDecodeError" in w for w in warnings), warnings
    assert [s for s, _ in list_checkpoints(output_dir)] == [2]
    assert checkpoint_problem(output_dir / "checkpoints" / "step-2") is None

    summary = run(args)
    assert summary["resumed_from"].endswith("step-2") and summary["step"] == STEPS
    reference, resumed = read_log(finished_run), read_log(output_dir)
    assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))
    for expected, got in zip(reference, resumed):
        assert got["loss"] == pytest.approx(expected["loss"], abs=1e-5), got["step"]


def _failing_torch_save(monkeypatch, error: Exception, at: str, seen: dict):
    save = torch.save

    def fake_save(obj, f, *args, **kwargs):
        if at in str(f):
            seen["earlier"] = digests(Path(f).parent.parent / "step-1")  # what the previous checkpoint held then
            raise error
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fake_save)


@pytest.mark.parametrize(
    "error, disk_free, expected",
    [
        (OSError(errno.ENOSPC, "No space left on device"), None, "no space left on device"),
        # What torch.save really raises on a full disk: no errno, only its zip writer's complaint.
        (
            RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),
            4096,
            "no space left on device, 0.0 MiB free",
        ),
        (
            RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),
            2**40,
            "the write failed",
        ),
    ],
)
def test_a_failed_checkpoint_write_is_a_clear_error_and_the_earlier_checkpoint_survives(
    workdir, tmp_path, monkeypatch, error, disk_free, expected
):
    output_dir = tmp_path / "out"
    seen = {}
    _failing_torch_save(monkeypatch, error, at=".tmp-step-2", seen=seen)
    if disk_free is not None:
        usage = shutil.disk_usage(tmp_path)
        monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=disk_free))
    with pytest.raises(CheckpointWriteError) as caught:
        run(run_args(workdir, output_dir))
    message = str(caught.value)
    assert expected in message and str(output_dir / "checkpoints" / "step-2") in message, message
    assert "The earlier checkpoints" in message and "--resume_from_checkpoint latest" in message
    if expected == "the write failed":
        assert "no space" not in message
    assert caught.value.__cause__ is error
    checkpoints = output_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-1"]  # the partial step-2 is gone
    assert digests(checkpoints / "step-1") == seen["earlier"] and checkpoint_problem(checkpoints / "step-1") is None

    monkeypatch.undo()
    summary = run(run_args(workdir, output_dir, "--resume_from_checkpoint", "latest"))
    assert summary["resumed_from"].endswith("step-1") and summary["step"] == STEPS


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd to name fsynced files")
def test_every_file_and_folder_of_a_checkpoint_is_fsynced_before_it_is_published(workdir, tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return fsync(fd)

    def recording_replace(src, dst, *args, **kwargs):
        events.append(("replace", str(src), str(dst)))
        return replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    output_dir = tmp_path / "out"
    run(run_args(workdir, output_dir, "--max_steps", "2"))
    root = (output_dir / "checkpoints").resolve()
    tmp, final = str(root / ".tmp-step-1"), root / "step-1"
    published = events.index(("replace", tmp, str(final)))
    synced_before = {e[1] for e in events[:published] if e[0] == "fsync"}
    files = [p.name for p in final.iterdir()]
    assert len(files) >= 10
    assert {f"{tmp}/{name}" for name in files} | {tmp} <= synced_before, sorted(synced_before)
    assert ("fsync", str(root)) in events[published:]  # the rename itself
