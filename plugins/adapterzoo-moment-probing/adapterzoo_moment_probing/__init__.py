"""Moment Probing (Gao et al., "Tuning Pre-trained Model via Moment Probing", ICCV 2023) as an adapterzoo method.

This module only declares the method; ``config.py``, ``layer.py`` and ``model.py`` are imported on first use.
"""

from adapterzoo.method import Method

METHOD = Method(
    name="moment-probing",
    config="adapterzoo_moment_probing.config:MomentProbingConfig",
    tuner="adapterzoo_moment_probing.model:MomentProbingModel",
    tasks=("image-classification",),
    summary="Moment Probing: a head on the CLS token and cross-covariances of patch tokens; MP+ adds PSRP per block.",
    replaces_head=True,
    tiny_options={"hidden_dim": 32},
    variants=({}, {"plus": True}),  # MP+ adds PSRP in every block, which Swin's stages refuse
    benchmarks="adapterzoo_moment_probing.benchmarks:rows",
    # The reference's ImageNet recipe (train_scripts/vit): AdamW, lr 1e-4, weight decay 0.05, 5 warmup epochs of 30,
    # cosine decay.
    recipe={"optimizer": "adamw", "lr": 1e-4, "weight_decay": 0.05, "scheduler": "cosine", "warmup_ratio": 5 / 30},
)
