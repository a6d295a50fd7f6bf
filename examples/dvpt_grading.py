"""DVPT on an ordinal grading task, against linear probing and full fine-tuning: accuracy and quadratic kappa.

The task is the built-in `counts` data: grade an image by how many objects it shows, one to five, the way DVPT's
paper grades diabetic retinopathy. Quadratic-weighted kappa rewards near misses over far ones.

    python examples/dvpt_grading.py [--backbone <hub id or folder>] [--epochs 10]

Without --backbone, the zoo's small ViT (pretrained here to tell shapes apart, never to count them) is taken from the
local Hub, where the first run pretrains and publishes it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import adapterzoo
from adapterzoo import AutoAdapter
from adapterzoo.data import COUNTS, builtin_dataset
from adapterzoo.pretraining import zoo_backbone

METHODS = [("dvpt", {"num_prompts": 10}), ("linear-probe", {}), ("full", {})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", help="a Hub id or a local folder (default: the zoo's small pretrained ViT)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=32, help="training images per grade")
    parser.add_argument("--output", type=Path, default=Path("outputs/dvpt-grading"))
    parser.add_argument("--quick", action="store_true", help="the seconds-long backbone (for tests)")
    args = parser.parse_args()

    train_data = builtin_dataset("counts", "train", num_per_class=args.per_class)
    test_data = builtin_dataset("counts", "test", num_per_class=16)
    rows = []
    with zoo_backbone("vit", args.backbone, quick=args.quick) as backbone:
        for method, options in METHODS:
            torch.manual_seed(0)
            model = AutoAdapter.from_backbone(backbone, method=method, labels=COUNTS, **options)
            adapterzoo.train(model, train_data, epochs=args.epochs, batch_size=32, output_dir=args.output / method)
            metrics = adapterzoo.evaluate(model, test_data, metrics=["accuracy", "quadratic_kappa"])
            rows.append((method, model.trainable_parameters, metrics["accuracy"], metrics["quadratic_kappa"]))

    print(f"\n{'method':<14}{'trainable':>12}{'accuracy':>10}{'kappa':>8}")
    for method, parameters, accuracy, kappa in rows:
        print(f"{method:<14}{parameters:>12,}{accuracy:>10.1%}{kappa:>8.3f}")


if __name__ == "__main__":
    main()
