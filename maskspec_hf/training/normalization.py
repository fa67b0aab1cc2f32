# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""The normalization statistics of a pre-training run: fitted on the data unless the model brings its own.

MSM-MAE recommends statistics of the pre-training data itself; PaSST's (-4.5, 5.0) were fitted on AudioSet. A
model that starts from trained weights keeps its feature extractor (refitting it would change what it was
trained on), and so does a run given --feature_extractor_name.
"""

from __future__ import annotations

import logging

from ..data.clips import collect_clips
from ..loading import is_preset_name
from .pretraining_arguments import DEFAULT_NORMALIZATION_CLIPS


logger = logging.getLogger(__name__)


def normalization_clips(args, model_args) -> int:
    """How many clips to fit the statistics on: `--compute_normalization_stats`, or by default
    DEFAULT_NORMALIZATION_CLIPS when the feature extractor is the built-in one (a preset model, none given)."""
    if args.compute_normalization_stats is not None:
        return args.compute_normalization_stats
    source = model_args.model_name_or_path
    starts_from_defaults = (source is None or is_preset_name(source)) and not model_args.feature_extractor_name
    return DEFAULT_NORMALIZATION_CLIPS if starts_from_defaults else 0


def set_normalization(run, dataset, processor) -> str:
    """Fit (main process, then broadcast) or keep the run's mean/std; returns the log line saying which."""
    from accelerate.utils import broadcast_object_list

    feature_extractor = run.feature_extractor
    num_clips = normalization_clips(run.args, run.model_args) if run.checkpoint is None else 0
    if num_clips:
        stats = [None, None, 0]
        if run.is_main:
            waves = collect_clips(dataset, processor, num_clips)
            rate = feature_extractor.sampling_rate
            mean, std = feature_extractor.compute_normalization_stats(waves, sampling_rate=rate)
            stats = [float(mean), float(std), len(waves)]
        stats = broadcast_object_list(stats)
        feature_extractor.mean, feature_extractor.std = stats[0], stats[1]
        origin = f"fitted on {stats[2]} training clips"
    elif run.checkpoint is not None:
        origin = f"from the checkpoint {run.checkpoint.name}"
    elif run.args.compute_normalization_stats == 0:
        origin = "the feature extractor's (--compute_normalization_stats 0)"
    else:  # the default, with a model folder or --feature_extractor_name: its statistics are kept
        origin = "the model's own feature extractor"
    message = f"Normalization: mean={describe_statistic(feature_extractor.mean)}, std={describe_statistic(feature_extractor.std)} ({origin})"
    if run.is_main:
        logger.info(message)
    return message


def describe_statistic(value) -> str:
    """A scalar statistic as a number, a per-mel-bin one by its length."""
    if isinstance(value, (list, tuple)):
        return f"[{len(value)} per-bin values]"
    return f"{float(value):.4f}"
