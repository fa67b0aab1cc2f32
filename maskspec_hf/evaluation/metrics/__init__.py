# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Evaluation metrics for MaskSpec: plain functions, offline `evaluate` modules and a `Trainer` hook.

The maths lives here, in plain numpy/scikit-learn functions. The `evaluate` scripts in the sub-folders
(`accuracy/accuracy.py`, `audioset_map/audioset_map.py`) are thin wrappers that import these functions with an
*absolute* import: `evaluate.load` copies only the script itself into its modules cache
(`$HF_MODULES_CACHE/evaluate_modules/metrics/<name>/<hash>/<name>.py`) and imports it from there, so a relative
import of this package would not resolve, whereas `from maskspec_hf.evaluation.metrics import ...` does (evaluate's import
check sees it as a library dependency). As a side effect, the cached copy never goes stale: it always runs the
installed package's maths.
"""

from pathlib import Path

import numpy as np
from scipy.special import expit
from scipy.stats import norm
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score


__all__ = ["METRICS_DIR", "METRIC_NAMES", "accuracy", "audioset_map", "compute_metrics_fn", "load_metric"]

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("accuracy", "audioset_map")
PROBLEM_TYPES = ("single_label_classification", "multi_label_classification")


def load_metric(name: str, **kwargs):
    """Load one of the bundled metrics as an `evaluate.EvaluationModule`, from this package (never the Hub).

    `kwargs` go to `evaluate.load` (e.g. `keep_in_memory=True`, `cache_dir=...`).
    """
    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown metric {name!r}; choose one of {', '.join(METRIC_NAMES)}.")
    import evaluate  # lazy: the plain functions and `compute_metrics_fn` do not need evaluate/datasets

    # An existing local directory holding `<name>/<name>.py` takes evaluate's local-script branch, which neither
    # contacts the Hub nor reads the offline flags, so this works the same with HF_*_OFFLINE=1.
    return evaluate.load(str(METRICS_DIR / name), **kwargs)


def accuracy(predictions, references, normalize: bool = True, sample_weight=None) -> dict:
    """Fraction (or, with `normalize=False`, count) of exact matches: `{"accuracy": float}`."""
    predictions, references = np.asarray(predictions), np.asarray(references)
    if predictions.size == 0 or references.size == 0:
        raise ValueError("accuracy needs at least one example; got empty predictions or references.")
    if predictions.shape != references.shape:
        raise ValueError(
            f"predictions and references must have the same shape; got {predictions.shape} and {references.shape}."
        )
    return {
        "accuracy": float(accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight))
    }


def _as_matrix(values, name: str, dtype) -> np.ndarray:
    """`values` as a 2-D [num_examples, num_classes] array, with a clear error for ragged or wrongly-ranked input."""
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as error:  # ragged rows or non-numbers
        raise ValueError(
            f"{name} must be a rectangular numeric array of shape [num_examples, num_classes]: {error}"
        ) from None
    if array.size == 0:
        raise ValueError(f"audioset_map needs at least one example and one class; got {name} of shape {array.shape}.")
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape [num_examples, num_classes]; got shape {array.shape}.")
    return array


def audioset_map(predictions, references, average: str = "macro") -> dict:
    """AudioSet-style multi-label scores: mAP, mAUC and d′, each macro-averaged over the classes where defined.

    `predictions` are per-class scores (probabilities or logits; only their order matters) and `references`
    multi-hot labels, both [num_examples, num_classes]. AP is undefined for a class with no positive example and
    ROC AUC for a class with a single label value, so such classes are left out of the respective average
    (counted in `num_classes_skipped_ap` / `num_classes_skipped_auc`) rather than scored 0, which would
    depend on the eval-set composition. A mean over no classes is NaN. d′ = √2 · Φ⁻¹(mAUC).
    """
    if average != "macro":
        raise ValueError(f"audioset_map only supports average='macro'; got average={average!r}.")
    scores = _as_matrix(predictions, "predictions", np.float64)
    targets = _as_matrix(references, "references", np.float64)
    if scores.shape != targets.shape:
        raise ValueError(
            f"predictions and references must have the same shape [num_examples, num_classes]; "
            f"got {scores.shape} and {targets.shape}."
        )
    if not np.isfinite(scores).all():
        raise ValueError("predictions contain NaN or infinite scores.")
    if not np.isin(targets, (0, 1)).all():
        bad = np.unique(targets[~np.isin(targets, (0, 1))])[:5]
        raise ValueError(f"references must be multi-hot (only 0 and 1); found values such as {bad.tolist()}.")
    targets = targets.astype(np.int64)

    num_examples, num_classes = targets.shape
    num_positives = targets.sum(axis=0)
    ap_classes = np.flatnonzero(num_positives > 0)
    auc_classes = np.flatnonzero((num_positives > 0) & (num_positives < num_examples))
    ap = [average_precision_score(targets[:, k], scores[:, k]) for k in ap_classes]
    auc = [roc_auc_score(targets[:, k], scores[:, k]) for k in auc_classes]
    mean_ap = float(np.mean(ap)) if ap else float("nan")
    mean_auc = float(np.mean(auc)) if auc else float("nan")
    return {
        "mAP": mean_ap,
        "mAUC": mean_auc,
        "d_prime": float(np.sqrt(2.0) * norm.ppf(mean_auc)),  # NaN propagates; mAUC = 1 gives inf
        "num_examples": int(num_examples),
        "num_classes": int(num_classes),
        "num_classes_skipped_ap": int(num_classes - len(ap_classes)),
        "num_classes_skipped_auc": int(num_classes - len(auc_classes)),
    }


def compute_metrics_fn(problem_type: str, id2label: dict | None = None):
    """A `compute_metrics(eval_pred)` for `transformers.Trainer`, matching the model's `problem_type`.

    Single-label: accuracy of the logits' argmax. Multi-label: `audioset_map` of the sigmoid scores. If
    `id2label` is given, the number of logit columns is checked against it (a mismatch means the wrong head).
    All returned values are scalars, so `Trainer` can log them (it adds the `eval_` prefix itself).
    """
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"Unknown problem_type {problem_type!r}; choose one of {', '.join(PROBLEM_TYPES)}.")
    num_labels = len(id2label) if id2label is not None else None

    def compute_metrics(eval_pred) -> dict:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, (tuple, list)):  # models returning extra outputs (hidden states, ...) put logits first
            logits = logits[0]
        logits = np.asarray(logits)
        if num_labels is not None and logits.shape[-1] != num_labels:
            raise ValueError(f"Got {logits.shape[-1]} logit columns but id2label has {num_labels} labels.")
        if problem_type == "single_label_classification":
            return accuracy(logits.argmax(axis=-1), labels)
        # Sigmoid in float64: float32 rounds logits above ~17 to exactly 1.0, creating ties that change AP/AUC.
        return audioset_map(expit(logits.astype(np.float64)), labels)

    return compute_metrics
