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
from tqdm import tqdm

from adapterzoo import AutoAdapter
from adapterzoo.data import SHAPES, shapes_dataset


def build_small_vit(folder: Path, seed: int) -> Path:
    """A 4-layer ViT for 32x32 images, saved like a Hub checkpoint (config, weights, image processor)."""
    torch.manual_seed(seed)
    config = transformers.ViTConfig(
        hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128, image_size=32, patch_size=4
    )
    transformers.ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def pixel_values(model, images) -> torch.Tensor:
    return model.image_processor(images=images, return_tensors="pt")["pixel_values"]


def accuracy(model, dataset) -> float:
    with torch.no_grad():
        logits = model.eval()(pixel_values(model, list(dataset["image"]))).logits
    return (logits.argmax(-1) == torch.tensor(list(dataset["label"]))).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("outputs/quickstart"), help="where to write everything")
    parser.add_argument("--epochs", type=int, default=30, help="passes over the training images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    backbone = build_small_vit(args.output / "backbone", args.seed)
    train = shapes_dataset(48, seed=args.seed)
    test = shapes_dataset(16, seed=args.seed + 1)

    model = AutoAdapter.from_backbone(str(backbone), method="vpt", labels=SHAPES, num_tokens=8, deep=True)
    model.print_trainable_parameters()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    torch.manual_seed(args.seed)
    progress = tqdm(range(args.epochs), desc="training VPT")
    for epoch in progress:
        model.train()
        for batch in train.shuffle(seed=args.seed + epoch).iter(batch_size=32):
            loss = model(pixel_values(model, batch["image"]), labels=torch.tensor(batch["label"])).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        progress.set_postfix(loss=f"{loss.item():.3f}")
    print(f"test accuracy: {accuracy(model, test):.1%} (chance: {1 / len(SHAPES):.0%})")

    saved = model.save_pretrained(args.output / "vpt-shapes")
    reloaded = AutoAdapter.from_pretrained(saved)
    print(f"saved to {saved} and reloaded: test accuracy {accuracy(reloaded, test):.1%}")
    sample = test.select(range(4))
    for label, ranked in zip(sample["label"], reloaded.predict(list(sample["image"]), top_k=2), strict=True):
        guesses = ", ".join(f"{p['label']} {p['score']:.2f}" for p in ranked)
        print(f"true: {SHAPES[label]:<8} predicted: {guesses}")


if __name__ == "__main__":
    main()
