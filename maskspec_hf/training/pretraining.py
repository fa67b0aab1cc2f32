# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""MaskSpec pre-training with 🤗 Accelerate on any audio dataset (AudioSet from the Hub, local folders, the built-in
synthetic corpus): resumable, multi-process, Hub-ready.

Run it with `python examples/pretrain_maskspec.py ...`, `accelerate launch examples/pretrain_maskspec.py ...`,
`torchrun --nproc_per_node N examples/pretrain_maskspec.py ...` or the `maskspec-pretrain` console script; see
`python -m maskspec_hf.training.pretraining --help` for the options.

Recipe defaults (MaskSpec / MAE): AdamW with betas (0.9, 0.95) and weight decay 0.05 (none on biases, LayerNorm
weights and the mask token), base learning rate 1e-3 scaled by effective batch / 256 (linear scaling rule: the actual
learning rate is `learning_rate * per_device_train_batch_size * gradient_accumulation_steps * num_processes / 256`),
cosine schedule with linear warmup, mask ratio 0.75, raw log-mel targets (`config.norm_pix_loss=True` normalizes
each target patch, as the official MaskSpec scripts do).

What a run writes under `--output_dir`:

- `logs/train_log.jsonl`: one line per optimizer step (step, epoch, loss, lr, clips, clips/s, skipped clips and
  skipped steps so far: a step where no process had one usable clip trains nothing and is only counted);
  `logs/skipped_clips.rank<r>.jsonl`: every skipped clip with its id and reason; `runs/`: the `--report_to` trackers.
- `images/step-<N>.png` every `--image_steps` steps: a fixed clip's input spectrogram | masked input | reconstruction.
- `checkpoints/step-<N>/`: everything needed to resume exactly (`accelerator.save_state`: weights, optimizer,
  scheduler, RNG states; plus the config, the feature extractor, the step, the data position of every process and
  the skipped-clip counters). Written under a temporary name and renamed into place, so a kill never leaves a torn
  checkpoint; the last `--checkpoints_total_limit` are kept.
- `final/`: a Hub-ready folder: `config.json` (with `auto_map`), `model.safetensors`, the code files,
  `preprocessor_config.json`, `README.md` (model card with Hub metadata, the real hyperparameters and final loss) and
  `reconstruction.png`; uploaded with `--push_to_hub`.
"""

from __future__ import annotations

import argparse
import errno
import gc
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
import weakref
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import LoggerType
from transformers import SchedulerType
from safetensors import SafetensorError

from ..configuration_maskspec import MASKSPEC_PRESETS, MaskSpecConfig
from ..data import (
    SKIP_REASONS,
    ClipProcessor,
    MapStyleBatches,
    SpectrogramCollator,
    StreamingBatches,
    clip_rng,
    collect_clips,
    first_valid_clip,
    load_audio_dataset,
    min_samples_for_one_patch,
    num_frames_for_seconds,
    prepare_audio_dataset,
)
from ..feature_extraction_maskspec import MaskSpecFeatureExtractor
from ..modeling_maskspec import MaskSpecForPreTraining
from ..cli import run_console_script
from ..loading import apply_config_overrides


logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "step-"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
TRAINING_STATE = "training_state.json"
LR_REFERENCE_BATCH = 256
# Every schedule transformers.get_scheduler builds; these two step on a metric (the training loss) instead of the step.
SCHEDULER_TYPES = [t.value for t in SchedulerType]
METRIC_SCHEDULERS = ("reduce_lr_on_plateau", "greedy")
# Accelerate's trackers ("all": every installed one) and "none".
TRACKERS = [*LoggerType.list(), "none"]


# ----------------------------------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskspec-pretrain",
        description="Pre-train MaskSpec (masked spectrogram prediction) with Accelerate on an audio dataset. With no "
        "dataset argument, the built-in synthetic sound-events corpus is used.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--dataset_name", help="Hub dataset id (e.g. agkphysics/AudioSet) or local dataset path.")
    data.add_argument("--dataset_config_name", help="Dataset configuration (e.g. balanced, unbalanced).")
    data.add_argument("--data_dir", help="Local folder: an audiofolder of sound files, or parquet files.")
    data.add_argument("--data_files", nargs="+", help="Local data files or globs (parquet, arrow, csv, json, audio).")
    data.add_argument("--train_split_name", default="train", help="Split to train on.")
    data.add_argument("--audio_column_name", default="audio", help="Column holding the audio.")
    data.add_argument(
        "--id_column_name", help="Column naming each clip in logs (default: video_id when present, else the file path)."
    )
    data.add_argument("--streaming", action="store_true", help="Stream the dataset instead of downloading it first.")
    data.add_argument(
        "--shuffle_buffer_size",
        type=int,
        default=1000,
        help="Streaming only: examples in the shuffle buffer (0: no shuffling within shards; shard order is still "
        "shuffled every epoch). A resumed run refills the buffer, so it is exact only with 0.",
    )
    data.add_argument("--max_train_samples", type=int, help="Use only the first N rows of the dataset.")
    data.add_argument("--cache_dir", help="Where `datasets` and the Hub cache files.")
    data.add_argument("--clip_seconds", type=float, default=10.0, help="Training clip length: longer clips are "
                      "randomly cropped, shorter ones padded (the padding is masked out of attention and loss).")
    data.add_argument(
        "--min_clip_seconds",
        type=float,
        default=None,
        help="Skip clips shorter than this (default: one patch of frames, 0.16 s).",
    )
    data.add_argument("--synthetic_num_clips", type=int, default=512, help="Built-in data: number of clips.")
    data.add_argument("--synthetic_seed", type=int, default=0, help="Built-in data: corpus seed.")
    data.add_argument(
        "--synthetic_clip_seconds", type=float, default=None, help="Built-in data: clip length (default: --clip_seconds)."
    )
    data.add_argument("--dataloader_num_workers", type=int, default=2, help="DataLoader worker processes per process "
                      "(decoding and features run there); 0 runs them in the training process.")

    model = parser.add_argument_group("model")
    model.add_argument("--model_size", choices=sorted(MASKSPEC_PRESETS), default="base", help="Encoder size preset.")
    model.add_argument("--config_name", help="Config JSON file, folder or Hub id (instead of --model_size).")
    model.add_argument(
        "--config_overrides",
        help="Comma-separated config fields, e.g. 'num_hidden_layers=2,hidden_size=64,decoder_num_hidden_layers=1'.",
    )
    model.add_argument("--model_name_or_path", help="Start from these weights (continued pre-training).")
    model.add_argument("--feature_extractor_name", help="Feature extractor folder or Hub id (default: MaskSpec's).")
    model.add_argument("--mask_ratio", type=float, default=None, help="Fraction of patches masked (default: config, 0.75).")
    model.add_argument(
        "--compute_normalization_stats",
        type=int,
        default=0,
        metavar="N",
        help="Before training, fit the feature extractor's mean/std on the first N clips (0: keep PaSST's values).",
    )

    train = parser.add_argument_group("training")
    train.add_argument("--output_dir", required=True, help="Where logs, checkpoints, images and final/ go.")
    train.add_argument("--overwrite_output_dir", action="store_true", help="Start afresh even if --output_dir holds "
                       "checkpoints (they are deleted).")
    train.add_argument("--per_device_train_batch_size", type=int, default=32)
    train.add_argument("--gradient_accumulation_steps", type=int, default=1)
    train.add_argument(
        "--learning_rate",
        type=float,
        default=1e-3,
        help="Base learning rate; the actual one is base * effective batch / 256 (see --no_scale_lr).",
    )
    train.add_argument("--no_scale_lr", dest="scale_lr", action="store_false",
                       help="Use --learning_rate as is instead of scaling it by effective batch / 256.")
    train.add_argument("--weight_decay", type=float, default=0.05)
    train.add_argument("--adam_beta1", type=float, default=0.9)
    train.add_argument("--adam_beta2", type=float, default=0.95)
    train.add_argument("--adam_epsilon", type=float, default=1e-8)
    train.add_argument("--max_grad_norm", type=float, default=0.0, help="Clip gradients to this norm (0: off).")
    train.add_argument("--lr_scheduler_type", default="cosine", choices=SCHEDULER_TYPES,
                       help="Any schedule transformers.get_scheduler knows (reduce_lr_on_plateau and greedy step on "
                       "the training loss).")
    train.add_argument("--lr_scheduler_kwargs", type=_json_object, default=None, metavar="JSON",
                       help="Extra scheduler arguments as a JSON object, e.g. '{\"min_lr_rate\": 0.1}' for "
                       "cosine_with_min_lr or '{\"num_decay_steps\": 100}' for warmup_stable_decay.")
    train.add_argument("--warmup_steps", type=int, default=None, help="Linear warmup steps (default: --warmup_ratio).")
    train.add_argument("--warmup_ratio", type=float, default=0.05, help="Warmup as a fraction of all steps.")
    train.add_argument("--num_train_epochs", type=float, default=1.0)
    train.add_argument("--max_steps", type=int, default=0, help="Optimizer steps; overrides --num_train_epochs when > 0.")
    train.add_argument(
        "--max_train_minutes",
        type=float,
        default=0.0,
        help="Stop after this many minutes of training (0: no limit): a checkpoint is saved (so "
        "--resume_from_checkpoint latest continues the same schedule) and final/ is written as usual.",
    )
    train.add_argument("--mixed_precision", choices=["no", "bf16", "fp16"], default=None,
                       help="Default: the launcher's (accelerate launch --mixed_precision / its config file, i.e. "
                       "ACCELERATE_MIXED_PRECISION), else no.")
    train.add_argument("--seed", type=int, default=42)
    _add_logging_arguments(parser.add_argument_group("logging, checkpoints, Hub"))
    return parser


def _add_logging_arguments(logs) -> None:
    logs.add_argument("--logging_steps", type=int, default=10, help="TensorBoard every N steps (JSONL: every step).")
    logs.add_argument("--image_steps", type=int, default=500, help="Reconstruction figure every N steps (0: only at the end).")
    logs.add_argument("--report_to", nargs="+", choices=TRACKERS, default=["tensorboard"], metavar="TRACKER",
                      help=f"Accelerate trackers, one or more of {', '.join(TRACKERS)} ('all': every installed one; "
                      "'none': no tracker).")
    logs.add_argument("--checkpointing_steps", type=int, default=1000, help="Checkpoint every N steps (0: never).")
    logs.add_argument("--checkpoints_total_limit", type=int, default=3, help="Keep the last N checkpoints.")
    logs.add_argument(
        "--resume_from_checkpoint",
        help="A checkpoint folder, or 'latest' (the newest complete one in output_dir/checkpoints; starts afresh "
        "when there is none, so a job script can always pass it).",
    )
    logs.add_argument("--ignore_data_skip", action="store_true", help="On resume, restart the current epoch's data "
                      "from its beginning instead of skipping to the saved position.")
    logs.add_argument("--log_clip_ids", action="store_true", help="Log the ids of every batch's clips per process "
                      "(logs/clip_ids.rank<r>.jsonl).")
    logs.add_argument("--push_to_hub", action="store_true", help="Upload output_dir/final to the Hub at the end "
                      "(the token and the repo are checked before training).")
    logs.add_argument("--hub_model_id", help="Hub repo for --push_to_hub (e.g. user/maskspec-base-audioset).")
    logs.add_argument("--hub_token", help="Hub token (default: the saved login / HF_TOKEN).")
    logs.add_argument("--hub_private_repo", action="store_true")


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err}): {text!r}") from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"key\": 1}}', got {text!r}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    validate_args(args)
    return args


def validate_args(args: argparse.Namespace) -> None:
    """Clear errors for bad arguments before anything heavy happens."""
    if args.mask_ratio is not None and not 0.05 <= args.mask_ratio <= 0.95:
        raise ValueError(f"--mask_ratio must lie in [0.05, 0.95], got {args.mask_ratio}.")
    if not args.clip_seconds > 0:
        raise ValueError(f"--clip_seconds must be positive, got {args.clip_seconds}.")
    for name in ("per_device_train_batch_size", "gradient_accumulation_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}.")
    for name in ("max_steps", "checkpointing_steps", "image_steps", "dataloader_num_workers", "compute_normalization_stats",
                 "shuffle_buffer_size", "max_train_minutes"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} must not be negative, got {getattr(args, name)}.")
    if args.logging_steps < 1 or args.checkpoints_total_limit < 1:
        raise ValueError("--logging_steps and --checkpoints_total_limit must be at least 1.")
    if args.learning_rate <= 0 or args.weight_decay < 0 or args.max_grad_norm < 0:
        raise ValueError("--learning_rate must be positive; --weight_decay and --max_grad_norm must not be negative.")
    if not (0 <= args.adam_beta1 < 1 and 0 <= args.adam_beta2 < 1):
        raise ValueError("--adam_beta1 and --adam_beta2 must lie in [0, 1).")
    if not 0 <= args.warmup_ratio < 1 or (args.warmup_steps is not None and args.warmup_steps < 0):
        raise ValueError("--warmup_ratio must lie in [0, 1) and --warmup_steps must not be negative.")
    if args.max_steps == 0 and not args.num_train_epochs > 0:
        raise ValueError("Give --max_steps > 0 or --num_train_epochs > 0.")
    if args.streaming and args.max_steps == 0:
        raise ValueError("A streaming dataset has no known length: give --max_steps.")
    if args.data_files and args.data_dir and not args.dataset_name:
        raise ValueError("Pass either --data_files or --data_dir (without --dataset_name), not both.")
    if args.dataset_config_name and not args.dataset_name:
        raise ValueError("--dataset_config_name needs --dataset_name.")
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id (e.g. your-name/maskspec-base-audioset).")
    if args.max_train_samples is not None and args.max_train_samples < 1:
        raise ValueError(f"--max_train_samples must be positive, got {args.max_train_samples}.")
    if args.min_clip_seconds is not None and not 0 <= args.min_clip_seconds <= args.clip_seconds:
        raise ValueError(f"--min_clip_seconds must lie in [0, --clip_seconds], got {args.min_clip_seconds}.")
    trackers = _tracker_names(args)
    if not set(trackers) <= set(TRACKERS) or ("none" in trackers and len(trackers) > 1):
        raise ValueError(f"--report_to takes one or more of {', '.join(TRACKERS[:-1])}, or none alone; got {trackers}.")
    if args.lr_scheduler_type not in SCHEDULER_TYPES:
        raise ValueError(
            f"--lr_scheduler_type must be one of {', '.join(SCHEDULER_TYPES)}, got {args.lr_scheduler_type!r}."
        )


def uses_builtin_data(args) -> bool:
    return not (args.dataset_name or args.data_dir or args.data_files)


# ----------------------------------------------------------------------------------------------------------------------
# Model, feature extractor, optimizer, schedule
# ----------------------------------------------------------------------------------------------------------------------


def build_config(args, checkpoint: Path | None = None) -> MaskSpecConfig:
    """The model config: from the checkpoint being resumed, else --model_name_or_path / --config_name /
    --model_size, then --config_overrides and --mask_ratio."""
    if checkpoint is not None:
        return MaskSpecConfig.from_pretrained(checkpoint)
    if args.config_name:
        path = Path(args.config_name)
        config = MaskSpecConfig.from_json_file(path) if path.is_file() else MaskSpecConfig.from_pretrained(args.config_name)
    elif args.model_name_or_path:
        config = MaskSpecConfig.from_pretrained(args.model_name_or_path)
    else:
        config = MaskSpecConfig.from_preset(args.model_size)
    if args.config_overrides:
        apply_config_overrides(config, args.config_overrides)  # the one parser: an unknown field is an error
    if args.mask_ratio is not None:
        config.mask_ratio = args.mask_ratio
    config._check_values()
    return config


def build_feature_extractor(args, checkpoint: Path | None = None) -> MaskSpecFeatureExtractor:
    if checkpoint is not None:
        return MaskSpecFeatureExtractor.from_pretrained(checkpoint)
    if args.feature_extractor_name:
        return MaskSpecFeatureExtractor.from_pretrained(args.feature_extractor_name)
    if args.model_name_or_path and Path(args.model_name_or_path, "preprocessor_config.json").is_file():
        return MaskSpecFeatureExtractor.from_pretrained(args.model_name_or_path)
    return MaskSpecFeatureExtractor()


def check_clip_length(args, config: MaskSpecConfig, feature_extractor) -> tuple[int, int, int]:
    """`(num_samples, num_frames, min_samples)` of a training clip; a clip too short for one patch is an error."""
    if feature_extractor.feature_size != config.num_mel_bins:
        raise ValueError(
            f"The feature extractor makes {feature_extractor.feature_size} mel bins but the model expects "
            f"{config.num_mel_bins} (config.num_mel_bins)."
        )
    num_samples, num_frames = num_frames_for_seconds(feature_extractor, args.clip_seconds)
    one_patch = min_samples_for_one_patch(feature_extractor, config.patch_size)
    if num_frames < config.patch_size or num_samples < one_patch:
        raise ValueError(
            f"--clip_seconds {args.clip_seconds} gives {num_frames} frames, fewer than one {config.patch_size}-frame "
            f"patch: use at least {one_patch / feature_extractor.sampling_rate:.3f} s."
        )
    if args.min_clip_seconds is None:
        min_samples = one_patch
    else:
        min_samples = max(one_patch, int(round(args.min_clip_seconds * feature_extractor.sampling_rate)))
    return num_samples, num_frames, min(min_samples, num_samples)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on weight matrices only; none on biases, LayerNorm weights (1-D parameters) and
    the decoder's mask token, as in MAE/MaskSpec."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.endswith(".bias") or "mask_token" in name:
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def scaled_learning_rate(base_lr: float, effective_batch_size: int, scale: bool = True) -> float:
    """Linear scaling rule: `base_lr * effective_batch_size / 256`."""
    return base_lr * effective_batch_size / LR_REFERENCE_BATCH if scale else base_lr


def build_scheduler(optimizer, scheduler_type: str, warmup_steps: int, total_steps: int, kwargs: dict | None = None):
    """Any `transformers.SchedulerType`; `kwargs` are its specific arguments (`--lr_scheduler_kwargs`)."""
    from transformers import get_scheduler

    try:
        return get_scheduler(scheduler_type, optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps,
                             scheduler_specific_kwargs=kwargs)
    except (TypeError, ValueError) as err:  # a missing or unknown scheduler argument
        raise ValueError(f"--lr_scheduler_type {scheduler_type} with --lr_scheduler_kwargs {kwargs}: {err}") from err


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of all parameters and buffers (name, dtype, shape, values): equal on every process of a DDP run."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------------------------


def checkpoint_dir(output_dir) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir) -> list[tuple[int, Path]]:
    """Complete checkpoints `(step, path)`, oldest first; temporary and half-deleted folders are ignored."""
    found = []
    root = checkpoint_dir(output_dir)
    if root.is_dir():
        for path in root.iterdir():
            name = path.name
            if name.startswith(CHECKPOINT_PREFIX) and name[len(CHECKPOINT_PREFIX):].isdigit():
                if (path / TRAINING_STATE).is_file():
                    found.append((int(name[len(CHECKPOINT_PREFIX):]), path))
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
    expected = [*CHECKPOINT_FILES, *(f"data_state.rank{r}.json" for r in range(world_size)),
                *(f"random_states_{r}.pkl" for r in range(world_size))]
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


def _write_json(path: Path, data) -> None:
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


def save_checkpoint(accelerator, output_dir, step: int, training_state: dict, data_state: dict, config,
                    feature_extractor, total_limit: int) -> Path:
    """Write `checkpoints/step-<step>` atomically: everything goes into `.tmp-step-<step>`, the main process writes
    `training_state.json` last and fsyncs every file and the folder, then renames the folder into place (and fsyncs
    `checkpoints/`, so the rename itself is durable) and prunes old checkpoints.

    A failed write (a full disk...) removes the temporary folder and raises `CheckpointWriteError` on every process;
    no earlier checkpoint is touched before the new one is complete."""
    root = checkpoint_dir(output_dir)
    final = root / f"{CHECKPOINT_PREFIX}{step}"
    tmp = root / f"{TMP_PREFIX}{CHECKPOINT_PREFIX}{step}"
    is_main = accelerator.is_main_process

    def start():
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)

    def write_process_state():
        accelerator.save_state(str(tmp), safe_serialization=True)
        _write_json(tmp / f"data_state.rank{accelerator.process_index}.json", data_state)

    def finish():
        config.save_pretrained(tmp)
        feature_extractor.save_pretrained(tmp)
        _write_json(tmp / TRAINING_STATE, training_state)
        _fsync_tree(tmp)

    for action in (start if is_main else None, write_process_state, finish if is_main else None):
        _write_on_every_process(accelerator, action, tmp, final)
    if is_main:
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
    accelerator.wait_for_everyone()
    return final


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
# where and how the run reports, checkpoints, uploads or reads its data, or when this invocation stops:
RESUME_CHANGEABLE_ARGS = frozenset({
    "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "ignore_data_skip", "cache_dir",
    "dataloader_num_workers", "id_column_name", "logging_steps", "image_steps", "report_to", "log_clip_ids",
    "checkpointing_steps", "checkpoints_total_limit", "max_train_minutes", "push_to_hub", "hub_model_id", "hub_token",
    "hub_private_repo",
})  # fmt: skip
# These may grow (the run is extended; its learning-rate schedule is recomputed over the new length), not shrink.
RESUME_EXTENDABLE_ARGS = ("max_steps", "num_train_epochs")


def check_resume_arguments(args, checkpoint: Path | None) -> None:
    """Refuse to resume `checkpoint` with arguments that define another run (see `RESUME_CHANGEABLE_ARGS`): a
    ValueError names each changed argument with its old and new value. A checkpoint that does not record its run's
    arguments (written by an older version) resumes with a warning."""
    if checkpoint is None:
        return
    state = json.loads((checkpoint / TRAINING_STATE).read_text())
    saved = state.get("args")
    if not isinstance(saved, dict):
        logger.warning(
            f"{checkpoint} does not record the arguments of its run (an older version wrote it): cannot check that "
            "this run's arguments match; resuming with them as given."
        )
        return
    changed, extended = [], []
    for name, value in sorted(vars(args).items()):
        if name in RESUME_CHANGEABLE_ARGS or name not in saved:  # not saved: an argument newer than the checkpoint
            continue
        old, new = saved[name], json.loads(json.dumps(value, default=str))  # as the checkpoint stores it
        if old == new or (name == "num_train_epochs" and args.max_steps > 0):  # epochs only count without max_steps
            continue
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


def _extends_run(name: str, old, new, state: dict, saved: dict) -> bool:
    if name == "max_steps":
        # 0 means "from --num_train_epochs", whose length is only known once the data is loaded: not comparable.
        return new > 0 and new >= int(state.get("total_steps") or old)
    return not saved.get("max_steps") and new >= old  # num_train_epochs, where it sets the length


# ----------------------------------------------------------------------------------------------------------------------
# Figures, Hub
# ----------------------------------------------------------------------------------------------------------------------


def reconstruction_figure(model: MaskSpecForPreTraining, input_values, attention_mask, noise, title: str = ""):
    """Matplotlib figure for one clip: input spectrogram | masked input | reconstruction (masked patches filled in)."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global state, no backend switching

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = model(input_values=input_values, attention_mask=attention_mask, noise=noise)
            original, masked, reconstruction = model.reconstruct_spectrogram(input_values, outputs.logits, outputs.mask)
    finally:
        model.train(was_training)
    panels = [t[0].float().cpu().numpy().T for t in (original, masked, reconstruction)]
    vmin, vmax = np.nanpercentile(panels[0], [1, 99.5])
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="#d9d9d9")
    fig = Figure(figsize=(15, 3.6), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    masked_share = float(outputs.mask[0].mean())
    names = ("input spectrogram", f"masked input ({masked_share:.0%} of patches removed)", "reconstruction")
    for ax, panel, name in zip(axes, panels, names):
        image = ax.imshow(panel, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(name)
        ax.set_xlabel("frame (10 ms)")
    axes[0].set_ylabel("mel bin")
    fig.colorbar(image, ax=axes, shrink=0.9, label="normalized log-mel")
    loss = float(outputs.loss)
    fig.suptitle(f"{title}  reconstruction loss on masked patches: {loss:.4f}".strip())
    return fig


def check_hub_access(accelerator, repo_id: str, token: str | None = None, private: bool = False) -> None:
    """Fail before training, not after it: the main process checks that the token works and may write, and creates
    the repo (or finds it); every process then raises the same ValueError, so none waits for the others."""
    from accelerate.utils import broadcast_object_list

    problem = _hub_problem(repo_id, token, private) if accelerator.is_main_process else None
    problem = broadcast_object_list([problem])[0]
    if problem:
        raise ValueError(problem)


def _hub_problem(repo_id: str, token: str | None, private: bool) -> str | None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import LocalTokenNotFoundError, OfflineModeIsEnabled

    api = HfApi(token=token)
    where = f"--push_to_hub --hub_model_id {repo_id}"
    try:
        info = api.whoami()
    except LocalTokenNotFoundError:
        return f"{where}: no Hub token; pass --hub_token, set HF_TOKEN or run `hf auth login`."
    except OfflineModeIsEnabled:
        return f"{where}: HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset it or drop --push_to_hub."
    except Exception as err:  # refused token, no network...: the upload at the end would fail the same way
        return (f"{where}: the Hub did not accept the token (--hub_token / HF_TOKEN) or could not be reached: "
                f"{_brief(err)}")
    role = ((info or {}).get("auth") or {}).get("accessToken", {}).get("role")
    if role == "read":
        return f"{where}: the Hub token (--hub_token / HF_TOKEN) is read-only; use a token with write access."
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    except Exception as err:
        return f"{where}: cannot create or write to the repo {repo_id}: {_brief(err)}"
    return None


def push_to_hub(folder, repo_id: str, commit_message: str, token: str | None = None, private: bool = False) -> str:
    """Upload every file of `folder` to the model repo `repo_id` in one commit (creating the repo if needed)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    folder = Path(folder)
    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.name != ".DS_Store")
    operations = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p)) for p in files]
    api.create_commit(repo_id=repo_id, repo_type="model", operations=operations, commit_message=commit_message)
    return str(url)


# ----------------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------------


def _setup_logging(accelerator) -> None:
    import datasets
    import transformers

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S", level=logging.INFO
    )
    if not accelerator.is_main_process:
        logger.setLevel(logging.WARNING)
    datasets.utils.logging.set_verbosity_warning()
    transformers.utils.logging.set_verbosity_warning()


def _has_accelerator_device() -> bool:
    if hasattr(torch, "accelerator"):
        return bool(torch.accelerator.is_available())
    return torch.cuda.is_available()


def _tracker_names(args) -> list[str]:
    return [args.report_to] if isinstance(args.report_to, str) else list(args.report_to or ["none"])


def _report_to(args) -> list[str] | None:
    """`--report_to` as Accelerate's `log_with`; a named tracker that is not installed is left out with a warning
    (Accelerate would drop it silently)."""
    from accelerate.tracking import get_available_trackers

    names = _tracker_names(args)
    if "none" in names:
        return None
    if "all" in names:
        return ["all"]
    available = {str(t) for t in get_available_trackers()}
    missing = [name for name in names if name not in available]
    if missing:
        logger.warning(f"--report_to: {', '.join(missing)} not installed (pip install {' '.join(missing)}); not "
                       "logging there.")
    return [name for name in names if name in available] or None


def _describe_data(args, dataset=None) -> list[str]:
    """The training data as the model card names it: a Hub dataset by its id; local data by file or folder name only,
    never by its path (the card is meant for the Hub), with the split and its row count when known."""
    from ..model_card import is_local_path, public_name

    if uses_builtin_data(args):
        return [
            f"Built-in synthetic sound events (maskspec_hf.data.synthetic): {args.synthetic_num_clips} clips, seed "
            f"{args.synthetic_seed}"
        ]
    if args.dataset_name and not is_local_path(args.dataset_name):
        return [args.dataset_name + (f" ({args.dataset_config_name})" if args.dataset_config_name else "")]
    try:
        rows = f", {len(dataset):,} rows" if dataset is not None else ""
    except TypeError:  # a streaming dataset has no length
        rows = ""
    where = f"split {args.train_split_name}{rows}"
    if args.dataset_name:
        return [f"a local dataset `{public_name(args.dataset_name)}` ({where})"]
    if args.data_files:
        names = sorted({public_name(f, local=True) for f in args.data_files})
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return [f"local files: {shown} ({where})"]
    return [f"a local folder `{public_name(args.data_dir, local=True)}` ({where})"]


def _build_accelerator(args, output_dir: Path):
    """The Accelerator, with logging set up; `args.mixed_precision` becomes the precision actually used (None: the
    launcher's, from ACCELERATE_MIXED_PRECISION), so checkpoints, the log and the model card record it. With
    --push_to_hub, the Hub token and repo are checked here, before any training."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    accelerator = Accelerator(
        # Without a GPU (or other accelerator), say so: Accelerate then runs a torchrun/accelerate-launch job on CPU
        # as a real multi-process (gloo) run instead of N independent single-process runs.
        cpu=not _has_accelerator_device(),
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=_report_to(args),
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "runs")),
        step_scheduler_with_optimizer=False,
    )
    _setup_logging(accelerator)
    args.mixed_precision = str(accelerator.mixed_precision)
    if args.push_to_hub:
        check_hub_access(accelerator, args.hub_model_id, token=args.hub_token, private=args.hub_private_repo)
    return accelerator


def train(args: argparse.Namespace) -> dict:
    """Run pre-training as described by `args` (see `build_parser`); returns a summary dict (also written to
    `output_dir/train_results.json`)."""
    from accelerate.utils import broadcast_object_list, gather_object, set_seed
    from datasets.distributed import split_dataset_by_node
    from tqdm.auto import tqdm

    validate_args(args)
    output_dir = Path(args.output_dir)
    accelerator = _build_accelerator(args, output_dir)
    rank, world_size = accelerator.process_index, accelerator.num_processes

    # ------------------------------------------------------------------ where we start from
    checkpoint = resolve_checkpoint(args.resume_from_checkpoint, output_dir)
    check_resume_arguments(args, checkpoint)
    if args.resume_from_checkpoint == "latest" and checkpoint is None:
        logger.info(f"--resume_from_checkpoint latest: no checkpoint in {checkpoint_dir(output_dir)} yet, starting afresh.")
    if checkpoint is None and list_checkpoints(output_dir):
        if not args.overwrite_output_dir:
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

    # Adam's second moments of tiny gradients underflow to denormals, which x86 CPUs process ~100x slower:
    # a step can take 20x longer late in training. Flushing them to zero changes nothing that matters.
    torch.set_flush_denormal(True)
    set_seed(args.seed)
    config = build_config(args, checkpoint)
    feature_extractor = build_feature_extractor(args, checkpoint)
    num_samples, num_frames, min_samples = check_clip_length(args, config, feature_extractor)
    if num_frames > config.max_frames:
        logger.info(f"Training clips have {num_frames} frames, more than config.max_frames={config.max_frames}.")

    # ------------------------------------------------------------------ data
    synthetic_seconds = args.synthetic_clip_seconds or args.clip_seconds
    with accelerator.main_process_first():
        raw = load_audio_dataset(
            dataset_name=args.dataset_name,
            dataset_config_name=args.dataset_config_name,
            data_dir=args.data_dir,
            data_files=args.data_files,
            split=args.train_split_name,
            streaming=args.streaming,
            cache_dir=args.cache_dir,
            synthetic_num_clips=args.synthetic_num_clips,
            synthetic_clip_seconds=synthetic_seconds,
            synthetic_seed=args.synthetic_seed,
            sampling_rate=feature_extractor.sampling_rate,
        )
    dataset, id_column = prepare_audio_dataset(raw, args.audio_column_name, args.id_column_name)
    if args.max_train_samples is not None:
        dataset = dataset.take(args.max_train_samples) if args.streaming else dataset.select(
            range(min(args.max_train_samples, len(dataset)))
        )
    processor = ClipProcessor(
        sampling_rate=feature_extractor.sampling_rate,
        num_samples=num_samples,
        min_samples=min_samples,
        audio_column=args.audio_column_name,
        id_column=id_column,
        seed=args.seed,
    )

    if checkpoint is None and args.compute_normalization_stats:
        stats = [None, None]
        if accelerator.is_main_process:
            waves = collect_clips(dataset, processor, args.compute_normalization_stats)
            stats = list(feature_extractor.compute_normalization_stats(waves, sampling_rate=feature_extractor.sampling_rate))
            logger.info(f"Normalization statistics from {len(waves)} clips: mean={stats[0]:.4f}, std={stats[1]:.4f}")
        stats = broadcast_object_list(stats)
        feature_extractor.mean, feature_extractor.std = float(stats[0]), float(stats[1])

    collator = SpectrogramCollator(feature_extractor, num_frames, patch_size=config.patch_size, seed=args.seed)
    if args.streaming:
        stream_dataset = dataset
        if args.shuffle_buffer_size:
            stream_dataset = stream_dataset.shuffle(seed=args.seed, buffer_size=args.shuffle_buffer_size)
        if world_size > 1:
            stream_dataset = split_dataset_by_node(stream_dataset, rank=rank, world_size=world_size)

        def any_process_out_of_data(out_of_data: bool) -> bool:
            if world_size == 1:
                return out_of_data
            flags = accelerator.gather(torch.tensor([float(out_of_data)], device=accelerator.device))
            return bool(flags.max() > 0)

        batches = StreamingBatches(
            stream_dataset, processor, collator, args.per_device_train_batch_size, rank=rank,
            num_workers=args.dataloader_num_workers, end_of_epoch_sync=any_process_out_of_data,
        )
        steps_per_epoch = None
    else:
        batches = MapStyleBatches(
            dataset, processor, collator, args.per_device_train_batch_size, seed=args.seed, rank=rank,
            world_size=world_size, num_workers=args.dataloader_num_workers,
            batches_multiple_of=args.gradient_accumulation_steps,
        )
        steps_per_epoch = batches.batches_per_epoch // args.gradient_accumulation_steps
    total_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
    warmup_steps = args.warmup_steps if args.warmup_steps is not None else int(args.warmup_ratio * total_steps)

    # ------------------------------------------------------------------ model and optimizer
    if args.model_name_or_path and checkpoint is None:
        model = MaskSpecForPreTraining.from_pretrained(args.model_name_or_path, config=config)
    else:
        model = MaskSpecForPreTraining(config)
    effective_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * world_size
    learning_rate = scaled_learning_rate(args.learning_rate, effective_batch, args.scale_lr)
    optimizer = torch.optim.AdamW(
        param_groups(model, args.weight_decay), lr=learning_rate, betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )
    scheduler = build_scheduler(optimizer, args.lr_scheduler_type, warmup_steps, total_steps, args.lr_scheduler_kwargs)
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = accelerator.prepare_scheduler(scheduler)  # also a greedy schedule, which is no torch LRScheduler
    unwrapped = accelerator.unwrap_model(model)

    # ------------------------------------------------------------------ resume
    step = 0
    local_skipped, local_clips = Counter(), 0
    last_loss = None
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / TRAINING_STATE).read_text())
        data_state_path = checkpoint / f"data_state.rank{rank}.json"
        if state["world_size"] != world_size or not data_state_path.is_file():
            raise ValueError(
                f"{checkpoint} was written by {state['world_size']} process(es); this run has {world_size}: resume "
                "with the same number of processes."
            )
        data_state = json.loads(data_state_path.read_text())
        step, last_loss = int(state["step"]), state.get("last_loss")
        local_skipped, local_clips = Counter(data_state["skipped"]), int(data_state["clips_seen"])
        if args.ignore_data_skip:
            batches.epoch = int(data_state["data"]["epoch"])
        else:
            batches.load_state_dict(data_state["data"])
        logger.info(f"Resumed from {checkpoint} at step {step} (epoch {batches.epoch}, batch {batches.position}).")
        # Drop what the interrupted run logged after this checkpoint: the logs then read as one uninterrupted run.
        if accelerator.is_main_process:
            _truncate_jsonl(output_dir / "logs" / "train_log.jsonl", step)
        for name in (f"skipped_clips.rank{rank}.jsonl", f"clip_ids.rank{rank}.jsonl"):
            _truncate_jsonl(output_dir / "logs" / name, step)

    # ------------------------------------------------------------------ logging set-up
    hyperparameters = {
        "model": _size_label(args, config),
        "mask_ratio": config.mask_ratio,
        "norm_pix_loss": config.norm_pix_loss,
        "clip_seconds": args.clip_seconds,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "num_processes": world_size,
        "effective_batch_size": effective_batch,
        "base_learning_rate": args.learning_rate,
        "learning_rate": learning_rate,
        "lr_scheduler": f"{args.lr_scheduler_type}, {warmup_steps} warmup steps"
        + (f", {json.dumps(args.lr_scheduler_kwargs)}" if args.lr_scheduler_kwargs else ""),
        "optimizer": f"AdamW(betas=({args.adam_beta1}, {args.adam_beta2}), eps={args.adam_epsilon})",
        "weight_decay": args.weight_decay,
        "max_grad_norm": args.max_grad_norm,
        "total_steps": total_steps,
        "mixed_precision": args.mixed_precision,
        "seed": args.seed,
        "feature_extractor_mean_std": f"{feature_extractor.mean:.4f}, {feature_extractor.std:.4f}",
    }
    if accelerator.is_main_process:
        logger.info(
            f"Effective batch size {effective_batch} = {args.per_device_train_batch_size} per device x "
            f"{args.gradient_accumulation_steps} accumulation x {world_size} process(es); learning rate "
            f"{learning_rate:.3g} = {args.learning_rate:g} x {effective_batch}/{LR_REFERENCE_BATCH}"
            + ("" if args.scale_lr else " (not scaled: --no_scale_lr)")
        )
        logger.info(
            f"{total_steps} optimizer steps"
            + (f" ({steps_per_epoch} per epoch)" if steps_per_epoch else "")
            + f", warmup {warmup_steps}; clips of {args.clip_seconds:g} s = {num_frames} frames; "
            f"{sum(p.numel() for p in unwrapped.parameters()):,} parameters"
        )
    if accelerator.log_with:  # the trackers --report_to named that are installed
        accelerator.init_trackers("maskspec-pretraining", config={k: str(v) if not isinstance(v, (int, float, bool)) else v
                                                                  for k, v in hyperparameters.items()})
    writer = _tensorboard_writer(accelerator)

    # The fixed clip of the reconstruction figures, and its fixed mask.
    fixed = first_valid_clip(dataset, processor) if accelerator.is_main_process else None
    figure_inputs = None
    if fixed is not None:
        features = feature_extractor(fixed["waveform"], sampling_rate=feature_extractor.sampling_rate,
                                     return_tensors="pt")
        grid = (features["input_values"].shape[1] // config.patch_size) * config.num_freq_patches
        figure_noise = torch.from_numpy(clip_rng(args.seed, 3).random((1, grid), dtype=np.float32))
        figure_inputs = (features["input_values"], features["attention_mask"], figure_noise, fixed["id"])

    def write_figure(at_step: int) -> Path | None:
        nonlocal figure_inputs
        if figure_inputs is None:
            return None
        values, mask, noise, clip_id = figure_inputs
        try:
            fig = reconstruction_figure(
                unwrapped, values.to(accelerator.device), mask.to(accelerator.device), noise.to(accelerator.device),
                title=f"clip {clip_id}, step {at_step}:",
            )
        except ImportError:
            logger.warning("matplotlib is not installed (pip install matplotlib): no reconstruction figures.")
            figure_inputs = None
            return None
        path = output_dir / "images" / f"step-{at_step:07d}.png"
        fig.savefig(path, dpi=80)
        if writer is not None:
            writer.add_figure("reconstruction", fig, global_step=at_step)
        return path

    mode = "a" if checkpoint is not None else "w"  # a fresh run starts fresh logs
    train_log = open(output_dir / "logs" / "train_log.jsonl", mode) if accelerator.is_main_process else None
    skip_log = open(output_dir / "logs" / f"skipped_clips.rank{rank}.jsonl", mode)
    ids_log = open(output_dir / "logs" / f"clip_ids.rank{rank}.jsonl", mode) if args.log_clip_ids else None

    def global_counts() -> tuple[int, dict]:
        counts = torch.tensor([local_clips] + [local_skipped[r] for r in SKIP_REASONS], dtype=torch.float64)
        counts = accelerator.reduce(counts.to(accelerator.device), "sum").cpu()
        return int(counts[0]), {r: int(c) for r, c in zip(SKIP_REASONS, counts[1:])}

    def checkpoint_now(at_step: int):
        clips_seen, skipped = global_counts()
        training_state = {
            "step": at_step,
            "epoch": batches.epoch,
            "total_steps": total_steps,
            "world_size": world_size,
            "clips_seen": clips_seen,
            "skipped": skipped,
            "last_loss": last_loss,
            "skipped_steps": skipped_steps,
            "args": {k: v for k, v in vars(args).items() if k != "hub_token"},
        }
        data_state = {"data": batches.state_dict(), "skipped": dict(local_skipped), "clips_seen": local_clips}
        path = save_checkpoint(accelerator, output_dir, at_step, training_state, data_state, unwrapped.config,
                               feature_extractor, args.checkpoints_total_limit)
        logger.info(f"Saved checkpoint {path}")

    # ------------------------------------------------------------------ the loop
    dummy = DummyBatch(num_frames, config.num_mel_bins, collator.num_patches())
    skipped_steps = _saved_skipped_steps(checkpoint)
    empty_in_a_row, empty_limit = 0, 2 * steps_per_epoch if steps_per_epoch else EMPTY_STEPS_LIMIT
    progress = tqdm(total=total_steps, initial=step, disable=not accelerator.is_main_process, desc="pre-training",
                    dynamic_ncols=True)
    model.train()
    last_time = started = time.perf_counter()
    stopped_by_time_limit = False
    try:
        while step < total_steps:
            loss_sum, loss_count, step_clips = 0.0, 0, 0
            step_skipped = Counter()
            lr = optimizer.param_groups[0]["lr"]
            for micro in range(args.gradient_accumulation_steps):
                batch = batches.next_batch()
                _log_batch(batch, step + 1, micro, skip_log, ids_log, step_skipped)
                step_clips += batch["input_values"].shape[0]
                # A batch whose clips were all skipped runs a zero-weight dummy so that every process still takes
                # part in the gradient synchronisation.
                inputs, weight = dummy.inputs_for(batch)
                with accelerator.accumulate(model):
                    loss = model(**{k: v.to(accelerator.device) for k, v in inputs.items()}).loss
                    accelerator.backward(loss * weight)
                if weight:
                    loss_sum += float(loss.detach())
                    loss_count += 1
            if not accelerator.sync_gradients:
                raise RuntimeError("Gradient accumulation lost track of optimizer steps; this is a bug.")
            local_skipped.update(step_skipped)
            # Summed over processes, so every process takes the same decision below.
            totals = torch.tensor(
                [loss_sum, loss_count, step_clips] + [step_skipped[r] for r in SKIP_REASONS], dtype=torch.float64
            )
            totals = accelerator.reduce(totals.to(accelerator.device), "sum").cpu()
            if totals[2] == 0:
                # No process had a usable clip: an optimizer step would still move the weights (momentum, weight
                # decay) and the schedule, and the loss would be NaN. Count the step and read on.
                optimizer.zero_grad()
                skipped_steps, empty_in_a_row = skipped_steps + 1, empty_in_a_row + 1
                if accelerator.is_main_process:
                    logger.warning(f"Every clip of the batches after step {step} was skipped: no optimizer step.")
                if empty_in_a_row >= empty_limit:
                    raise ValueError(f"No usable clip in {empty_in_a_row} steps' batches in a row: check the data "
                                     f"(logs/skipped_clips.rank*.jsonl gives the reasons).")
                continue
            empty_in_a_row = 0
            step_loss = float(totals[0] / totals[1])
            _optimizer_step(accelerator, model, optimizer, scheduler, args, step_loss)
            step += 1
            local_clips += step_clips
            last_loss = step_loss if math.isfinite(step_loss) else last_loss
            now = time.perf_counter()
            clips_per_second = float(totals[2]) / max(now - last_time, 1e-9)
            last_time = now
            clips_seen, skipped = global_counts()

            if accelerator.is_main_process:
                record = {
                    "step": step,
                    "epoch": batches.epoch,
                    "loss": step_loss,
                    "lr": lr,
                    "clips": int(totals[2]),
                    "clips_per_second": round(clips_per_second, 3),
                    "clips_seen": clips_seen,
                    "skipped": skipped,
                    "skipped_steps": skipped_steps,
                }
                train_log.write(json.dumps(record) + "\n")
                train_log.flush()
                progress.set_postfix(loss=f"{step_loss:.4f}", lr=f"{lr:.2e}", clips_s=f"{clips_per_second:.1f}",
                                     skipped=sum(skipped.values()), refresh=False)
                progress.update(1)
            if step % args.logging_steps == 0 or step == total_steps:
                accelerator.log(
                    {"train/loss": step_loss, "train/learning_rate": lr, "train/clips_per_second": clips_per_second,
                     "train/epoch": batches.epoch, "train/skipped_clips": sum(skipped.values()),
                     "train/skipped_steps": skipped_steps,
                     **{f"skipped/{r}": c for r, c in skipped.items()}},
                    step=step,
                )
            if args.image_steps and step % args.image_steps == 0 and accelerator.is_main_process:
                write_figure(step)
            if args.max_train_minutes and step < total_steps:
                # The main process's clock decides for everyone.
                over = torch.tensor(
                    [float(accelerator.is_main_process and now - started > 60 * args.max_train_minutes)],
                    device=accelerator.device,
                )
                stopped_by_time_limit = bool(accelerator.reduce(over, "sum").item() > 0)
            if step < total_steps and (
                stopped_by_time_limit or (args.checkpointing_steps and step % args.checkpointing_steps == 0)
            ):
                checkpoint_now(step)
            if stopped_by_time_limit:
                logger.warning(
                    f"--max_train_minutes {args.max_train_minutes:g} reached: stopping at step {step} of {total_steps} "
                    "(resume with --resume_from_checkpoint latest)."
                )
                break
    finally:
        progress.close()
        batches.close()
        skip_log.close()
        if train_log is not None:
            train_log.close()
        if ids_log is not None:
            ids_log.close()

    # ------------------------------------------------------------------ the end
    fingerprints = gather_object([weights_fingerprint(unwrapped)])
    clips_seen, skipped = global_counts()
    summary = {
        "step": step,
        "epoch": batches.epoch,
        "final_loss": last_loss,
        "clips_seen": clips_seen,
        "skipped_clips": skipped,
        "learning_rate": learning_rate,
        "effective_batch_size": effective_batch,
        "num_processes": world_size,
        "weights_identical_on_all_processes": len(set(fingerprints)) == 1,
        "total_steps": total_steps,
        "stopped_by_time_limit": stopped_by_time_limit,
        "skipped_steps": skipped_steps,
        "mixed_precision": args.mixed_precision,
        "resumed_from": str(checkpoint) if checkpoint is not None else None,
        "final_dir": str(output_dir / "final"),
    }
    if len(set(fingerprints)) != 1:
        logger.error(f"The processes ended with different weights: {fingerprints}")
    if accelerator.is_main_process:
        _write_json(output_dir / "logs" / "weights_fingerprints.json", {"fingerprints": fingerprints})
        final = output_dir / "final"
        if final.exists():
            shutil.rmtree(final)
        final.mkdir(parents=True)
        unwrapped.save_pretrained(final, safe_serialization=True)
        feature_extractor.save_pretrained(final)
        figure = write_figure(step)
        if figure is not None:
            shutil.copyfile(figure, final / "reconstruction.png")
            shutil.copyfile(figure, output_dir / "reconstruction.png")
            summary["figure"] = str(output_dir / "reconstruction.png")
        from ..model_card import write_model_card

        results = {
            "final_loss (masked-patch MSE, last step)": last_loss,
            "optimizer_steps": step,
            "epochs_started": batches.epoch + 1,
            "clips_seen": clips_seen,
            "clips_skipped": sum(skipped.values()),
        }
        write_model_card(
            final,
            unwrapped.config,
            task="pretraining",
            hyperparameters={**hyperparameters, "optimizer_steps": step},
            results=results,
            datasets=_describe_data(args, dataset),
            extra_notes="\n\n".join(
                note
                for note in (
                    _skip_note(skipped),
                    f"Training stopped by its time limit (--max_train_minutes {args.max_train_minutes:g}) after "
                    f"{step} of {total_steps} scheduled steps." if stopped_by_time_limit else None,
                )
                if note
            ) or None,
            figure="reconstruction.png" if figure is not None else None,
        )
        _write_json(output_dir / "train_results.json", summary)
        logger.info(f"Hub-ready model folder: {final}")
        if args.push_to_hub:
            message = f"MaskSpec pre-training: {step} steps, final loss {last_loss:.4f}" if last_loss is not None else \
                f"MaskSpec pre-training: {step} steps"
            url = push_to_hub(final, args.hub_model_id, message, token=args.hub_token, private=args.hub_private_repo)
            summary["hub_url"] = url
            logger.info(f"Uploaded {final} to {url}")
    model_ref = weakref.ref(model)
    model = optimizer = scheduler = None  # the last references to the DDP wrapper: see end_distributed_run
    end_distributed_run(accelerator, model_ref)
    return summary


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


def _saved_skipped_steps(checkpoint: Path | None) -> int:
    """The steps without a usable clip before `checkpoint` (0 for a fresh run or an older checkpoint)."""
    if checkpoint is None:
        return 0
    return int(json.loads((checkpoint / TRAINING_STATE).read_text()).get("skipped_steps", 0))


def _log_batch(batch: dict, step: int, micro: int, skip_log, ids_log, step_skipped: Counter) -> None:
    for clip_id, reason, error in batch["skipped"]:
        step_skipped[reason] += 1
        skip_log.write(json.dumps({"step": step, "id": clip_id, "reason": reason, "error": error}) + "\n")
    if batch["skipped"]:
        skip_log.flush()
    if ids_log is not None:
        ids_log.write(json.dumps({"step": step, "micro_batch": micro, "ids": batch["ids"]}) + "\n")
        ids_log.flush()


def _optimizer_step(accelerator, model, optimizer, scheduler, args, step_loss: float) -> None:
    """Clip the gradients, step the optimizer and the schedule (a metric schedule on the step's loss, the same on
    every process), zero the gradients."""
    if args.max_grad_norm:
        accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
    optimizer.step()
    if args.lr_scheduler_type in METRIC_SCHEDULERS:
        scheduler.step(step_loss)
    else:
        scheduler.step()
    optimizer.zero_grad()


def _size_label(args, config) -> str:
    for name, shape in MASKSPEC_PRESETS.items():
        if all(getattr(config, k) == v for k, v in shape.items()) and config.num_hidden_layers == 12:
            return f"MaskSpec-{name.capitalize()}"
    def blocks(n):
        return f"{n} block{'' if n == 1 else 's'}"

    return (f"custom: width {config.hidden_size}, {blocks(config.num_hidden_layers)}; decoder width "
            f"{config.decoder_hidden_size}, {blocks(config.decoder_num_hidden_layers)}")


def _skip_note(skipped: dict) -> str | None:
    total = sum(skipped.values())
    if not total:
        return None
    details = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in skipped.items() if count)
    return f"Clips skipped during training (unreadable or unusable audio): {total} ({details})."


def _truncate_jsonl(path: Path, max_step: int) -> None:
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


def _tensorboard_writer(accelerator):
    if not accelerator.is_main_process:
        return None
    try:
        writer = accelerator.get_tracker("tensorboard", unwrap=True)
    except (ValueError, KeyError, AttributeError):
        return None
    return writer if hasattr(writer, "add_figure") else None


def main(argv=None) -> dict:
    """Pre-train from command-line arguments; returns the run's summary (see `train`)."""
    args = parse_args(argv)
    return train(args)


def cli(argv=None) -> int:
    """The `maskspec-pretrain` console script: exit status 0 on success, 2 with a one-line message on a user error
    (`main`'s summary must not reach `sys.exit`, which would turn it into status 1)."""
    return run_console_script(main, argv, prog="maskspec-pretrain")


if __name__ == "__main__":
    sys.exit(cli())
