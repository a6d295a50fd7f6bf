"""Prompt learning for CLIP: MaPLe (Khattak et al., "MaPLe: Multi-modal Prompt Learning", CVPR 2023), CoOp (Zhou et
al., "Learning to Prompt for Vision-Language Models", IJCV 2022) and CoCoOp (Zhou et al., "Conditional Prompt Learning
for Vision-Language Models", CVPR 2022), as adapterzoo methods.

This module only declares the methods (and `scaled_depth`, MaPLe's depth for shallower towers); ``config.py``,
``layer.py`` and ``model.py`` are imported on first use.
"""

from adapterzoo.method import Method


def scaled_depth(num_layers: int) -> int:
    """MaPLe's prompt depth for towers of ``num_layers`` layers: the paper's 9 of 12, in proportion (3 of 4)."""
    return max(1, round(9 / 12 * num_layers))


MAPLE = Method(
    name="maple",
    config="adapterzoo_maple.config:MaPLeConfig",
    tuner="adapterzoo_maple.model:MaPLeModel",
    tasks=("clip-classification",),
    summary="MaPLe: text context after SOS, coupled into vision prompts after the patches, in the first 9 layers.",
    backbones=("clip",),
    tiny_options={"depth": 2},
    benchmarks="adapterzoo_maple.benchmarks:maple_rows",
    # The reference's configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml with Dassl's defaults: SGD, lr 0.0035,
    # momentum 0.9, weight decay 5e-4, 5 epochs of batch 4, one warmup epoch at a constant 1e-5, cosine decay, random
    # resized crops and flips.
    recipe={
        "optimizer": "sgd",
        "lr": 0.0035,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "scheduler": "cosine",
        "epochs": 5,
        "batch_size": 4,
        "warmup_ratio": 1 / 5,
        "warmup_lr": 1e-5,
        "augment": True,
    },
)
COOP = Method(
    name="coop",
    config="adapterzoo_maple.config:CoOpConfig",
    tuner="adapterzoo_maple.model:CoOpModel",
    tasks=("clip-classification",),
    summary="CoOp: 16 learnable context vectors shared by every class, in place of the prompt template's words.",
    backbones=("clip",),
    tiny_options={"num_context": 2},
    benchmarks="adapterzoo_maple.benchmarks:coop_rows",
    # CoOp's ViT-B/16 recipe: SGD, lr 0.002, momentum 0.9, weight decay 5e-4, batch 32, cosine decay after one epoch
    # of warmup at a constant 1e-5 (50 epochs, the base-to-novel setting of the CoCoOp and MaPLe papers), random resized
    # crops and flips.
    recipe={
        "optimizer": "sgd",
        "lr": 0.002,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "scheduler": "cosine",
        "epochs": 50,
        "batch_size": 32,
        "warmup_ratio": 1 / 50,
        "warmup_lr": 1e-5,
        "augment": True,
    },
)
COCOOP = Method(
    name="cocoop",
    config="adapterzoo_maple.config:CoCoOpConfig",
    tuner="adapterzoo_maple.model:CoCoOpModel",
    tasks=("clip-classification",),
    summary="CoCoOp: CoOp's context from 'a photo of a', plus a Meta-Net's bias from each image's features.",
    backbones=("clip",),
    benchmarks="adapterzoo_maple.benchmarks:cocoop_rows",
    # The reference's configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml with Dassl's defaults: SGD, lr 0.002,
    # momentum 0.9, weight decay 5e-4, 10 epochs of batch 1, one warmup epoch at a constant 1e-5, cosine decay, random
    # resized crops and flips.
    recipe={**COOP.recipe, "epochs": 10, "batch_size": 1, "warmup_ratio": 1 / 10},
)
