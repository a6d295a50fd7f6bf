"""Tiny backbones of every supported architecture, with random weights, built and saved locally so that tests never
download."""

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

KINDS = ("vit", "clip", "clip_vision_model", "deit", "dinov2", "dinov2_with_registers", "siglip", "beit", "swin")
VISION_KINDS = ("vit", "clip", "deit", "dinov2", "dinov2_with_registers", "siglip", "beit", "swin")
"""One tiny checkpoint per supported architecture (CLIP's and SigLIP's whole vision-language models)."""


def tiny_backbone(kind: str = "vit", *, seed: int = 0, **overrides: Any) -> transformers.PreTrainedModel:
    """A randomly initialised tiny backbone of one of `KINDS`: ``vit``, a whole ``clip`` model, its
    ``clip_vision_model`` tower, ``deit``, ``dinov2`` (and ``dinov2_with_registers``, 2 registers), a whole ``siglip``
    model, ``beit`` (with relative position bias, as released BEiTs have) or ``swin`` (two stages)."""
    sizes = {**TINY_SIZES, **overrides}
    torch.manual_seed(seed)
    if kind == "vit":
        return transformers.ViTModel(transformers.ViTConfig(**sizes), add_pooling_layer=False)
    if kind == "clip_vision_model":
        return transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**sizes))
    if kind == "clip":
        tokenizer = builtin_clip_tokenizer()
        text = _text_sizes(sizes, vocab_size=len(tokenizer), max_position_embeddings=32)
        text.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        text.update(pad_token_id=tokenizer.pad_token_id)
        config = transformers.CLIPConfig(text_config=text, vision_config=sizes, projection_dim=16)
        return transformers.CLIPModel(config)
    if kind == "deit":
        return transformers.DeiTModel(transformers.DeiTConfig(**sizes), add_pooling_layer=False)
    if kind == "dinov2":
        return transformers.Dinov2Model(transformers.Dinov2Config(**sizes))
    if kind == "dinov2_with_registers":
        return transformers.Dinov2WithRegistersModel(
            transformers.Dinov2WithRegistersConfig(**sizes, num_register_tokens=2)
        )
    if kind == "siglip":
        text = _text_sizes(sizes, vocab_size=64, max_position_embeddings=16, bos_token_id=1, eos_token_id=2)
        return transformers.SiglipModel(transformers.SiglipConfig(text_config=text, vision_config=sizes))
    if kind == "beit":
        return transformers.BeitModel(transformers.BeitConfig(**sizes, use_relative_position_bias=True))
    if kind == "swin":
        width, heads = sizes["hidden_size"], sizes["num_attention_heads"]
        config = transformers.SwinConfig(
            image_size=sizes["image_size"], patch_size=4, embed_dim=width, depths=[2, 2],
            num_heads=[heads // 2, heads], window_size=4,
        )  # fmt: skip
        return transformers.SwinModel(config, add_pooling_layer=False)
    raise ValueError(f"Unknown tiny backbone kind '{kind}'; choose one of {', '.join(KINDS)}.")


def _text_sizes(sizes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**{k: v for k, v in sizes.items() if k not in ("image_size", "patch_size")}, **extra}


def save_tiny_backbone(folder: str | Path, kind: str = "vit", *, seed: int = 0, **overrides: Any) -> Path:
    """Save a tiny backbone and its image processor (and a CLIP's tokenizer) to ``folder``, as on the Hub."""
    folder = Path(folder)
    model = tiny_backbone(kind, seed=seed, **overrides)
    model.save_pretrained(folder)
    size = getattr(model.config, "vision_config", model.config).image_size
    if kind.startswith("clip"):
        processor = transformers.CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size=size)
    else:
        processor = transformers.ViTImageProcessorPil(size={"height": size, "width": size})
    if kind == "clip":
        processor = transformers.CLIPProcessor(image_processor=processor, tokenizer=builtin_clip_tokenizer())
    processor.save_pretrained(folder)
    return folder
