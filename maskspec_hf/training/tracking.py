# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Where a training run reports: console logging, Accelerate trackers (`--report_to`), TensorBoard figures and the
JSONL logs under `output_dir/logs`.

One logging set-up for every command, so that a multi-process run prints each message once and every command's
logs look alike; the JSONL logs are what a resumed run truncates, so that they read as one uninterrupted run.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from accelerate.utils import LoggerType


logger = logging.getLogger(__name__)

# Accelerate's trackers ("all": every installed one) and "none".
TRACKERS = [*LoggerType.list(), "none"]


def setup_logging(is_main_process: bool = True, level: int = logging.INFO) -> None:
    """Timestamped console logging at `level` on the main process; only warnings from the others (and from
    `datasets` and `transformers`, whose info messages drown the run's own)."""
    import datasets
    import transformers

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S", level=level)
    logging.getLogger("maskspec_hf").setLevel(level if is_main_process else logging.WARNING)
    datasets.utils.logging.set_verbosity_warning()
    transformers.utils.logging.set_verbosity_warning()


def tracker_names(report_to) -> list[str]:
    """`--report_to` as a list ("tensorboard" -> ["tensorboard"]; None -> ["none"])."""
    return [report_to] if isinstance(report_to, str) else list(report_to or ["none"])


def check_report_to(report_to) -> None:
    names = tracker_names(report_to)
    if not set(names) <= set(TRACKERS) or ("none" in names and len(names) > 1):
        raise ValueError(f"--report_to takes one or more of {', '.join(TRACKERS[:-1])}, or none alone; got {names}.")


def accelerate_trackers(report_to) -> list[str] | None:
    """`--report_to` as Accelerate's `log_with`; a named tracker that is not installed is left out with a warning
    (Accelerate would drop it silently)."""
    from accelerate.tracking import get_available_trackers

    names = tracker_names(report_to)
    if "none" in names:
        return None
    if "all" in names:
        return ["all"]
    available = {str(t) for t in get_available_trackers()}
    missing = [name for name in names if name not in available]
    if missing:
        logger.warning(
            f"--report_to: {', '.join(missing)} not installed (pip install {' '.join(missing)}); not logging there."
        )
    return [name for name in names if name in available] or None


def init_trackers(accelerator, project: str, hyperparameters: dict) -> None:
    """Start the trackers Accelerate was given (trackers take numbers and strings only)."""
    if accelerator.log_with:
        accelerator.init_trackers(
            project, config={k: v if isinstance(v, (int, float, bool)) else str(v) for k, v in hyperparameters.items()}
        )


def tensorboard_writer(accelerator):
    """The main process's TensorBoard `SummaryWriter` (for figures), or None."""
    if not accelerator.is_main_process:
        return None
    try:
        writer = accelerator.get_tracker("tensorboard", unwrap=True)
    except (ValueError, KeyError, AttributeError):
        return None
    return writer if hasattr(writer, "add_figure") else None


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Drop the log lines a killed run wrote after the checkpoint it is resumed from."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= max_step:
                keep.append(line)
        except (ValueError, KeyError):
            continue  # a line torn by the kill
    path.write_text("".join(line + "\n" for line in keep))


class JsonlLogs:
    """The run's JSONL logs under `logs/`: `train_log.jsonl` (main process, one line per optimizer step),
    `skipped_clips.rank<r>.jsonl` (every skipped clip) and, with `log_clip_ids`, `clip_ids.rank<r>.jsonl`.

    `resumed_at`: the step of the checkpoint a run resumes from (the lines after it are dropped, the files appended
    to), or None for a fresh run, whose logs start empty."""

    def __init__(self, folder: Path, rank: int, is_main_process: bool, log_clip_ids: bool, resumed_at: int | None):
        names = {
            "train": "train_log.jsonl",
            "skips": f"skipped_clips.rank{rank}.jsonl",
            "ids": f"clip_ids.rank{rank}.jsonl",
        }
        wanted = {"train": is_main_process, "skips": True, "ids": log_clip_ids}
        if resumed_at is not None:
            for key in ("train", "skips", "ids"):
                if key != "train" or is_main_process:
                    truncate_jsonl(folder / names[key], resumed_at)
        mode = "w" if resumed_at is None else "a"
        self.files = {key: open(folder / names[key], mode) for key in names if wanted[key]}

    def _write(self, key: str, record: dict) -> None:
        handle = self.files.get(key)
        if handle is not None:
            handle.write(json.dumps(record) + "\n")
            handle.flush()

    def log_batch(self, batch: dict, step: int, micro: int) -> Counter:
        """Log the batch's skipped clips (and its clip ids); returns the skip reasons counted."""
        counts = Counter()
        for clip_id, reason, error in batch["skipped"]:
            counts[reason] += 1
            record = {"step": step, "id": clip_id, "reason": reason, "error": error}
            self.files["skips"].write(json.dumps(record) + "\n")
        if batch["skipped"]:
            self.files["skips"].flush()
        self._write("ids", {"step": step, "micro_batch": micro, "ids": batch["ids"]})
        return counts

    def log_step(self, record: dict) -> None:
        self._write("train", record)

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()
