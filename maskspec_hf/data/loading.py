# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""The one front door to datasets: every command opens its audio here, whatever the source.

A Hub id, a local dataset folder, a `save_to_disk` folder, local data files (tables or audio files), an audiofolder,
or — when nothing is named — the built-in synthetic corpus; map-style or streaming. Keeping this in one place means
one set of error messages (an empty split, a missing split or column names the split, the source and the option to
change) and one place to add a source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .arguments import DataArguments


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
_DEFAULT_SYNTHETIC_SECONDS = 10.0
_DEFAULT_SAMPLING_RATE = 32000  # MaskSpecFeatureExtractor's


class EmptySplitError(ValueError):
    """The split asked for holds no rows; the message names the split and the data source."""

    def __init__(self, split: str, source: str):
        super().__init__(
            f"Split {split!r} of {source} is empty (no rows): choose another split, or check the data files or "
            "folder (and any sample limit)."
        )
        self.split, self.source = split, source


# ----------------------------------------------------------------------------------------------------------------------
# One split (pre-training)
# ----------------------------------------------------------------------------------------------------------------------


def load_audio_dataset(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    data_dir: str | None = None,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    split: str = "train",
    streaming: bool = False,
    cache_dir: str | None = None,
    synthetic_num_clips: int = 512,
    synthetic_clip_seconds: float = _DEFAULT_SYNTHETIC_SECONDS,
    synthetic_seed: int = 0,
    sampling_rate: int = _DEFAULT_SAMPLING_RATE,
    token: str | bool | None = None,
    split_option: str = "--train_split_name",
):
    """Open one split of an audio dataset, map-style (`datasets.Dataset`) or `streaming` (`IterableDataset`).

    - `dataset_name`: a folder written by `save_to_disk`, or a Hub id or local dataset folder, passed to
      `datasets.load_dataset` with `dataset_config_name` (e.g. `load_audio_dataset("agkphysics/AudioSet",
      "balanced")`), `data_dir` and `data_files`.
    - otherwise `data_files` (files or globs, e.g. `["train-*.parquet"]`): tables (parquet, arrow, csv, json) or audio
      files (loaded with `audiofolder`); a list is taken as the `split` split.
    - otherwise `data_dir`: a local folder whose format `datasets` infers (an audiofolder of sound files with an
      optional `metadata.csv`, or parquet files...).
    - with none of them: the built-in synthetic corpus of two-vowel words (`maskspec_hf.data.synthetic`), `synthetic_*`
      clips at `sampling_rate`, as a real `datasets.Dataset` with an `Audio` column.

    Raises `EmptySplitError` when the split has no rows, and a ValueError naming `split_option` when there is no such
    split.
    """
    if dataset_name is None and data_files is None and data_dir is None:
        dataset = _synthetic(synthetic_num_clips, synthetic_clip_seconds, synthetic_seed, sampling_rate)
        return dataset.to_iterable_dataset(num_shards=min(len(dataset), 64)) if streaming else dataset
    source = describe_data_source(dataset_name, dataset_config_name, data_dir, data_files)
    dataset = _open(
        (dataset_name, dataset_config_name, data_dir, data_files),
        split,
        split,
        streaming,
        cache_dir,
        token,
        split_option,
    )
    require_rows(dataset, split, source)
    return dataset


def load_audio_split(
    data_args: DataArguments,
    split: str | None = None,
    sampling_rate: int = _DEFAULT_SAMPLING_RATE,
    cache_dir: str | None = None,
    token: str | bool | None = None,
):
    """`load_audio_dataset` for the source, `streaming` and built-in corpus settings of `data_args`; `split`
    defaults to `data_args.train_split_name`. The built-in clips last `synthetic_clip_seconds`, else
    `max_length_seconds`, else 10 s."""
    split = split or data_args.train_split_name
    evaluating = split == data_args.eval_split_name and split != data_args.train_split_name
    return load_audio_dataset(
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        data_dir=data_args.data_dir,
        data_files=data_args.data_files,
        split=split,
        streaming=data_args.streaming,
        cache_dir=cache_dir,
        synthetic_num_clips=data_args.synthetic_num_clips,
        synthetic_clip_seconds=_synthetic_seconds(data_args),
        synthetic_seed=data_args.synthetic_seed,
        sampling_rate=sampling_rate,
        token=token,
        split_option="--eval_split_name" if evaluating else "--train_split_name",
    )


def _synthetic(num_clips: int, clip_seconds: float, seed: int, sampling_rate: int):
    from .synthetic import make_sound_events_dataset

    return make_sound_events_dataset(num_clips, seed=seed, clip_seconds=clip_seconds, sampling_rate=sampling_rate)


def _synthetic_seconds(data_args: DataArguments) -> float:
    return data_args.synthetic_clip_seconds or data_args.max_length_seconds or _DEFAULT_SYNTHETIC_SECONDS


# ----------------------------------------------------------------------------------------------------------------------
# Train and eval splits (fine-tuning, probing, classification)
# ----------------------------------------------------------------------------------------------------------------------


def load_splits(
    data_args: DataArguments,
    cache_dir: str | None = None,
    token: str | bool | None = None,
    need_eval: bool = True,
    need_train: bool = True,
    seed: int = 42,
):
    """`(train, eval)` map-style splits (None for one not asked for) with their audio and label columns checked.

    The eval split is `eval_split_name`, or, when the dataset has no such split, `validation_split_percentage` percent
    of the training split held out (drawn with `seed`). Features such as `ClassLabel` are kept as they are. The splits
    are cut to `max_train_samples` / `max_eval_samples`. With no data named, the built-in corpus is the training split.
    Raises a `ValueError` naming the available splits / columns when one is missing, and one naming the split (and the
    sample limit, when it is the cause) when a split has no rows.
    """
    if data_args.streaming:
        raise ValueError(
            "--streaming is for pre-training: fine-tuning, probing and classification read map-style datasets."
        )
    raw = _all_splits(data_args, cache_dir, token)
    train, evaluation = _pick_splits(raw, data_args, need_train, need_eval, seed)
    for name, dataset in (("train", train), ("eval", evaluation)):
        if dataset is not None:
            _check_columns(dataset, name, data_args)
    train = _first_rows(train, data_args.max_train_samples)
    evaluation = _first_rows(evaluation, data_args.max_eval_samples)
    _check_not_empty(train, data_args.train_split_name, "--max_train_samples", data_args.max_train_samples, "train")
    _check_not_empty(evaluation, data_args.eval_split_name, "--max_eval_samples", data_args.max_eval_samples, "eval")
    return train, evaluation


def _all_splits(data_args: DataArguments, cache_dir, token) -> Mapping:
    """Every split of the source, by name (a dataset without splits is the training split)."""
    import datasets

    if data_args.uses_builtin_data():
        corpus = _synthetic(
            data_args.synthetic_num_clips,
            _synthetic_seconds(data_args),
            data_args.synthetic_seed,
            _DEFAULT_SAMPLING_RATE,
        )
        return {data_args.train_split_name: corpus}
    source = (data_args.dataset_name, data_args.dataset_config_name, data_args.data_dir, data_args.data_files)
    raw = _open(source, None, data_args.train_split_name, False, cache_dir, token)
    if isinstance(raw, datasets.Dataset):
        return {data_args.train_split_name: raw}
    return raw


def _pick_splits(raw: Mapping, data_args: DataArguments, need_train: bool, need_eval: bool, seed: int):
    available = list(raw.keys())
    train_name, eval_name = data_args.train_split_name, data_args.eval_split_name
    train = None
    if need_train:
        if train_name not in raw:
            raise ValueError(
                f"--train_split_name {train_name!r} is not a split of the dataset; available splits: {available}."
            )
        train = raw[train_name]
    if not need_eval:
        return train, None
    if eval_name in raw:
        return train, raw[eval_name]
    if data_args.validation_split_percentage and train_name in raw:
        held_out = raw[train_name].train_test_split(test_size=data_args.validation_split_percentage / 100, seed=seed)
        return (held_out["train"] if need_train else None), held_out["test"]
    raise ValueError(
        f"--eval_split_name {eval_name!r} is not a split of the dataset; available splits: {available}. Pass "
        "--eval_split_name <split>, or --validation_split_percentage N to hold out part of the training split."
    )


def _check_columns(dataset, split: str, data_args: DataArguments) -> None:
    columns = dataset.column_names
    wanted = [("--audio_column_name", data_args.audio_column_name)]
    if data_args.label_column_name is not None:
        wanted.append(("--label_column_name", data_args.label_column_name))
    for option, column in wanted:
        if column not in columns:
            raise ValueError(
                f"{option} {column!r} is not a column of the {split!r} split; available columns: {columns}. "
                f"Pass {option} <one of them>."
            )


def _first_rows(dataset, limit: int | None):
    if dataset is None or limit is None:
        return dataset
    return dataset.select(range(min(limit, len(dataset))))


def _check_not_empty(dataset, name: str, option: str, limit: int | None, role: str) -> None:
    """An empty split would fail later with an IndexError far from its cause: say which split it is."""
    if dataset is None or len(dataset) > 0:
        return
    cause = f" after {option} {limit}" if limit is not None and limit < 1 else ""
    what, verb = ("training", "train on") if role == "train" else ("evaluation", "evaluate")
    raise ValueError(f"The {what} split {name!r} has no rows{cause}: nothing to {verb}.")


# ----------------------------------------------------------------------------------------------------------------------
# Opening a source
# ----------------------------------------------------------------------------------------------------------------------


def _open(source: tuple, split, files_split, streaming, cache_dir, token, split_option="--train_split_name"):
    """`split` (every split when None) of `source`, `(dataset_name, dataset_config_name, data_dir, data_files)`.

    A plain list of `data_files` becomes the `files_split` split."""
    import datasets

    saved = _saved_dataset_folder(source[0])
    if saved is not None:
        return _saved_split(datasets.load_from_disk(str(saved)), split, streaming, split_option)
    path, name, kwargs = _load_dataset_arguments(*source, files_split)
    try:
        return datasets.load_dataset(
            path, name, split=split, streaming=streaming, cache_dir=cache_dir, token=token, **kwargs
        )
    except ValueError as err:
        if split is None:
            raise
        if "corresponds to no data" in str(err):  # datasets' words for a split without a single row
            raise EmptySplitError(split, describe_data_source(*source)) from err
        if "Unknown split" in str(err) or "split" in str(err).lower():
            message = f"Cannot load split {split!r} of {path!r}: {err} (choose it with {split_option})"
            raise ValueError(message) from err
        raise


def _load_dataset_arguments(dataset_name, dataset_config_name, data_dir, data_files, files_split):
    """`(path, name, keyword arguments)` of `datasets.load_dataset` for a source."""
    if isinstance(data_files, (str, os.PathLike)):
        data_files = [str(data_files)]
    if isinstance(data_files, Sequence) and not isinstance(data_files, str):
        data_files = {files_split: [str(f) for f in data_files]}
    kwargs = {}
    if dataset_name is not None:
        path, name = dataset_name, dataset_config_name
    elif data_files is not None:
        if data_dir is not None:
            raise ValueError("Pass either --data_files or --data_dir (without --dataset_name), not both.")
        path, name = _builder_for_files([f for files in data_files.values() for f in _as_list(files)]), None
    else:
        if not Path(data_dir).is_dir():
            raise ValueError(f"--data_dir {data_dir!r} is not a folder.")
        path, name, data_dir = str(data_dir), None, None
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    if data_files is not None:
        kwargs["data_files"] = data_files
    return path, name, kwargs


def _saved_dataset_folder(dataset_name: str | None) -> Path | None:
    """`dataset_name` when it is a folder written by `Dataset(Dict).save_to_disk`, else None."""
    if not dataset_name:
        return None
    path = Path(dataset_name)
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists()):
        return path
    return None


def _saved_split(saved, split: str | None, streaming: bool, split_option: str):
    """`split` of a `save_to_disk` dataset (a `Dataset` without splits is every split); all of it when None."""
    import datasets

    if split is None:
        return saved
    if isinstance(saved, datasets.DatasetDict):
        if split not in saved:
            raise ValueError(
                f"Cannot load split {split!r} of the saved dataset: available splits: {list(saved)} (choose it with "
                f"{split_option})"
            )
        saved = saved[split]
    return saved.to_iterable_dataset(num_shards=max(1, min(len(saved), 64))) if streaming else saved


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


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


# ----------------------------------------------------------------------------------------------------------------------
# Describing and checking a dataset
# ----------------------------------------------------------------------------------------------------------------------


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


__all__ = [
    "EmptySplitError",
    "default_id_column",
    "describe_data_source",
    "load_audio_dataset",
    "load_audio_split",
    "load_splits",
    "prepare_audio_dataset",
    "require_rows",
]
