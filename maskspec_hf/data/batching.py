# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Clips -> resumable batches of features for one process of a (possibly distributed) run.

A map-style dataset is read in a seeded per-epoch permutation dealt out to the processes (here); a streaming dataset
is split between processes with `datasets.distributed.split_dataset_by_node` and between DataLoader workers by shards
(`streaming_batches`). Both expose `state_dict()` / `load_state_dict()` so that a run killed at any step resumes exactly where its checkpoint was
taken: the order, every crop and every mask are functions of the seed and a per-clip key, never of worker timing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from .clips import ClipProcessor, clip_rng
from .spectrogram_cache import SpectrogramCache, stack_crops


logger = logging.getLogger(__name__)


class SpectrogramCollator:
    """Batch of clips -> features, computed batched in torch (runs in DataLoader workers).

    Returns a dict with `input_values` `[B, num_frames, mel]` and `attention_mask` `[B, num_frames]` (clips shorter
    than the training length are padded, the padding marked 0), `ids` (list of clip names) and `skipped` (list of
    `(id, reason, error)` of the clips of this batch that could not be used); with `patch_size`, also `noise`
    `[B, num_patches]` for the model's random masking, drawn from `seed` and each clip's key, so a clip's mask does
    not depend on the rest of the batch. Extra keys of the samples listed in `extra_keys` are passed through as lists.
    B may be 0 when every clip of the batch was skipped.
    """

    def __init__(
        self,
        feature_extractor,
        num_frames: int,
        patch_size: int | None = None,
        seed: int = 0,
        extra_keys: Sequence[str] = (),
    ):
        self.feature_extractor = feature_extractor
        self.num_frames = num_frames
        self.patch_size = patch_size
        self.seed = seed
        self.extra_keys = tuple(extra_keys)

    def num_patches(self) -> int:
        return (self.num_frames // self.patch_size) * (self.feature_extractor.feature_size // self.patch_size)

    def __call__(self, samples: Sequence[dict]) -> dict:
        good = [s for s in samples if "waveform" in s or "features" in s]
        batch = {
            "ids": [s["id"] for s in good],
            "keys": [s["key"] for s in good],
            "skipped": [(s["id"], s["skipped"], s.get("error", "")) for s in samples if "skipped" in s],
        }
        if good and "features" in good[0]:  # crops of whole-clip spectrograms (`SpectrogramCache`)
            padding = self.feature_extractor.padding_value
            batch["input_values"], batch["attention_mask"] = stack_crops(good, self.num_frames, padding)
        elif good:
            features = self.feature_extractor(
                [s["waveform"] for s in good],
                sampling_rate=self.feature_extractor.sampling_rate,
                padding="max_length",
                max_length=self.num_frames,
                truncation=True,
                return_attention_mask=True,
                return_tensors="pt",
            )
            batch["input_values"] = features["input_values"]
            batch["attention_mask"] = features["attention_mask"]
        else:
            batch["input_values"] = torch.zeros(0, self.num_frames, self.feature_extractor.feature_size)
            batch["attention_mask"] = torch.zeros(0, self.num_frames, dtype=torch.int32)
        if self.patch_size is not None:
            n = self.num_patches()
            noise = [clip_rng(self.seed, 1, *s["key"]).random(n, dtype=np.float32) for s in good]
            batch["noise"] = torch.from_numpy(np.stack(noise)) if noise else torch.zeros(0, n)
        for name in self.extra_keys:
            batch[name] = [s.get(name) for s in good]
        return batch


def _identity(batch):
    return batch


# ----------------------------------------------------------------------------------------------------------------------
# Map-style datasets: a seeded permutation per epoch, split between processes
# ----------------------------------------------------------------------------------------------------------------------


def epoch_indices(num_rows: int, epoch: int, seed: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """Rows this process reads in `epoch`: a permutation drawn from `(seed, epoch)`, dealt out in turn to the
    `world_size` processes, each getting the same number (the last `num_rows % world_size` rows of the permutation
    are left out this epoch). Processes never share a row within an epoch."""
    permutation = clip_rng(seed, 2, epoch).permutation(num_rows)
    per_rank = num_rows // world_size
    return permutation[rank : per_rank * world_size : world_size]


class _MapStyleClips(TorchDataset):
    """Indexed by `(epoch, row)`; the epoch goes into the clip's random key. With a `SpectrogramCache`, crops are
    cut from whole-clip spectrograms (a row is read only on its first visit)."""

    def __init__(self, dataset, processor: ClipProcessor, cache: SpectrogramCache | None = None):
        self.dataset = dataset
        self.processor = processor
        self.cache = cache

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        epoch, index = item
        if self.cache is not None and (held := self.cache.crop(index, (epoch, index))) is not None:
            return held
        try:
            row = self.dataset[int(index)]
        except Exception as err:  # noqa: BLE001 - an unreadable row is one skipped clip, not a crash
            logger.warning(f"Skipping row {index}: cannot read it ({type(err).__name__}: {err})")
            return {"id": f"row {index}", "skipped": "decode_error", "error": str(err)[:300], "key": (epoch, index)}
        if self.cache is not None:
            return self.cache.add(index, row, (epoch, index))
        return self.processor(row, (epoch, index))


class MapStyleBatches:
    """Resumable batches of a map-style dataset for one process of a (possibly distributed) run.

    Every epoch reads `epoch_indices(...)` in order, `batch_size` rows per batch, cut to `batches_per_epoch` batches so
    that all processes take the same number of steps. The state is `(epoch, batches consumed in the epoch)`; since
    the order and every clip's crop and mask are functions of the seed, resuming from it reproduces the run exactly.
    """

    def __init__(
        self,
        dataset,
        processor: ClipProcessor,
        collator: SpectrogramCollator,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        batches_multiple_of: int = 1,
        cache: SpectrogramCache | None = None,
    ):
        self.dataset = dataset
        self.clips = _MapStyleClips(dataset, processor, cache)
        self.collator = collator
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.num_workers = num_workers
        per_rank = len(dataset) // world_size
        self.batches_per_epoch = per_rank // batch_size // batches_multiple_of * batches_multiple_of
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"The dataset has {len(dataset)} rows: too few for one optimizer step of {batches_multiple_of} "
                f"batch(es) of {batch_size} clips on each of {world_size} process(es); lower "
                "--per_device_train_batch_size or --gradient_accumulation_steps, or use more data."
            )
        self.epoch = 0
        self.position = 0  # batches consumed in the current epoch
        self._iterator = None

    def fill_cache(self, show_progress: bool = False) -> None:
        """With a `SpectrogramCache`, decode and featurize every clip into it now, so that the first steps (which
        size a time-limited schedule) run as fast as the rest; without one, nothing."""
        if self.clips.cache is None:
            return
        from tqdm.auto import tqdm

        for index in tqdm(range(len(self.dataset)), desc="spectrogram cache", disable=not show_progress):
            self.clips[(0, index)]

    def _start(self):
        indices = epoch_indices(len(self.dataset), self.epoch, self.seed, self.rank, self.world_size)
        indices = indices[self.position * self.batch_size : self.batches_per_epoch * self.batch_size]
        loader = DataLoader(
            self.clips,
            batch_size=self.batch_size,
            sampler=[(self.epoch, int(i)) for i in indices],
            collate_fn=self.collator,
            num_workers=self.num_workers,
            drop_last=True,
        )
        self._iterator = iter(loader)

    def next_batch(self) -> dict:
        if self._iterator is None:
            self._start()
        try:
            batch = next(self._iterator)
        except StopIteration:
            self.epoch, self.position = self.epoch + 1, 0
            self._start()
            batch = next(self._iterator)
        self.position += 1
        return batch

    def state_dict(self) -> dict:
        return {
            "kind": "map",
            "epoch": self.epoch,
            "position": self.position,
            "world_size": self.world_size,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != "map":
            raise ValueError("This checkpoint was taken with a streaming dataset; resume with --streaming.")
        if state["world_size"] != self.world_size or state["batch_size"] != self.batch_size:
            raise ValueError(
                f"The checkpoint was taken with {state['world_size']} process(es) x batch size {state['batch_size']}; "
                f"this run has {self.world_size} x {self.batch_size}. Resume with the same settings, or pass "
                "--ignore_data_skip to restart the data of the current epoch from its beginning."
            )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        self._iterator = None

    def close(self):
        self._iterator = None


__all__ = ["MapStyleBatches", "SpectrogramCollator", "epoch_indices"]
