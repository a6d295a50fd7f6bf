"""Visual Prompt Tuning (Jia et al., ECCV 2022) as an adapterzoo method.

This module only declares the method; ``config.py``, ``layer.py`` and ``model.py`` are imported on first use.
"""

from adapterzoo import Method

METHOD = Method(
    name="vpt",
    config="adapterzoo_vpt.config:VPTConfig",
    tuner="adapterzoo_vpt.model:VPTModel",
    tasks=("image-classification",),
    summary="VPT: learnable prompt tokens after CLS, at the input (shallow) or before every layer (deep).",
    backbones=("vit", "clip"),
    head_init="adapterzoo_vpt.model:init_head",
)
