"""DVPT: Dynamic Visual Prompt Tuning of Large Pre-trained Models for Medical Image Analysis (He et al.).

This module only declares the method; ``config.py``, ``layer.py`` and ``model.py`` are imported on first use.
"""

from adapterzoo.method import Method

METHOD = Method(
    name="dvpt",
    config="adapterzoo_dvpt.config:DVPTConfig",
    tuner="adapterzoo_dvpt.model:DVPTModel",
    tasks=("image-classification",),
    summary="DVPT: prompts as dynamic queries over bottlenecked patch features, in parallel with each MLP, gated.",
    inserts_tokens=True,
    replaces_head=True,
    tiny_options={"num_prompts": 2, "bottleneck": 4},
    benchmarks="adapterzoo_dvpt.benchmarks:rows",
    # The released code (code/DVPT_vit_train.py): AdamW, lr 5e-4, weight decay 1e-4, 60 epochs with 5 of warmup and
    # cosine decay, gradient clipping at 1.0.
    recipe={
        "optimizer": "adamw",
        "lr": 5e-4,
        "weight_decay": 1e-4,
        "scheduler": "cosine",
        "warmup_ratio": 5 / 60,
        "max_grad_norm": 1.0,
    },
)
