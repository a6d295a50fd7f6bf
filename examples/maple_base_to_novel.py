"""Base-to-novel generalisation of CLIP prompt learning: MaPLe against zero-shot CLIP and CoOp.

Each method trains few-shot on the first half of the built-in shapes (the base classes) with its paper's recipe, and is
then tested on the base classes and on the novel ones it never saw, each among its own half; the harmonic mean of the
two accuracies is the protocol's headline number (CoCoOp, MaPLe).

    python examples/maple_base_to_novel.py --backbone <CLIP hub id or folder> [--shots 16]

Without --backbone, a small CLIP with random weights and the zoo's tokenizer is built (MaPLe then prompts its 3 layers;
the numbers then say nothing about transfer, since a random CLIP knows no words).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from adapterzoo import AutoAdapter, base_to_novel
from adapterzoo.data import SHAPES, builtin_dataset
from adapterzoo.testing import save_tiny_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", help="a CLIP Hub id or a local folder (default: a small random CLIP)")
    parser.add_argument("--shots", type=int, default=16, help="training images per base class")
    parser.add_argument("--epochs", type=int, help="epochs (default: each method's recipe)")
    parser.add_argument("--output", type=Path, default=Path("outputs/maple-base-to-novel"))
    args = parser.parse_args()

    backbone = args.backbone or str(save_tiny_backbone(args.output / "backbone", "clip", hidden_size=64))
    methods = [("zero-shot", {}), ("coop", {}), ("maple", {} if args.backbone else {"depth": 3})]
    train_data = builtin_dataset("shapes", "train", num_per_class=args.shots)
    test_data = builtin_dataset("shapes", "test", num_per_class=16)
    epochs = {"epochs": args.epochs} if args.epochs else {}
    rows = []
    for method, options in methods:
        torch.manual_seed(0)
        model = AutoAdapter.from_backbone(backbone, method=method, labels=SHAPES, **options)
        output = {"output_dir": args.output / method, **epochs}
        result = base_to_novel(model, train_data, test_data, shots=args.shots, **output)
        rows.append((method, model.trainable_parameters, result))

    print(f"\nbase: {', '.join(rows[0][2].base_classes)}; novel: {', '.join(rows[0][2].novel_classes)}")
    print(f"{'method':<11}{'trainable':>11}{'base':>8}{'novel':>8}{'HM':>8}")
    for method, parameters, result in rows:
        print(
            f"{method:<11}{parameters:>11,}{result.base_accuracy:>8.1%}{result.novel_accuracy:>8.1%}"
            f"{result.harmonic_mean:>8.1%}"
        )


if __name__ == "__main__":
    main()
