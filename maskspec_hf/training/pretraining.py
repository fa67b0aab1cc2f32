# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""MaskSpec pre-training with 🤗 Accelerate on any audio dataset: resumable after a kill, multi-process, Hub-ready.

`pretrain(model_args, data_args, training_args)` is the one entry point: the `maskspec-pretrain` console script,
`examples/pretrain_maskspec.py` (under python, `accelerate launch` or `torchrun`), the demo and the benchmarks all
call it. A run is set up once (`pretraining_setup.set_up_run`), then trained one optimizer step at a time
(`train_step`, `log_step`), then finished (`finish_run`; `final/` and its model card: `pretraining_report.py`);
checkpoints live in `checkpoints.py`, figures in `figures.py`, logs and trackers in `tracking.py`, the optimizer
recipe in `optim.py`, the options in `pretraining_arguments.py`.

Recipe defaults (MaskSpec / MAE): AdamW, betas (0.9, 0.95), weight decay 0.05 (not on biases, norms, mask token),
base learning rate 1e-3 scaled by effective batch / 256, cosine schedule with linear warmup, mask ratio 0.75.

Under `--output_dir`: `logs/` (`train_log.jsonl`: one line per optimizer step; skipped clips per process),
`runs/` (trackers), `images/step-<N>.png` (reconstruction of a fixed clip), `checkpoints/step-<N>/` (everything to
resume exactly), `final/` (config with `auto_map`, weights, code, feature extractor, model card, figure).
"""

from __future__ import annotations

import gc
import logging
import math
import statistics
import time
import weakref
from collections import Counter

import torch

from ..audio import SKIP_REASONS
from ..data.arguments import DataArguments
from ..loading import ModelArguments
from .checkpoints import save_checkpoint, write_json
from .optim import step_scheduler
from .pretraining_arguments import PretrainingArguments, check_arguments
from .pretraining_report import write_final_folder
from .pretraining_setup import PretrainingRun, set_up_run, weights_fingerprint
from .time_budget import (
    FIRST_TIMED_STEP,
    FIT_AT_STEP,
    REFIT_AT_STEP,
    average_step_seconds,
    fit_schedule,
    fitted_total_steps,
)


logger = logging.getLogger(__name__)

__all__ = ["PretrainingArguments", "pretrain"]


# ----------------------------------------------------------------------------------------------------------------------
# Training: one optimizer step at a time
# ----------------------------------------------------------------------------------------------------------------------


# A streaming run stops after this many steps in a row without one usable clip; a map-style one after twice its
# steps per epoch (a window that holds a whole epoch: then no clip of the data set is usable).
EMPTY_STEPS_LIMIT = 1000


class DummyBatch:
    """A one-clip stand-in for a batch whose clips were all skipped (trained on with weight 0)."""

    def __init__(self, num_frames: int, num_mel_bins: int, num_patches: int):
        self.inputs = {
            "input_values": torch.zeros(1, num_frames, num_mel_bins),
            "attention_mask": torch.ones(1, num_frames, dtype=torch.int32),
            "noise": torch.rand(1, num_patches, generator=torch.Generator().manual_seed(0)),
        }

    def inputs_for(self, batch: dict) -> tuple[dict, float]:
        """`(model inputs, loss weight)`: the batch's with weight 1, or this dummy's with weight 0."""
        if batch["input_values"].shape[0]:
            return {k: batch[k] for k in ("input_values", "attention_mask", "noise")}, 1.0
        return self.inputs, 0.0


def train(run: PretrainingRun, on_step=None) -> None:
    """Train until the schedule's last step (or the time limit), checkpointing on the way; `on_step(run, record)`,
    if given, is called after each optimizer step (benchmarks use it to time steps and save snapshots)."""
    args, state = run.args, run.state
    run.dummy = DummyBatch(run.num_frames, run.config.num_mel_bins, run.num_patches)
    run.model.train()
    state.last_time = state.started = time.perf_counter()
    if run.spectrogram_cache is not None:  # inside the time limit: filling it is part of the run's cost
        run.batches.fill_cache(show_progress=run.is_main)
        if run.is_main:
            logger.info(f"Spectrogram cache: {run.spectrogram_cache.describe()}")
        state.last_time = time.perf_counter()
    while state.step < run.total_steps:
        record = train_step(run)
        if record is None:
            continue
        log_step(run, record)
        if on_step is not None:
            on_step(run, record)
        if state.step < run.total_steps and (
            state.stopped_by_time_limit or (args.checkpointing_steps and state.step % args.checkpointing_steps == 0)
        ):
            save_run_checkpoint(run)
        if state.stopped_by_time_limit:
            logger.warning(
                f"--max_train_minutes {args.max_train_minutes:g} reached: stopping at step {state.step} of "
                f"{run.total_steps} (resume with --resume_from_checkpoint latest)."
            )
            break


def train_step(run: PretrainingRun) -> dict | None:
    """Accumulate one optimizer step's batches and take the step; returns its `train_log.jsonl` record, or None when
    no process had a usable clip (then nothing is trained, the step is only counted).

    One all-reduce: the step's loss sum and count, clips and skip reasons, and the main process's clock (it decides
    the time limit for everyone) travel together, so every process takes the same decisions."""
    args, accelerator, state = run.args, run.accelerator, run.state
    loss_sum, loss_count, step_clips, step_skipped = 0.0, 0, 0, Counter()
    lr = run.optimizer.param_groups[0]["lr"]
    for micro in range(args.gradient_accumulation_steps):
        batch = run.batches.next_batch()
        step_skipped.update(run.logs.log_batch(batch, state.step + 1, micro))
        step_clips += batch["input_values"].shape[0]
        # A batch whose clips were all skipped runs a zero-weight dummy so that every process still takes part in
        # the gradient synchronisation.
        inputs, weight = run.dummy.inputs_for(batch)
        with accelerator.accumulate(run.model):
            loss = run.model(**{k: v.to(accelerator.device) for k, v in inputs.items()}).loss
            accelerator.backward(loss * weight)
        if weight:
            loss_sum += float(loss.detach())
            loss_count += 1
    if not accelerator.sync_gradients:
        raise RuntimeError("Gradient accumulation lost track of optimizer steps; this is a bug.")
    state.local_skipped.update(step_skipped)
    elapsed = time.perf_counter() - state.started
    over_time = bool(args.max_train_minutes) and run.is_main and elapsed > 60 * args.max_train_minutes
    fitted_total = _fitted_total_steps(run, elapsed) if run.is_main else 0
    totals = torch.tensor(
        [loss_sum, loss_count, step_clips, float(over_time), float(fitted_total)]
        + [step_skipped[r] for r in SKIP_REASONS],
        dtype=torch.float64,
    )
    totals = accelerator.reduce(totals.to(accelerator.device), "sum").cpu()
    state.skipped.update({r: int(c) for r, c in zip(SKIP_REASONS, totals[5:])})
    if totals[2] == 0:
        _skip_empty_step(run)
        return None
    state.empty_in_a_row = 0
    step_loss = float(totals[0] / totals[1])
    _optimizer_step(run, step_loss)
    state.step += 1
    state.local_clips += step_clips
    state.clips_seen += int(totals[2])
    state.last_loss = step_loss if math.isfinite(step_loss) else state.last_loss
    if totals[4] > 0:
        fit_schedule(run, int(totals[4]))
        if run.is_main:
            _log_fit(run)
    state.stopped_by_time_limit = bool(totals[3] > 0) and state.step < run.total_steps
    now = time.perf_counter()
    if state.step >= FIRST_TIMED_STEP and not state.schedule_fitted:
        state.step_seconds.append(now - state.last_time)
    clips_per_second = float(totals[2]) / max(now - state.last_time, 1e-9)
    state.last_time = now
    return {
        "step": state.step,
        "epoch": run.batches.epoch,
        "loss": step_loss,
        "lr": lr,
        "clips": int(totals[2]),
        "clips_per_second": round(clips_per_second, 3),
        "clips_seen": state.clips_seen,
        "skipped": state.skipped_counts(),
        "skipped_steps": state.skipped_steps,
    }


def _fitted_total_steps(run: PretrainingRun, elapsed: float) -> int:
    """With --fit_schedule_to_time_limit, once the first steps are timed and again at REFIT_AT_STEP: the schedule's
    length (0: not now). A count that came from a checkpoint is kept: a resumed run has a budget of its own."""
    state, args = run.state, run.args
    if not args.fit_schedule_to_time_limit:
        return 0
    budget = 60 * args.max_train_minutes
    if not state.schedule_fitted:
        if state.step + 1 < FIT_AT_STEP or not state.step_seconds:  # (resumed just before the fit: time a step)
            return 0
        state.fitted_at = (state.step, elapsed)
        median = statistics.median(state.step_seconds)
        state.fit_timing = f"{len(state.step_seconds)} timed steps of ~{median:.3f} s"
        return fitted_total_steps(state.step, elapsed, state.step_seconds, budget, args.max_steps)
    if state.fitted_at is not None and state.step + 1 == REFIT_AT_STEP < run.total_steps:
        average = average_step_seconds(state.step, elapsed, state.fitted_at)
        state.fit_timing = f"sized again on ~{average:.3f} s/step"
        return fitted_total_steps(state.step, elapsed, [average], budget, args.max_steps)
    return 0


def _log_fit(run: PretrainingRun) -> None:
    logger.info(
        f"--fit_schedule_to_time_limit: {run.state.fit_timing} -> {run.total_steps} steps in --max_train_minutes "
        f"{run.args.max_train_minutes:g} (warmup {run.warmup_steps})"
    )


def _skip_empty_step(run: PretrainingRun) -> None:
    # No process had a usable clip: an optimizer step would still move the weights (momentum, weight decay) and the
    # schedule, and the loss would be NaN. Count the step and read on.
    state = run.state
    run.optimizer.zero_grad()
    state.skipped_steps, state.empty_in_a_row = state.skipped_steps + 1, state.empty_in_a_row + 1
    if run.is_main:
        logger.warning(f"Every clip of the batches after step {state.step} was skipped: no optimizer step.")
    limit = 2 * run.steps_per_epoch if run.steps_per_epoch else EMPTY_STEPS_LIMIT
    if state.empty_in_a_row >= limit:
        raise ValueError(
            f"No usable clip in {state.empty_in_a_row} steps' batches in a row: check the data "
            f"(logs/skipped_clips.rank*.jsonl gives the reasons)."
        )


def _optimizer_step(run: PretrainingRun, step_loss: float) -> None:
    """Clip the gradients, step the optimizer and the schedule (a metric schedule on the step's loss, the same on
    every process), zero the gradients."""
    if run.args.max_grad_norm:
        run.accelerator.clip_grad_norm_(run.model.parameters(), run.args.max_grad_norm)
    run.optimizer.step()
    step_scheduler(run.scheduler, run.args.lr_scheduler_type, step_loss)
    run.optimizer.zero_grad()


def log_step(run: PretrainingRun, record: dict) -> None:
    """The step's line in train_log.jsonl and the progress bar (main process), the trackers every --logging_steps
    steps and on the last one, and the reconstruction figure every --image_steps steps."""
    args, step = run.args, record["step"]
    skipped = record["skipped"]
    if run.is_main:
        run.logs.log_step(record)
        run.progress.set_postfix(
            loss=f"{record['loss']:.4f}",
            lr=f"{record['lr']:.2e}",
            clips_s=f"{record['clips_per_second']:.1f}",
            skipped=sum(skipped.values()),
            refresh=False,
        )
        run.progress.update(1)
    if step % args.logging_steps == 0 or step == run.total_steps:
        run.accelerator.log(
            {
                "train/loss": record["loss"],
                "train/learning_rate": record["lr"],
                "train/clips_per_second": record["clips_per_second"],
                "train/epoch": record["epoch"],
                "train/skipped_clips": sum(skipped.values()),
                "train/skipped_steps": record["skipped_steps"],
                **{f"skipped/{r}": c for r, c in skipped.items()},
            },
            step=step,
        )
    if args.image_steps and step % args.image_steps == 0 and run.is_main:
        run.figures.write(step, run.accelerator.device)


def save_run_checkpoint(run: PretrainingRun) -> None:
    state = run.state
    training_state = {
        "step": state.step,
        "epoch": run.batches.epoch,
        "total_steps": run.total_steps,
        "world_size": run.accelerator.num_processes,
        "clips_seen": state.clips_seen,
        "skipped": state.skipped_counts(),
        "last_loss": state.last_loss,
        "skipped_steps": state.skipped_steps,
        "schedule_fitted": state.schedule_fitted,
        "args": run.arguments,
    }
    data_state = {
        "data": run.batches.state_dict(),
        "skipped": dict(state.local_skipped),
        "clips_seen": state.local_clips,
    }
    path = save_checkpoint(
        run.accelerator,
        run.output_dir,
        state.step,
        training_state,
        data_state,
        run.unwrapped.config,
        run.feature_extractor,
        run.args.checkpoints_total_limit,
    )
    logger.info(f"Saved checkpoint {path}")


# ----------------------------------------------------------------------------------------------------------------------
# Finish
# ----------------------------------------------------------------------------------------------------------------------


def finish_run(run: PretrainingRun) -> dict:
    """Compare the processes' weights, then (main process) write `final/` with its model card and figure,
    `train_results.json`, and upload with --push_to_hub; returns the run's summary."""
    from accelerate.utils import gather_object

    state, accelerator = run.state, run.accelerator
    fingerprints = gather_object([weights_fingerprint(run.unwrapped)])
    summary = {
        "step": state.step,
        "epoch": run.batches.epoch,
        "final_loss": state.last_loss,
        "clips_seen": state.clips_seen,
        "skipped_clips": state.skipped_counts(),
        "learning_rate": run.learning_rate,
        "effective_batch_size": run.effective_batch,
        "num_processes": accelerator.num_processes,
        "weights_identical_on_all_processes": len(set(fingerprints)) == 1,
        "total_steps": run.total_steps,
        "schedule_fitted_to_time_limit": run.args.fit_schedule_to_time_limit,
        "normalization": run.normalization,
        "spectrogram_cache": run.spectrogram_cache.describe() if run.spectrogram_cache is not None else None,
        "stopped_by_time_limit": state.stopped_by_time_limit,
        "skipped_steps": state.skipped_steps,
        "mixed_precision": run.arguments["mixed_precision"],
        "resumed_from": str(run.checkpoint) if run.checkpoint is not None else None,
        "final_dir": str(run.output_dir / "final"),
    }
    if len(set(fingerprints)) != 1:
        logger.error(f"The processes ended with different weights: {fingerprints}")
    if run.is_main:
        write_json(run.output_dir / "logs" / "weights_fingerprints.json", {"fingerprints": fingerprints})
        write_final_folder(run, summary)
        write_json(run.output_dir / "train_results.json", summary)
        if run.args.push_to_hub:
            summary["hub_url"] = _push(run)
    return summary


def _push(run: PretrainingRun) -> str:
    from ..hub import upload_folder

    step, loss, final = run.state.step, run.state.last_loss, run.output_dir / "final"
    message = f"MaskSpec pre-training: {step} steps" + (f", final loss {loss:.4f}" if loss is not None else "")
    url = upload_folder(
        final, run.args.hub_model_id, message, token=run.args.hub_token, private=run.args.hub_private_repo
    )
    logger.info(f"Uploaded {final} to {url}")
    return url


def end_distributed_run(accelerator, model_ref) -> None:
    """End the run on every process so that each one exits (`model_ref`: a weak reference to the prepared model,
    whose other references the caller has dropped).

    DDP's C++ Reducer holds the process group. Freed last by the Reducer, the group's destructor joins gloo's worker
    threads while this thread holds the GIL, and a worker still releasing the last collective's tensors waits for
    the GIL: a deadlock, seen on a loaded machine. So: finish every collective, free the DDP wrapper while the group
    is still registered, then destroy the group, whose Python handles let go of the GIL before its destructor runs.
    """
    accelerator.wait_for_everyone()
    accelerator.free_memory()  # Accelerate's references to the prepared objects, then gc
    model = model_ref()
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        # Still referenced somewhere: free its Reducer now, while the group is registered.
        for name in ("logger", "reducer"):
            if hasattr(model, name):
                delattr(model, name)
        gc.collect()
    del model
    accelerator.wait_for_everyone()
    accelerator.end_training()  # the trackers, then torch.distributed.destroy_process_group()


def pretrain(model_args: ModelArguments, data_args: DataArguments, training_args: PretrainingArguments) -> dict:
    """Pre-train MaskSpec as the three argument objects say; returns the run's summary (also written to
    `output_dir/train_results.json`)."""
    check_arguments(model_args, data_args, training_args)
    run = set_up_run(model_args, data_args, training_args)
    try:
        train(run)
    finally:
        run.close()
    summary = finish_run(run)
    accelerator, model_ref = run.accelerator, weakref.ref(run.model)
    run.model = run.optimizer = run.scheduler = None  # the last references to the DDP wrapper: see end_distributed_run
    end_distributed_run(accelerator, model_ref)
    return summary
