"""Quickstart, VPT on a ViT: attach VPT-deep to a pretrained ViT, train on shapes it never saw, save, reload, predict.

    python examples/quickstart.py                                  # the zoo's small pretrained ViT, offline
    python examples/quickstart.py --backbone google/vit-base-patch16-224-in21k

Without --backbone, the zoo's small ViT (pretrained here on four other shapes) is taken from the local Hub, where the
first run pretrains and publishes it (under a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import adapterzoo
from adapterzoo import AutoAdapter
from adapterzoo.data import builtin_dataset
from adapterzoo.pretraining import TARGET_SHAPES, zoo_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", help="a Hub id or a folder (default: the zoo's small pretrained ViT)")
    parser.add_argument("--output", type=Path, default=Path("outputs/quickstart"), help="where to write everything")
    parser.add_argument("--epochs", type=int, default=30, help="passes over the training images")
    parser.add_argument("--quick", action="store_true", help="the seconds-long backbone and one epoch (for tests)")
    args = parser.parse_args()

    shapes = list(TARGET_SHAPES)
    train = builtin_dataset("shapes", "train", num_per_class=64, classes=shapes)
    test = builtin_dataset("shapes", "test", num_per_class=25, classes=shapes)
    with zoo_backbone("vit", args.backbone, quick=args.quick) as backbone:
        torch.manual_seed(0)
        model = AutoAdapter.from_backbone(backbone, method="vpt", labels=shapes, num_tokens=8, deep=True)
        result = adapterzoo.train(
            model, train, test, epochs=1 if args.quick else args.epochs, batch_size=32, output_dir=args.output / "run"
        )
        print(f"test accuracy: {result.metrics['accuracy']:.1%} (chance: {1 / len(shapes):.0%})")

        saved = model.save_pretrained(args.output / "vpt-shapes")
        reloaded = AutoAdapter.from_pretrained(saved)  # loads the backbone it records, at the same revision
        print(f"saved to {saved} and reloaded: test accuracy {adapterzoo.evaluate(reloaded, test)['accuracy']:.1%}")
        sample = test.select(range(4))
        for label, ranked in zip(sample["label"], reloaded.predict(list(sample["image"]), top_k=2), strict=True):
            guesses = ", ".join(f"{p['label']} {p['score']:.2f}" for p in ranked)
            print(f"true: {shapes[label]:<8} predicted: {guesses}")


if __name__ == "__main__":
    main()
