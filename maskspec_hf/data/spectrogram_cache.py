# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Whole-clip spectrograms kept in memory, for pre-training that reads a small corpus many times (`--feature_cache_gb`).

A 25-minute CPU run reads each clip of a few-hour corpus dozens of times, and decoding and featurizing every crop
afresh is about a third of its step. With the cache a clip is decoded and featurized whole once, kept in float16,
and each crop is a slice of its frames. A clip that does not fit under the size limit is featurized the same way at
every visit, so whether a clip is held never changes a crop and a resumed run sees the crops of an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..audio import window_start
from .clips import ClipProcessor, clip_rng


logger = logging.getLogger(__name__)

# Clips decoded at set-up to estimate the corpus's spectrogram size, and the bytes of one stored value.
SIZE_SAMPLE_CLIPS = 64
BYTES_PER_VALUE = 2  # float16


class SpectrogramCache:
    """Row index -> the whole clip's normalized log-mel spectrogram (float16 `[frames, mel]`), or the record of why
    the clip was skipped; `crop(index, key)` cuts a training crop from it.

    A crop is `num_frames` frames starting where `window_start` puts it with the clip's `clip_rng(seed, 0, *key)`
    (the generator of the waveform crop), the whole clip when shorter. `max_bytes` bounds what is held.
    """

    def __init__(self, feature_extractor, processor: ClipProcessor, num_frames: int, max_bytes: float):
        self.feature_extractor = feature_extractor
        self.processor = processor
        self.num_frames = num_frames
        self.max_bytes = max_bytes
        self.entries: dict[int, tuple[str, torch.Tensor | Mapping]] = {}
        self.held_bytes = 0
        self.decoded = 0  # clips decoded whole (a bad clip too), held or not

    def crop(self, index: int, key: Sequence[int]) -> dict | None:
        """The clip of `index` as `{"id", "features", "key"}` (or its skip record), or None when it is not held."""
        entry = self.entries.get(int(index))
        return None if entry is None else self._crop(*entry, tuple(int(k) for k in key))

    def add(self, index: int, row: Mapping, key: Sequence[int]) -> dict:
        """Decode and featurize the clip of `row` whole, hold it if it fits, and return `crop(index, key)`."""
        key = tuple(int(k) for k in key)
        clip = self.processor.whole_clip(row, key)
        self.decoded += 1
        if "waveform" not in clip:
            entry = (clip["id"], {k: v for k, v in clip.items() if k != "key"})
            self.entries[int(index)] = entry  # a bad clip is judged (and logged) once
            return self._crop(*entry, key)
        features = self.spectrogram(clip["waveform"])
        size = features.numel() * BYTES_PER_VALUE
        if self.held_bytes + size <= self.max_bytes:
            self.entries[int(index)] = (clip["id"], features)
            self.held_bytes += size
        return self._crop(clip["id"], features, key)

    def spectrogram(self, wave: np.ndarray) -> torch.Tensor:
        """The normalized log-mel of a whole waveform, `[frames, mel]` float16."""
        extractor = self.feature_extractor
        features = extractor(
            wave, sampling_rate=extractor.sampling_rate, padding="longest", return_attention_mask=False,
            return_tensors="pt",
        )["input_values"][0]  # fmt: skip
        return features.to(torch.float16)

    def _crop(self, name: str, entry, key: tuple[int, ...]) -> dict:
        if isinstance(entry, Mapping):
            return {**entry, "key": key}
        rng = clip_rng(self.processor.seed, 0, *key) if self.processor.random_crop else None
        start = window_start(entry.shape[0], self.num_frames, rng)
        # A view of the held float16 frames: `stack_crops` converts them as it copies them into the batch.
        return {"id": name, "features": entry[start : start + self.num_frames], "key": key}

    def describe(self) -> str:
        held = sum(isinstance(entry, torch.Tensor) for _, entry in self.entries.values())  # not the skip records
        return (
            f"{held} clips' spectrograms held ({self.held_bytes / 2**30:.3f} GB of at most "
            f"{self.max_bytes / 2**30:g}); {self.decoded} clips decoded whole"
        )


def estimated_spectrogram_bytes(dataset, processor: ClipProcessor, feature_extractor, seed: int) -> float:
    """The float16 spectrograms of all `len(dataset)` clips, estimated from up to SIZE_SAMPLE_CLIPS rows drawn with
    `seed` (decoded whole; clips that fail count as empty)."""
    num_rows = len(dataset)
    rows = clip_rng(seed, 3).permutation(num_rows)[:SIZE_SAMPLE_CLIPS]
    frames = []
    for index in rows:
        try:
            clip = processor.whole_clip(dataset[int(index)], (0, int(index)))
        except Exception:  # noqa: BLE001 - an unreadable row counts as an empty clip here; training skips it
            clip = {}
        frames.append(feature_extractor.frames_for_samples(clip["waveform"].size) if "waveform" in clip else 0)
    return float(np.mean(frames)) * num_rows * feature_extractor.feature_size * BYTES_PER_VALUE


def cache_if_it_fits(
    dataset, processor: ClipProcessor, feature_extractor, num_frames: int, limit_gb: float, seed: int
) -> SpectrogramCache | None:
    """`--feature_cache_gb`: a cache for `dataset` when its spectrograms are estimated to fit in `limit_gb`, else
    None (every crop decoded); the log says which. The estimate depends on the data and the seed only, so a resumed
    run takes the same decision."""
    limit = limit_gb * 2**30
    estimate = estimated_spectrogram_bytes(dataset, processor, feature_extractor, seed)
    fits = estimate <= limit
    logger.info(
        f"--feature_cache_gb {limit_gb:g}: the spectrograms of the {len(dataset)} clips are estimated at "
        f"{estimate / 2**30:.2f} GB; "
        + ("each clip is featurized whole once and its crops cut from memory." if fits else
           "more than that, so every crop is decoded and featurized (no cache).")
    )  # fmt: skip
    return SpectrogramCache(feature_extractor, processor, num_frames, limit) if fits else None


def stack_crops(samples: Sequence[dict], num_frames: int, padding_value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`(input_values [B, num_frames, mel], attention_mask [B, num_frames])` of cached crops, shorter ones padded
    with `padding_value` (as the feature extractor pads)."""
    mel = samples[0]["features"].shape[1]
    values = torch.full((len(samples), num_frames, mel), float(padding_value))
    mask = torch.zeros(len(samples), num_frames, dtype=torch.int32)
    for i, sample in enumerate(samples):
        frames = sample["features"].shape[0]
        values[i, :frames], mask[i, :frames] = sample["features"], 1
    return values, mask


__all__ = ["SpectrogramCache", "cache_if_it_fits", "estimated_spectrogram_bytes", "stack_crops"]
