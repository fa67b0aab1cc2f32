# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Tests for `maskspec_hf.evaluation.metrics`: values against scikit-learn, offline `evaluate.load`, input checks."""

import math
import socket

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score
from transformers import EvalPrediction

from maskspec_hf.evaluation.metrics import METRIC_NAMES, accuracy, audioset_map, compute_metrics_fn, load_metric


NUM_EXAMPLES, NUM_CLASSES = 40, 9


@pytest.fixture
def multilabel():
    """float32 scores (exactly representable in the evaluate module's float32 feature) and multi-hot labels.

    Class 0 has no positive (skipped for AP and AUC), class 1 only positives (skipped for AUC only), and the
    scores are rounded so that there are ties, which AP and AUC must handle like scikit-learn.
    """
    rng = np.random.default_rng(0)
    targets = (rng.random((NUM_EXAMPLES, NUM_CLASSES)) < 0.3).astype(np.int64)
    targets[:, 0], targets[:, 1] = 0, 1
    targets[0, 2:] = 1  # every other class gets at least one positive ...
    targets[1, 2:] = 0  # ... and one negative
    scores = np.round(rng.random((NUM_EXAMPLES, NUM_CLASSES)) + 0.3 * targets, 1).astype(np.float32)
    return scores, targets


def sklearn_reference(scores, targets):
    """Expected values straight from scikit-learn's multi-label macro averages over the scoreable classes."""
    num_positives = targets.sum(axis=0)
    has_positive = num_positives > 0
    has_both = has_positive & (num_positives < len(targets))
    mean_ap = average_precision_score(targets[:, has_positive], scores[:, has_positive], average="macro")
    mean_auc = roc_auc_score(targets[:, has_both], scores[:, has_both], average="macro")
    return {
        "mAP": mean_ap,
        "mAUC": mean_auc,
        "d_prime": math.sqrt(2) * norm.ppf(mean_auc),
        "num_examples": len(targets),
        "num_classes": targets.shape[1],
        "num_classes_skipped_ap": int((~has_positive).sum()),
        "num_classes_skipped_auc": int((~has_both).sum()),
    }


def assert_results_equal(results, expected):
    assert set(results) == set(expected)
    for key, value in expected.items():
        assert results[key] == pytest.approx(value, rel=1e-12), key


@pytest.fixture
def offline(monkeypatch):
    """Offline mode as a user would set it, plus a guard that fails the test on any network connection.

    Libraries imported earlier in the session have already read the variables, so the socket guard is what
    actually proves that loading stays local.
    """
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE"):
        monkeypatch.setenv(variable, "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: connect{args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def test_audioset_map_matches_sklearn(multilabel):
    scores, targets = multilabel
    expected = sklearn_reference(scores, targets)
    assert (expected["num_classes_skipped_ap"], expected["num_classes_skipped_auc"]) == (1, 2)
    assert_results_equal(audioset_map(scores, targets), expected)
    # Python lists and float 0/1 labels (what `Trainer` passes for multi-label heads) work the same.
    assert_results_equal(audioset_map(scores.tolist(), targets.astype(np.float32)), expected)


def test_d_prime_formula():
    """d' = sqrt(2) * Phi^-1(mAUC), against scipy and at two known points."""
    results = audioset_map([[0.9], [0.8], [0.7], [0.6], [0.5]], [[1], [0], [1], [1], [0]])
    assert results["mAUC"] == pytest.approx(4 / 6)
    assert results["d_prime"] == pytest.approx(math.sqrt(2) * norm.ppf(4 / 6))
    assert audioset_map([[0.5], [0.5]], [[1], [0]])["d_prime"] == 0.0  # chance level: AUC 0.5
    assert audioset_map([[1.0], [0.0]], [[1], [0]])["d_prime"] == math.inf  # perfect separation: AUC 1


def test_audioset_map_without_scoreable_classes_is_nan():
    results = audioset_map(np.zeros((3, 4)), np.zeros((3, 4), dtype=int))
    assert math.isnan(results["mAP"]) and math.isnan(results["mAUC"]) and math.isnan(results["d_prime"])
    assert results["num_classes_skipped_ap"] == results["num_classes_skipped_auc"] == 4


def test_accuracy_matches_sklearn():
    rng = np.random.default_rng(1)
    predictions, references = rng.integers(0, 5, 50), rng.integers(0, 5, 50)
    weights = rng.random(50)
    assert accuracy(predictions, references) == {"accuracy": accuracy_score(references, predictions)}
    assert accuracy(predictions, references, normalize=False)["accuracy"] == (predictions == references).sum()
    assert accuracy(predictions, references, sample_weight=weights)["accuracy"] == pytest.approx(
        accuracy_score(references, predictions, sample_weight=weights)
    )


def test_load_metrics_offline(offline, multilabel, tmp_path):
    scores, targets = multilabel
    audioset = load_metric("audioset_map", keep_in_memory=True, cache_dir=str(tmp_path))
    results = audioset.compute(predictions=scores.tolist(), references=targets.tolist())
    assert_results_equal(results, sklearn_reference(scores, targets))

    acc = load_metric("accuracy", keep_in_memory=True, cache_dir=str(tmp_path))
    acc.add_batch(predictions=[0, 1, 2], references=[0, 1, 1])  # incremental use goes through the same maths
    assert acc.compute(predictions=[3], references=[3]) == {"accuracy": 0.75}
    assert acc.compute(predictions=[0, 1], references=[0, 0], normalize=False) == {"accuracy": 1.0}


def test_load_metric_rejects_unknown_name():
    with pytest.raises(ValueError, match="accuracy, audioset_map"):
        load_metric("rouge")
    assert METRIC_NAMES == ("accuracy", "audioset_map")


BAD_INPUTS = {
    "empty": ([], [], "at least one example"),
    "shape mismatch": ([[0.1, 0.2]], [[1, 0, 1]], "same shape"),
    "ragged": ([[0.1, 0.2], [0.3]], [[1, 0], [0, 1]], "rectangular"),
    "one-dimensional": ([0.1, 0.2], [1, 0], r"shape \[num_examples, num_classes\]"),
    "nan score": ([[0.1, float("nan")], [0.3, 0.4]], [[1, 0], [0, 1]], "NaN"),
    "non-binary reference": ([[0.1, 0.2], [0.3, 0.4]], [[1, 2], [0, 1]], r"multi-hot .* \[2"),
}


@pytest.mark.parametrize("predictions, references, message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_audioset_map_rejects_bad_inputs(predictions, references, message):
    with pytest.raises(ValueError, match=message):
        audioset_map(predictions, references)


def test_bad_inputs_through_evaluate_and_average(offline, tmp_path):
    metric = load_metric("audioset_map", keep_in_memory=True, cache_dir=str(tmp_path))
    for name in ("empty", "nan score", "non-binary reference"):
        predictions, references, message = BAD_INPUTS[name]
        with pytest.raises(ValueError, match=message):
            metric.compute(predictions=predictions, references=references)
    with pytest.raises(ValueError, match="average='macro'"):
        metric.compute(predictions=[[0.1], [0.2]], references=[[1], [0]], average="micro")
    with pytest.raises(ValueError, match="same shape"):
        accuracy([0, 1], [0])


def test_compute_metrics_fn_single_label():
    rng = np.random.default_rng(2)
    logits, labels = rng.normal(size=(20, 5)).astype(np.float32), rng.integers(0, 5, 20)
    compute_metrics = compute_metrics_fn("single_label_classification", id2label={i: str(i) for i in range(5)})
    results = compute_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    assert results == {"accuracy": accuracy_score(labels, logits.argmax(-1))}


def test_compute_metrics_fn_multi_label(multilabel):
    scores, targets = multilabel
    logits = 4 * scores - 2  # the sigmoid keeps the ranks of the scores, hence AP and AUC
    compute_metrics = compute_metrics_fn("multi_label_classification")
    # Extra model outputs come after the logits in a tuple; multi-label labels arrive as floats.
    eval_pred = EvalPrediction(predictions=(logits, np.zeros(3)), label_ids=targets.astype(np.float32))
    results = compute_metrics(eval_pred)
    assert_results_equal(results, sklearn_reference(scores, targets))
    assert all(isinstance(value, (int, float)) for value in results.values())  # loggable by Trainer


def test_compute_metrics_fn_checks():
    with pytest.raises(ValueError, match="single_label_classification, multi_label_classification"):
        compute_metrics_fn("regression")
    compute_metrics = compute_metrics_fn("multi_label_classification", id2label={0: "a", 1: "b"})
    with pytest.raises(ValueError, match="3 logit columns .* 2 labels"):
        compute_metrics(EvalPrediction(predictions=np.zeros((4, 3)), label_ids=np.zeros((4, 3))))
