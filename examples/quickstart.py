"""Quickstart: build a small ViT locally, attach VPT-deep, train on the built-in shapes, save, reload, predict.

Runs offline on a CPU in well under a minute:

    python examples/quickstart.py --output outputs/quickstart

The ViT here has random weights (no pretraining), so accuracy stays modest: the point is the workflow.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import transformers

import adapterzoo
from adapterzoo import AutoAdapter
from adapterzoo.data import builtin_dataset


def build_small_vit(folder: Path, seed: int) -> Path:
    """A 4-layer ViT for 32x32 images, saved like a Hub checkpoint (config, weights, image processor)."""
    torch.manual_seed(seed)
    config = transformers.ViTConfig(
        hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128, image_size=32, patch_size=4
    )
    transformers.ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("outputs/quickstart"), help="where to write everything")
    parser.add_argument("--epochs", type=int, default=30, help="passes over the training images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    backbone = build_small_vit(args.output / "backbone", args.seed)
    shapes = ["circle", "square", "triangle", "cross"]
    train = builtin_dataset("shapes", "train", num_per_class=48, classes=shapes, seed=args.seed)
    test = builtin_dataset("shapes", "test", num_per_class=16, classes=shapes, seed=args.seed)

    torch.manual_seed(args.seed)
    model = AutoAdapter.from_backbone(str(backbone), method="vpt", labels=shapes, num_tokens=8, deep=True)
    result = adapterzoo.train(
        model, train, test, epochs=args.epochs, batch_size=32, lr=1e-2, optimizer="adamw", seed=args.seed,
        output_dir=args.output / "run",
    )  # fmt: skip
    print(f"test accuracy: {result.metrics['accuracy']:.1%} (chance: {1 / len(shapes):.0%})")

    saved = model.save_pretrained(args.output / "vpt-shapes")
    reloaded = AutoAdapter.from_pretrained(saved)
    print(f"saved to {saved} and reloaded: test accuracy {adapterzoo.evaluate(reloaded, test)['accuracy']:.1%}")
    sample = test.select(range(4))
    for label, ranked in zip(sample["label"], reloaded.predict(list(sample["image"]), top_k=2), strict=True):
        guesses = ", ".join(f"{p['label']} {p['score']:.2f}" for p in ranked)
        print(f"true: {shapes[label]:<8} predicted: {guesses}")


if __name__ == "__main__":
    main()
