# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""What a finished pre-training run publishes: `final/` (weights, config with `auto_map`, code, feature extractor,
reconstruction figure) and its model card, which names the data without local paths (the card is meant for the Hub).
"""

from __future__ import annotations

import json
import logging
import shutil

from ..configuration_maskspec import MASKSPEC_PRESETS
from ..data.arguments import DataArguments
from ..model_card import describe_decoder
from .normalization import describe_statistic
from .pretraining_arguments import clip_seconds


logger = logging.getLogger(__name__)


def run_hyperparameters(run) -> dict:
    """What the trackers and the model card record about the run."""
    args, config, scheduler_kwargs = run.args, run.config, run.args.lr_scheduler_kwargs
    return {
        "model": size_label(config),
        "decoder": describe_decoder(config),
        "mask_ratio": config.mask_ratio,
        "norm_pix_loss": config.norm_pix_loss,
        "max_length_seconds": clip_seconds(run.data_args),
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "num_processes": run.accelerator.num_processes,
        "effective_batch_size": run.effective_batch,
        "base_learning_rate": args.learning_rate,
        "learning_rate": run.learning_rate,
        "lr_scheduler": f"{args.lr_scheduler_type}, {run.warmup_steps} warmup steps"
        + (f", {json.dumps(scheduler_kwargs)}" if scheduler_kwargs else ""),
        "optimizer": f"AdamW(betas=({args.adam_beta1}, {args.adam_beta2}), eps={args.adam_epsilon})",
        "weight_decay": args.weight_decay,
        "max_grad_norm": args.max_grad_norm,
        "total_steps": run.total_steps,
        "mixed_precision": run.arguments["mixed_precision"],
        "seed": args.seed,
        "feature_extractor_mean_std": f"{describe_statistic(run.feature_extractor.mean)}, "
        f"{describe_statistic(run.feature_extractor.std)}",
        "normalization": run.normalization,
        "schedule_fitted_to_time_limit": args.fit_schedule_to_time_limit,
        "torch_compile": args.torch_compile,
    }


def size_label(config) -> str:
    for name, shape in MASKSPEC_PRESETS.items():
        if all(getattr(config, k) == v for k, v in shape.items()) and config.num_hidden_layers == 12:
            return f"MaskSpec-{name.capitalize()}"

    def blocks(n):
        return f"{n} block{'' if n == 1 else 's'}"

    return (
        f"custom: width {config.hidden_size}, {blocks(config.num_hidden_layers)}; decoder width "
        f"{config.decoder_hidden_size}, {blocks(config.decoder_num_hidden_layers)}"
    )


def describe_data(data_args: DataArguments, dataset=None) -> list[str]:
    """The training data as the model card names it: a Hub dataset by its id; local data by file or folder name only,
    never by its path (the card is meant for the Hub), with the split and its row count when known."""
    from ..model_card import is_local_path, public_name

    if data_args.uses_builtin_data():
        return [
            "Built-in synthetic corpus of two-vowel words (maskspec_hf.data.synthetic): "
            f"{data_args.synthetic_num_clips} clips, seed {data_args.synthetic_seed}"
        ]
    if data_args.dataset_name and not is_local_path(data_args.dataset_name):
        config = data_args.dataset_config_name
        return [data_args.dataset_name + (f" ({config})" if config else "")]
    try:
        rows = f", {len(dataset):,} rows" if dataset is not None else ""
    except TypeError:  # a streaming dataset has no length
        rows = ""
    where = f"split {data_args.train_split_name}{rows}"
    if data_args.dataset_name:
        return [f"a local dataset `{public_name(data_args.dataset_name)}` ({where})"]
    if data_args.data_files:
        names = sorted({public_name(f, local=True) for f in data_args.data_files})
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return [f"local files: {shown} ({where})"]
    return [f"a local folder `{public_name(data_args.data_dir, local=True)}` ({where})"]


def _notes(run, skipped: dict) -> str | None:
    notes = []
    total = sum(skipped.values())
    if total:
        details = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in skipped.items() if count)
        notes.append(f"Clips skipped during training (unreadable or unusable audio): {total} ({details}).")
    if run.state.stopped_by_time_limit:
        notes.append(
            f"Training stopped by its time limit (--max_train_minutes {run.args.max_train_minutes:g}) after "
            f"{run.state.step} of {run.total_steps} scheduled steps."
        )
    return "\n\n".join(notes) or None


def write_final_folder(run, summary: dict) -> None:
    """`final/`: the weights, config (with `auto_map`) and code, the feature extractor, the last reconstruction
    figure and the model card (main process only). Adds the figure's path to `summary`."""
    from ..model_card import write_model_card

    state, final = run.state, run.output_dir / "final"
    if final.exists():
        shutil.rmtree(final)
    final.mkdir(parents=True)
    run.unwrapped.save_pretrained(final, safe_serialization=True)
    run.feature_extractor.save_pretrained(final)
    figure = run.figures.write(state.step, run.accelerator.device)
    if figure is not None:
        shutil.copyfile(figure, final / "reconstruction.png")
        shutil.copyfile(figure, run.output_dir / "reconstruction.png")
        summary["figure"] = str(run.output_dir / "reconstruction.png")
    skipped = state.skipped_counts()
    results = {
        "final_loss (masked-patch MSE, last step)": state.last_loss,
        "optimizer_steps": state.step,
        "epochs_started": run.batches.epoch + 1,
        "clips_seen": state.clips_seen,
        "clips_skipped": sum(skipped.values()),
    }
    write_model_card(
        final,
        run.unwrapped.config,
        task="pretraining",
        hyperparameters={**run.hyperparameters, "optimizer_steps": state.step},
        results=results,
        datasets=describe_data(run.data_args, run.dataset),
        extra_notes=_notes(run, skipped),
        figure="reconstruction.png" if figure is not None else None,
    )
    logger.info(f"Hub-ready model folder: {final}")
