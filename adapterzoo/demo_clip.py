"""The demo's CLIP part: zero-shot CLIP, the prompt learners (CoOp, CoCoOp, MaPLe) and the fitted methods
(Tip-Adapter, Tip-Adapter-F, GDA) under the base-to-novel protocol, and GDA's and Tip-Adapter's few-shot curves on
all eight shapes; each method that is installed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import torch

from adapterzoo.auto import AdapterModel, AutoAdapter
from adapterzoo.data.builtin import SHAPES, builtin_dataset
from adapterzoo.demo_table import DemoRow, DemoSizes
from adapterzoo.errors import MethodNotFoundError, PluginLoadError
from adapterzoo.pretraining import recipe_for
from adapterzoo.registry import KNOWN_DISTRIBUTIONS, get_method
from adapterzoo.training import base_to_novel, evaluate, few_shot_curve

BASE_TO_NOVEL = ("zero-shot", "coop", "cocoop", "maple", "tip-adapter", "tip-adapter-f", "gda")
FEW_SHOT = ("gda", "tip-adapter")
FITTED = ("tip-adapter", "tip-adapter-f", "gda")


def unavailable(method: str) -> str | None:
    """Why ``method`` cannot run here (not installed, with the distribution that provides it, or failing to load),
    or None when it can."""
    try:
        get_method(method)
    except MethodNotFoundError:
        return f"{method} (pip install {KNOWN_DISTRIBUTIONS.get(method, 'its plugin')})"
    except PluginLoadError as error:
        return f"{method} ({error})"
    return None


def installed(method: str) -> bool:
    return unavailable(method) is None


def method_options(method: str, clip: str, sizes: DemoSizes) -> dict[str, Any]:
    """The demo's options of each method: MaPLe's depth scaled to the small CLIP, the fitted methods' augmented
    views, Tip-Adapter's search grid, and GDA's base-to-novel variant."""
    if method == "maple":
        from adapterzoo_maple import scaled_depth  # the plugin's public helper (MaPLe is installed here)

        return {"depth": scaled_depth(recipe_for("clip", quick=clip.endswith("quick")).num_layers)}
    options: dict[str, Any] = {"augment_views": sizes.views} if method in FITTED else {}
    if method.startswith("tip-adapter"):
        options["search_steps"] = list(sizes.tip_search_steps)
    if method == "gda":
        options.update(variant="base-to-novel", neighbours=sizes.gda_neighbours)
    return options


def missing(methods: tuple[str, ...]) -> list[str]:
    """Why each method of ``methods`` that cannot run here cannot."""
    return [why for why in map(unavailable, methods) if why is not None]


def compare(clip: str, sizes: DemoSizes, output_dir: Path, progress: bool, say: Callable[[str], None]) -> list[DemoRow]:
    """Every installed method under base-to-novel, then the few-shot curves."""
    counts = {"train": max(sizes.shots, *sizes.few_shot), "validation": sizes.validation_per_class,
              "test": sizes.test_per_class}  # fmt: skip
    splits = {split: builtin_dataset("shapes", split, num_per_class=count) for split, count in counts.items()}
    say(f"Base-to-novel on {clip}: adapt on {sizes.shots} shots of 4 base shapes, test base and novel shapes")
    rows = [_base_to_novel(m, clip, splits, sizes, output_dir, progress) for m in BASE_TO_NOVEL if installed(m)]
    say(f"Few-shot on {clip}: fit on 1 to {max(sizes.few_shot)} shots of all 8 shapes, test all 8")
    rows.append(_zero_shot_on_all(clip, splits["test"]))
    for method in (m for m in FEW_SHOT if installed(m)):
        options = method_options(method, clip, sizes)
        for name in ("variant", "neighbours"):  # the few-shot protocol uses GDA's few-shot estimator
            options.pop(name, None)

        def build(method: str = method, options: dict = options) -> AdapterModel:
            torch.manual_seed(0)
            return AutoAdapter.from_backbone(clip, method=method, labels=SHAPES, **options)

        points = few_shot_curve(
            build, splits["train"], splits["test"], validation_dataset=splits["validation"], shots=sizes.few_shot
        )
        rows += [DemoRow(method, clip, p.trainable, p.accuracy, seconds=p.adaptation.seconds, protocol="few-shot",
                         shots=p.shots) for p in points]  # fmt: skip
    return rows


def _base_to_novel(method: str, clip: str, splits: dict, sizes: DemoSizes, output_dir: Path, progress: bool) -> DemoRow:
    torch.manual_seed(0)
    options = method_options(method, clip, sizes)
    model = AutoAdapter.from_backbone(clip, method=method, labels=SHAPES, **options)
    epochs = {"epochs": 1} if sizes.epochs == 1 else {}  # the quick run; otherwise each method's recipe
    result = base_to_novel(
        model, splits["train"], splits["test"], validation_dataset=splits["validation"], shots=sizes.shots,
        output_dir=output_dir / method, progress=progress, **epochs,
    )  # fmt: skip
    return DemoRow(
        method, clip, model.trainable_parameters, base=result.base_accuracy, novel=result.novel_accuracy,
        harmonic_mean=result.harmonic_mean, seconds=result.seconds, protocol="base-to-novel", shots=sizes.shots,
    )  # fmt: skip


def _zero_shot_on_all(clip: str, test: datasets.Dataset) -> DemoRow:
    """Zero-shot CLIP on all eight shapes: the few-shot curves' start (0 shots)."""
    model = AutoAdapter.from_backbone(clip, method="zero-shot", labels=SHAPES)
    return DemoRow("zero-shot", clip, 0, evaluate(model, test)["accuracy"], protocol="few-shot", shots=0)
