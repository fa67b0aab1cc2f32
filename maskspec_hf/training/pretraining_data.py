# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""A pre-training run's data: the clip length, the dataset, its normalization statistics and spectrogram cache, and
this process's resumable batches (map-style or streamed), with the schedule's length they imply."""

from __future__ import annotations

import logging
from functools import partial

import torch

from ..configuration_maskspec import MaskSpecConfig
from ..data.arguments import DataArguments
from ..data.batching import MapStyleBatches, SpectrogramCollator
from ..data.clips import ClipProcessor, min_samples_for_one_patch, num_frames_for_seconds
from ..data.loading import load_audio_split, prepare_audio_dataset
from ..data.spectrogram_cache import cache_if_it_fits
from ..data.streaming_batches import StreamingBatches
from .normalization import set_normalization
from .pretraining_arguments import clip_seconds
from .time_budget import initial_total_steps


logger = logging.getLogger(__name__)


def check_clip_length(data_args: DataArguments, config: MaskSpecConfig, feature_extractor) -> tuple[int, int, int]:
    """`(num_samples, num_frames, min_samples)` of a training clip; a clip too short for one patch is an error."""
    if feature_extractor.feature_size != config.num_mel_bins:
        raise ValueError(
            f"The feature extractor makes {feature_extractor.feature_size} mel bins but the model expects "
            f"{config.num_mel_bins} (config.num_mel_bins)."
        )
    seconds = clip_seconds(data_args)
    num_samples, num_frames = num_frames_for_seconds(feature_extractor, seconds)
    one_patch = min_samples_for_one_patch(feature_extractor, config.patch_size)
    if num_frames < config.patch_size or num_samples < one_patch:
        raise ValueError(
            f"--max_length_seconds {seconds} gives {num_frames} frames, fewer than one {config.patch_size}-frame "
            f"patch: use at least {one_patch / feature_extractor.sampling_rate:.3f} s."
        )
    if data_args.min_length_seconds is None:
        min_samples = one_patch
    else:
        min_samples = max(one_patch, int(round(data_args.min_length_seconds * feature_extractor.sampling_rate)))
    return num_samples, num_frames, min(min_samples, num_samples)


def set_up_data(run) -> ClipProcessor:
    """The dataset, its resumable batches for this process and the schedule's length; returns the clip processor."""

    data_args, args, accelerator, feature_extractor = run.data_args, run.args, run.accelerator, run.feature_extractor
    num_samples, run.num_frames, min_samples = check_clip_length(data_args, run.config, feature_extractor)
    if run.num_frames > run.config.max_frames:
        logger.info(
            f"Training clips have {run.num_frames} frames, more than config.max_frames={run.config.max_frames}."
        )
    with accelerator.main_process_first():
        raw = load_audio_split(
            data_args,
            sampling_rate=feature_extractor.sampling_rate,
            cache_dir=run.model_args.cache_dir,
            token=run.model_args.token,
        )
    dataset, id_column = prepare_audio_dataset(raw, data_args.audio_column_name, data_args.id_column_name)
    if data_args.max_train_samples is not None:
        limit = data_args.max_train_samples
        dataset = dataset.take(limit) if data_args.streaming else dataset.select(range(min(limit, len(dataset))))
    run.dataset = dataset
    processor = ClipProcessor(
        sampling_rate=feature_extractor.sampling_rate,
        num_samples=num_samples,
        min_samples=min_samples,
        audio_column=data_args.audio_column_name,
        id_column=id_column,
        seed=args.seed,
    )
    run.normalization = set_normalization(run, dataset, processor)
    # After the normalization statistics: the cache holds normalized spectrograms.
    if args.feature_cache_gb > 0:
        run.spectrogram_cache = cache_if_it_fits(
            dataset, processor, feature_extractor, run.num_frames, args.feature_cache_gb, args.seed
        )
    collator = SpectrogramCollator(feature_extractor, run.num_frames, patch_size=run.config.patch_size, seed=args.seed)
    run.batches = _resumable_batches(run, collator, processor)
    if not data_args.streaming:
        run.steps_per_epoch = run.batches.batches_per_epoch // args.gradient_accumulation_steps
    run.total_steps, run.state.schedule_fitted = initial_total_steps(args, run.steps_per_epoch, run.checkpoint)
    run.warmup_steps = args.warmup_steps if args.warmup_steps is not None else int(args.warmup_ratio * run.total_steps)
    run.num_patches = collator.num_patches()
    return processor


def _resumable_batches(run, collator, processor):
    """This process's resumable batches: a seeded permutation of a map-style dataset, or its shards of a stream."""
    from datasets.distributed import split_dataset_by_node

    data_args, args, accelerator = run.data_args, run.args, run.accelerator
    rank, world_size = accelerator.process_index, accelerator.num_processes
    if not data_args.streaming:
        return MapStyleBatches(
            run.dataset,
            processor,
            collator,
            args.per_device_train_batch_size,
            seed=args.seed,
            rank=rank,
            world_size=world_size,
            num_workers=args.dataloader_num_workers,
            batches_multiple_of=args.gradient_accumulation_steps,
            cache=run.spectrogram_cache,
        )
    stream = run.dataset
    if data_args.shuffle_buffer_size:
        stream = stream.shuffle(seed=args.seed, buffer_size=data_args.shuffle_buffer_size)
    if world_size > 1:
        stream = split_dataset_by_node(stream, rank=rank, world_size=world_size)
    return StreamingBatches(
        stream,
        processor,
        collator,
        args.per_device_train_batch_size,
        rank=rank,
        num_workers=args.dataloader_num_workers,
        end_of_epoch_sync=partial(any_process_out_of_data, accelerator),
    )


def any_process_out_of_data(accelerator, out_of_data: bool) -> bool:
    """Whether any process's stream ended (they all start the next epoch together)."""
    if accelerator.num_processes == 1:
        return out_of_data
    flags = accelerator.gather(torch.tensor([float(out_of_data)], device=accelerator.device))
    return bool(flags.max() > 0)
