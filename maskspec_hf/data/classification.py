"""Fine-tuning's examples: labelled clips decoded one at a time, and the collator that turns them into batches.

One bad file must not stop a run of hours, so a clip that cannot be used comes back as a record of why instead of an
exception; the collator drops it from its batch and the trainer counts and reports it.
"""

import random
from dataclasses import dataclass

import datasets
import numpy as np
import torch

from ..audio import ClipError, check_waveform, decode_audio
from ..feature_extraction_maskspec import MaskSpecFeatureExtractor
from .arguments import DataArguments
from .clips import clip_name
from .labels import LabelSpace
from .loading import default_id_column


class ClipDataset(torch.utils.data.Dataset):
    """The rows of a split as training examples, decoded one at a time where they are read.

    `dataset[i]` is `{"audio": mono float32 waveform at `sampling_rate`, "labels": target, "clip": name}`; with
    `max_samples`, longer clips are cut to that many samples (at a random offset if `random_crop`, else from the
    start; shorter clips are padded by the collator). A clip that cannot be used (undecodable, empty, NaN/Inf
    samples) comes back as `{"audio": None, "clip": name, "skipped": reason, "error": message}` instead of raising:
    `MaskSpecDataCollator` drops it and `MaskSpecTrainer` counts and reports it, so one bad file does not stop a run.
    A clip is named by `id_column` (default: `video_id`, `id`, ... when present), else by its file. Clips shorter
    than `min_samples` are skipped as `too_short`.
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
        id_column: str | None = None,
        min_samples: int = 1,
    ):
        others = [c for c in dataset.column_names if c not in (audio_column, label_column)]
        if id_column is not None and id_column not in dataset.column_names:
            raise ValueError(
                f"--id_column_name {id_column!r} is not a column of the {split!r} split; available columns: "
                f"{dataset.column_names}."
            )
        self.id_column = id_column or default_id_column(others)
        columns = [audio_column] + [c for c in (label_column, self.id_column) if c is not None]
        # Left encoded, so that decoding (and its failures) happens here, per clip, not inside `datasets`.
        self.dataset = dataset.select_columns(columns).cast_column(audio_column, datasets.Audio(decode=False))
        self.audio_column, self.label_column, self.label_space = audio_column, label_column, label_space
        self.sampling_rate, self.max_samples, self.random_crop, self.split = (
            sampling_rate, max_samples, random_crop, split,
        )  # fmt: skip
        self.min_samples = min_samples  # short clips are fine by default: the collator pads them to one patch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        row = self.dataset[int(index)]
        name = clip_name(row[self.audio_column], row.get(self.id_column), f"{self.split} row {index}")
        try:
            wave = decode_audio(row[self.audio_column], self.sampling_rate)
            check_waveform(wave, self.min_samples)
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


def clip_datasets(
    splits: dict[str, datasets.Dataset],
    data_args: DataArguments,
    label_space: LabelSpace,
    sampling_rate: int,
    max_samples: int,
    random_crop: bool = True,
) -> dict[str, ClipDataset]:
    """`ClipDataset`s of the splits (columns, id column and minimum length from `data_args`): training crops of
    `max_samples` (at random offsets if `random_crop`), whole eval clips."""
    min_seconds = data_args.min_length_seconds
    return {
        name: ClipDataset(
            dataset,
            data_args.audio_column_name,
            data_args.label_column_name,
            label_space,
            sampling_rate,
            max_samples=max_samples if name == "train" else None,
            random_crop=random_crop and name == "train",
            split=name,
            id_column=data_args.id_column_name,
            min_samples=max(1, int(round(min_seconds * sampling_rate))) if min_seconds else 1,
        )
        for name, dataset in splits.items()
    }


__all__ = ["ClipDataset", "MaskSpecDataCollator", "clip_datasets"]
