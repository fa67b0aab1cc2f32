# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Setting up a pre-training run: the Accelerator, where it starts from (fresh or a checkpoint), the config, the
data and its resumable batches, the model with its optimizer and schedule, the resumed state, the logs.

The order matters: a resumed run must draw the same random numbers as the uninterrupted one, so every step here
happens in the same order in both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..audio import SKIP_REASONS
from ..configuration_maskspec import MaskSpecConfig
from ..data.arguments import DataArguments
from ..data.clips import ClipProcessor
from ..data.spectrogram_cache import SpectrogramCache
from ..loading import (
    ModelArguments,
    hub_options,
    is_preset_name,
    load_config,
    load_feature_extractor,
    set_attention_kernel,
)
from ..modeling_maskspec import MaskSpecForPreTraining
from .checkpoints import (
    check_resume_arguments,
    checkpoint_dir,
    list_checkpoints,
    load_training_state,
    remove_stale_checkpoint_folders,
    resolve_checkpoint,
)
from .figures import ReconstructionFigures
from .hardware import resolve_mixed_precision
from .optim import LR_REFERENCE_BATCH, adamw, build_scheduler, param_groups, scaled_learning_rate
from .pretraining_arguments import DEFAULT_MODEL, PretrainingArguments, clip_seconds, run_arguments
from .pretraining_data import set_up_data
from .pretraining_report import run_hyperparameters
from .tracking import JsonlLogs, accelerate_trackers, init_trackers, setup_logging, tensorboard_writer


logger = logging.getLogger(__name__)


def build_config(model_args: ModelArguments, mask_ratio: float | None = None, checkpoint: Path | None = None):
    """The model config: the resumed checkpoint's, else `--model_name_or_path` (a preset or weights) /
    `--config_name` with `--config_overrides`, then `--mask_ratio`."""
    if checkpoint is not None:
        return MaskSpecConfig.from_pretrained(checkpoint)
    config = load_config(
        model_args.model_name_or_path or DEFAULT_MODEL,
        model_args.config_name,
        model_args.config_overrides,
        **hub_options(model_args),
    )
    if mask_ratio is not None:
        config.mask_ratio = mask_ratio
        config._check_values()
    return config


def build_feature_extractor(model_args: ModelArguments, checkpoint: Path | None = None):
    if checkpoint is not None:
        return load_feature_extractor(str(checkpoint))
    return load_feature_extractor(
        model_args.feature_extractor_name or model_args.model_name_or_path, **hub_options(model_args)
    )


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of all parameters and buffers (name, dtype, shape, values): equal on every process of a DDP run."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class RunState:
    """What changes as training goes on (and what a checkpoint restores). `clips_seen` and `skipped` are over all
    processes, kept as running sums of each step's one all-reduce; `local_*` are this process's."""

    step: int = 0
    last_loss: float | None = None
    skipped_steps: int = 0
    empty_in_a_row: int = 0
    local_clips: int = 0
    local_skipped: Counter = field(default_factory=Counter)
    clips_seen: int = 0
    skipped: Counter = field(default_factory=Counter)
    stopped_by_time_limit: bool = False
    schedule_fitted: bool = False
    # Where this process fitted the schedule, (steps done, seconds), to size it again later; None when the count came
    # from a checkpoint. `fit_timing`: what the last fit rested on, for the log.
    fitted_at: tuple | None = None
    fit_timing: str = ""
    started: float = 0.0
    last_time: float = 0.0
    step_seconds: list = field(default_factory=list)

    def skipped_counts(self) -> dict:
        return {reason: int(self.skipped[reason]) for reason in SKIP_REASONS}


@dataclass
class PretrainingRun:
    """Everything `set_up_run` builds for one run."""

    model_args: ModelArguments
    data_args: DataArguments
    args: PretrainingArguments
    accelerator: Any
    output_dir: Path
    checkpoint: Path | None
    arguments: dict
    config: MaskSpecConfig = None
    feature_extractor: Any = None
    num_frames: int = 0
    num_patches: int = 0
    dataset: Any = None
    batches: Any = None
    steps_per_epoch: int | None = None
    total_steps: int = 0
    warmup_steps: int = 0
    model: Any = None
    optimizer: Any = None
    scheduler: Any = None
    unwrapped: Any = None
    learning_rate: float = 0.0
    effective_batch: int = 0
    dummy: Any = None
    normalization: str = ""
    spectrogram_cache: SpectrogramCache | None = None
    hyperparameters: dict = field(default_factory=dict)
    logs: JsonlLogs | None = None
    figures: ReconstructionFigures | None = None
    progress: Any = None
    state: RunState = field(default_factory=RunState)

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def close(self) -> None:
        for part in (self.progress, self.batches, self.logs):
            if part is not None:
                part.close()


def _has_accelerator_device() -> bool:
    if hasattr(torch, "accelerator"):
        return bool(torch.accelerator.is_available())
    return torch.cuda.is_available()


def _build_accelerator(args: PretrainingArguments, output_dir: Path):
    """The Accelerator, with logging set up (precision None: the launcher's, from ACCELERATE_MIXED_PRECISION). With
    --push_to_hub, the Hub token and repo are checked here, before any training."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    accelerator = Accelerator(
        # Without a GPU (or other accelerator), say so: Accelerate then runs a torchrun/accelerate-launch job on CPU
        # as a real multi-process (gloo) run instead of N independent single-process runs.
        cpu=not _has_accelerator_device(),
        mixed_precision=resolve_mixed_precision(args.mixed_precision, _has_accelerator_device()),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=accelerate_trackers(args.report_to),
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "runs")),
        step_scheduler_with_optimizer=False,
    )
    setup_logging(accelerator.is_main_process)
    if args.push_to_hub:
        check_hub_access_on_every_process(accelerator, args.hub_model_id, args.hub_token, args.hub_private_repo)
    return accelerator


def check_hub_access_on_every_process(accelerator, repo_id: str, token: str | None, private: bool) -> None:
    """The main process checks the token and the repo (`maskspec_hf.hub`); every process then raises the same
    ValueError, so that none waits for the others."""
    from accelerate.utils import broadcast_object_list

    from ..hub import hub_access_problem

    problem = hub_access_problem(repo_id, token, private) if accelerator.is_main_process else None
    problem = broadcast_object_list([problem])[0]
    if problem:
        raise ValueError(problem)


def _prepare_output_dir(accelerator, args: PretrainingArguments, output_dir: Path, arguments: dict) -> Path | None:
    """The checkpoint to resume from (None: a fresh start), checked against this run's arguments; the output folder
    ready for the run (a fresh --overwrite_output_dir run deletes the old one's outputs)."""
    checkpoint = resolve_checkpoint(args.resume_from_checkpoint, output_dir)
    check_resume_arguments(arguments, checkpoint)
    if args.resume_from_checkpoint == "latest" and checkpoint is None:
        logger.info(
            f"--resume_from_checkpoint latest: no checkpoint in {checkpoint_dir(output_dir)} yet, starting afresh."
        )
    if checkpoint is None and list_checkpoints(output_dir) and not args.overwrite_output_dir:
        raise ValueError(
            f"{output_dir} already holds checkpoints: pass --resume_from_checkpoint latest to continue that run, "
            "or --overwrite_output_dir to start afresh."
        )
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if checkpoint is None and args.overwrite_output_dir:
            for sub in ("checkpoints", "logs", "images", "runs", "final"):
                shutil.rmtree(output_dir / sub, ignore_errors=True)
        remove_stale_checkpoint_folders(output_dir)
        (output_dir / "logs").mkdir(parents=True, exist_ok=True)
        (output_dir / "images").mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    return checkpoint


def set_up_run(model_args: ModelArguments, data_args: DataArguments, args: PretrainingArguments) -> PretrainingRun:
    """Accelerator, start point, config, data, model, optimizer and schedule, resumed state, logs (in this order:
    the random draws of a fresh and a resumed run must match)."""
    from accelerate.utils import set_seed

    output_dir = Path(args.output_dir)
    accelerator = _build_accelerator(args, output_dir)
    arguments = run_arguments(model_args, data_args, args, str(accelerator.mixed_precision))
    checkpoint = _prepare_output_dir(accelerator, args, output_dir, arguments)
    run = PretrainingRun(model_args, data_args, args, accelerator, output_dir, checkpoint, arguments)
    # Adam's second moments of tiny gradients underflow to denormals, which x86 CPUs process ~100x slower:
    # a step can take 20x longer late in training. Flushing them to zero changes nothing that matters.
    torch.set_flush_denormal(True)
    set_seed(args.seed)
    run.config = build_config(model_args, args.mask_ratio, checkpoint)
    run.feature_extractor = build_feature_extractor(model_args, checkpoint)
    processor = set_up_data(run)
    _set_up_model(run)
    if checkpoint is not None:
        _resume(run)
    _set_up_reporting(run, processor)
    return run


def _set_up_model(run: PretrainingRun) -> None:
    """The model (random init, or `--model_name_or_path`'s weights), AdamW and the schedule, prepared."""
    model_args, args, accelerator = run.model_args, run.args, run.accelerator
    source = model_args.model_name_or_path
    if source and not is_preset_name(source) and run.checkpoint is None:
        model = MaskSpecForPreTraining.from_pretrained(
            source,
            config=run.config,
            cache_dir=model_args.cache_dir,
            revision=model_args.model_revision,
            token=model_args.token,
        )
    else:
        model = MaskSpecForPreTraining(run.config)
    set_attention_kernel(model, model_args.attn_implementation)
    run.effective_batch = (
        args.per_device_train_batch_size * args.gradient_accumulation_steps * accelerator.num_processes
    )
    run.learning_rate = scaled_learning_rate(args.learning_rate, run.effective_batch, args.scale_lr)
    optimizer = adamw(
        param_groups(model, args.weight_decay),
        accelerator.device.type,
        lr=run.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )
    scheduler = build_scheduler(
        optimizer, args.lr_scheduler_type, run.warmup_steps, run.total_steps, args.lr_scheduler_kwargs
    )
    if args.torch_compile:
        model.compile()  # in place: the state dict keeps its names (no `_orig_mod.`), so checkpoints stay loadable
    run.model, run.optimizer = accelerator.prepare(model, optimizer)
    run.scheduler = accelerator.prepare_scheduler(scheduler)  # also a greedy schedule, which is no torch LRScheduler
    run.unwrapped = accelerator.unwrap_model(run.model)


def _resume(run: PretrainingRun) -> None:
    """Load the checkpoint's weights, optimizer, schedule and RNG states, this process's data position and counters."""
    accelerator, checkpoint, state = run.accelerator, run.checkpoint, run.state
    rank, world_size = accelerator.process_index, accelerator.num_processes
    accelerator.load_state(str(checkpoint))
    training_state = load_training_state(checkpoint)
    data_state_path = checkpoint / f"data_state.rank{rank}.json"
    if training_state["world_size"] != world_size or not data_state_path.is_file():
        raise ValueError(
            f"{checkpoint} was written by {training_state['world_size']} process(es); this run has {world_size}: "
            "resume with the same number of processes."
        )
    data_state = json.loads(data_state_path.read_text())
    state.step, state.last_loss = int(training_state["step"]), training_state.get("last_loss")
    state.skipped_steps = int(training_state.get("skipped_steps", 0))  # 0 in checkpoints of older versions
    state.local_skipped, state.local_clips = Counter(data_state["skipped"]), int(data_state["clips_seen"])
    state.clips_seen, state.skipped = _global_counts(accelerator, state.local_clips, state.local_skipped)
    if run.args.ignore_data_skip:
        run.batches.epoch = int(data_state["data"]["epoch"])
    else:
        run.batches.load_state_dict(data_state["data"])
    logger.info(
        f"Resumed from {checkpoint} at step {state.step} (epoch {run.batches.epoch}, batch {run.batches.position})."
    )


def _global_counts(accelerator, local_clips: int, local_skipped: Counter) -> tuple[int, Counter]:
    counts = torch.tensor([local_clips] + [local_skipped[r] for r in SKIP_REASONS], dtype=torch.float64)
    counts = accelerator.reduce(counts.to(accelerator.device), "sum").cpu()
    return int(counts[0]), Counter({r: int(c) for r, c in zip(SKIP_REASONS, counts[1:])})


def _set_up_reporting(run: PretrainingRun, processor: ClipProcessor) -> None:
    """The hyperparameters (logged, tracked, in the model card), trackers, figures, JSONL logs and progress bar."""
    from tqdm.auto import tqdm

    args, accelerator = run.args, run.accelerator
    run.hyperparameters = run_hyperparameters(run)
    if run.is_main:
        logger.info(
            f"Effective batch size {run.effective_batch} = {args.per_device_train_batch_size} per device x "
            f"{args.gradient_accumulation_steps} accumulation x {accelerator.num_processes} process(es); "
            f"learning rate {run.learning_rate:.3g} = {args.learning_rate:g} x "
            f"{run.effective_batch}/{LR_REFERENCE_BATCH}" + ("" if args.scale_lr else " (not scaled: --no_scale_lr)")
        )
        logger.info(
            f"{run.total_steps} optimizer steps"
            + (f" ({run.steps_per_epoch} per epoch)" if run.steps_per_epoch else "")
            + f", warmup {run.warmup_steps}; clips of {clip_seconds(run.data_args):g} s = {run.num_frames} frames; "
            f"{sum(p.numel() for p in run.unwrapped.parameters()):,} parameters; "
            f"attention kernel {run.unwrapped.config._attn_implementation}"
        )
    init_trackers(accelerator, "maskspec-pretraining", run.hyperparameters)
    run.figures = ReconstructionFigures(
        run.unwrapped,
        run.dataset,
        processor,
        run.feature_extractor,
        args.seed,
        run.output_dir / "images",
        writer=tensorboard_writer(accelerator),
        enabled=run.is_main,
    )
    resumed_at = run.state.step if run.checkpoint is not None else None
    run.logs = JsonlLogs(
        run.output_dir / "logs", accelerator.process_index, run.is_main, args.log_clip_ids, resumed_at
    )
    run.progress = tqdm(
        total=run.total_steps, initial=run.state.step, disable=not run.is_main, desc="pre-training", dynamic_ncols=True
    )
