# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""`PretrainingArguments`, the options of `maskspec-pretrain` that are neither the model's (`ModelArguments`) nor the
data's (`DataArguments`), and the checks of all three that must pass before anything heavy starts.

The option names are the checkpoints' vocabulary too: a checkpoint records them, and resuming compares them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..data.arguments import DataArguments
from ..loading import ModelArguments
from .hardware import PRECISIONS
from .optim import SCHEDULER_TYPES
from .tracking import TRACKERS, check_report_to


# `--model_name_or_path` when none is given, and `--max_length_seconds` of pre-training when none is given.
DEFAULT_MODEL = "base"
DEFAULT_CLIP_SECONDS = 10.0
# Clips the normalization statistics are fitted on by default (MSM-MAE: dataset statistics, not AudioSet's).
DEFAULT_NORMALIZATION_CLIPS = 256


def _option(default, help: str, **metadata) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class PretrainingArguments:
    """How `pretrain` trains: output, optimisation, schedule, precision, logging, checkpoints, Hub (the model and
    the data are `ModelArguments` and `DataArguments`)."""

    output_dir: str = field(metadata={"help": "Where logs, checkpoints, images and final/ go."})
    overwrite_output_dir: bool = _option(False, "Start afresh even if --output_dir holds checkpoints (deleted).")
    mask_ratio: float | None = _option(None, "Fraction of patches masked (default: the config's, 0.75).")
    compute_normalization_stats: int | None = _option(
        None,
        "Fit the feature extractor's mean/std on the first N training clips before training. Default: "
        f"{DEFAULT_NORMALIZATION_CLIPS} clips when the model starts from a preset without --feature_extractor_name "
        "(a model's own feature extractor is always kept); 0: never (PaSST's AudioSet values, or the given ones).",
    )
    dataloader_num_workers: int = _option(
        2,
        "DataLoader worker processes per process (decoding and features run "
        "there); 0 runs them in the training process.",
    )
    feature_cache_gb: float = _option(
        0.0,
        "Keep each clip's whole log-mel spectrogram in memory (float16, on each process) once computed and cut the "
        "random crops from it instead of decoding and featurizing every crop, when the dataset's spectrograms are "
        "estimated (from 64 clips) to fit in this many GB; else, or with 0, every crop is decoded. For a corpus read "
        "many times; needs a map-style dataset and --dataloader_num_workers 0. Crops then start on a frame.",
    )
    per_device_train_batch_size: int = _option(32, "Clips per batch on each process.")
    gradient_accumulation_steps: int = _option(1, "Batches per optimizer step.")
    learning_rate: float = _option(
        1e-3, "Base learning rate; the actual one is base * effective batch / 256 (see --no_scale_lr)."
    )
    scale_lr: bool = _option(True, "Scale --learning_rate by effective batch / 256 (--no_scale_lr: use it as is).")
    weight_decay: float = _option(0.05, "AdamW weight decay (not on biases, norms and the mask token).")
    adam_beta1: float = _option(0.9, "AdamW beta1.")
    adam_beta2: float = _option(0.95, "AdamW beta2.")
    adam_epsilon: float = _option(1e-8, "AdamW epsilon.")
    max_grad_norm: float = _option(0.0, "Clip gradients to this norm (0: off).")
    lr_scheduler_type: str = _option(
        "cosine",
        "Any schedule transformers.get_scheduler knows (reduce_lr_on_plateau and greedy step on the training loss).",
        choices=SCHEDULER_TYPES,
    )
    lr_scheduler_kwargs: dict | str | None = _option(
        None,
        "Extra scheduler arguments as a JSON object, e.g. '{\"min_lr_rate\": 0.1}' for cosine_with_min_lr or "
        "'{\"num_decay_steps\": 100}' for warmup_stable_decay.",
    )
    warmup_steps: int | None = _option(None, "Linear warmup steps (default: --warmup_ratio).")
    warmup_ratio: float = _option(0.05, "Warmup as a fraction of all steps.")
    num_train_epochs: float = _option(1.0, "Epochs, when --max_steps is 0.")
    max_steps: int = _option(0, "Optimizer steps; overrides --num_train_epochs when > 0.")
    max_train_minutes: float = _option(
        0.0,
        "Stop after this many minutes of training (0: no limit): a checkpoint is saved (so "
        "--resume_from_checkpoint latest continues the same schedule) and final/ is written as usual.",
    )
    fit_schedule_to_time_limit: bool = _option(
        False,
        "Size the schedule to --max_train_minutes: the first steps are timed and the schedule gets the number of "
        "steps that fit (capped by --max_steps when given; --num_train_epochs is then ignored), sized again at step "
        "200 on the average step since, so a cosine schedule anneals fully by the time limit. The count is recorded "
        "in checkpoints and kept on resume.",
    )
    mixed_precision: str | None = _option(
        None,
        "Default: the launcher's (accelerate launch --mixed_precision / its config file, i.e. "
        "ACCELERATE_MIXED_PRECISION), else no. 'auto': bf16 where the device has bf16 units (a bf16 GPU, a CPU "
        "with AVX512-BF16 or AMX), else no.",
        choices=PRECISIONS,
    )
    torch_compile: bool = _option(
        False, "torch.compile the model before training (pays on GPUs; on CPUs 1.02-1.07x after ~30 s of compiling)."
    )
    seed: int = _option(42, "Seed of the weights, crops, masks and data order.")
    logging_steps: int = _option(10, "Trackers every N steps (train_log.jsonl: every step).")
    image_steps: int = _option(500, "Reconstruction figure every N steps (0: only at the end).")
    report_to: list[str] = _option(
        ["tensorboard"],
        f"Accelerate trackers, one or more of {', '.join(TRACKERS)} ('all': every installed one; 'none': no tracker).",
        choices=TRACKERS,
    )
    checkpointing_steps: int = _option(1000, "Checkpoint every N steps (0: never).")
    checkpoints_total_limit: int = _option(3, "Keep the last N checkpoints.")
    resume_from_checkpoint: str | None = _option(
        None,
        "A checkpoint folder, or 'latest' (the newest undamaged one in output_dir/checkpoints; starts afresh "
        "when there is none, so a job script can always pass it).",
    )
    ignore_data_skip: bool = _option(
        False,
        "On resume, restart the current epoch's data from its beginning instead of skipping to the saved position.",
    )
    log_clip_ids: bool = _option(False, "Log the ids of every batch's clips (logs/clip_ids.rank<r>.jsonl).")
    push_to_hub: bool = _option(
        False, "Upload output_dir/final to the Hub at the end (the token and the repo are checked before training)."
    )
    hub_model_id: str | None = _option(None, "Hub repo for --push_to_hub (e.g. user/maskspec-base-audioset).")
    hub_token: str | None = _option(None, "Hub token for the upload (default: the saved login / HF_TOKEN).")
    hub_private_repo: bool = _option(False, "Create the Hub repo private.")

    def __post_init__(self):
        if isinstance(self.report_to, str):
            self.report_to = [self.report_to]
        if isinstance(self.lr_scheduler_kwargs, str):  # from the command line or a recipe file
            try:
                self.lr_scheduler_kwargs = json.loads(self.lr_scheduler_kwargs)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"--lr_scheduler_kwargs is not valid JSON ({err}): {self.lr_scheduler_kwargs!r}"
                ) from err
        if self.lr_scheduler_kwargs is not None and not isinstance(self.lr_scheduler_kwargs, dict):
            raise ValueError(
                "--lr_scheduler_kwargs must be a JSON object like '{\"key\": 1}', got "
                f"{json.dumps(self.lr_scheduler_kwargs)!r}."
            )


def clip_seconds(data_args: DataArguments) -> float:
    """The length of the training crops."""
    return DEFAULT_CLIP_SECONDS if data_args.max_length_seconds is None else data_args.max_length_seconds


def check_arguments(model_args: ModelArguments, data_args: DataArguments, args: PretrainingArguments) -> None:
    """Clear errors for bad arguments before anything heavy happens."""
    if args.mask_ratio is not None and not 0.05 <= args.mask_ratio <= 0.95:
        raise ValueError(f"--mask_ratio must lie in [0.05, 0.95], got {args.mask_ratio}.")
    if not clip_seconds(data_args) > 0:
        raise ValueError(f"--max_length_seconds must be positive, got {data_args.max_length_seconds}.")
    minimum = data_args.min_length_seconds
    if minimum is not None and not 0 <= minimum <= clip_seconds(data_args):
        raise ValueError(f"--min_length_seconds must lie in [0, --max_length_seconds], got {minimum}.")
    for name in (
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "logging_steps",
        "checkpoints_total_limit",
    ):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}.")
    counts = {
        name: getattr(args, name)
        for name in (
            "max_steps",
            "checkpointing_steps",
            "image_steps",
            "dataloader_num_workers",
            "max_train_minutes",
            "feature_cache_gb",
        )
    }
    if args.compute_normalization_stats is not None:
        counts["compute_normalization_stats"] = args.compute_normalization_stats
    for name, value in {**counts, "shuffle_buffer_size": data_args.shuffle_buffer_size}.items():
        if value < 0:
            raise ValueError(f"--{name} must not be negative, got {value}.")
    if args.learning_rate <= 0 or args.weight_decay < 0 or args.max_grad_norm < 0:
        raise ValueError("--learning_rate must be positive; --weight_decay and --max_grad_norm must not be negative.")
    if not (0 <= args.adam_beta1 < 1 and 0 <= args.adam_beta2 < 1):
        raise ValueError("--adam_beta1 and --adam_beta2 must lie in [0, 1).")
    if not 0 <= args.warmup_ratio < 1 or (args.warmup_steps is not None and args.warmup_steps < 0):
        raise ValueError("--warmup_ratio must lie in [0, 1) and --warmup_steps must not be negative.")
    if args.fit_schedule_to_time_limit and not args.max_train_minutes > 0:
        raise ValueError("--fit_schedule_to_time_limit needs --max_train_minutes > 0.")
    if args.max_steps == 0 and not args.num_train_epochs > 0 and not args.fit_schedule_to_time_limit:
        raise ValueError("Give --max_steps > 0 or --num_train_epochs > 0.")
    if args.feature_cache_gb > 0 and (data_args.streaming or args.dataloader_num_workers):
        raise ValueError(
            "--feature_cache_gb keeps spectrograms in the training process: it needs a map-style dataset (no "
            "--streaming) and --dataloader_num_workers 0; pass --feature_cache_gb 0 otherwise."
        )
    if data_args.streaming and args.max_steps == 0 and not args.fit_schedule_to_time_limit:
        raise ValueError("A streaming dataset has no known length: give --max_steps.")
    if data_args.data_files and data_args.data_dir and not data_args.dataset_name:
        raise ValueError("Pass either --data_files or --data_dir (without --dataset_name), not both.")
    if data_args.dataset_config_name and not data_args.dataset_name:
        raise ValueError("--dataset_config_name needs --dataset_name.")
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id (e.g. your-name/maskspec-base-audioset).")
    if data_args.max_train_samples is not None and data_args.max_train_samples < 1:
        raise ValueError(f"--max_train_samples must be positive, got {data_args.max_train_samples}.")
    check_report_to(args.report_to)
    if args.lr_scheduler_type not in SCHEDULER_TYPES:
        raise ValueError(
            f"--lr_scheduler_type must be one of {', '.join(SCHEDULER_TYPES)}, got {args.lr_scheduler_type!r}."
        )


def run_arguments(model_args, data_args, args, mixed_precision: str) -> dict:
    """The run's options by name, as checkpoints record them (and resuming compares them): the effective model,
    clip length and precision, never a token."""
    arguments = {**asdict(model_args), **asdict(data_args), **asdict(args)}
    arguments.update(
        model_name_or_path=model_args.model_name_or_path or DEFAULT_MODEL,
        max_length_seconds=clip_seconds(data_args),
        mixed_precision=mixed_precision,
    )
    return {name: value for name, value in arguments.items() if name not in ("token", "hub_token")}
