"""Macro F1: the unweighted mean over classes of each class's F1 score."""

import datasets
import evaluate
import numpy as np


class MacroF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Macro-averaged F1 over classes; a class absent from both predictions and references is "
            "left out of the mean, one with no true or predicted positive scores 0.",
            citation="",
            inputs_description="predictions: predicted class ids; references: true class ids; num_classes "
            "(optional): classes to average over, default all classes seen.",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, num_classes=None):
        predictions, references = np.asarray(predictions), np.asarray(references)
        if len(references) == 0:
            raise ValueError("F1 of an empty set is undefined.")
        classes = range(num_classes) if num_classes is not None else np.union1d(predictions, references)
        scores = []
        for c in classes:
            true_positive = np.sum((predictions == c) & (references == c))
            predicted, actual = np.sum(predictions == c), np.sum(references == c)
            if predicted + actual == 0:
                continue
            scores.append(2 * true_positive / (predicted + actual))
        return {"macro_f1": float(np.mean(scores))}
