"""SSF, Scaling & Shifting Your Features (Lian et al., NeurIPS 2022), as an adapterzoo method.

This module only declares the method; ``config.py``, ``layer.py`` and ``model.py`` are imported on first use.
"""

from adapterzoo.method import Method

METHOD = Method(
    name="ssf",
    config="adapterzoo_ssf.config:SSFConfig",
    tuner="adapterzoo_ssf.model:SSFModel",
    tasks=("image-classification",),
    summary="SSF: a learned scale and shift per channel after every linear, convolution and norm; mergeable.",
    benchmarks="adapterzoo_ssf.benchmarks:rows",
    # The reference scripts (dongzelian/SSF, train_scripts/vit/**/train_ssf.sh): AdamW, cosine decay after a linear
    # warmup of 10 of 100 epochs, lr 1e-3 (CIFAR-100, ImageNet; VTAB tunes 1e-3 ... 5e-2 per task), weight decay 0.05.
    # SSF's tensors are 1-D, so only the head's weight is decayed (the trainer never decays 1-D parameters).
    recipe={
        "optimizer": "adamw",
        "lr": 1e-3,
        "weight_decay": 0.05,
        "scheduler": "cosine",
        "warmup_ratio": 0.1,
    },
)
