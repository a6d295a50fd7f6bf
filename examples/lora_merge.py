"""LoRA, then merged into the backbone for inference at the plain backbone's cost.

Trains LoRA on the attention of a pretrained ViT, then `model.merge()` folds the low-rank updates into the frozen
weights: the logits stay the same (within float rounding) and inference no longer pays for the extra matrices.
`merge_and_unload()` returns the plain task model with the merged weights; `unmerge()` restores the adapter.

    python examples/lora_merge.py [--backbone <hub id or folder>] [--rank 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import adapterzoo
from adapterzoo import AutoAdapter
from adapterzoo.benchmarks.measure import seconds_per_call
from adapterzoo.data import builtin_dataset
from adapterzoo.pretraining import TARGET_SHAPES, zoo_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", help="a Hub id or a folder (default: the zoo's small pretrained ViT)")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--output", type=Path, default=Path("outputs/lora-merge"))
    parser.add_argument("--quick", action="store_true", help="the seconds-long backbone and one epoch (for tests)")
    args = parser.parse_args()

    shapes = list(TARGET_SHAPES)
    train = builtin_dataset("shapes", "train", num_per_class=64, classes=shapes)
    test = builtin_dataset("shapes", "test", num_per_class=25, classes=shapes)
    with zoo_backbone("vit", args.backbone, quick=args.quick) as backbone:
        torch.manual_seed(0)
        model = AutoAdapter.from_backbone(
            backbone, method="lora", labels=shapes, r=args.rank, lora_alpha=args.rank, target_modules=["q", "v"]
        )
        adapterzoo.train(model, train, epochs=1 if args.quick else 30, batch_size=32, output_dir=args.output)
        model.eval()
        pixel_values = model.image_processor(list(test["image"]), return_tensors="pt")["pixel_values"]
        repeats = 2 if args.quick else 20
        with torch.no_grad():
            unmerged_logits = model(pixel_values).logits
        unmerged = 1000 * seconds_per_call(lambda: model(pixel_values), repeats)
        with model.peft_model.disable_adapter():
            plain = 1000 * seconds_per_call(lambda: model(pixel_values), repeats)  # the backbone alone
        print(f"accuracy: {adapterzoo.evaluate(model, test)['accuracy']:.1%}")

        model.merge()
        with torch.no_grad():
            merged_logits = model(pixel_values).logits
        merged = 1000 * seconds_per_call(lambda: model(pixel_values), repeats)
        difference = (merged_logits - unmerged_logits).abs().max().item()
        print(f"merged: largest logit difference {difference:.2e}")
        model.unmerge()

        classifier = model.merge_and_unload()  # an ImageClassifier with LoRA folded in: no PEFT needed to serve it
        with torch.no_grad():
            standalone = (classifier(pixel_values).logits - unmerged_logits).abs().max().item()
        print(f"merge_and_unload: largest logit difference {standalone:.2e}")
        print(f"\n{'inference, batch of ' + str(len(pixel_values)):<28}{'ms':>8}")
        for name, value in (("plain backbone", plain), ("LoRA, unmerged", unmerged), ("LoRA, merged", merged)):
            print(f"{name:<28}{value:>8.1f}")


if __name__ == "__main__":
    main()
