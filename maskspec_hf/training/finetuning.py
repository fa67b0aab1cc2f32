# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Fine-tuning MaskSpec for audio classification with `transformers.Trainer`.

The reusable parts of `examples/finetune_audio_classification.py` (also installed as `maskspec-finetune`):

- `load_splits`: a train and an eval split from a Hub/local dataset, an audiofolder or a `save_to_disk` folder, with
  clear errors for missing splits and columns.
- `build_label_space`: single-label (`ClassLabel`, strings or ints) or multi-label (lists of labels, e.g. AudioSet's
  MIDs) targets, optionally over a class index CSV (`index,mid,display_name`, AudioSet's 527 classes).
- `ClipDataset`: the rows of a split, decoded one at a time; training clips are randomly cropped to the window. A
  clip that cannot be used (undecodable, empty, NaN/Inf) is skipped, not raised: the collator drops it from its
  batch, the trainer logs it once by file (or id column), and the run reports every skipped clip at the end
  (`train_clips_skipped`/`eval_clips_skipped` in the metrics, `clips_skipped` in what `main` returns and in
  `clips_skipped.json`). A split with no usable clip is an error.
- `MaskSpecDataCollator`: waveforms -> padded log-mels, attention masks and labels.
- `spec_augment`, `mixup`: MaskSpec's (PaSST's) batch augmentations, applied by `MaskSpecTrainer` in training steps.
- `layer_decay_parameter_groups`: layer-wise learning-rate decay (BEiT/MAE style).
- `MaskSpecTrainer`: `Trainer` with soft-target losses (mixup), label smoothing for single-label tasks, a
  class-balanced sampler for multi-label data and the layer-decayed optimizer.
- `main`: the command line, in the style of transformers' `run_audio_classification.py` (same argument names where
  they overlap) plus `TrainingArguments`. It writes a model card and can push to the Hub.

MaskSpec's fine-tuning recipe and its defaults (switch all augmentations off with `--no_augment`): mixup α = 0.3
(`--mixup_alpha 0`), SpecAugment with up to 48 masked mel bins and up to 192 masked frames per 1000 frames (scaled to
the clip's length), patchout of 40 % of the patches (MaskSpec drops 200 of a 10-s clip's 496 patches;
`--patchout_ratio 0`), layer-wise learning-rate decay 0.75 (`--layer_decay 1`), label smoothing 0.1 for single-label
tasks (`--label_smoothing 0`), class-balanced sampling for multi-label data (`--balanced_sampling no`) and random
time crops of `--max_length_seconds` (`--no_random_crop`). `--bf16` works (on a CPU-only machine TrainingArguments
also wants `--use_cpu`). TrainingArguments' `--label_smoothing_factor`, if given, is used as `--label_smoothing`;
`--push_to_hub` uploads the final folder (model, feature extractor, code, model card, results) once, after training;
the login and the repo are checked (and the repo created) before training, so a push that cannot work fails at once.
"""

import collections
import csv
import json
import logging
import math
import os
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
import transformers
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed
from transformers.utils import logging as hf_logging

from ..configuration_maskspec import MaskSpecConfig
from ..cli import run_console_script
from ..data import ClipError, check_waveform, decode_audio, default_id_column
from ..feature_extraction_maskspec import MaskSpecFeatureExtractor
from ..evaluation.classify import is_preset_name, load_feature_extractor, quiet_load_report
from ..evaluation.metrics import compute_metrics_fn
from ..modeling_maskspec import MaskSpecForAudioClassification
from ..loading import parse_config_overrides


logger = hf_logging.get_logger(__name__)

SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
# PaSST/MaskSpec class-balanced sampling: weight of a clip = sum over its labels of 1000 / (count + offset).
BALANCED_SAMPLING_OFFSET = 100


# ----------------------------------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class DataTrainingArguments:
    """Which data to train and evaluate on (names as in transformers' `run_audio_classification.py`)."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "A dataset on the Hub, a local dataset script/folder, or a folder saved with save_to_disk."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    data_dir: str | None = field(
        default=None,
        metadata={"help": "With --dataset_name: its data_dir. Alone: an audiofolder (folder-per-class or metadata)."},
    )
    train_split_name: str = field(default="train", metadata={"help": "The training split."})
    eval_split_name: str = field(default="validation", metadata={"help": "The evaluation split."})
    validation_split_percentage: int | None = field(
        default=None,
        metadata={"help": "If the eval split does not exist, hold out this percentage of the training split."},
    )
    audio_column_name: str = field(default="audio", metadata={"help": "The column holding the audio."})
    label_column_name: str | None = field(
        default="label",
        metadata={
            "help": "The label column: a ClassLabel/string/int (single-label) or a list of labels (multi-label)."
        },
    )
    class_index_csv: str | None = field(
        default=None,
        metadata={
            "help": "CSV with columns index,mid,display_name (AudioSet's class_labels_indices.csv): labels are mapped "
            "to its indices (by mid, else display_name) and id2label are its display names. Without it the classes "
            "are the sorted labels found in the data."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set (debugging)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the eval set (debugging)."})
    max_length_seconds: float | None = field(
        default=None,
        metadata={"help": "Length of the training crops in seconds (default: the model window, config.max_frames)."},
    )


@dataclass
class ModelArguments:
    """Which model to fine-tune."""

    model_name_or_path: str = field(
        metadata={
            "help": "A MaskSpec checkpoint (pre-training or classification folder, or Hub id), or a preset name "
            "(tiny, small, base) to train from scratch."
        }
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Override config fields, e.g. 'num_hidden_layers=2,classifier_dropout=0.1'."},
    )
    feature_extractor_name: str | None = field(
        default=None, metadata={"help": "Feature extractor folder or Hub id (default: the model's, else defaults)."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache downloaded models and datasets."})
    model_revision: str = field(default="main", metadata={"help": "Model version (branch, tag or commit)."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the cached login)."})
    freeze_feature_encoder: bool = field(
        default=False, metadata={"help": "Freeze the patch projection (MaskSpec fine-tunes everything by default)."}
    )
    ignore_mismatched_sizes: bool = field(
        default=False, metadata={"help": "Re-initialize a checkpoint's classification head of another size."}
    )


@dataclass
class FinetuningArguments:
    """MaskSpec's fine-tuning recipe; the defaults are the paper's."""

    augment: bool = field(
        default=True,
        metadata={"help": "Master switch: --no_augment turns off mixup, SpecAugment, patchout and random crops."},
    )
    mixup_alpha: float = field(default=0.3, metadata={"help": "Mixup Beta(α, α) parameter; 0 disables mixup."})
    freq_mask_bins: int = field(default=48, metadata={"help": "SpecAugment: mask up to this many mel bins; 0: off."})
    time_mask_frames: int = field(
        default=192, metadata={"help": "SpecAugment: mask up to this many frames per --time_mask_reference_frames."}
    )
    time_mask_reference_frames: int = field(
        default=1000, metadata={"help": "Clip length (frames) at which --time_mask_frames applies; scaled linearly."}
    )
    patchout_ratio: float | None = field(
        default=0.4,
        metadata={"help": "Fraction of patches dropped in training (0: off; unset: keep the checkpoint's value)."},
    )
    layer_decay: float = field(default=0.75, metadata={"help": "Layer-wise learning-rate decay; 1.0 disables it."})
    label_smoothing: float = field(default=0.1, metadata={"help": "Label smoothing for single-label tasks."})
    balanced_sampling: str = field(
        default="auto",
        metadata={
            "help": "Class-balanced sampling: auto (multi-label only), yes or no.",
            "choices": ["auto", "yes", "no"],
        },
    )
    random_crop: bool = field(default=True, metadata={"help": "Random crops of long training clips (else the start)."})

    def __post_init__(self):
        if self.mixup_alpha < 0:
            raise ValueError(f"--mixup_alpha must be >= 0, got {self.mixup_alpha}.")
        if self.freq_mask_bins < 0 or self.time_mask_frames < 0 or self.time_mask_reference_frames <= 0:
            raise ValueError("--freq_mask_bins and --time_mask_frames must be >= 0, --time_mask_reference_frames > 0.")
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"--layer_decay must lie in (0, 1], got {self.layer_decay}.")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"--label_smoothing must lie in [0, 1), got {self.label_smoothing}.")
        if self.balanced_sampling not in ("auto", "yes", "no"):
            raise ValueError(f"--balanced_sampling must be auto, yes or no, got {self.balanced_sampling!r}.")
        if not self.augment:
            self.mixup_alpha, self.freq_mask_bins, self.time_mask_frames = 0.0, 0, 0
            self.patchout_ratio, self.random_crop = 0.0, False


# ----------------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------------


def _load_raw(data_args: DataTrainingArguments, cache_dir: str | None = None, token: str | None = None):
    if data_args.dataset_name:
        path = Path(data_args.dataset_name)
        if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists()):
            return datasets.load_from_disk(str(path))
        return datasets.load_dataset(
            data_args.dataset_name,
            data_args.dataset_config_name,
            data_dir=data_args.data_dir,
            cache_dir=cache_dir,
            token=token,
        )
    if data_args.data_dir:
        if not Path(data_args.data_dir).is_dir():
            raise ValueError(f"--data_dir {data_args.data_dir} is not a folder.")
        return datasets.load_dataset("audiofolder", data_dir=data_args.data_dir, cache_dir=cache_dir)
    raise ValueError(
        "Pass --dataset_name (Hub id, dataset folder or save_to_disk folder) or --data_dir (audiofolder)."
    )


def _check_columns(dataset: datasets.Dataset, split: str, data_args: DataTrainingArguments) -> None:
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


def load_splits(
    data_args: DataTrainingArguments,
    need_train: bool = True,
    need_eval: bool = True,
    cache_dir: str | None = None,
    token: str | None = None,
    seed: int = 42,
) -> dict[str, datasets.Dataset]:
    """`{"train": ..., "eval": ...}` (the ones asked for) with their audio and label columns checked.

    Raises a `ValueError` naming the available splits/columns when a split or column is missing.
    """
    raw = _load_raw(data_args, cache_dir=cache_dir, token=token)
    if isinstance(raw, datasets.Dataset):
        raw = datasets.DatasetDict({data_args.train_split_name: raw})
    available = list(raw.keys())
    splits = {}
    if need_train:
        if data_args.train_split_name not in raw:
            raise ValueError(
                f"--train_split_name {data_args.train_split_name!r} is not a split of the dataset; available splits: "
                f"{available}."
            )
        splits["train"] = raw[data_args.train_split_name]
    if need_eval:
        if data_args.eval_split_name in raw:
            splits["eval"] = raw[data_args.eval_split_name]
        elif data_args.validation_split_percentage and data_args.train_split_name in raw:
            held_out = raw[data_args.train_split_name].train_test_split(
                test_size=data_args.validation_split_percentage / 100, seed=seed
            )
            splits["eval"] = held_out["test"]
            if need_train:
                splits["train"] = held_out["train"]
        else:
            raise ValueError(
                f"--eval_split_name {data_args.eval_split_name!r} is not a split of the dataset; available splits: "
                f"{available}. Pass --eval_split_name <split>, or --validation_split_percentage N to hold out part of "
                "the training split."
            )
    for name, dataset in splits.items():
        _check_columns(dataset, name, data_args)
    if "train" in splits and data_args.max_train_samples is not None:
        splits["train"] = splits["train"].select(range(min(data_args.max_train_samples, len(splits["train"]))))
    if "eval" in splits and data_args.max_eval_samples is not None:
        splits["eval"] = splits["eval"].select(range(min(data_args.max_eval_samples, len(splits["eval"]))))
    _check_not_empty(splits, data_args)
    return splits


def _check_not_empty(splits: dict[str, datasets.Dataset], data_args: DataTrainingArguments) -> None:
    """An empty split would fail later with an IndexError far from its cause: say which split it is."""
    for key, dataset in splits.items():
        if len(dataset) > 0:
            continue
        if key == "train":
            name, option, limit = data_args.train_split_name, "--max_train_samples", data_args.max_train_samples
        else:
            name, option, limit = data_args.eval_split_name, "--max_eval_samples", data_args.max_eval_samples
        cause = f" after {option} {limit}" if limit is not None and limit < 1 else ""
        raise ValueError(
            f"The {'training' if key == 'train' else 'evaluation'} split {name!r} has no rows{cause}: "
            f"nothing to {'train on' if key == 'train' else 'evaluate'}."
        )


@dataclass
class LabelSpace:
    """The classes of a task and how raw label values map to them."""

    names: list[str]
    multi_label: bool
    lookup: dict  # raw value (str/int) -> class index
    source: str = "data"  # "data", "ClassLabel" or the class index CSV path

    @property
    def num_labels(self) -> int:
        return len(self.names)

    @property
    def problem_type(self) -> str:
        return MULTI_LABEL if self.multi_label else SINGLE_LABEL

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def encode(self, value):
        """Class index (single-label) or float32 multi-hot vector (multi-label) of one raw label value."""
        if self.multi_label:
            target = np.zeros(self.num_labels, dtype=np.float32)
            for item in value or ():
                target[self.lookup[item]] = 1.0
            return target
        return self.lookup[value]


def read_class_index(path: str | os.PathLike) -> tuple[list[str], dict]:
    """Reads an AudioSet-style class index CSV -> (display names by index, {mid or display name: index})."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--class_index_csv {path} does not exist.")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    needed = {"index", "mid", "display_name"}
    if not rows or not needed <= set(rows[0]):
        raise ValueError(
            f"{path} must be a CSV with columns index,mid,display_name; got {list(rows[0]) if rows else []}."
        )
    indices = [int(row["index"]) for row in rows]
    if sorted(indices) != list(range(len(rows))):
        raise ValueError(f"The index column of {path} must hold 0..{len(rows) - 1} exactly once each.")
    names = [""] * len(rows)
    lookup = {}
    for row, index in zip(rows, indices):
        names[index] = row["display_name"]
        lookup.setdefault(row["display_name"], index)
    for row, index in zip(rows, indices):
        lookup[row["mid"]] = index  # mids win over display names
    return names, lookup


def _is_list_feature(feature) -> bool:
    return isinstance(feature, (datasets.List, datasets.Sequence, datasets.LargeList))


def build_label_space(
    splits: dict[str, datasets.Dataset], label_column: str, class_index_csv: str | None = None
) -> LabelSpace:
    """Classes of the label column over all splits (or of the class index CSV); checks every value is known.

    Multi-label when the column holds lists. A label that is not in the class index raises a `ValueError` that
    counts and shows them.
    """
    features = [dataset.features[label_column] for dataset in splits.values()]
    multi_label = _is_list_feature(features[0])
    if any(_is_list_feature(f) != multi_label for f in features):
        raise ValueError(f"Column {label_column!r} holds lists in some splits and single labels in others.")
    inner = [f.feature if multi_label else f for f in features]
    class_label = inner[0] if isinstance(inner[0], datasets.ClassLabel) else None
    if class_label is not None and any(f != class_label for f in inner):
        raise ValueError(f"The ClassLabel names of column {label_column!r} differ between splits.")

    def values():
        for dataset in splits.values():
            for value in dataset[label_column]:
                if multi_label:
                    if value is None:
                        continue
                    yield from value
                else:
                    yield value

    raw_values = list(values())
    if any(v is None for v in raw_values):
        raise ValueError(f"Column {label_column!r} has missing (None) labels: drop those rows first.")
    seen = set(raw_values)

    if class_index_csv is not None:
        names, lookup = read_class_index(class_index_csv)
        source = str(class_index_csv)
        if class_label is not None:  # ClassLabel ints -> their names -> the index's classes
            lookup = {i: lookup.get(name) for i, name in enumerate(class_label.names)}
        else:  # mids, display names, or plain ints taken as class indices
            lookup = {**lookup, **{i: i for i in range(len(names))}}
        unknown = sorted((v for v in seen if lookup.get(v) is None), key=str)
        if unknown:
            shown = [class_label.names[v] if class_label is not None else v for v in unknown[:10]]
            raise ValueError(
                f"{len(unknown)} label value(s) of column {label_column!r} are not in the class index {source}: "
                f"{shown}{' ...' if len(unknown) > 10 else ''}. Fix the labels or pass the matching class index."
            )
        return LabelSpace(names=names, multi_label=multi_label, lookup=lookup, source=source)

    if class_label is not None:
        return LabelSpace(
            names=list(class_label.names),
            multi_label=multi_label,
            lookup={i: i for i in range(class_label.num_classes)},
            source="ClassLabel",
        )
    kinds = {type(v) for v in seen}
    if not seen:
        raise ValueError(f"Column {label_column!r} holds no labels.")
    if not (kinds <= {str} or kinds <= {int, np.int64}):
        raise ValueError(
            f"Column {label_column!r} must hold strings or integers, found types {sorted(map(str, kinds))}."
        )
    ordered = sorted(seen)
    return LabelSpace(
        names=[str(v) for v in ordered],
        multi_label=multi_label,
        lookup={v: i for i, v in enumerate(ordered)},
        source="data",
    )


def clip_name(audio, clip_id=None, fallback: str = "a clip") -> str:
    """How logs and reports name a clip: its id column value (e.g. AudioSet's video_id), else its file, else
    `fallback` (e.g. "train row 12")."""
    if clip_id is not None:
        return str(clip_id)
    if isinstance(audio, dict) and audio.get("path"):
        return str(audio["path"])
    return fallback


class ClipDataset(torch.utils.data.Dataset):
    """The rows of a split as training examples, decoded one at a time where they are read.

    `dataset[i]` is `{"audio": mono float32 waveform at `sampling_rate`, "labels": target, "clip": name}`; with
    `max_samples`, longer clips are cut to that many samples (at a random offset if `random_crop`, else from the
    start; shorter clips are padded by the collator). A clip that cannot be used (undecodable, empty, NaN/Inf
    samples) comes back as `{"audio": None, "clip": name, "skipped": reason, "error": message}` instead of raising:
    `MaskSpecDataCollator` drops it and `MaskSpecTrainer` counts and reports it, so one bad file does not stop a run.
    """

    def __init__(
        self,
        dataset: datasets.Dataset,
        audio_column: str,
        label_column: str | None,
        label_space: LabelSpace | None,
        sampling_rate: int,
        max_samples: int | None = None,
        random_crop: bool = False,
        split: str = "train",
    ):
        others = [c for c in dataset.column_names if c not in (audio_column, label_column)]
        self.id_column = default_id_column(others)
        columns = [audio_column] + [c for c in (label_column, self.id_column) if c is not None]
        # Left encoded, so that decoding (and its failures) happens here, per clip, not inside `datasets`.
        self.dataset = dataset.select_columns(columns).cast_column(audio_column, datasets.Audio(decode=False))
        self.audio_column, self.label_column, self.label_space = audio_column, label_column, label_space
        self.sampling_rate, self.max_samples, self.random_crop, self.split = (
            sampling_rate, max_samples, random_crop, split,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        row = self.dataset[int(index)]
        name = clip_name(row[self.audio_column], row.get(self.id_column), f"{self.split} row {index}")
        try:
            wave = decode_audio(row[self.audio_column], self.sampling_rate)
            check_waveform(wave, 1)  # short clips are fine: the collator pads them to one patch
        except ClipError as error:
            return {"audio": None, "clip": name, "skipped": error.reason, "error": str(error)}
        if self.max_samples is not None and len(wave) > self.max_samples:
            start = random.randint(0, len(wave) - self.max_samples) if self.random_crop else 0
            wave = wave[start : start + self.max_samples]
        out = {"audio": wave, "clip": name}
        if self.label_column is not None and self.label_space is not None:
            out["labels"] = self.label_space.encode(row[self.label_column])
        return out


@dataclass
class MaskSpecDataCollator:
    """Waveforms -> `input_values` `[batch, frames, mel]`, `attention_mask` and `labels` (ints or multi-hot floats).

    Clips shorter than the feature extractor's minimum (one patch) are zero-padded to it. Examples without audio
    (clips `ClipDataset` could not decode) are left out and listed in `skipped_clips` (`[{"id", "reason",
    "error"}]`); a batch of only such examples has zero rows, which `MaskSpecTrainer` skips.
    """

    feature_extractor: MaskSpecFeatureExtractor

    def __call__(self, features: list[dict]) -> dict:
        skipped = [
            {"id": f.get("clip"), "reason": f.get("skipped"), "error": f.get("error")}
            for f in features
            if f.get("audio") is None
        ]
        features = [f for f in features if f.get("audio") is not None]
        out = self._collate(features) if features else self._empty_batch()
        if skipped:
            out["skipped_clips"] = skipped
        return out

    def _empty_batch(self) -> dict:
        extractor = self.feature_extractor
        frames = extractor.frames_for_samples(extractor.min_num_samples)
        return {
            "input_values": torch.zeros(0, frames, extractor.feature_size),
            "attention_mask": torch.zeros(0, frames, dtype=torch.long),
            "labels": torch.zeros(0, dtype=torch.long),  # Trainer counts labels across micro-batches
        }

    def _collate(self, features: list[dict]) -> dict:
        minimum = self.feature_extractor.min_num_samples
        waves = [
            f["audio"] if len(f["audio"]) >= minimum else np.pad(f["audio"], (0, minimum - len(f["audio"])))
            for f in features
        ]
        batch = self.feature_extractor(
            waves,
            sampling_rate=self.feature_extractor.sampling_rate,
            padding="longest",
            return_attention_mask=True,
            return_tensors="pt",
        )
        out = {"input_values": batch["input_values"], "attention_mask": batch["attention_mask"]}
        if "labels" in features[0]:
            labels = [f["labels"] for f in features]
            if isinstance(labels[0], np.ndarray):
                out["labels"] = torch.from_numpy(np.stack(labels)).float()
            else:
                out["labels"] = torch.tensor(labels, dtype=torch.long)
        return out


# ----------------------------------------------------------------------------------------------------------------------
# Augmentation, loss, optimizer
# ----------------------------------------------------------------------------------------------------------------------


def spec_augment(
    input_values: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    freq_mask_bins: int = 48,
    time_mask_frames: int = 192,
    reference_frames: int = 1000,
    mask_value: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One frequency and one time mask per clip (SpecAugment, as PaSST/MaskSpec use it).

    The frequency mask covers `w ~ U{0..freq_mask_bins}` consecutive mel bins at a uniform position; the time mask
    `w ~ U{0..round(time_mask_frames * length / reference_frames)}` frames inside the clip's real frames, so a
    shorter clip gets a proportionally shorter mask. Masked values are set to `mask_value` (0 = the mean of
    normalized features, the padding value). Returns a new tensor.
    """
    batch, frames, bins = input_values.shape
    device = input_values.device

    def uniform(high: torch.Tensor) -> torch.Tensor:  # integers in [0, high], elementwise
        return (torch.rand(high.shape, generator=generator, device=device) * (high + 1)).floor().clamp(max=high)

    if attention_mask is None:
        lengths = torch.full((batch,), frames, device=device, dtype=torch.float32)
    else:
        lengths = attention_mask.sum(dim=1).float()
    masked = torch.zeros(batch, frames, bins, dtype=torch.bool, device=device)
    if freq_mask_bins > 0:
        width = uniform(torch.full((batch,), float(min(freq_mask_bins, bins)), device=device))
        start = uniform(bins - width)
        position = torch.arange(bins, device=device)
        masked |= ((position >= start[:, None]) & (position < (start + width)[:, None]))[:, None, :]
    if time_mask_frames > 0:
        width = uniform(torch.minimum((time_mask_frames * lengths / reference_frames).round(), lengths))
        start = uniform(lengths - width)
        position = torch.arange(frames, device=device)
        masked |= ((position >= start[:, None]) & (position < (start + width)[:, None]))[:, :, None]
    return input_values.masked_fill(masked, mask_value)


def mixup(
    input_values: torch.Tensor,
    attention_mask: torch.Tensor | None,
    targets: torch.Tensor,
    alpha: float = 0.3,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Mixup within the batch (PaSST's variant): `λ ~ Beta(α, α)` per clip, `λ = max(λ, 1 - λ)`.

    Clip i becomes `λ_i x_i + (1 - λ_i) x_π(i)` for a random permutation π, its targets (float, `[batch, classes]`)
    likewise, and its attention mask the union of both (padding counts as the zero feature). Uses torch's global RNG.
    """
    batch = input_values.shape[0]
    device = input_values.device
    lam = torch.distributions.Beta(float(alpha), float(alpha)).sample((batch,))
    lam = torch.maximum(lam, 1.0 - lam).to(device)
    perm = torch.randperm(batch).to(device)
    x_lam = lam.to(input_values.dtype)[:, None, None]
    mixed = x_lam * input_values + (1.0 - x_lam) * input_values[perm]
    mask = None if attention_mask is None else torch.maximum(attention_mask, attention_mask[perm])
    t_lam = lam.to(targets.dtype)[:, None]
    return mixed, mask, t_lam * targets + (1.0 - t_lam) * targets[perm]


def classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, problem_type: str, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean loss over the batch: cross-entropy (class indices or soft targets, optional label smoothing) for
    single-label tasks, binary cross-entropy with logits for multi-label ones. Computed in float32."""
    logits = logits.float()
    if problem_type == MULTI_LABEL:
        return F.binary_cross_entropy_with_logits(logits, labels.float())
    if labels.is_floating_point():
        return F.cross_entropy(logits, labels.float(), label_smoothing=label_smoothing)
    return F.cross_entropy(logits, labels.long(), label_smoothing=label_smoothing)


def layer_decay_parameter_groups(
    model: MaskSpecForAudioClassification,
    learning_rate: float,
    weight_decay: float,
    layer_decay: float,
    decay_parameter_names: set[str] | None = None,
) -> list[dict]:
    """Optimizer parameter groups with layer-wise learning-rate decay.

    Depth 0 is the patch projection, depth i + 1 encoder block i, depth L + 1 the final LayerNorm and the head; a
    parameter at depth d gets `learning_rate * layer_decay ** (L + 1 - d)`. Biases and norm weights get no weight
    decay (unless `decay_parameter_names` says otherwise). Each group records its `lr_scale`.
    """
    num_layers = model.config.num_hidden_layers
    if decay_parameter_names is None:
        decay_parameter_names = {n for n, p in model.named_parameters() if p.ndim > 1}
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if ".patch_embeddings." in f".{name}":
            depth = 0
        elif match := re.search(r"(?:^|\.)layers\.(\d+)\.", name):
            depth = int(match.group(1)) + 1
        else:
            depth = num_layers + 1
        decay = name in decay_parameter_names
        scale = layer_decay ** (num_layers + 1 - depth)
        group = groups.setdefault(
            (depth, decay),
            {
                "params": [],
                "weight_decay": weight_decay if decay else 0.0,
                "lr": learning_rate * scale,
                "lr_scale": scale,
            },
        )
        group["params"].append(param)
    return [groups[key] for key in sorted(groups)]


def class_balanced_weights(targets: np.ndarray, offset: float = BALANCED_SAMPLING_OFFSET) -> np.ndarray:
    """PaSST/MaskSpec sample weights from multi-hot `targets` `[clips, classes]`: sum of 1000 / (count + offset)
    over each clip's classes (clips without labels get the smallest positive weight)."""
    targets = np.asarray(targets, dtype=np.float64)
    per_class = 1000.0 / (targets.sum(axis=0) + offset)
    weights = targets @ per_class
    positive = weights[weights > 0]
    return np.where(weights > 0, weights, positive.min() if positive.size else 1.0)


class MaskSpecTrainer(Trainer):
    """`Trainer` with MaskSpec's recipe.

    In training steps: SpecAugment and mixup on the batch (per `recipe`), cross-entropy with label smoothing on
    (soft) targets for single-label tasks, binary cross-entropy for multi-label ones. In evaluation the plain loss
    (no smoothing) is reported. With `sample_weights`, training draws clips with those weights (with replacement,
    one epoch = as many draws as clips). With `recipe.layer_decay < 1`, the optimizer uses layer-wise decayed
    learning rates. Clips the collator left out (`skipped_clips`) are logged once each and kept in
    `skipped_clips["train"/"eval"]` (id -> `{"id", "reason", "error"}`); a batch left with no clip is skipped; a
    split whose every clip is bad is an error.
    """

    # `compute_loss` returns a per-batch mean, so Trainer divides it by the gradient accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, recipe: FinetuningArguments | None = None, sample_weights=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.recipe = (
            recipe if recipe is not None else FinetuningArguments(augment=False, layer_decay=1.0, label_smoothing=0.0)
        )
        self.sample_weights = None if sample_weights is None else torch.as_tensor(sample_weights, dtype=torch.double)
        self.skipped_clips: dict[str, dict] = {"train": {}, "eval": {}}

    def _take_skipped(self, inputs: dict, split: str) -> dict:
        """`inputs` without `skipped_clips`, whose clips are recorded (and logged, once per clip)."""
        skipped = inputs.get("skipped_clips")
        if not skipped:
            return inputs
        seen = self.skipped_clips[split]
        for clip in skipped:
            if clip["id"] not in seen:
                seen[clip["id"]] = clip
                logger.warning(f"Skipping {split} clip {clip['id']}: {clip['reason']} ({clip['error']})")
        dataset = self.train_dataset if split == "train" else self.eval_dataset
        if hasattr(dataset, "__len__") and not isinstance(dataset, dict) and len(seen) >= len(dataset):
            raise ValueError(
                f"None of the {len(dataset)} clips of the {split} split can be used (e.g. {skipped[0]['id']}: "
                f"{skipped[0]['reason']}, {skipped[0]['error']})."
            )
        return {key: value for key, value in inputs.items() if key != "skipped_clips"}

    @staticmethod
    def _is_empty(inputs: dict) -> bool:
        values = inputs.get("input_values")
        return values is not None and values.shape[0] == 0

    def training_step(self, model, inputs, num_items_in_batch=None):
        inputs = self._take_skipped(inputs, "train")
        if self._is_empty(inputs):  # every clip of the batch was bad: no loss, no gradient
            # NaN lets Trainer's logging_nan_inf_filter (on by default) log the window's mean loss for this step
            # instead of a 0 that would pull the reported training loss down.
            no_loss = float("nan") if self.args.logging_nan_inf_filter else 0.0
            return torch.tensor(no_loss, device=self.args.device)
        return super().training_step(model, inputs, num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._take_skipped(inputs, "eval")
        if self._is_empty(inputs):
            return None, None, None
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    def _augment(self, inputs: dict, problem_type: str, num_labels: int) -> dict:
        recipe = self.recipe
        input_values, attention_mask, labels = inputs["input_values"], inputs.get("attention_mask"), inputs["labels"]
        if recipe.freq_mask_bins > 0 or recipe.time_mask_frames > 0:
            input_values = spec_augment(
                input_values,
                attention_mask,
                recipe.freq_mask_bins,
                recipe.time_mask_frames,
                recipe.time_mask_reference_frames,
            )
        if recipe.mixup_alpha > 0 and input_values.shape[0] > 1:
            if problem_type != MULTI_LABEL:
                labels = F.one_hot(labels.long(), num_labels).float()
            input_values, attention_mask, labels = mixup(
                input_values, attention_mask, labels.float(), recipe.mixup_alpha
            )
        out = dict(inputs, input_values=input_values, labels=labels)
        if attention_mask is not None:
            out["attention_mask"] = attention_mask
        return out

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        config = self.accelerator.unwrap_model(model).config
        problem_type = config.problem_type or (SINGLE_LABEL if config.num_labels > 1 else "regression")
        if problem_type not in (SINGLE_LABEL, MULTI_LABEL):
            raise ValueError(f"MaskSpecTrainer trains classifiers; the model's problem_type is {problem_type!r}.")
        inputs = dict(inputs)
        if model.training and "labels" in inputs:
            inputs = self._augment(inputs, problem_type, config.num_labels)
        labels = inputs.pop("labels", None)
        outputs = model(**inputs)
        if labels is None:
            loss = outputs["loss"] if isinstance(outputs, dict) and outputs.get("loss") is not None else None
            if loss is None:
                raise ValueError("MaskSpecTrainer needs `labels` in the batch to compute a loss.")
        else:
            smoothing = self.recipe.label_smoothing if model.training else 0.0
            loss = classification_loss(outputs.logits, labels, problem_type, smoothing)
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        if self.sample_weights is None:
            return super()._get_train_sampler(train_dataset)
        generator = torch.Generator()
        generator.manual_seed(self.args.seed)
        return torch.utils.data.WeightedRandomSampler(
            self.sample_weights, num_samples=len(self.sample_weights), replacement=True, generator=generator
        )

    def create_optimizer(self, model=None):
        if self.recipe.layer_decay >= 1.0 or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay_names = set(self.get_decay_parameter_names(opt_model))
        groups = layer_decay_parameter_groups(
            opt_model, self.args.learning_rate, self.args.weight_decay, self.recipe.layer_decay, decay_names
        )
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        for key in ("params", "model", "optimizer_dict"):
            if key in optimizer_kwargs:
                raise ValueError(f"--optim {self.args.optim} does not support --layer_decay; pass --layer_decay 1.")
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer


# ----------------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------------


def load_model_for_finetuning(
    model_args: ModelArguments, label_space: LabelSpace, patchout_ratio: float | None = None
) -> tuple[MaskSpecForAudioClassification, MaskSpecFeatureExtractor, str]:
    """The classifier to fine-tune, its feature extractor and a one-line description of where its weights came from.

    A preset name builds a randomly initialized model. A checkpoint keeps its encoder; the decoder of a pre-training
    checkpoint is dropped and the head (fc_norm, classifier) is new, which is logged in one line instead of
    transformers' per-key report. Encoder weights missing from the checkpoint are an error.
    """
    overrides = parse_config_overrides(model_args.config_overrides)
    overrides.update(
        num_labels=label_space.num_labels,
        id2label=label_space.id2label,
        label2id=label_space.label2id,
        problem_type=label_space.problem_type,
    )
    if patchout_ratio is not None:
        overrides["patchout_ratio"] = patchout_ratio
    hub_kwargs = {
        "cache_dir": model_args.cache_dir,
        "revision": model_args.model_revision,
        "token": model_args.token,
    }
    source = model_args.model_name_or_path
    feature_extractor = load_feature_extractor(model_args.feature_extractor_name or source, **hub_kwargs)

    if is_preset_name(source):
        model = MaskSpecForAudioClassification(MaskSpecConfig.from_preset(source, **overrides))
        origin = f"randomly initialized MaskSpec-{source.lower().removeprefix('maskspec-').capitalize()}"
    else:
        config = MaskSpecConfig.from_pretrained(source, **hub_kwargs)
        source_architectures = config.architectures or []
        config = MaskSpecConfig(**{**config.to_dict(), **overrides})
        try:
            with quiet_load_report():
                model, info = MaskSpecForAudioClassification.from_pretrained(
                    source,
                    config=config,
                    ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
                    output_loading_info=True,
                    **hub_kwargs,
                )
        except RuntimeError as error:
            if "ignore_mismatched_sizes" in str(error):
                raise ValueError(
                    f"The classification head of {source} has a different number of labels than this task "
                    f"({label_space.num_labels}): pass --ignore_mismatched_sizes to train a new head."
                ) from error
            raise
        head = ("fc_norm.", "classifier.")
        missing_encoder = [k for k in info["missing_keys"] if not k.startswith(head)]
        if missing_encoder:
            raise ValueError(
                f"{source} lacks {len(missing_encoder)} MaskSpec encoder weights (e.g. {sorted(missing_encoder)[:3]}): "
                "is it a MaskSpec checkpoint? Pass a preset name (tiny/small/base) to train from scratch."
            )
        new_head = sorted(
            {k.split(".")[0] for k in info["missing_keys"]}
            | {k.split(".")[0] for k in info.get("mismatched_keys", [])}
        )
        dropped = {k.split(".")[0] for k in info["unexpected_keys"]}
        if any(name.endswith("ForPreTraining") for name in source_architectures):
            dropped.add("decoder")  # ignored on load by `_keys_to_ignore_on_load_unexpected`
        dropped = sorted(dropped)
        origin = f"encoder from {source}"
        if new_head:
            origin += f"; new {'/'.join(new_head)} for {label_space.num_labels} labels"
        if dropped:
            origin += f"; dropped the checkpoint's {'/'.join(dropped)} weights"
    if model_args.freeze_feature_encoder:
        model.freeze_feature_encoder()
    logger.info(f"Fine-tuning {origin}.")
    return model, feature_extractor, origin


# ----------------------------------------------------------------------------------------------------------------------
# Model card and Hub
# ----------------------------------------------------------------------------------------------------------------------


CARD_RESULT_KEYS = (
    "accuracy",
    "mAP",
    "mAUC",
    "d_prime",
    "loss",
    "samples",
    "num_examples",
    "num_classes",
    "num_classes_skipped_ap",
    "num_classes_skipped_auc",
)


def write_finetuned_model_card(folder: str | os.PathLike, **card_kwargs) -> Path:
    """README.md of a fine-tuned model (`maskspec_hf.model_card`: Hub metadata, this run's hyperparameters and
    results, the paper-reported results clearly labelled as such)."""
    from ..model_card import write_model_card

    return Path(write_model_card(folder, task="audio-classification", **card_kwargs))


# Pickled arguments stay local; sub-folders (checkpoint-*, runs/) are never uploaded.
HUB_SKIPPED_FILES = ("training_args.bin", "clips_skipped.json")  # the latter names local files


def hub_files(folder: str | os.PathLike) -> list[Path]:
    """The files `push_folder_to_hub` uploads: the folder's top-level files, except hidden ones and
    `training_args.bin`."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name not in HUB_SKIPPED_FILES
    )


def push_folder_to_hub(folder: str | os.PathLike, repo_id: str, commit_message: str, token=None, private=None):
    """Create (or reuse) the model repo and upload the final model files (`hub_files`) in one commit."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    operations = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p)) for p in hub_files(folder)]
    return api.create_commit(
        repo_id=getattr(repo_url, "repo_id", None) or repo_id,
        operations=operations,
        commit_message=commit_message,
        repo_type="model",
    )


# ----------------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------------


def _setup_logging(training_args: TrainingArguments) -> None:
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    logger.setLevel(level)
    transformers.utils.logging.set_verbosity(level)
    datasets.utils.logging.set_verbosity(level)


def parse_args(argv: list[str] | None = None):
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, FinetuningArguments, TrainingArguments))
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def check_hub_access(repo_id: str, token: str | None = None, private: bool | None = None) -> str:
    """Fail before training, not after it, when `--push_to_hub` cannot work: checks the login and creates (or
    reuses) the repo. Returns the repo id with its namespace. Raises a `ValueError` saying what to fix."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        user = api.whoami()
    except Exception as error:  # noqa: BLE001 - offline, no token, bad token or no network: all mean "can't push"
        raise ValueError(
            f"--push_to_hub: cannot log in to the Hub ({type(error).__name__}: {str(error).splitlines()[0]}): log "
            "in with `hf auth login` or pass --hub_token, go online (HF_HUB_OFFLINE unset), or drop --push_to_hub."
        ) from error
    try:
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    except Exception as error:  # noqa: BLE001
        raise ValueError(
            f"--push_to_hub: cannot create or use the repo {repo_id!r} as {user.get('name', 'this user')} "
            f"({type(error).__name__}: {str(error).splitlines()[0]}): pass --hub_model_id <namespace>/<name> of a "
            "repo this token can write to."
        ) from error
    return getattr(repo_url, "repo_id", None) or repo_id


def _clip_datasets(
    splits: dict[str, datasets.Dataset],
    data_args: DataTrainingArguments,
    label_space: LabelSpace,
    recipe: FinetuningArguments,
    sampling_rate: int,
    max_samples: int,
) -> dict[str, ClipDataset]:
    """Training crops of `max_samples` (random if `recipe.random_crop`), whole eval clips."""
    return {
        name: ClipDataset(
            dataset,
            data_args.audio_column_name,
            data_args.label_column_name,
            label_space,
            sampling_rate,
            max_samples=max_samples if name == "train" else None,
            random_crop=recipe.random_crop and name == "train",
            split=name,
        )
        for name, dataset in splits.items()
    }


def _balanced_weights(train: datasets.Dataset, label_column: str, label_space: LabelSpace) -> np.ndarray:
    targets = [label_space.encode(v) for v in train[label_column]]
    if not label_space.multi_label:
        targets = np.eye(label_space.num_labels, dtype=np.float32)[targets]
    return class_balanced_weights(np.stack(targets))


def _train_and_evaluate(trainer: "MaskSpecTrainer", splits: dict, training_args: TrainingArguments) -> dict:
    metrics: dict = {}
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        trainer.save_model()  # model, config (id2label, problem_type), feature extractor and code files
        skipped = len(trainer.skipped_clips["train"])
        train_metrics = dict(
            result.metrics, train_samples=len(splits["train"]) - skipped, train_clips_skipped=skipped
        )
        trainer.log_metrics("train", train_metrics)
        trainer.save_metrics("train", train_metrics)
        trainer.save_state()
        metrics.update(train_metrics)
    if "eval" in splits and (training_args.do_eval or training_args.do_train):
        eval_metrics = trainer.evaluate()
        skipped = len(trainer.skipped_clips["eval"])
        eval_metrics.update(eval_samples=len(splits["eval"]) - skipped, eval_clips_skipped=skipped)
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    return metrics


def _report_skipped(trainer: "MaskSpecTrainer", output_dir: str) -> list[dict]:
    """The skipped clips of both splits, as `[{"split", "id", "reason", "error"}]`, also written to
    `clips_skipped.json` and summed up in the log."""
    skipped = [{"split": split, **clip} for split, clips in trainer.skipped_clips.items() for clip in clips.values()]
    if skipped and trainer.is_world_process_zero():
        path = Path(output_dir) / "clips_skipped.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(skipped, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(collections.Counter(c["reason"] for c in skipped).items()))
        logger.warning(f"Skipped {len(skipped)} clips that cannot be used ({reasons}); listed in {path}.")
    return skipped


def run_finetuning(
    model_args: ModelArguments,
    data_args: DataTrainingArguments,
    recipe: FinetuningArguments,
    training_args: TrainingArguments,
) -> dict:
    """Fine-tune and/or evaluate; returns the metrics (train_* and eval_*) and `clips_skipped`, the clips that could
    not be used (`[{"split", "id", "reason", "error"}]`)."""
    if data_args.label_column_name is None:
        raise ValueError("--label_column_name is required for fine-tuning.")
    if training_args.label_smoothing_factor:
        # Trainer's own smoother cannot handle multi-hot or mixed-up targets: route it to the recipe.
        recipe.label_smoothing, training_args.label_smoothing_factor = training_args.label_smoothing_factor, 0.0
    push_requested, training_args.push_to_hub = training_args.push_to_hub, False  # pushed once, at the end, below
    repo_id = None
    if push_requested and training_args.do_train:
        repo_id = check_hub_access(
            training_args.hub_model_id or Path(training_args.output_dir).resolve().name,
            token=training_args.hub_token,
            private=training_args.hub_private_repo,
        )
    training_args.remove_unused_columns = False  # the collator needs the raw audio column
    # Adam's second moments of tiny gradients underflow to denormals, which x86 CPUs process ~100x slower:
    # a step can take 20x longer late in training. Flushing them to zero changes nothing that matters.
    torch.set_flush_denormal(True)
    set_seed(training_args.seed)

    need_eval = training_args.do_eval or training_args.eval_strategy != "no"
    splits = load_splits(
        data_args,
        need_train=training_args.do_train,
        need_eval=need_eval,
        cache_dir=model_args.cache_dir,
        token=model_args.token,
        seed=training_args.seed,
    )
    if not splits:
        raise ValueError("Nothing to do: pass --do_train and/or --do_eval.")
    label_space = build_label_space(splits, data_args.label_column_name, data_args.class_index_csv)
    logger.info(
        f"{label_space.problem_type}: {label_space.num_labels} classes (from {label_space.source}); "
        + ", ".join(f"{name} {len(ds)} clips" for name, ds in splits.items())
    )
    model, feature_extractor, origin = load_model_for_finetuning(
        model_args, label_space, recipe.patchout_ratio if training_args.do_train else None
    )
    rate = feature_extractor.sampling_rate
    max_seconds = data_args.max_length_seconds or model.config.max_frames * feature_extractor.hop_length / rate
    balanced = recipe.balanced_sampling == "yes" or (recipe.balanced_sampling == "auto" and label_space.multi_label)
    sample_weights = None
    if balanced and "train" in splits:
        sample_weights = _balanced_weights(splits["train"], data_args.label_column_name, label_space)
    splits = _clip_datasets(splits, data_args, label_space, recipe, rate, int(round(max_seconds * rate)))

    trainer = MaskSpecTrainer(
        model=model,
        args=training_args,
        train_dataset=splits.get("train"),
        eval_dataset=splits.get("eval"),
        data_collator=MaskSpecDataCollator(feature_extractor),
        processing_class=feature_extractor,
        compute_metrics=compute_metrics_fn(label_space.problem_type, label_space.id2label),
        recipe=recipe,
        sample_weights=sample_weights,
    )
    metrics = _train_and_evaluate(trainer, splits, training_args)
    metrics["clips_skipped"] = _report_skipped(trainer, training_args.output_dir)
    if training_args.do_train and trainer.is_world_process_zero():
        hyperparameters = _hyperparameters(model_args, training_args, recipe, model, origin, trainer, max_seconds)
        hyperparameters.update(
            label_smoothing=recipe.label_smoothing if not label_space.multi_label else 0.0,
            balanced_sampling=balanced,
            random_crop=hyperparameters.pop("random_crop"),  # the card's row order
        )
        results = _write_card(model_args, data_args, training_args, model, hyperparameters, metrics, "eval" in splits)
        if repo_id is not None:
            commit_message = commit_message_for(model_args, data_args, results)
            push_folder_to_hub(
                training_args.output_dir,
                repo_id,
                commit_message,
                token=training_args.hub_token,
                private=training_args.hub_private_repo,
            )
            logger.info(f"Pushed {training_args.output_dir} to {repo_id}: {commit_message}")
    return metrics


def _hyperparameters(model_args, training_args, recipe, model, origin, trainer, max_seconds) -> dict:
    """The run's settings for the model card."""
    return {
        "base_model": model_args.model_name_or_path,
        "initialization": origin,
        "learning_rate": training_args.learning_rate,
        "train_batch_size": training_args.per_device_train_batch_size,
        "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
        "optimizer": str(getattr(training_args.optim, "value", training_args.optim)),
        "weight_decay": training_args.weight_decay,
        "lr_scheduler": str(getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)),
        "warmup_steps": training_args.warmup_steps,
        "num_epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps,
        "global_steps": trainer.state.global_step,
        "seed": training_args.seed,
        "bf16": training_args.bf16,
        "max_length_seconds": max_seconds,
        "mixup_alpha": recipe.mixup_alpha,
        "specaugment": f"freq {recipe.freq_mask_bins} bins, time {recipe.time_mask_frames} frames per "
        f"{recipe.time_mask_reference_frames}",
        "patchout_ratio": model.config.patchout_ratio,
        "layer_decay": recipe.layer_decay,
        "random_crop": recipe.random_crop,
    }


def _write_card(model_args, data_args, training_args, model, hyperparameters, metrics, has_eval) -> dict:
    """Writes the model card; returns the eval results it reports."""
    results = {key: metrics[f"eval_{key}"] for key in CARD_RESULT_KEYS if f"eval_{key}" in metrics}
    hub_dataset = (
        data_args.dataset_name if data_args.dataset_name and not os.path.exists(data_args.dataset_name) else None
    )
    data_name = data_args.dataset_name or (
        f"audiofolder {Path(data_args.data_dir).name}" if data_args.data_dir else None
    )
    write_finetuned_model_card(
        training_args.output_dir,
        config=model.config,
        hyperparameters=hyperparameters,
        results=results,
        datasets=[data_name] if data_name else [],
        base_model=model_args.model_name_or_path,
        eval_dataset=hub_dataset if has_eval else None,
        eval_dataset_config=data_args.dataset_config_name,
        eval_split=data_args.eval_split_name if has_eval else None,
    )
    return results


def commit_message_for(model_args: ModelArguments, data_args: DataTrainingArguments, results: dict) -> str:
    """'Fine-tune <model> on <data>: eval accuracy 0.8123' (or mAP), the commit message of the Hub upload."""
    data = data_args.dataset_name or (Path(data_args.data_dir).name if data_args.data_dir else "local data")
    message = f"Fine-tune {model_args.model_name_or_path} on {data}"
    for key in ("accuracy", "mAP"):
        if isinstance(results.get(key), float) and math.isfinite(results[key]):
            return f"{message}: eval {key} {results[key]:.4f}"
    return message


def main(argv: list[str] | None = None) -> dict:
    """The command line for Python callers: returns the metrics (see `run_finetuning`)."""
    model_args, data_args, recipe, training_args = parse_args(argv)
    _setup_logging(training_args)
    return run_finetuning(model_args, data_args, recipe, training_args)


def cli(argv: list[str] | None = None) -> int:
    """The `maskspec-finetune` console script: exit status 0, or 2 with a one-line message."""
    return run_console_script(main, argv, prog="maskspec-finetune")


__all__ = [
    "DataTrainingArguments",
    "FinetuningArguments",
    "ClipDataset",
    "LabelSpace",
    "MaskSpecDataCollator",
    "MaskSpecTrainer",
    "ModelArguments",
    "build_label_space",
    "check_hub_access",
    "class_balanced_weights",
    "classification_loss",
    "cli",
    "clip_name",
    "layer_decay_parameter_groups",
    "load_model_for_finetuning",
    "load_splits",
    "main",
    "mixup",
    "parse_config_overrides",
    "push_folder_to_hub",
    "read_class_index",
    "run_finetuning",
    "spec_augment",
    "write_finetuned_model_card",
]


if __name__ == "__main__":
    sys.exit(cli())
