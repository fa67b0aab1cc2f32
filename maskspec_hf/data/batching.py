# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Clips -> resumable batches of features for one process of a (possibly distributed) run.

A map-style dataset is read in a seeded per-epoch permutation dealt out to the processes; a streaming dataset is split
between processes with `datasets.distributed.split_dataset_by_node` and between DataLoader workers by shards. Both
expose `state_dict()` / `load_state_dict()` so that a run killed at any step resumes exactly where its checkpoint was
taken: the order, every crop and every mask are functions of the seed and a per-clip key, never of worker timing.
"""

from __future__ import annotations

import copy
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import IterableDataset as TorchIterableDataset

from .clips import ClipProcessor, clip_rng


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
        good = [s for s in samples if "waveform" in s]
        batch = {
            "ids": [s["id"] for s in good],
            "keys": [s["key"] for s in good],
            "skipped": [(s["id"], s["skipped"], s.get("error", "")) for s in samples if "skipped" in s],
        }
        if good:
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
    """Indexed by `(epoch, row)`; the epoch goes into the clip's random key."""

    def __init__(self, dataset, processor: ClipProcessor):
        self.dataset = dataset
        self.processor = processor

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        epoch, index = item
        try:
            row = self.dataset[int(index)]
        except Exception as err:  # noqa: BLE001 - an unreadable row is one skipped clip, not a crash
            logger.warning(f"Skipping row {index}: cannot read it ({type(err).__name__}: {err})")
            return {"id": f"row {index}", "skipped": "decode_error", "error": str(err)[:300], "key": (epoch, index)}
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
    ):
        self.dataset = dataset
        self.clips = _MapStyleClips(dataset, processor)
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


# ----------------------------------------------------------------------------------------------------------------------
# Streaming datasets: split between processes (split_dataset_by_node) and workers (shards)
# ----------------------------------------------------------------------------------------------------------------------


class _StreamingClipBatches(TorchIterableDataset):
    """Worker side of `StreamingBatches`: each DataLoader worker reads its own shards of this process's part of the
    stream, decodes and batches clips and computes features, and tags every batch with its worker and the
    `datasets` state after the batch's last row. Each worker ends with an `{"_exhausted": True}` marker."""

    def __init__(self, dataset, processor, collator, batch_size, epoch, rank, start_states, start_rows):
        self.dataset = dataset
        self.processor = processor
        self.collator = collator
        self.batch_size = batch_size
        self.epoch = epoch
        self.rank = rank
        self.start_states = start_states
        self.start_rows = start_rows

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        dataset = copy.deepcopy(self.dataset)
        dataset.set_epoch(self.epoch)
        if self.start_states.get(worker) is not None:
            dataset.load_state_dict(self.start_states[worker])
        rows = self.start_rows.get(worker, 0)
        pending = []
        for row in dataset:
            pending.append(self.processor(row, (self.epoch, self.rank, worker, rows)))
            rows += 1
            if len(pending) == self.batch_size:
                yield self._tag(self.collator(pending), worker, dataset, rows)
                pending = []
        if pending:
            yield self._tag(self.collator(pending), worker, dataset, rows)
        yield {"_worker": worker, "_exhausted": True}

    @staticmethod
    def _tag(batch, worker, dataset, rows):
        batch["_worker"], batch["_state"], batch["_rows"] = worker, dataset.state_dict(), rows
        return batch


def _round_robin(batches: Iterator[dict], num_workers: int, cursor: int, exhausted: set[int]):
    """Yield `(worker, next cursor, batch)` taking the workers' batches in turn from `cursor`, skipping exhausted ones.

    A DataLoader starts every epoch (and every resumed run) at worker 0; this fixed order makes a resumed run take the
    batches in the same order as an uninterrupted one. Buffers at most about one batch per worker.
    """
    queues = {w: deque() for w in range(num_workers)}
    active = [w for w in range(num_workers) if w not in exhausted]
    while active:
        worker = min((w for w in active if w >= cursor), default=active[0])
        while not queues[worker]:
            try:
                item = next(batches)
            except StopIteration:
                return
            queues[item["_worker"]].append(item)
        item = queues[worker].popleft()
        if item.get("_exhausted"):
            active.remove(worker)
            exhausted.add(worker)
            cursor = worker + 1 if worker + 1 < num_workers else 0
            continue
        cursor = worker + 1 if worker + 1 < num_workers else 0
        yield worker, cursor, item


class StreamingBatches:
    """Resumable batches of a streaming dataset (`datasets.IterableDataset`) for one process of a run.

    `dataset` must already be this process's part (`datasets.distributed.split_dataset_by_node`). Within the process,
    DataLoader workers split the shards between them (as `datasets` does), each yields batches of `batch_size` rows
    (fewer when clips are skipped, or at a worker's last batch), and batches are taken from the workers in turn. The
    state holds, per worker, the `datasets` state after its last consumed batch, so a resumed run neither repeats nor
    loses a clip; without a shuffle buffer it continues exactly as the uninterrupted run would (with a shuffle buffer,
    `datasets` refills the buffer on resume). `end_of_epoch_sync(has_batch) -> bool` (any process out of data), when
    given, makes all processes start the next epoch together so that distributed steps stay in lock-step.
    """

    def __init__(
        self,
        dataset,
        processor: ClipProcessor,
        collator: SpectrogramCollator,
        batch_size: int,
        rank: int = 0,
        num_workers: int = 0,
        end_of_epoch_sync: Callable[[bool], bool] | None = None,
    ):
        self.dataset = dataset
        self.processor = processor
        self.collator = collator
        self.batch_size = batch_size
        self.rank = rank
        self.num_workers = num_workers
        self.end_of_epoch_sync = end_of_epoch_sync
        self.epoch = 0
        self._reset_epoch_state()
        self._iterator = None
        self._loader = None

    @property
    def num_roles(self) -> int:
        return max(1, self.num_workers)

    def _reset_epoch_state(self):
        self.worker_states: dict[int, dict] = {}
        self.worker_rows: dict[int, int] = {}
        self.cursor = 0
        self.exhausted: set[int] = set()
        self.position = 0

    def _start(self):
        batches = _StreamingClipBatches(
            self.dataset,
            self.processor,
            self.collator,
            self.batch_size,
            self.epoch,
            self.rank,
            dict(self.worker_states),
            dict(self.worker_rows),
        )
        self._loader = DataLoader(batches, batch_size=None, num_workers=self.num_workers, collate_fn=_identity)
        self._iterator = _round_robin(iter(self._loader), self.num_roles, self.cursor, self.exhausted)

    def _pull(self):
        if self._iterator is None:
            self._start()
        return next(self._iterator, None)

    def next_batch(self) -> dict:
        for attempt in range(2):
            item = self._pull()
            out_of_data = item is None
            if self.end_of_epoch_sync is not None:
                out_of_data = self.end_of_epoch_sync(out_of_data)
            if not out_of_data:
                worker, cursor, batch = item
                self.worker_states[worker] = batch.pop("_state")
                self.worker_rows[worker] = batch.pop("_rows")
                batch.pop("_worker")
                self.cursor = cursor
                self.position += 1
                return batch
            if attempt == 1:
                break
            started_empty = self.position == 0
            self.epoch += 1
            self._reset_epoch_state()
            self._iterator = None
            if started_empty:
                break
        raise ValueError(
            "The streaming dataset yields no rows for this process: it needs at least one row per process "
            "(check --train_split_name, --data_files, --max_train_samples)."
        )

    def state_dict(self) -> dict:
        return {
            "kind": "streaming",
            "epoch": self.epoch,
            "position": self.position,
            "num_workers": self.num_workers,
            "worker_states": {str(k): v for k, v in self.worker_states.items()},
            "worker_rows": {str(k): v for k, v in self.worker_rows.items()},
            "cursor": self.cursor,
            "exhausted": sorted(self.exhausted),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != "streaming":
            raise ValueError("This checkpoint was taken with a map-style dataset; resume without --streaming.")
        self.epoch = int(state["epoch"])
        self._reset_epoch_state()
        if state["num_workers"] != self.num_workers:
            raise ValueError(
                f"The checkpoint was taken with --dataloader_num_workers {state['num_workers']}, this run has "
                f"{self.num_workers}: the streaming position is kept per worker, so resume with the same number, or "
                "pass --ignore_data_skip to restart the data of the current epoch from its beginning."
            )
        self.worker_states = {int(k): v for k, v in state["worker_states"].items()}
        self.worker_rows = {int(k): int(v) for k, v in state["worker_rows"].items()}
        self.cursor = int(state["cursor"])
        self.exhausted = set(int(w) for w in state["exhausted"])
        self.position = int(state["position"])
        self._iterator = None

    def close(self):
        self._iterator = None
        self._loader = None


__all__ = ["MapStyleBatches", "SpectrogramCollator", "StreamingBatches", "epoch_indices"]
