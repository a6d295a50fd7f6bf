"""Base / novel / harmonic-mean accuracy: the base-to-novel protocol of CLIP prompt learning (CoOp, MaPLe)."""

import datasets
import evaluate
import numpy as np

SPLITS = ("base", "novel")


class BaseNovelAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Accuracy on the base classes and on the novel classes, each predicted by a classifier over "
            "its own half, and their harmonic mean HM = 2*B*N / (B+N).",
            citation="Zhou et al., Conditional Prompt Learning for Vision-Language Models, CVPR 2022.",
            inputs_description="predictions and references: class ids within each example's half; splits: 'base' "
            "or 'novel' for each example.",
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                    "splits": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, predictions, references, splits):
        predictions, references, splits = np.asarray(predictions), np.asarray(references), np.asarray(splits)
        accuracy = {}
        for split in SPLITS:
            chosen = splits == split
            if not chosen.any():
                raise ValueError(f"No '{split}' examples: the protocol needs both halves.")
            accuracy[split] = float((predictions[chosen] == references[chosen]).mean())
        base, novel = accuracy["base"], accuracy["novel"]
        harmonic = 0.0 if base + novel == 0 else 2 * base * novel / (base + novel)
        return {"base_accuracy": base, "novel_accuracy": novel, "harmonic_mean": harmonic}
