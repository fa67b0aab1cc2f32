# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Resumable batches of a streaming dataset: split between processes (`split_dataset_by_node`, done by the caller)
and between DataLoader workers (by shards), taken from the workers in a fixed turn so that a resumed run continues
exactly (see `batching` for the map-style side and the collator both share).
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader
from torch.utils.data import IterableDataset as TorchIterableDataset

from .batching import SpectrogramCollator, _identity
from .clips import ClipProcessor


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


__all__ = ["StreamingBatches"]
