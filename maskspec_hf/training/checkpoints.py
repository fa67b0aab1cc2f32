# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Pre-training checkpoints: written atomically, checked before use, and resumed only by the run that wrote them.

A kill, a full disk or a power loss must never leave a torn checkpoint under a final name, nor cost the earlier
ones; and a resumed run must be the run its logs and model card describe, so arguments that define the run are
compared with the checkpoint's.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import zipfile
from functools import partial
from pathlib import Path

import torch
from safetensors import SafetensorError


logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "step-"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
TRAINING_STATE = "training_state.json"


def checkpoint_dir(output_dir) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir) -> list[tuple[int, Path]]:
    """Complete checkpoints `(step, path)`, oldest first; temporary and half-deleted folders are ignored."""
    found = []
    root = checkpoint_dir(output_dir)
    if root.is_dir():
        for path in root.iterdir():
            name = path.name
            if name.startswith(CHECKPOINT_PREFIX) and name[len(CHECKPOINT_PREFIX) :].isdigit():
                if (path / TRAINING_STATE).is_file():
                    found.append((int(name[len(CHECKPOINT_PREFIX) :]), path))
    return sorted(found)


def resolve_checkpoint(resume_from_checkpoint: str | None, output_dir) -> Path | None:
    """The checkpoint to resume from: None for a fresh start; for 'latest', the newest undamaged checkpoint (damaged
    ones are skipped with a warning; None when there is no checkpoint); else the named folder, which must be whole."""
    if not resume_from_checkpoint:
        return None
    if resume_from_checkpoint == "latest":
        return _latest_undamaged_checkpoint(output_dir)
    path = Path(resume_from_checkpoint)
    if not (path / TRAINING_STATE).is_file():
        raise ValueError(
            f"--resume_from_checkpoint {resume_from_checkpoint!r} is not a complete checkpoint folder (no "
            f"{TRAINING_STATE}); give a folder from {checkpoint_dir(output_dir)} or 'latest'."
        )
    problem = checkpoint_problem(path)
    if problem is not None:
        raise ValueError(
            f"--resume_from_checkpoint {resume_from_checkpoint!r} is damaged ({problem}): give another checkpoint "
            f"from {checkpoint_dir(output_dir)}, or 'latest' (the newest undamaged one)."
        )
    return path


def _latest_undamaged_checkpoint(output_dir) -> Path | None:
    checkpoints = list_checkpoints(output_dir)
    damaged = []
    for _, path in reversed(checkpoints):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning(f"--resume_from_checkpoint latest: skipping the damaged checkpoint {path} ({problem}).")
        damaged.append(f"{path.name} ({problem})")
    if damaged:
        raise ValueError(
            f"Every checkpoint in {checkpoint_dir(output_dir)} is damaged: {'; '.join(damaged)}. Resume from another "
            "copy, or start afresh with --overwrite_output_dir (without --resume_from_checkpoint)."
        )
    return None


# What every checkpoint holds besides its per-process files (accelerate's names for one model/optimizer/scheduler).
CHECKPOINT_FILES = ("model.safetensors", "optimizer.bin", "scheduler.bin", "config.json", "preprocessor_config.json")


def checkpoint_problem(path) -> str | None:
    """Why the checkpoint folder `path` cannot be resumed from (a missing, truncated or unparsable file), or None.

    The checks are cheap but catch any torn or truncated file: every expected file is there, JSON files parse,
    safetensors headers parse and account for the file's exact size, torch files (zip archives) end with their
    central directory."""
    path = Path(path)
    try:
        state = json.loads((path / TRAINING_STATE).read_text())
        world_size, _ = int(state["world_size"]), int(state["step"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"{TRAINING_STATE}: {_brief(err)}"
    expected = [
        *CHECKPOINT_FILES,
        *(f"data_state.rank{r}.json" for r in range(world_size)),
        *(f"random_states_{r}.pkl" for r in range(world_size)),
    ]
    missing = [name for name in expected if not (path / name).is_file()]
    if missing:
        return f"missing {', '.join(missing)}"
    for file in sorted(path.iterdir()):
        problem = _file_problem(file) if file.is_file() else None
        if problem is not None:
            return f"{file.name}: {problem}"
    return None


def _file_problem(file: Path) -> str | None:
    try:
        if file.suffix == ".json":
            json.loads(file.read_text())
        elif file.suffix == ".safetensors":
            return _safetensors_problem(file)
        elif file.suffix in (".bin", ".pkl", ".pt"):
            if not zipfile.is_zipfile(file):  # torch.save writes zip archives; truncation cuts their directory off
                return f"not a whole torch file ({file.stat().st_size} bytes, truncated?)"
            with zipfile.ZipFile(file) as archive:
                archive.infolist()
    except (OSError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile) as err:
        return _brief(err)
    return None


def _safetensors_problem(file: Path) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header, then exactly the data the header describes."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        prefix = f.read(8)
        header_size = int.from_bytes(prefix, "little") if len(prefix) == 8 else None
        if header_size is None or header_size > size - 8:
            return f"truncated ({size} bytes, shorter than its header)"
        header = json.loads(f.read(header_size))
    end = max((entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0)
    if 8 + header_size + end != size:
        return f"truncated ({size} bytes where its header describes {8 + header_size + end})"
    return None


def _brief(err: BaseException, limit: int = 200) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__


def remove_stale_checkpoint_folders(output_dir) -> None:
    """Delete temporary folders a killed run left behind (never a complete checkpoint)."""
    root = checkpoint_dir(output_dir)
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith((TMP_PREFIX, TRASH_PREFIX)):
                shutil.rmtree(path, ignore_errors=True)


def write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _discard(path: Path) -> None:
    """Rename then delete, so a half-deleted folder never looks like a checkpoint."""
    trash = path.with_name(f"{TRASH_PREFIX}{path.name}-{os.getpid()}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. no space left on device); the earlier checkpoints are intact."""


def save_checkpoint(
    accelerator,
    output_dir,
    step: int,
    training_state: dict,
    data_state: dict,
    config,
    feature_extractor,
    total_limit: int,
) -> Path:
    """Write `checkpoints/step-<step>` atomically: everything goes into `.tmp-step-<step>`, the main process writes
    `training_state.json` last and fsyncs every file and the folder, then renames the folder into place (and fsyncs
    `checkpoints/`, so the rename itself is durable) and prunes old checkpoints.

    A failed write (a full disk...) removes the temporary folder and raises `CheckpointWriteError` on every process;
    no earlier checkpoint is touched before the new one is complete."""
    root = checkpoint_dir(output_dir)
    final = root / f"{CHECKPOINT_PREFIX}{step}"
    tmp = root / f"{TMP_PREFIX}{CHECKPOINT_PREFIX}{step}"
    is_main = accelerator.is_main_process
    actions = (
        partial(_start_folder, tmp) if is_main else None,
        partial(_write_process_state, accelerator, tmp, data_state),
        partial(_write_shared_state, tmp, training_state, config, feature_extractor) if is_main else None,
    )
    for action in actions:
        _write_on_every_process(accelerator, action, tmp, final)
    if is_main:
        _publish(tmp, final, output_dir, step, total_limit)
    accelerator.wait_for_everyone()
    return final


def _start_folder(tmp: Path) -> None:
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)


def _write_process_state(accelerator, tmp: Path, data_state: dict) -> None:
    accelerator.save_state(str(tmp), safe_serialization=True)
    write_json(tmp / f"data_state.rank{accelerator.process_index}.json", data_state)


def _write_shared_state(tmp: Path, training_state: dict, config, feature_extractor) -> None:
    config.save_pretrained(tmp)
    feature_extractor.save_pretrained(tmp)
    write_json(tmp / TRAINING_STATE, training_state)  # last: its presence marks a complete checkpoint
    _fsync_tree(tmp)


def _publish(tmp: Path, final: Path, output_dir, step: int, total_limit: int) -> None:
    root = final.parent
    if final.exists():
        _discard(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    # Checkpoints after this step are from an abandoned future of the run (it was resumed from an earlier one,
    # e.g. past a damaged checkpoint): drop them, or pruning by step would keep them and delete the new ones.
    checkpoints = list_checkpoints(output_dir)
    stale = [path for at, path in checkpoints if at > step]
    kept = [path for at, path in checkpoints if at <= step]
    for old in stale + kept[:-total_limit]:
        _discard(old)


# Below this much free space, a failed write is taken for a full disk: torch's writer then only says
# "[enforce fail at inline_container.cc] unexpected pos", without the OS error.
LOW_DISK_SPACE_BYTES = 64 * 2**20
_WRITE_ERRORS = (OSError, RuntimeError, SafetensorError)


def _write_on_every_process(accelerator, action, tmp: Path, final: Path) -> None:
    """Run `action` (None: nothing to do on this process), then tell every process whether any failed, so that they
    all stop with a clear error instead of waiting forever for the one that failed."""
    error = None
    if action is not None:
        try:
            action()
        except _WRITE_ERRORS as err:
            error = err
    flag = torch.tensor([float(error is not None)], device=accelerator.device)
    if float(accelerator.reduce(flag, "sum").item()) == 0:
        return
    failure = _checkpoint_write_error(error, tmp, final) if error is not None else None
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # frees the space the partial checkpoint took
    if failure is not None:
        raise failure from error
    raise CheckpointWriteError(f"Another process could not write the checkpoint {final} (see its error).")


def _checkpoint_write_error(err: BaseException, tmp: Path, final: Path) -> CheckpointWriteError:
    detail = _brief(err, 300)
    existing = next((p for p in (tmp, *tmp.parents) if p.exists()), None)
    try:
        free = shutil.disk_usage(existing).free if existing is not None else None
    except OSError:
        free = None
    quota = getattr(err, "errno", None) == errno.EDQUOT
    no_space = (
        quota
        or getattr(err, "errno", None) == errno.ENOSPC
        or "no space left" in detail.lower()
        or (free is not None and free < LOW_DISK_SPACE_BYTES)
    )
    if no_space:
        space = f", {free / 2**20:.1f} MiB free" if free is not None else ""
        what = "disk quota exceeded" if quota else f"no space left on device{space}"
        advice = "free some disk space (or lower --checkpoints_total_limit), then resume"
    else:
        what, advice = "the write failed", "fix the cause, then resume"
    return CheckpointWriteError(
        f"Could not write the checkpoint {final} (in {tmp}): {what} ({detail}). The earlier checkpoints in "
        f"{final.parent} are intact: {advice} with --resume_from_checkpoint latest."
    )


def _fsync_tree(folder: Path) -> None:
    """Flush every file of `folder`, then the folder's entries, to disk: the rename that publishes a checkpoint must
    never come before its data is on disk, or a power loss could leave a torn checkpoint under a final name."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0) if os.name == "nt" else os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        _fsync_dir(path)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    if os.name == "nt":
        return  # Windows cannot open a directory to fsync it
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP):  # some filesystems cannot fsync a directory
            raise
    finally:
        os.close(fd)


# Resuming continues the checkpoint's run, so every argument that defines that run (data, clip lengths, model and
# mask ratio, optimizer, schedule, batch sizes, precision, seed: all those not listed below) must be the one it was
# started with: a changed one would be silently ignored while the logs and model card claim it. These only change
# where and how the run reports, checkpoints, uploads or reads its data, or when this invocation stops (the last
# line: data options pre-training does not read):
RESUME_CHANGEABLE_ARGS = frozenset({
    "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "ignore_data_skip", "cache_dir",
    "dataloader_num_workers", "id_column_name", "logging_steps", "image_steps", "report_to", "log_clip_ids",
    "checkpointing_steps", "checkpoints_total_limit", "max_train_minutes", "push_to_hub", "hub_model_id", "hub_token",
    "hub_private_repo", "token",
    "eval_split_name", "validation_split_percentage", "label_column_name", "class_index_csv", "max_eval_samples",
})  # fmt: skip
# These may grow (the run is extended; its learning-rate schedule is recomputed over the new length), not shrink.
RESUME_EXTENDABLE_ARGS = ("max_steps", "num_train_epochs")
# What checkpoints of the argparse version (before the shared dataclass options) recorded under other names.
RENAMED_ARGS = {"clip_seconds": "max_length_seconds", "min_clip_seconds": "min_length_seconds"}


def load_training_state(checkpoint: Path) -> dict:
    return json.loads((Path(checkpoint) / TRAINING_STATE).read_text())


def check_resume_arguments(arguments: dict, checkpoint: Path | None) -> None:
    """Refuse to resume `checkpoint` with arguments (`{option name: value}`, as the run records them) that define
    another run (see `RESUME_CHANGEABLE_ARGS`): a ValueError names each changed argument with its old and new value.
    A checkpoint that does not record its run's arguments (written by an older version) resumes with a warning, and
    so does one that records arguments this version no longer has."""
    if checkpoint is None:
        return
    state = load_training_state(checkpoint)
    if not isinstance(state.get("args"), dict):
        logger.warning(
            f"{checkpoint} does not record the arguments of its run (an older version wrote it): cannot check that "
            "this run's arguments match; resuming with them as given."
        )
        return
    saved = _with_current_names(state["args"])
    unknown = sorted(set(saved) - set(arguments))
    if unknown:
        logger.warning(
            f"{checkpoint} records arguments this version does not have ({', '.join(unknown)}): not checked; resuming."
        )
    changed, extended = [], []
    for name, value in sorted(arguments.items()):
        if name in RESUME_CHANGEABLE_ARGS or name not in saved:  # not saved: an argument newer than the checkpoint
            continue
        old, new = saved[name], json.loads(json.dumps(value, default=str))  # as the checkpoint stores it
        if old == new or (name == "num_train_epochs" and arguments.get("max_steps", 0) > 0):  # epochs only count
            continue  # without max_steps
        if name in RESUME_EXTENDABLE_ARGS and _extends_run(name, old, new, state, saved):
            extended.append(f"--{name} {old} -> {new}")
        else:
            changed.append(f"--{name}: {old!r} in the checkpoint, {new!r} now")
    if changed:
        raise ValueError(
            f"Cannot resume {checkpoint} with other arguments than the run that wrote it (its weights, optimizer, "
            "schedule and data position belong to that run: the resumed run would not be the one its logs and model "
            f"card describe): {'; '.join(changed)}. Resume with the checkpoint's values, or start a new run (another "
            "--output_dir, or --overwrite_output_dir)."
        )
    if extended:
        warmup = " (and the --warmup_ratio warmup)" if saved.get("warmup_steps") is None else ""
        logger.warning(
            f"Resuming {checkpoint} as a longer run ({', '.join(extended)}): the learning-rate schedule{warmup} is "
            "recomputed over the new number of steps."
        )


def _with_current_names(saved: dict) -> dict:
    """The recorded arguments under today's names: `--clip_seconds` is `--max_length_seconds`, ..., and the old
    `--model_size` preset is `--model_name_or_path` where no weights were named."""
    saved = dict(saved)
    for old, new in RENAMED_ARGS.items():
        if old in saved and new not in saved:
            saved[new] = saved.pop(old)
    if "model_size" in saved and "model_name_or_path" in saved:
        size = saved.pop("model_size")
        saved["model_name_or_path"] = saved["model_name_or_path"] or size
    return saved


def _extends_run(name: str, old, new, state: dict, saved: dict) -> bool:
    if name == "max_steps":
        # 0 means "from --num_train_epochs", whose length is only known once the data is loaded: not comparable.
        return new > 0 and new >= int(state.get("total_steps") or old)
    return not saved.get("max_steps") and new >= old  # num_train_epochs, where it sets the length
