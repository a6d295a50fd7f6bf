"""The shipped metrics load offline as evaluate modules and compute what their formulas say."""

from __future__ import annotations

import evaluate
import numpy as np
import pytest

from adapterzoo.metrics import METRICS, load_metric, metric_path


def test_every_metric_is_a_local_evaluate_module() -> None:
    for name in METRICS:
        module = load_metric(name)
        assert isinstance(module, evaluate.EvaluationModule)
        assert (metric_path(name) / f"{name}.py").is_file()
    with pytest.raises(ValueError, match="Unknown metric 'bleu'"):
        load_metric("bleu")


def test_accuracy() -> None:
    assert load_metric("accuracy").compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2]) == {"accuracy": 0.75}


def test_top_k_accuracy_counts_the_reference_among_the_k_best() -> None:
    scores = [[0.1, 0.5, 0.4], [0.8, 0.15, 0.05], [0.3, 0.3, 0.4]]
    metric = load_metric("top_k_accuracy")
    assert metric.compute(predictions=scores, references=[2, 2, 1], k=1)["top_k_accuracy"] == 0.0
    # Row 3 ties classes 0 and 1: the lower id ranks first, so class 1 is not in its top 2.
    assert metric.compute(predictions=scores, references=[2, 2, 1], k=2)["top_k_accuracy"] == pytest.approx(1 / 3)
    assert metric.compute(predictions=scores, references=[2, 2, 0], k=2)["top_k_accuracy"] == pytest.approx(2 / 3)


def test_macro_f1_averages_per_class_f1() -> None:
    predictions, references = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    f1 = [2 * 1 / (2 + 2), 2 * 2 / (2 + 3), 2 * 1 / (2 + 1)]  # 2 TP / (predicted + actual), per class
    result = load_metric("f1").compute(predictions=predictions, references=references)
    assert result["macro_f1"] == pytest.approx(np.mean(f1))


def test_quadratic_kappa_against_its_formula() -> None:
    rng = np.random.default_rng(0)
    references = rng.integers(0, 5, 200)
    predictions = np.clip(references + rng.integers(-1, 2, 200), 0, 4)
    c = 5
    observed = np.array([[np.sum((references == i) & (predictions == j)) for j in range(c)] for i in range(c)])
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    weights = np.array([[(i - j) ** 2 / (c - 1) ** 2 for j in range(c)] for i in range(c)])
    kappa = 1 - (weights * observed).sum() / (weights * expected).sum()
    metric = load_metric("quadratic_kappa")
    assert metric.compute(predictions=predictions, references=references)["quadratic_kappa"] == pytest.approx(kappa)
    assert metric.compute(predictions=references, references=references)["quadratic_kappa"] == 1.0


def test_base_novel_accuracy_and_their_harmonic_mean() -> None:
    result = load_metric("base_novel_accuracy").compute(
        predictions=[0, 1, 1, 0, 1, 0], references=[0, 1, 0, 0, 0, 0], splits=["base"] * 3 + ["novel"] * 3
    )
    base, novel = 2 / 3, 2 / 3
    assert result == pytest.approx({"base_accuracy": base, "novel_accuracy": novel, "harmonic_mean": 2 / 3})
    assert 2 * 0.8228 * 0.7514 / (0.8228 + 0.7514) == pytest.approx(0.7855, abs=1e-4)  # MaPLe's table-level HM
    with pytest.raises(ValueError, match="No 'novel' examples"):
        load_metric("base_novel_accuracy").compute(predictions=[0], references=[0], splits=["base"])
