"""Tiny ViT and CLIP backbones with random weights, built and saved locally so that tests never download."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import transformers

from adapterzoo.data.tokenizer import builtin_clip_tokenizer

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
        tokenizer = builtin_clip_tokenizer()
        text = {k: v for k, v in sizes.items() if k not in ("image_size", "patch_size")}
        text.update(
            vocab_size=len(tokenizer),
            max_position_embeddings=32,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        config = transformers.CLIPConfig(text_config=text, vision_config=sizes, projection_dim=16)
        return transformers.CLIPModel(config)
    raise ValueError(f"Unknown tiny backbone kind '{kind}'; choose one of {', '.join(KINDS)}.")


def save_tiny_backbone(folder: str | Path, kind: str = "vit", *, seed: int = 0, **overrides: Any) -> Path:
    """Save a tiny backbone and its image processor (and a CLIP's tokenizer) to ``folder``, as on the Hub."""
    folder = Path(folder)
    model = tiny_backbone(kind, seed=seed, **overrides)
    model.save_pretrained(folder)
    size = model.config.vision_config.image_size if kind == "clip" else model.config.image_size
    if kind == "vit":
        processor = transformers.ViTImageProcessorPil(size={"height": size, "width": size})
    else:
        processor = transformers.CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size=size)
    if kind == "clip":
        processor = transformers.CLIPProcessor(image_processor=processor, tokenizer=builtin_clip_tokenizer())
    processor.save_pretrained(folder)
    return folder
