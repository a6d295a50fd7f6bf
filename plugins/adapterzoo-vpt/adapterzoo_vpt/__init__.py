"""Visual Prompt Tuning (Jia et al., ECCV 2022) as an adapterzoo method.

This module only declares the method; ``config.py``, ``layer.py`` and ``model.py`` are imported on first use.
"""

from adapterzoo.method import Method

METHOD = Method(
    name="vpt",
    config="adapterzoo_vpt.config:VPTConfig",
    tuner="adapterzoo_vpt.model:VPTModel",
    tasks=("image-classification",),
    summary="VPT: learnable prompt tokens after CLS, at the input (shallow) or before every layer (deep).",
    # Prompts go after the prefix tokens; architectures that cannot take inserted tokens (BEiT, Swin) refuse them.
    inserts_tokens=True,
    head_init="adapterzoo_vpt.model:init_head",
    tiny_options={"num_tokens": 2, "deep": True},
    benchmarks="adapterzoo_vpt.benchmarks:rows",
    # The reference's recipe (configs/base-prompt.yaml, tune_fgvc.py): SGD with momentum 0.9, lr = base_lr x batch /
    # 256, cosine decay after a warmup of 10 of 100 epochs. base_lr 1.0 and weight decay 1e-4 are one point of the
    # authors' grid (base_lr in {50 ... 0.1}, wd in {0.01 ... 0}): tune both per task.
    recipe={
        "optimizer": "sgd",
        "momentum": 0.9,
        "base_lr": 1.0,
        "weight_decay": 1e-4,
        "scheduler": "cosine",
        "warmup_ratio": 0.1,
    },
)
