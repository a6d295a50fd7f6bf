"""Tiny ViT and CLIP backbones with random weights, built and saved locally so that tests never download."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import transformers

TINY_SIZES: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "image_size": 32,
    "patch_size": 8,
}

KINDS = ("vit", "clip", "clip_vision_model")


def tiny_backbone(kind: str = "vit", *, seed: int = 0, **overrides: Any) -> transformers.PreTrainedModel:
    """A randomly initialised tiny backbone: ``vit``, a full ``clip`` model, or a ``clip_vision_model`` tower."""
    sizes = {**TINY_SIZES, **overrides}
    torch.manual_seed(seed)
    if kind == "vit":
        return transformers.ViTModel(transformers.ViTConfig(**sizes), add_pooling_layer=False)
    if kind == "clip_vision_model":
        return transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**sizes))
    if kind == "clip":
        text = {k: v for k, v in sizes.items() if k not in ("image_size", "patch_size")}
        config = transformers.CLIPConfig(
            text_config={**text, "vocab_size": 64, "max_position_embeddings": 16, "bos_token_id": 0, "eos_token_id": 1},
            vision_config=sizes,
            projection_dim=16,
        )
        return transformers.CLIPModel(config)
    raise ValueError(f"Unknown tiny backbone kind '{kind}'; choose one of {', '.join(KINDS)}.")


def save_tiny_backbone(folder: str | Path, kind: str = "vit", *, seed: int = 0, **overrides: Any) -> Path:
    """Save a tiny backbone and its image processor to ``folder``, as a Hub checkpoint folder would hold them."""
    folder = Path(folder)
    model = tiny_backbone(kind, seed=seed, **overrides)
    model.save_pretrained(folder)
    size = model.config.vision_config.image_size if kind == "clip" else model.config.image_size
    if kind == "vit":
        processor = transformers.ViTImageProcessor(size={"height": size, "width": size})
    else:
        processor = transformers.CLIPImageProcessor(size={"shortest_edge": size}, crop_size=size)
    processor.save_pretrained(folder)
    return folder
