"""The baselines every comparison needs, as methods that go through the same trainer and files: a linear probe, full
fine-tuning, and zero-shot CLIP. This module only declares them (standard library only); their configs and tuners are
in `adapterzoo.methods.baseline_tuners`, imported on first use."""

from __future__ import annotations

from adapterzoo.method import Method

LINEAR_PROBE = Method(
    name="linear-probe",
    config="adapterzoo.methods.baseline_tuners:LinearProbeConfig",
    tuner="adapterzoo.methods.baseline_tuners:LinearProbeModel",
    tasks=("image-classification",),
    summary="Linear probe: only the head trains, on frozen backbone features (which can be computed once).",
    recipe={"optimizer": "adamw", "lr": 1e-3, "scheduler": "cosine"},
)
FULL = Method(
    name="full",
    config="adapterzoo.methods.baseline_tuners:FullFineTuningConfig",
    tuner="adapterzoo.methods.baseline_tuners:FullFineTuningModel",
    tasks=("image-classification",),
    summary="Full fine-tuning: every backbone weight and the head train (a trained copy of the backbone is saved).",
    recipe={"optimizer": "adamw", "lr": 1e-4, "weight_decay": 0.05, "scheduler": "cosine", "warmup_ratio": 0.1},
)
ZERO_SHOT = Method(
    name="zero-shot",
    config="adapterzoo.methods.baseline_tuners:ZeroShotConfig",
    tuner="adapterzoo.methods.baseline_tuners:ZeroShotModel",
    tasks=("clip-classification",),
    summary="Zero-shot CLIP: the class names in a prompt template, nothing trained (prompt learning's baseline).",
    backbones=("clip",),
)
