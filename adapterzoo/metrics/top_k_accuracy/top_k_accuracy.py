"""Top-k accuracy: the fraction of examples whose reference is among the k highest-scored classes."""

import datasets
import evaluate
import numpy as np


class TopKAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Top-k accuracy: the reference class is among the k classes with the highest scores.",
            citation="",
            inputs_description="predictions: one score per class for each example; references: true class ids; "
            "k (default 5): how many top-scored classes count.",
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, k=5):
        scores, references = np.asarray(predictions), np.asarray(references)
        if len(references) == 0:
            raise ValueError("Top-k accuracy of an empty set is undefined.")
        k = min(k, scores.shape[1])
        # A stable sort on the negated scores ranks ties by class id, so the result never depends on sort internals.
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return {"top_k_accuracy": float((top == references[:, None]).any(axis=1).mean()), "k": k}
