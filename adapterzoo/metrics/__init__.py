"""The zoo's metrics, shipped as local `evaluate` modules so they load with no network.

``load_metric("accuracy")`` is ``evaluate.load(<this folder>/accuracy)``: a regular `evaluate.EvaluationModule`, with
``add_batch``, ``compute`` and distributed evaluation as evaluate provides.
"""

from __future__ import annotations

from pathlib import Path

import evaluate

METRICS = ("accuracy", "top_k_accuracy", "f1", "quadratic_kappa", "base_novel_accuracy")


def metric_path(name: str) -> Path:
    """The folder of the `evaluate` module for ``name``."""
    if name not in METRICS:
        raise ValueError(f"Unknown metric '{name}'; adapterzoo ships: {', '.join(METRICS)}.")
    return Path(__file__).parent / name


def load_metric(name: str, **kwargs) -> evaluate.EvaluationModule:
    """Load one of the shipped metrics offline (``kwargs`` go to `evaluate.load`)."""
    return evaluate.load(str(metric_path(name)), **kwargs)


__all__ = ["METRICS", "load_metric", "metric_path"]
