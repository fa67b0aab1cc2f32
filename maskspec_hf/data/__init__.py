# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Audio data for MaskSpec: data flows through these modules in this order.

- `loading`: the one front door to datasets (Hub, local folders and files, `save_to_disk`, streaming, built-in data)
  and the train/eval splits of fine-tuning and probing;
- `clips`: one row -> one clip (decoded by `maskspec_hf.audio`, cropped), or a record of why it was skipped;
- `spectrogram_cache`: whole-clip spectrograms kept in memory, crops cut from them (`--feature_cache_gb`);
- `batching`, `streaming_batches`: clips -> features, in resumable map-style or streaming batches for each process;
- `labels`, `classification`: label spaces and the clip dataset of fine-tuning; `synthetic`: the built-in corpus.
"""

from .arguments import DataArguments
from .batching import MapStyleBatches, SpectrogramCollator, epoch_indices
from .clips import (
    ClipProcessor,
    clip_name,
    clip_rng,
    collect_clips,
    count_skips,
    first_valid_clip,
    min_samples_for_one_patch,
    num_frames_for_seconds,
)
from .loading import (
    EmptySplitError,
    default_id_column,
    describe_data_source,
    load_audio_dataset,
    load_audio_split,
    load_splits,
    prepare_audio_dataset,
    require_rows,
)
from .streaming_batches import StreamingBatches


__all__ = [
    "ClipProcessor",
    "DataArguments",
    "EmptySplitError",
    "MapStyleBatches",
    "SpectrogramCollator",
    "StreamingBatches",
    "clip_name",
    "clip_rng",
    "collect_clips",
    "count_skips",
    "default_id_column",
    "describe_data_source",
    "epoch_indices",
    "first_valid_clip",
    "load_audio_dataset",
    "load_audio_split",
    "load_splits",
    "min_samples_for_one_patch",
    "num_frames_for_seconds",
    "prepare_audio_dataset",
    "require_rows",
]
