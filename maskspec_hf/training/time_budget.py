# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""`--fit_schedule_to_time_limit`: size the learning-rate schedule so that it ends when `--max_train_minutes` does.

A cosine schedule cut short by a time limit never anneals, and a short run loses much of what annealing gives. The
step time is measured on the first steps (after the first two, which pay for warm-up) and the schedule is sized to the
steps that fit in the rest of the budget; at REFIT_AT_STEP it is sized again on the average step since then. Every
checkpoint records the count and a resumed run keeps it, so the schedule stays deterministic: a killed run resumes
exactly.
"""

from __future__ import annotations

import math
import statistics


# Steps 1-2 pay for allocation and caches; steps 3..FIT_AT_STEP-1 are timed, the schedule is fitted at FIT_AT_STEP.
FIRST_TIMED_STEP = 3
FIT_AT_STEP = 12
# Checkpoints, figures and logging between steps: keep this share of the remaining budget for them.
OVERHEAD_SHARE = 0.03
# The schedule's length before it is fitted: long enough for the loop to reach FIT_AT_STEP, with a LR schedule that
# has barely moved by then.
PROVISIONAL_TOTAL_STEPS = 1_000_000
# Nine steps misjudge a whole run's pace by up to ~10 % either way (a busy machine at the start, or checkpoints,
# figures and a machine that gets busier later): the schedule is sized again here, on the average step since the fit.
REFIT_AT_STEP = 200


def fitted_total_steps(
    step: int, elapsed_seconds: float, step_seconds: list[float], budget_seconds: float, max_steps: int = 0
) -> int:
    """The schedule's total steps: `step` done in `elapsed_seconds`, plus the steps of median duration that fit in
    the rest of `budget_seconds` less OVERHEAD_SHARE; capped by `max_steps` when positive; at least `step + 1`."""
    if not step_seconds:
        raise ValueError("No timed step to fit the schedule on.")
    per_step = max(statistics.median(step_seconds), 1e-6)
    remaining = (budget_seconds - elapsed_seconds) * (1.0 - OVERHEAD_SHARE)
    total = step + max(1, math.floor(remaining / per_step))
    return min(total, max_steps) if max_steps > 0 else total


def average_step_seconds(step: int, elapsed_seconds: float, fitted_at: tuple[int, float]) -> float:
    """The average step since `fitted_at` = (step, elapsed seconds) of the first fit, everything the loop did between
    steps included: what the schedule is sized on again at REFIT_AT_STEP."""
    fit_step, fit_elapsed = fitted_at
    return (elapsed_seconds - fit_elapsed) / max(step - fit_step, 1)


def initial_total_steps(args, steps_per_epoch: int | None, checkpoint) -> tuple[int, bool]:
    """`(total steps, whether the count is final)` when the run starts: --max_steps, else --num_train_epochs'
    steps; with --fit_schedule_to_time_limit, the count a checkpoint recorded once fitted, else a provisional one
    that the first steps replace (`fit_schedule`); a count from a checkpoint is not sized again."""
    if args.fit_schedule_to_time_limit:
        if checkpoint is not None:
            from .checkpoints import load_training_state

            saved = load_training_state(checkpoint)
            if saved.get("schedule_fitted"):
                return int(saved["total_steps"]), True
        return (args.max_steps if args.max_steps > 0 else PROVISIONAL_TOTAL_STEPS), False
    if args.max_steps > 0:
        return args.max_steps, True
    return math.ceil(args.num_train_epochs * steps_per_epoch), True


def fit_schedule(run, total_steps: int) -> None:
    """Give the run `total_steps` (the same on every process): a new schedule of that length, at the current step,
    in place of the provisional one (the optimizer, its state and the step count are untouched)."""
    from .optim import METRIC_SCHEDULERS, build_scheduler

    args, state = run.args, run.state
    run.total_steps, state.schedule_fitted = total_steps, True
    if args.warmup_steps is None:
        run.warmup_steps = int(args.warmup_ratio * total_steps)
    if args.lr_scheduler_type not in METRIC_SCHEDULERS:  # a metric schedule has no length
        # `last_epoch` = the steps already taken, so the new schedule continues from here (its first call sets the
        # learning rate of step `state.step`).
        kwargs = {**(args.lr_scheduler_kwargs or {}), "last_epoch": state.step - 1}
        optimizer = run.optimizer.optimizer  # the torch optimizer inside Accelerate's wrapper
        run.scheduler.scheduler = build_scheduler(
            optimizer, args.lr_scheduler_type, run.warmup_steps, total_steps, kwargs
        )
    if run.progress is not None:
        run.progress.total = total_steps
        run.progress.refresh()
