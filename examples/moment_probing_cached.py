"""Moment Probing on frozen features computed once: the same model, trained faster.

MP's head reads the backbone's final tokens (CLS and cross-covariances of patch tokens), and without PSRP nothing
before the head trains, so the trainer runs the frozen backbone once over the training and evaluation images and
trains the head on the stored features. This script trains MP both ways and compares time and accuracy.

    python examples/moment_probing_cached.py [--backbone <hub id or folder>] [--epochs 30]
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
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--output", type=Path, default=Path("outputs/moment-probing"))
    parser.add_argument("--quick", action="store_true", help="the seconds-long backbone (for tests)")
    args = parser.parse_args()

    shapes = list(TARGET_SHAPES)
    train = builtin_dataset("shapes", "train", num_per_class=64, classes=shapes)
    test = builtin_dataset("shapes", "test", num_per_class=25, classes=shapes)
    rows = []
    with zoo_backbone("vit", args.backbone, quick=args.quick) as backbone:
        for cache in ("yes", "no"):
            torch.manual_seed(0)
            model = AutoAdapter.from_backbone(backbone, method="moment-probing", labels=shapes, hidden_dim=64)
            result = adapterzoo.train(
                model, train, epochs=args.epochs, batch_size=32, cache_features=cache, output_dir=args.output / cache
            )
            rows.append((cache, result.train_seconds, adapterzoo.evaluate(model, test)["accuracy"]))

    print(f"\n{'cached features':<18}{'training':>10}{'accuracy':>10}")
    for cache, seconds, accuracy in rows:
        print(f"{cache:<18}{seconds:>9.1f}s{accuracy:>10.1%}")
    print(f"speed-up: {rows[1][1] / rows[0][1]:.1f}x")


if __name__ == "__main__":
    main()
