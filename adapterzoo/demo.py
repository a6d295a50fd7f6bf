"""`adapterzoo demo`: the library's whole path, offline, on a backbone that was really pretrained.

It starts the zoo's local Hub, gets (pretraining once) the small ViT and CLIP, adapts the ViT to shapes it never saw
with VPT, LoRA and a linear probe (and the probe and LoRA on a random ViT of the same shape, to show what pretraining
brings), runs CLIP's base-to-novel protocol with zero-shot CLIP, CoOp and MaPLe when their plugin is installed, pushes
the best ViT adapter to the Hub, loads it back by repo id and predicts.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import transformers

from adapterzoo.auto import AdapterModel, AutoAdapter
from adapterzoo.data.builtin import SHAPES, builtin_dataset
from adapterzoo.errors import MethodNotFoundError
from adapterzoo.pretraining import TARGET_SHAPES, local_hub, pretrained_backbone, recipe_for
from adapterzoo.registry import get_method
from adapterzoo.remote_code import load_auto
from adapterzoo.training import base_to_novel, evaluate, train


@dataclass
class DemoRow:
    """One adapted model: its method, backbone, trainable parameters, scores and training time."""

    method: str
    backbone: str
    trainable: int
    accuracy: float | None = None
    base: float | None = None
    novel: float | None = None
    harmonic_mean: float | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class DemoSizes:
    """How much data and training the demo uses (the quick sizes are for tests)."""

    train_per_class: int = 64
    test_per_class: int = 50
    epochs: int = 30
    shots: int = 16


VIT_METHODS: list[tuple[str, dict[str, Any]]] = [
    ("linear-probe", {}),
    ("vpt", {"num_tokens": 8, "deep": True}),
    ("lora", {"r": 8, "lora_alpha": 8}),
]
ALSO_ON_A_RANDOM_VIT = ("linear-probe", "lora")


def run_demo(
    *,
    quick: bool = False,
    hub_root: str | Path | None = None,
    output_dir: str | Path = "outputs/demo",
    progress: bool = True,
) -> list[DemoRow]:
    """Run the demo, print its summary table, write it to ``output_dir/summary.json`` and return its rows."""
    sizes = DemoSizes(train_per_class=4, test_per_class=4, epochs=1, shots=2) if quick else DemoSizes()
    output_dir = Path(output_dir)
    started = time.perf_counter()
    with local_hub(hub_root) as hub:
        _say(f"Hub: {hub.url}, repositories in {hub.settings.root}")
        vit = pretrained_backbone("vit", quick=quick, progress=progress)
        rows = _adapt_vit(vit, sizes, output_dir, progress)
        best = max((row for row in rows if row.backbone == vit), key=lambda row: row.accuracy)
        _share(best, vit, sizes, output_dir)
        if _installed("maple"):
            clip = pretrained_backbone("clip", quick=quick, progress=progress)
            rows += _base_to_novel(clip, sizes, output_dir, progress)
        else:
            _say("MaPLe is not installed (pip install adapterzoo-maple): skipping CLIP's base-to-novel part.")
    total = time.perf_counter() - started
    _print_summary(rows, total)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = {"rows": [asdict(row) for row in rows], "seconds": total, "quick": quick}
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return rows


def _adapt_vit(vit: str, sizes: DemoSizes, output_dir: Path, progress: bool) -> list[DemoRow]:
    """Each method on the pretrained ViT, and some on a random ViT of the same shape, on the target shapes."""
    _say(f"Adapting {vit} to shapes it never saw ({', '.join(TARGET_SHAPES)})")
    train_data = builtin_dataset("shapes", "train", num_per_class=sizes.train_per_class, classes=TARGET_SHAPES)
    test_data = builtin_dataset("shapes", "test", num_per_class=sizes.test_per_class, classes=TARGET_SHAPES)
    torch.manual_seed(0)
    random_vit = transformers.ViTModel(load_auto("AutoConfig", vit), add_pooling_layer=False)
    processor = load_auto("AutoImageProcessor", vit)
    runs = [(method, options, vit) for method, options in VIT_METHODS]
    runs += [(method, options, "random init") for method, options in VIT_METHODS if method in ALSO_ON_A_RANDOM_VIT]
    rows = []
    for method, options, backbone in runs:
        torch.manual_seed(0)
        source = vit if backbone == vit else random_vit
        model = AutoAdapter.from_backbone(
            source, method=method, labels=TARGET_SHAPES, image_processor=processor, **options
        )
        name = method if backbone == vit else f"{method}-random-init"
        result = train(
            model, train_data, epochs=sizes.epochs, batch_size=32, output_dir=output_dir / name, progress=progress
        )
        accuracy = evaluate(model, test_data)["accuracy"]
        rows.append(DemoRow(method, backbone, model.trainable_parameters, accuracy, seconds=result.train_seconds))
    return rows


def _share(best: DemoRow, vit: str, sizes: DemoSizes, output_dir: Path) -> None:
    """Push the best adapter to the Hub, load it back by repo id, check it is the same model, and predict."""
    repo_id = f"demo/{best.method}-shapes"
    model = AutoAdapter.from_pretrained(output_dir / best.method / "final")
    info = model.push_to_hub(repo_id, commit_message=f"{best.method} on {vit}: accuracy {best.accuracy:.3f}")
    _say(f"Pushed the best adapter ({best.method}) to {repo_id} at {info.oid[:12]}; loading it back by repo id")
    loaded = AutoAdapter.from_pretrained(repo_id)
    test_data = builtin_dataset("shapes", "test", num_per_class=1, classes=TARGET_SHAPES)
    images, labels = list(test_data["image"]), list(test_data["label"])
    pixel_values = loaded.image_processor(images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        same = torch.equal(loaded(pixel_values).logits, model.eval()(pixel_values).logits)
    _say(f"Reloaded adapter gives {'identical' if same else 'DIFFERENT'} logits")
    for ranked, label in zip(loaded.predict(images, top_k=1), labels, strict=True):
        _say(f"  a {TARGET_SHAPES[label]}: predicted {ranked[0]['label']} ({ranked[0]['score']:.2f})")


def _base_to_novel(clip: str, sizes: DemoSizes, output_dir: Path, progress: bool) -> list[DemoRow]:
    """Zero-shot CLIP, CoOp and MaPLe under the base-to-novel protocol on all eight shapes."""
    _say(f"Base-to-novel on {clip}: train {sizes.shots} shots of 4 base shapes, test base and novel shapes")
    train_data = builtin_dataset("shapes", "train", num_per_class=sizes.shots)
    test_data = builtin_dataset("shapes", "test", num_per_class=sizes.test_per_class)
    from adapterzoo_maple import scaled_depth  # the plugin's public helper (run only when MaPLe is installed)

    layers = recipe_for("clip", quick=clip.endswith("quick")).num_layers
    methods = [("zero-shot", {}), ("coop", {}), ("maple", {"depth": scaled_depth(layers)})]
    rows = []
    for method, options in methods:
        torch.manual_seed(0)
        model: AdapterModel = AutoAdapter.from_backbone(clip, method=method, labels=SHAPES, **options)
        started = time.perf_counter()
        epochs = {"epochs": 1} if sizes.epochs == 1 else {}  # the quick run; otherwise each method's recipe
        result = base_to_novel(
            model, train_data, test_data, shots=sizes.shots, output_dir=output_dir / method, progress=progress,
            **epochs,
        )  # fmt: skip
        rows.append(
            DemoRow(
                method,
                clip,
                model.trainable_parameters,
                base=result.base_accuracy,
                novel=result.novel_accuracy,
                harmonic_mean=result.harmonic_mean,
                seconds=time.perf_counter() - started,
            )  # fmt: skip
        )
    return rows


def _installed(method: str) -> bool:
    try:
        get_method(method)
    except MethodNotFoundError:
        return False
    return True


def _say(line: str) -> None:
    print(f"\n[adapterzoo demo] {line}" if not line.startswith("  ") else line, flush=True)


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _print_summary(rows: list[DemoRow], seconds: float) -> None:
    print(
        f"\n{'method':<14}{'backbone':<28}{'trainable':>10}{'accuracy':>10}{'base':>8}{'novel':>8}{'HM':>8}{'time':>8}"
    )
    for row in rows:
        print(
            f"{row.method:<14}{row.backbone:<28}{row.trainable:>10,}{_percent(row.accuracy):>10}"
            f"{_percent(row.base):>8}{_percent(row.novel):>8}{_percent(row.harmonic_mean):>8}{row.seconds:>7.1f}s"
        )
    print(f"\nTotal: {seconds:.0f} s. Accuracy on held-out test images; base/novel/HM: CLIP's base-to-novel protocol.")
