# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""AudioSet-style multi-label tagging scores (mAP, mAUC, d′) as an `evaluate` metric.

Load it offline with `maskspec_hf.evaluation.metrics.load_metric("audioset_map")`.
"""

import datasets
import evaluate

# Absolute import on purpose: evaluate runs a copy of this script from its modules cache, where a relative
# import of the package would not resolve. The maths lives in `maskspec_hf.evaluation.metrics.audioset_map`.
from maskspec_hf.evaluation.metrics import audioset_map


_DESCRIPTION = """\
Multi-label tagging scores as reported for AudioSet: mAP, the macro average of the per-class average precision
over the classes with at least one positive reference; mAUC, the macro average of the per-class ROC AUC over the
classes with both positive and negative references; and d' = sqrt(2) * Phi^-1(mAUC). Classes where a score is
undefined are skipped (and counted) rather than scored 0.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): class scores (probabilities or logits), [num_examples, num_classes].
    references (`list` of `list` of `int`): multi-hot labels (0 or 1), [num_examples, num_classes].
    average (`str`, defaults to `"macro"`): only `"macro"` is supported.
Returns:
    mAP (`float`): mean average precision (NaN if no class has a positive).
    mAUC (`float`): mean ROC AUC (NaN if no class has both label values).
    d_prime (`float`): sqrt(2) * Phi^-1(mAUC).
    num_examples (`int`): number of evaluated examples.
    num_classes (`int`): number of classes.
    num_classes_skipped_ap (`int`): classes without a positive reference, left out of mAP.
    num_classes_skipped_auc (`int`): classes whose references are all positive or all negative, left out of mAUC.
Examples:
    >>> from maskspec_hf.evaluation.metrics import load_metric
    >>> metric = load_metric("audioset_map")
    >>> results = metric.compute(predictions=[[0.9, 0.2], [0.1, 0.3]], references=[[1, 0], [0, 0]])
    >>> results["mAP"], results["num_classes_skipped_ap"]
    (1.0, 1)
"""

_CITATION = """\
@inproceedings{gemmeke2017audioset,
  title={Audio Set: An ontology and human-labeled dataset for audio events},
  author={Gemmeke, Jort F. and Ellis, Daniel P. W. and Freedman, Dylan and Jansen, Aren and Lawrence, Wade and
          Moore, R. Channing and Plakal, Manoj and Ritter, Marvin},
  booktitle={ICASSP},
  year={2017}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AudiosetMap(evaluate.Metric):
    """Multi-label mAP / mAUC / d′ with AudioSet conventions."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.average_precision_score.html",
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.roc_auc_score.html",
            ],
        )

    def _compute(self, predictions, references, average="macro"):
        return audioset_map(predictions, references, average=average)
