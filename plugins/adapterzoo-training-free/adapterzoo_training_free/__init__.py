"""Training-free CLIP adaptation: GDA (Wang et al., "A Hard-to-Beat Baseline for Training-free CLIP-based
Adaptation", ICLR 2024) and Tip-Adapter (Zhang et al., "Tip-Adapter: Training-free Adaption of CLIP for Few-shot
Classification", ECCV 2022), as adapterzoo methods fitted in closed form by `adapterzoo.fit`.

This module only declares the methods; ``config.py``, ``layer.py`` and ``model.py`` are imported on first use.
"""

from adapterzoo.method import Method

GDA = Method(
    name="gda",
    config="adapterzoo_training_free.config:GDAConfig",
    tuner="adapterzoo_training_free.model:GDAModel",
    tasks=("clip-classification",),
    summary="GDA: a Gaussian discriminant head (class means, shrunk shared precision) fitted on frozen CLIP features.",
    backbones=("clip",),
    benchmarks="adapterzoo_training_free.benchmarks:gda_rows",
)
TIP_ADAPTER = Method(
    name="tip-adapter",
    config="adapterzoo_training_free.config:TipAdapterConfig",
    tuner="adapterzoo_training_free.model:TipAdapterModel",
    tasks=("clip-classification",),
    summary="Tip-Adapter: a key-value cache of the few-shot CLIP features added to the zero-shot logits.",
    backbones=("clip",),
    benchmarks="adapterzoo_training_free.benchmarks:tip_rows",
)
TIP_ADAPTER_F = Method(
    name="tip-adapter-f",
    config="adapterzoo_training_free.config:TipAdapterFConfig",
    tuner="adapterzoo_training_free.model:TipAdapterFModel",
    tasks=("clip-classification",),
    summary="Tip-Adapter-F: Tip-Adapter's cache keys (N·K·D) fine-tuned after fitting, α and β searched again.",
    backbones=("clip",),
    benchmarks="adapterzoo_training_free.benchmarks:tip_f_rows",
    # The reference's main.py and configs: AdamW (lr 1e-3, its default weight decay 0.01; its eps 1e-4 is not a
    # TrainingConfig option), cosine annealing per iteration, batch 256, 20 epochs, random resized crops and flips.
    recipe={
        "optimizer": "adamw",
        "lr": 1e-3,
        "weight_decay": 0.01,
        "scheduler": "cosine",
        "epochs": 20,
        "batch_size": 256,
        "augment": True,
        "crop_min_scale": 0.5,
    },
)
