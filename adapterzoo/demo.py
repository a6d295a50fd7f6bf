"""`adapterzoo demo`: the library's whole path, offline, on a backbone that was really pretrained.

It starts the zoo's local Hub, gets (pretraining once) the small ViT and CLIP, adapts the ViT to shapes it never saw
with VPT, LoRA and a linear probe (and the probe and LoRA on a random ViT of the same shape, to show what pretraining
brings), compares CLIP methods (`adapterzoo.demo_clip`: base-to-novel and few-shot) when their plugins are installed
and plots them, pushes the best ViT adapter to the Hub, loads it back by repo id and predicts.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import transformers

from adapterzoo import demo_clip, demo_plots
from adapterzoo.auto import AutoAdapter
from adapterzoo.data.builtin import builtin_dataset
from adapterzoo.demo_table import QUICK, DemoRow, DemoSizes, print_summary
from adapterzoo.pretraining import TARGET_SHAPES, local_hub, pretrained_backbone
from adapterzoo.remote_code import load_auto
from adapterzoo.training import evaluate, train

__all__ = ["DemoRow", "DemoSizes", "run_demo"]


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
    sizes = QUICK if quick else DemoSizes()
    output_dir = Path(output_dir)
    started = time.perf_counter()
    with local_hub(hub_root) as hub:
        _say(f"Hub: {hub.url}, repositories in {hub.settings.root}")
        vit = pretrained_backbone("vit", quick=quick, progress=progress)
        rows = _adapt_vit(vit, sizes, output_dir, progress)
        best = max((row for row in rows if row.backbone == vit), key=lambda row: row.accuracy)
        _share(best, vit, sizes, output_dir)
        rows += _compare_clip(sizes, quick, output_dir, progress)
    total = time.perf_counter() - started
    print_summary(rows, total)
    output_dir.mkdir(parents=True, exist_ok=True)
    plots = _plot(rows, output_dir)
    summary = {"rows": [asdict(row) for row in rows], "seconds": total, "quick": quick, "plots": plots}
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return rows


def _compare_clip(sizes: DemoSizes, quick: bool, output_dir: Path, progress: bool) -> list[DemoRow]:
    """The CLIP comparison, when a CLIP method beyond zero-shot is installed (else CLIP is not even pretrained)."""
    missing = demo_clip.missing(demo_clip.BASE_TO_NOVEL)
    if len(missing) == len(demo_clip.BASE_TO_NOVEL) - 1:
        _say("No CLIP method is installed (pip install adapterzoo-maple adapterzoo-training-free): skipping CLIP.")
        return []
    if missing:
        _say(f"Not installed, left out of the CLIP comparison: {', '.join(missing)}")
    clip = pretrained_backbone("clip", quick=quick, progress=progress)
    return demo_clip.compare(clip, sizes, output_dir, progress, _say)


def _plot(rows: list[DemoRow], output_dir: Path) -> list[str]:
    """The CLIP plots' file names in ``output_dir`` (none without CLIP rows, or without matplotlib: said why)."""
    if not any(row.protocol for row in rows):
        return []
    why_not = demo_plots.missing_plotting()
    if why_not:
        _say(f"{why_not}; the plots are left out.")
        return []
    paths = demo_plots.plot(rows, output_dir)
    _say(f"Plots: {', '.join(str(path) for path in paths)}")
    return [path.name for path in paths]


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


def _say(line: str) -> None:
    print(f"\n[adapterzoo demo] {line}" if not line.startswith("  ") else line, flush=True)
