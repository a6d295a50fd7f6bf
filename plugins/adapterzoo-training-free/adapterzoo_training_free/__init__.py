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
)
TIP_ADAPTER = Method(
    name="tip-adapter",
    config="adapterzoo_training_free.config:TipAdapterConfig",
    tuner="adapterzoo_training_free.model:TipAdapterModel",
    tasks=("clip-classification",),
    summary="Tip-Adapter: a key-value cache of the few-shot CLIP features added to the zero-shot logits.",
    backbones=("clip",),
)
