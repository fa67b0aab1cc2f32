"""Label spaces: which classes a task has and how a dataset's raw label values map to them.

Fine-tuning and the linear probe must agree on the classes (and on AudioSet's 527-class index) or their scores would
not be comparable, so both build them here, once, from the label column of every split: single-label (`ClassLabel`,
strings or ints) or multi-label (lists of labels, e.g. AudioSet's MIDs), optionally over a class index CSV.
"""

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np


SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"


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
    seen = _label_values(splits, label_column, multi_label)
    if class_index_csv is not None:
        return _over_class_index(seen, class_index_csv, class_label, multi_label, label_column)
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


def _label_values(splits: dict[str, datasets.Dataset], label_column: str, multi_label: bool) -> set:
    """Every raw label value of every split (the items of the lists, for multi-label data)."""
    values = []
    for dataset in splits.values():
        for value in dataset[label_column]:
            if not multi_label:
                values.append(value)
            elif value is not None:  # a clip without labels: an all-zero target
                values.extend(value)
    if any(v is None for v in values):
        raise ValueError(f"Column {label_column!r} has missing (None) labels: drop those rows first.")
    return set(values)


def _over_class_index(seen: set, class_index_csv, class_label, multi_label: bool, label_column: str) -> LabelSpace:
    """The class index's classes, with every value in the data mapped to one of them (else a `ValueError`)."""
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


__all__ = ["MULTI_LABEL", "SINGLE_LABEL", "LabelSpace", "build_label_space", "read_class_index"]
