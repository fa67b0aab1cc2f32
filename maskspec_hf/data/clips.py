# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""From a dataset row to a training clip, or to a record of why it was skipped.

One bad file in a million must not stop a training run, so `ClipProcessor` never raises for a bad clip: it returns
`{"id", "skipped", "error"}`, which the batches carry along and the training loop counts (`count_skips`). All
randomness here is a pure function of the seed and a per-clip key (`clip_rng`), so crops do not depend on DataLoader
workers or prefetching and a resumed run sees the same crops as an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from ..audio import ClipError, check_waveform, decode_audio, decode_audio_window


logger = logging.getLogger(__name__)


def clip_rng(seed: int, *key: int) -> np.random.Generator:
    """A generator that depends only on `seed` and the integers of `key` (e.g. a purpose tag, an epoch, a row)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *(int(k) & 0xFFFFFFFF for k in key)])


def clip_name(audio, clip_id=None, fallback: str = "a clip") -> str:
    """How logs and reports name a clip: its id column value (e.g. AudioSet's video_id), else its file, else
    `fallback` (e.g. "train row 12")."""
    if clip_id is not None:
        return str(clip_id)
    if isinstance(audio, Mapping) and audio.get("path"):
        return str(audio["path"])
    if isinstance(audio, (str, os.PathLike)):
        return str(audio)
    return fallback


class ClipProcessor:
    """Turns a dataset row into a training clip, or into a record of why it was skipped.

    `__call__(row, key)` returns `{"id", "waveform", "key"}` (a mono float32 waveform at `sampling_rate`, randomly
    cropped to at most `num_samples` with a generator drawn from `seed` and `key`) or `{"id", "skipped", "error",
    "key"}`; it never raises for a bad clip. Skips are logged with the clip's id.
    """

    def __init__(
        self,
        sampling_rate: int,
        num_samples: int,
        min_samples: int,
        audio_column: str = "audio",
        id_column: str | None = None,
        seed: int = 0,
        random_crop: bool = True,
    ):
        if min_samples > num_samples:
            raise ValueError(f"min_samples ({min_samples}) must not exceed num_samples ({num_samples}).")
        self.sampling_rate = sampling_rate
        self.num_samples = num_samples
        self.min_samples = min_samples
        self.audio_column = audio_column
        self.id_column = id_column
        self.seed = seed
        self.random_crop = random_crop

    def __call__(self, row: Mapping, key: Sequence[int]) -> dict:
        return self._clip(row, key, whole=False)

    def whole_clip(self, row: Mapping, key: Sequence[int]) -> dict:
        """As `__call__`, with the whole clip decoded and checked instead of a crop (for `SpectrogramCache`)."""
        return self._clip(row, key, whole=True)

    def _clip(self, row: Mapping, key: Sequence[int], whole: bool) -> dict:
        key = tuple(int(k) for k in key)
        clip_id = row.get(self.id_column) if self.id_column is not None else None
        name = clip_name(row.get(self.audio_column), clip_id, fallback=f"row {key}")
        try:
            if whole:
                wave = decode_audio(row[self.audio_column], self.sampling_rate)
            else:
                # Only the crop is decoded where the format allows it (see `decode_audio_window`), and only it is
                # checked.
                rng = clip_rng(self.seed, 0, *key) if self.random_crop else None
                wave = decode_audio_window(row[self.audio_column], self.sampling_rate, self.num_samples, rng)
            check_waveform(wave, self.min_samples)
        except ClipError as err:
            logger.warning(f"Skipping clip {name}: {err.reason} ({err})")
            return {"id": name, "skipped": err.reason, "error": str(err), "key": key}
        return {"id": name, "waveform": wave, "key": key}

    def without_random_crop(self) -> ClipProcessor:
        """The same processor, taking the start of long clips (for fixed figures and statistics)."""
        return ClipProcessor(
            self.sampling_rate,
            self.num_samples,
            self.min_samples,
            self.audio_column,
            self.id_column,
            self.seed,
            random_crop=False,
        )


def _rows(dataset, max_rows: int):
    """The first `max_rows` `(index, row)` of a map-style or streaming dataset."""
    import datasets

    if isinstance(dataset, datasets.Dataset):
        for index in range(min(max_rows, len(dataset))):
            yield index, dataset[index]
        return
    for index, row in zip(range(max_rows), dataset):
        yield index, row


def first_valid_clip(dataset, processor: ClipProcessor, max_rows: int = 1000) -> dict:
    """The first clip of `dataset` (map-style or streaming) that decodes and passes the checks, uncropped-random
    (the first `num_samples` samples): the fixed clip of the reconstruction figures."""
    fixed = processor.without_random_crop()
    for index, row in _rows(dataset, max_rows):
        clip = fixed(row, (0, index))
        if "waveform" in clip:
            return clip
    raise ValueError(f"None of the first {max_rows} rows of the dataset holds a usable clip.")


def collect_clips(dataset, processor: ClipProcessor, num_clips: int, max_rows: int | None = None) -> list[np.ndarray]:
    """Waveforms of the first `num_clips` usable clips of `dataset` (for normalization statistics)."""
    waves = []
    max_rows = max_rows if max_rows is not None else 10 * num_clips + 100
    rows = iter(dataset)
    for index in range(max_rows):
        row = next(rows, None)
        if row is None:
            break
        clip = processor(row, (0, index))
        if "waveform" in clip:
            waves.append(clip["waveform"])
            if len(waves) == num_clips:
                break
    if not waves:
        raise ValueError("No usable clip found to compute normalization statistics.")
    return waves


def count_skips(skipped: Sequence[tuple]) -> Counter:
    """Skipped clips per reason, from the `(id, reason, error)` records of the batches."""
    return Counter(reason for _, reason, _ in skipped)


def min_samples_for_one_patch(feature_extractor, patch_size: int) -> int:
    """Fewest samples that give `patch_size` frames (one row of patches) and that the feature extractor accepts."""
    needed = (patch_size - 1) * feature_extractor.hop_length + (1 if feature_extractor.preemphasis else 0)
    # The extractor itself refuses clips shorter than its own minimum (16 frames, and enough samples to reflect-pad).
    return max(needed, 1, feature_extractor.min_num_samples)


def num_frames_for_seconds(feature_extractor, seconds: float) -> tuple[int, int]:
    """`(samples, frames)` of a clip of `seconds` at the extractor's rate."""
    samples = int(round(seconds * feature_extractor.sampling_rate))
    return samples, feature_extractor.frames_for_samples(samples)


__all__ = [
    "ClipProcessor",
    "clip_name",
    "clip_rng",
    "collect_clips",
    "count_skips",
    "first_valid_clip",
    "min_samples_for_one_patch",
    "num_frames_for_seconds",
]
