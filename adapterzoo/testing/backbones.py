"""Tiny backbones of every supported architecture, with random weights, built and saved locally so that tests never
download. Each architecture's entry in `adapterzoo.architectures` says how its tiny checkpoints are built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import transformers

from adapterzoo.architectures import Architecture, supported_architectures, tiny_kinds
from adapterzoo.backbones import describe_backbone
from adapterzoo.errors import UnsupportedBackboneError
from adapterzoo.registry import get_method

TINY_SIZES: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "image_size": 32,
    "patch_size": 8,
}

KINDS = tuple(tiny_kinds())
"""Every tiny checkpoint: one per architecture, named after it, and CLIP's vision tower alone, ``clip_vision_model``."""
VISION_KINDS = tuple(supported_architectures())
"""One tiny checkpoint per supported architecture (CLIP's and SigLIP's whole vision-language models)."""


def _architecture_of(kind: str) -> Architecture:
    kinds = tiny_kinds()
    if kind not in kinds:
        raise ValueError(f"Unknown tiny backbone kind '{kind}'; choose one of {', '.join(kinds)}.")
    return kinds[kind]


def tiny_backbone(kind: str = "vit", *, seed: int = 0, **overrides: Any) -> transformers.PreTrainedModel:
    """A randomly initialised tiny backbone of one of `KINDS`: ``vit``, a whole ``clip`` model, its
    ``clip_vision_model`` tower, ``deit``, ``dinov2`` (and ``dinov2_with_registers``, 2 registers), a whole ``siglip``
    model, ``beit`` (with relative position bias, as released BEiTs have) or ``swin`` (two stages).

    ``overrides`` replace `TINY_SIZES` or set other config fields; the same arguments always give the same weights.
    """
    arch = _architecture_of(kind)
    torch.manual_seed(seed)
    return arch.tiny_kinds[kind](arch, {**TINY_SIZES, **overrides})


def save_tiny_backbone(folder: str | Path, kind: str = "vit", *, seed: int = 0, **overrides: Any) -> Path:
    """Save a tiny backbone and its image processor (and a CLIP's tokenizer) to ``folder``, as on the Hub."""
    folder = Path(folder)
    model = tiny_backbone(kind, seed=seed, **overrides)
    model.save_pretrained(folder)
    _architecture_of(kind).tiny_processor(model).save_pretrained(folder)
    return folder


def serves(method: str, kind: str) -> bool:
    """Whether ``method`` accepts a tiny backbone of ``kind`` (the architecture checks it makes before attaching)."""
    try:
        get_method(method).check_backbone(describe_backbone(tiny_backbone(kind)))
    except UnsupportedBackboneError:
        return False
    return True


def served_kinds(method: str) -> tuple[str, ...]:
    """The `VISION_KINDS` that ``method`` serves: where its conformance suite and its own per-backbone tests run."""
    return tuple(kind for kind in VISION_KINDS if serves(method, kind))
