"""GDA and Tip-Adapter(-F) under CLIP's protocols: base-to-novel (fitted on the base classes, searched on the base
half of a validation split) and the few-shot curve, each against the same steps written out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapterzoo import AutoAdapter, base_to_novel, evaluate, few_shot_curve, fit
from adapterzoo.data import builtin_dataset
from adapterzoo.data.loading import class_split, few_shot

SHAPES = ["circle", "square", "triangle", "cross"]
BASE = SHAPES[:2]


@pytest.fixture(scope="module")
def data() -> dict:
    return {
        "train": builtin_dataset("shapes", "train", num_per_class=4, classes=SHAPES),
        "validation": builtin_dataset("shapes", "validation", num_per_class=4, classes=SHAPES, seed=1),
        "test": builtin_dataset("shapes", "test", num_per_class=6, classes=SHAPES, seed=2),
    }


def test_base_to_novel_fits_on_the_base_half_and_leaves_the_novel_half_zero_shot(clip_path: Path, data) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method="gda", labels=SHAPES, augment_views=0)
    result = base_to_novel(model, data["train"], data["test"], validation_dataset=data["validation"], shots=3)
    assert model.labels == BASE and result.training is None and set(result.fitted) == {"alpha", "accuracy"}
    # By hand: GDA built for the base classes, fitted on 3 shots of them, searched on their validation images.
    by_hand = AutoAdapter.from_backbone(str(clip_path), method="gda", labels=BASE, augment_views=0)
    chosen = fit(by_hand, few_shot(class_split(data["train"], "base"), 3), class_split(data["validation"], "base"))
    assert chosen == result.fitted
    assert result.base_accuracy == pytest.approx(evaluate(by_hand, class_split(data["test"], "base"))["accuracy"])
    # The fitted head knows no novel class: the novel half is zero-shot CLIP's.
    zero_shot = AutoAdapter.from_backbone(str(clip_path), method="zero-shot", labels=SHAPES)
    novel = base_to_novel(zero_shot, data["train"], data["test"]).novel_accuracy
    assert result.novel_accuracy == novel and result.seconds > 0


def test_base_to_novel_fits_trains_and_fits_again_tip_adapter_f(clip_path: Path, data, tmp_path: Path) -> None:
    options = {"augment_views": 0, "search_scale": [50, 50], "search_steps": [20, 10]}
    model = AutoAdapter.from_backbone(str(clip_path), method="tip-adapter-f", labels=SHAPES, **options)
    result = base_to_novel(
        model, data["train"], data["test"], validation_dataset=data["validation"], shots=2, epochs=2, batch_size=2,
        augment=False, output_dir=tmp_path, progress=False,
    )  # fmt: skip
    assert result.training.steps == 4  # 2 shots x 2 base classes, batch 2, two epochs
    assert model.trainable_parameters == 2 * 2 * 16  # the keys: base classes x shots x D
    assert set(result.fitted) == {"alpha", "beta", "accuracy"} and result.fitted["alpha"] != 1.17  # searched again
    assert 0 <= result.harmonic_mean <= 1


def test_a_fitted_method_without_a_search_split_is_refused_before_any_work(clip_path: Path, data) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method="tip-adapter", labels=SHAPES, augment_views=0)
    with pytest.raises(ValueError, match="'tip-adapter' is fitted.*on a validation split: pass validation_dataset"):
        base_to_novel(model, data["train"], data["test"])
    assert model.labels == SHAPES  # nothing was done, not even the switch to the base classes
    built = []

    def build():
        built.append(AutoAdapter.from_backbone(str(clip_path), method="gda", labels=SHAPES))
        return built[-1]

    with pytest.raises(ValueError, match="'gda' is fitted"):
        few_shot_curve(build, data["train"], data["test"], shots=(2,))
    assert built[0].task_model.feature_logits.gda_alpha["default"] == 0


def test_the_few_shot_curve_fits_a_fresh_model_per_shot_count(clip_path: Path, data) -> None:
    def build(method: str, **options):
        return lambda: AutoAdapter.from_backbone(str(clip_path), method=method, labels=SHAPES, **options)

    tip = {"augment_views": 2, "search_scale": [50, 50], "search_steps": [20, 10]}
    curve = {"validation_dataset": data["validation"]}
    points = few_shot_curve(build("tip-adapter", **tip), data["train"], data["test"], shots=(1, 2), **curve)
    assert [(p.shots, p.trainable) for p in points] == [(1, 0), (2, 0)]
    by_hand = build("tip-adapter", **tip)()
    assert fit(by_hand, few_shot(data["train"], 2), data["validation"]) == points[1].adaptation.fitted
    assert points[1].accuracy == pytest.approx(evaluate(by_hand, data["test"])["accuracy"])
    assert len(by_hand.task_model.feature_logits.tip_keys["default"]) == 2 * len(SHAPES)
    # One shot: GDA's covariance takes each augmented view as a sample; without views, fitting refuses it.
    (gda,) = few_shot_curve(build("gda", augment_views=2), data["train"], data["test"], shots=(1,), **curve)
    assert gda.adaptation.fitted["alpha"] > 0 and 0 <= gda.accuracy <= 1
    with pytest.raises(ValueError, match=r"fewer than two examples.*augment_views > 1"):
        few_shot_curve(build("gda", augment_views=0), data["train"], data["test"], shots=(1,), **curve)


def test_the_few_shot_curve_only_tests_zero_shot_clip(clip_path: Path, data) -> None:
    points = few_shot_curve(
        lambda: AutoAdapter.from_backbone(str(clip_path), method="zero-shot", labels=SHAPES),
        data["train"], data["test"], shots=(1, 4),
    )  # fmt: skip
    assert points[0].accuracy == points[1].accuracy and points[0].adaptation.training is None
    with pytest.raises(ValueError, match="at least 1"):
        few_shot_curve(lambda: None, data["train"], data["test"], shots=(0,))
