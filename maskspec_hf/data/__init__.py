# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Audio data for MaskSpec training: loading, robust per-clip decoding, crop/pad, collation, sharding.

The pieces, in the order data flows through them:

- `load_audio_dataset` opens a Hub dataset (e.g. `agkphysics/AudioSet`), a local folder (audiofolder, parquet, ...),
  local data files, or the built-in synthetic corpus, map-style or streaming.
- `prepare_audio_dataset` checks the audio column, keeps only the audio and id columns and casts the audio to
  `Audio(decode=False)`, so that rows hold the encoded `{"bytes", "path"}` and nothing is decoded on access.
- `ClipProcessor` decodes one row with `datasets`' own decoder (`Audio(sampling_rate=...)`, torchcodec) inside a
  `try`: a clip that fails to decode, is empty, too short, or holds NaN/Inf is returned as *skipped* (with its id and
  the reason), never raised, so one bad file in a million does not stop training. Multi-channel audio is downmixed,
  clips longer than the training length are randomly cropped.
- `SpectrogramCollator` computes the log-mel features of a batch (batched torch, in DataLoader workers), pads short
  clips to the training length (padding is marked in `attention_mask`) and draws the masking noise.
- `MapStyleBatches` / `StreamingBatches` turn a dataset into a resumable stream of batches for one process of a
  distributed run: a map-style dataset is read in a seeded per-epoch permutation split between processes; a streaming
  dataset is split between processes with `datasets.distributed.split_dataset_by_node` and between DataLoader workers
  by shards. Both expose `state_dict()` / `load_state_dict()` to resume exactly where a checkpoint was taken.

All randomness (crop offsets, masking noise, permutations) is a pure function of the seed and a per-clip key such as
`(epoch, row index)`, so results do not depend on the number of DataLoader workers or on prefetching, and a resumed
run sees exactly the same crops and masks as an uninterrupted one.
"""

from __future__ import annotations

import copy
import logging
import os
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import IterableDataset as TorchIterableDataset


logger = logging.getLogger(__name__)

# Why a clip was skipped. Counted per reason in the training logs.
SKIP_REASONS = ("decode_error", "empty", "too_short", "non_finite")

# File extensions `load_audio_dataset` maps to a `datasets` builder when given `data_files`.
_TABLE_BUILDERS = {
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".webdataset": "webdataset",
    ".tar": "webdataset",
}
_AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".wma", ".webm"}


class ClipError(Exception):
    """A clip cannot be used; `reason` is one of `SKIP_REASONS`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# ----------------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------------


def _builder_for_files(files: Sequence[str]) -> str:
    suffixes = set()
    for name in files:
        name = str(name)
        suffix = Path(name.split("::")[-1]).suffix.lower()
        if suffix in (".gz", ".zst", ".bz2", ".xz"):
            suffix = Path(Path(name).stem).suffix.lower()
        suffixes.add(suffix)
    builders = {_TABLE_BUILDERS.get(s) or ("audiofolder" if s in _AUDIO_EXTENSIONS else None) for s in suffixes}
    if None in builders or len(builders) != 1:
        raise ValueError(
            f"Cannot tell the format of --data_files {list(files)}: give files of one kind, with an extension among "
            f"{sorted(_TABLE_BUILDERS)} (tables) or {sorted(_AUDIO_EXTENSIONS)} (audio files)."
        )
    return builders.pop()


def load_audio_dataset(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    data_dir: str | None = None,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    split: str = "train",
    streaming: bool = False,
    cache_dir: str | None = None,
    synthetic_num_clips: int = 512,
    synthetic_clip_seconds: float = 10.0,
    synthetic_seed: int = 0,
    sampling_rate: int = 32000,
):
    """Open one split of an audio dataset, map-style (`datasets.Dataset`) or `streaming` (`IterableDataset`).

    - `dataset_name`: a Hub id or a local script/folder, passed to `datasets.load_dataset` with
      `dataset_config_name` (e.g. `load_audio_dataset("agkphysics/AudioSet", "balanced")`), `data_dir` and
      `data_files`.
    - otherwise `data_files` (files or globs, e.g. `["train-*.parquet"]`): tables (parquet, arrow, csv, json) or audio
      files (loaded with `audiofolder`); a list is taken as the `split` split.
    - otherwise `data_dir`: a local folder whose format `datasets` infers (an audiofolder of sound files with an
      optional `metadata.csv`, or parquet files...).
    - with none of them: the built-in synthetic sound-events corpus (`maskspec_hf.data.synthetic`), `synthetic_*`
      clips at `sampling_rate`, as a real `datasets.Dataset` with an `Audio` column.
    """
    import datasets

    if dataset_name is None and data_files is None and data_dir is None:
        from .synthetic import make_sound_events_dataset

        dataset = make_sound_events_dataset(
            num_clips=synthetic_num_clips,
            seed=synthetic_seed,
            clip_seconds=synthetic_clip_seconds,
            sampling_rate=sampling_rate,
        )
        return dataset.to_iterable_dataset(num_shards=min(len(dataset), 64)) if streaming else dataset

    source = describe_data_source(dataset_name, dataset_config_name, data_dir, data_files)
    if isinstance(data_files, (str, os.PathLike)):
        data_files = [str(data_files)]
    if isinstance(data_files, Sequence) and not isinstance(data_files, str):
        data_files = {split: [str(f) for f in data_files]}

    if dataset_name is not None:
        path, name = dataset_name, dataset_config_name
    elif data_files is not None:
        path, name = _builder_for_files([f for files in data_files.values() for f in _as_list(files)]), None
        if data_dir is not None:
            raise ValueError("Pass either --data_files or --data_dir (without --dataset_name), not both.")
    else:
        if not Path(data_dir).is_dir():
            raise ValueError(f"--data_dir {data_dir!r} is not a folder.")
        path, name, data_dir = str(data_dir), None, None
    kwargs = {"split": split, "streaming": streaming, "cache_dir": cache_dir}
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    if data_files is not None:
        kwargs["data_files"] = data_files
    try:
        dataset = datasets.load_dataset(path, name, **kwargs)
    except ValueError as err:
        if "corresponds to no data" in str(err):  # datasets' words for a split without a single row
            raise EmptySplitError(split, source) from err
        if "Unknown split" in str(err) or "split" in str(err).lower():
            raise ValueError(f"Cannot load split {split!r} of {path!r}: {err} (choose it with --train_split_name)") from err
        raise
    require_rows(dataset, split, source)
    return dataset


class EmptySplitError(ValueError):
    """The split asked for holds no rows; the message names the split and the data source."""

    def __init__(self, split: str, source: str):
        super().__init__(
            f"Split {split!r} of {source} is empty (no rows): choose another split, or check the data files or "
            "folder (and any sample limit)."
        )
        self.split, self.source = split, source


def describe_data_source(dataset_name=None, dataset_config_name=None, data_dir=None, data_files=None) -> str:
    """The data source of `load_audio_dataset`'s arguments, in words (for error messages)."""
    if dataset_name is not None:
        config = f" (configuration {dataset_config_name!r})" if dataset_config_name else ""
        return f"dataset {dataset_name!r}{config}"
    if data_files is not None:
        groups = data_files.values() if isinstance(data_files, Mapping) else [data_files]
        files = [f for group in groups for f in ([group] if isinstance(group, (str, os.PathLike)) else group)]
        return f"the data files {', '.join(map(str, files))}"
    if data_dir is not None:
        return f"the folder {data_dir}"
    return "the built-in synthetic corpus"


def require_rows(dataset, split: str = "train", source: str = "the dataset") -> None:
    """Raise `EmptySplitError` (a ValueError naming `split` and `source`) when `dataset` has no rows.

    Map-style datasets are checked by length, streaming ones by reading their first row. `load_audio_dataset` calls
    it; call it again after cutting a dataset down (e.g. to a sample limit)."""
    import datasets

    if isinstance(dataset, datasets.IterableDataset):
        empty = next(iter(dataset.take(1)), None) is None
    else:
        empty = len(dataset) == 0
    if empty:
        raise EmptySplitError(split, source)


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def default_id_column(column_names: Sequence[str] | None) -> str | None:
    """The column that names a clip in logs: AudioSet's `video_id`, else a few common names, else None."""
    for name in ("video_id", "id", "clip_id", "file_id", "ytid", "filename", "file", "path"):
        if column_names and name in column_names:
            return name
    return None


def prepare_audio_dataset(dataset, audio_column_name: str = "audio", id_column_name: str | None = None):
    """Keep only the audio (and id) column and cast the audio to `Audio(decode=False)`.

    Rows then hold the encoded audio (`{"bytes", "path"}`) and are cheap to read; `ClipProcessor` decodes them one at
    a time inside a `try`. Returns `(dataset, id_column_name)`; the id column defaults to `video_id` (AudioSet) when
    present, else None (clips are then named by their file path or row). Raises a ValueError naming the available
    columns when `audio_column_name` (or an explicit `id_column_name`) is not one of them.
    """
    from datasets import Audio

    columns = dataset.column_names
    if columns is None:  # a streaming dataset whose features are not known up front
        dataset = dataset._resolve_features()
        columns = dataset.column_names
    if audio_column_name not in columns:
        raise ValueError(
            f"--audio_column_name {audio_column_name!r} is not a column of the dataset; available columns: "
            f"{', '.join(columns)}."
        )
    if id_column_name is None:
        id_column_name = default_id_column([c for c in columns if c != audio_column_name])
    elif id_column_name not in columns:
        raise ValueError(
            f"--id_column_name {id_column_name!r} is not a column of the dataset; available columns: "
            f"{', '.join(columns)}."
        )
    keep = [audio_column_name] + ([id_column_name] if id_column_name and id_column_name != audio_column_name else [])
    dataset = dataset.select_columns(keep)
    dataset = dataset.cast_column(audio_column_name, Audio(decode=False))
    return dataset, id_column_name


# ----------------------------------------------------------------------------------------------------------------------
# One clip
# ----------------------------------------------------------------------------------------------------------------------


def clip_rng(seed: int, *key: int) -> np.random.Generator:
    """A generator that depends only on `seed` and the integers of `key` (e.g. a purpose tag, an epoch, a row)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *(int(k) & 0xFFFFFFFF for k in key)])


def decode_audio(value, sampling_rate: int) -> np.ndarray:
    """Decode one audio value to a mono float32 waveform at `sampling_rate`, or raise `ClipError("decode_error")`.

    `value` is what a `datasets` audio column holds: an encoded `{"bytes", "path"}` dict (decoded with `datasets`'
    `Audio(sampling_rate=...)`, i.e. torchcodec/FFmpeg, which also resamples), a torchcodec `AudioDecoder`, a decoded
    `{"array", "sampling_rate"}` dict (resampled with soxr when needed), or a path. Multi-channel audio is averaged to
    mono.
    """
    from datasets import Audio

    try:
        if isinstance(value, (str, os.PathLike)):
            value = {"path": str(value), "bytes": None}
        if isinstance(value, Mapping) and "array" in value:
            wave = np.asarray(value["array"], dtype=np.float32)
            rate = value.get("sampling_rate") or sampling_rate
            if wave.ndim == 2:  # datasets' convention is [channels, samples]; accept [samples, channels] too
                wave = wave.mean(axis=0 if wave.shape[0] <= wave.shape[1] else 1)
            if wave.ndim != 1:
                raise ValueError(f"audio array has shape {wave.shape}")
            if rate != sampling_rate and wave.size:
                import soxr

                wave = soxr.resample(wave, rate, sampling_rate).astype(np.float32, copy=False)
            return wave
        if isinstance(value, Mapping) and _is_zero_byte_file(value):
            raise ClipError("empty", "the audio file is empty (0 bytes)")
        decoder = Audio(sampling_rate=sampling_rate).decode_example(value) if isinstance(value, Mapping) else value
        try:
            samples = decoder.get_all_samples()
        except RuntimeError as err:
            if "No audio frames were decoded" in str(err):  # torchcodec's word for a valid file without samples
                raise ClipError("empty", "the audio file holds no samples") from err
            raise
        data = samples.data
        if data.ndim == 2:
            data = data.mean(dim=0)
        wave = data.numpy().astype(np.float32, copy=False)
        if samples.sample_rate != sampling_rate and wave.size:
            import soxr

            wave = soxr.resample(wave, samples.sample_rate, sampling_rate).astype(np.float32, copy=False)
        return wave
    except ClipError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of any decoder on any file means "skip this clip"
        message = f"{type(err).__name__}: {err}".strip()
        raise ClipError("decode_error", message.splitlines()[0][:300] if message else type(err).__name__) from err


def _is_zero_byte_file(value: Mapping) -> bool:
    """An encoded audio value whose file holds nothing: empty `bytes`, or (no bytes) a local file of 0 bytes, as an
    audiofolder gives (a decoder would only say it finds no audio stream, which is not a decode error)."""
    data, path = value.get("bytes"), value.get("path")
    if data is not None:
        return len(data) == 0
    try:
        return bool(path) and os.path.isfile(path) and os.path.getsize(path) == 0
    except (OSError, TypeError, ValueError):
        return False


def check_waveform(wave: np.ndarray, min_samples: int) -> None:
    """Raise `ClipError` for an empty clip, a clip shorter than `min_samples`, or one holding NaN/Inf.

    Silence is valid (the feature extractor's log offset keeps it finite).
    """
    if wave.size == 0:
        raise ClipError("empty", "the clip has no samples")
    if not np.isfinite(wave).all():
        raise ClipError("non_finite", f"{int((~np.isfinite(wave)).sum())} of {wave.size} samples are NaN or Inf")
    if wave.size < min_samples:
        raise ClipError("too_short", f"{wave.size} samples, fewer than the {min_samples} needed")


def random_crop(wave: np.ndarray, num_samples: int, rng: np.random.Generator | None) -> np.ndarray:
    """A random `num_samples` window of a longer clip (the start when `rng` is None); shorter clips are kept whole
    (the collator pads them, marking the padding in `attention_mask`)."""
    if wave.size <= num_samples:
        return wave
    start = 0 if rng is None else int(rng.integers(0, wave.size - num_samples + 1))
    return wave[start : start + num_samples]


def _clip_name(row: Mapping, id_column: str | None, audio_column: str, fallback: str) -> str:
    if id_column is not None and row.get(id_column) is not None:
        return str(row[id_column])
    value = row.get(audio_column)
    if isinstance(value, Mapping) and value.get("path"):
        return str(value["path"])
    if isinstance(value, (str, os.PathLike)):
        return str(value)
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
        key = tuple(int(k) for k in key)
        name = _clip_name(row, self.id_column, self.audio_column, fallback=f"row {key}")
        try:
            wave = decode_audio(row[self.audio_column], self.sampling_rate)
            check_waveform(wave, self.min_samples)
        except ClipError as err:
            logger.warning(f"Skipping clip {name}: {err.reason} ({err})")
            return {"id": name, "skipped": err.reason, "error": str(err), "key": key}
        rng = clip_rng(self.seed, 0, *key) if self.random_crop else None
        return {"id": name, "waveform": random_crop(wave, self.num_samples, rng), "key": key}


# ----------------------------------------------------------------------------------------------------------------------
# Batches
# ----------------------------------------------------------------------------------------------------------------------


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
                f"The dataset has {len(dataset)} rows: too few for one optimizer step of {batches_multiple_of} batch(es) "
                f"of {batch_size} clips on each of {world_size} process(es); lower --per_device_train_batch_size or "
                "--gradient_accumulation_steps, or use more data."
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
        return {"kind": "map", "epoch": self.epoch, "position": self.position, "world_size": self.world_size,
                "batch_size": self.batch_size}

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


# ----------------------------------------------------------------------------------------------------------------------
# Small helpers used by the training scripts
# ----------------------------------------------------------------------------------------------------------------------


def first_valid_clip(dataset, processor: ClipProcessor, max_rows: int = 1000) -> dict:
    """The first clip of `dataset` (map-style or streaming) that decodes and passes the checks, uncropped-random
    (the first `num_samples` samples): the fixed clip of the reconstruction figures."""
    import datasets

    rows = None if isinstance(dataset, datasets.Dataset) else iter(dataset)
    fixed = ClipProcessor(
        processor.sampling_rate,
        processor.num_samples,
        processor.min_samples,
        processor.audio_column,
        processor.id_column,
        processor.seed,
        random_crop=False,
    )
    for index in range(max_rows):
        if rows is None:
            if index >= len(dataset):
                break
            row = dataset[index]
        else:
            row = next(rows, None)
            if row is None:
                break
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
    "SKIP_REASONS",
    "ClipError",
    "ClipProcessor",
    "EmptySplitError",
    "MapStyleBatches",
    "SpectrogramCollator",
    "StreamingBatches",
    "check_waveform",
    "clip_rng",
    "collect_clips",
    "decode_audio",
    "default_id_column",
    "describe_data_source",
    "epoch_indices",
    "first_valid_clip",
    "load_audio_dataset",
    "min_samples_for_one_patch",
    "num_frames_for_seconds",
    "prepare_audio_dataset",
    "random_crop",
    "require_rows",
]
