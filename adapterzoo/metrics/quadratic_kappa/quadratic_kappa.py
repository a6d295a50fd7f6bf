"""Cohen's kappa with quadratic weights, the agreement measure of ordinal grading (e.g. diabetic retinopathy)."""

import datasets
import evaluate
import numpy as np


class QuadraticKappa(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Quadratic-weighted Cohen's kappa: 1 - sum(W*O) / sum(W*E), with W[i,j] = (i-j)^2/(C-1)^2, "
            "O the confusion matrix and E the outer product of its marginals scaled to the same total.",
            citation="Cohen, J. (1968). Weighted kappa. Psychological Bulletin 70(4).",
            inputs_description="predictions and references: ordinal class ids 0..C-1; num_classes (optional): C, "
            "default 1 + the largest id seen.",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, num_classes=None):
        predictions, references = np.asarray(predictions), np.asarray(references)
        if len(references) == 0:
            raise ValueError("Kappa of an empty set is undefined.")
        c = num_classes if num_classes is not None else int(max(predictions.max(), references.max())) + 1
        observed = np.zeros((c, c))
        np.add.at(observed, (references, predictions), 1)
        expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
        grades = np.arange(c)
        weights = (grades[:, None] - grades[None, :]) ** 2 / max(c - 1, 1) ** 2
        disagreement = (weights * expected).sum()
        kappa = 1.0 if disagreement == 0 else 1.0 - (weights * observed).sum() / disagreement
        return {"quadratic_kappa": float(kappa)}
