# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Accuracy as an `evaluate` metric, loadable offline with `maskspec_hf.evaluation.metrics.load_metric("accuracy")`."""

import datasets
import evaluate

# Absolute import on purpose: evaluate runs a copy of this script from its modules cache, where a relative
# import of the package would not resolve. The maths lives in `maskspec_hf.evaluation.metrics.accuracy`.
from maskspec_hf.evaluation.metrics import accuracy


_DESCRIPTION = """\
Accuracy: the fraction of predictions equal to their reference label (scikit-learn's `accuracy_score`).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): ground-truth class ids.
    normalize (`bool`, defaults to `True`): if `False`, return the number of correct predictions instead.
    sample_weight (`list` of `float`, *optional*): per-example weights.
Returns:
    accuracy (`float`): in [0, 1], or a count with `normalize=False`.
Examples:
    >>> from maskspec_hf.evaluation.metrics import load_metric
    >>> load_metric("accuracy").compute(predictions=[0, 1, 1], references=[0, 1, 0])
    {'accuracy': 0.6666666666666666}
"""

_CITATION = """\
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V. and Thirion, B. and Grisel, O. and
          Blondel, M. and Prettenhofer, P. and Weiss, R. and Dubourg, V. and Vanderplas, J. and Passos, A. and
          Cournapeau, D. and Brucher, M. and Perrot, M. and Duchesnay, E.},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    """Single-label classification accuracy."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"],
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        return accuracy(predictions, references, normalize=normalize, sample_weight=sample_weight)
