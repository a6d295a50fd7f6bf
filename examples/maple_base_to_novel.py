"""Base-to-novel generalisation of CLIP prompt learning: MaPLe against zero-shot CLIP and CoOp.

Each method trains few-shot on the first half of the built-in shapes (the base classes) with its paper's recipe, and is
then tested on the base classes and on the novel ones it never saw, each among its own half; the harmonic mean of the
two accuracies is the protocol's headline number (CoCoOp, MaPLe).

    python examples/maple_base_to_novel.py [--backbone <CLIP hub id or folder>] [--shots 16]

Without --backbone, the zoo's small CLIP (pretrained here on captioned images) is taken from the local Hub, where the
first run pretrains and publishes it (about 1.5 minutes on 2 CPU cores). MaPLe's prompt depth is the paper's 9 of 12
layers, in proportion to the CLIP's depth.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import transformers
from adapterzoo_maple import scaled_depth

from adapterzoo import AutoAdapter, base_to_novel
from adapterzoo.data import SHAPES, builtin_dataset
from adapterzoo.pretraining import zoo_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", help="a CLIP Hub id or a local folder (default: the zoo's small pretrained CLIP)")
    parser.add_argument("--shots", type=int, default=16, help="training images per base class")
    parser.add_argument("--epochs", type=int, help="epochs (default: each method's recipe)")
    parser.add_argument("--output", type=Path, default=Path("outputs/maple-base-to-novel"))
    parser.add_argument("--quick", action="store_true", help="the seconds-long backbone (for tests)")
    args = parser.parse_args()

    train_data = builtin_dataset("shapes", "train", num_per_class=args.shots)
    test_data = builtin_dataset("shapes", "test", num_per_class=25)
    epochs = {"epochs": args.epochs} if args.epochs else {}
    rows = []
    with zoo_backbone("clip", args.backbone, quick=args.quick) as backbone:
        config = transformers.AutoConfig.from_pretrained(backbone, trust_remote_code=False)
        layers = config.text_config.num_hidden_layers
        for method, options in [("zero-shot", {}), ("coop", {}), ("maple", {"depth": scaled_depth(layers)})]:
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
