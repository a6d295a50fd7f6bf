"""PEFT's weight tuners as zoo methods. Their targets default to linear-layer roles, resolved per backbone.

A role list such as ``target_modules=["q", "v"]`` becomes the backbone's own module names when the adapter is
attached (see `adapterzoo.backbones.LINEAR_ROLES`); PEFT module names or a regex are passed through unchanged.
"""

from __future__ import annotations

from typing import Any

from adapterzoo.method import Method

ATTENTION_QV = {"target_modules": ("q", "v")}
# PEFT's ViT LoRA example (examples/image_classification): AdamW at 5e-3 with the Trainer's linear decay.
RECIPE = {"optimizer": "adamw", "lr": 5e-3, "scheduler": "linear"}


def peft_tuner(
    name: str,
    peft_class: str,
    summary: str,
    defaults: dict[str, Any] = ATTENTION_QV,
    compile_blocker: str | None = None,
) -> Method:
    """The zoo method for PEFT's ``<peft_class>Config`` / ``<peft_class>Model`` pair."""
    return Method(
        name=name,
        config=f"peft:{peft_class}Config",
        tuner=f"peft:{peft_class}Model",
        # On a CLIP classifier the roles resolve in the vision tower; a regex of text-tower modules adapts that too.
        tasks=("image-classification", "clip-classification"),
        summary=summary,
        defaults=defaults,
        recipe=RECIPE,
        compile_blocker=compile_blocker,
    )


LORA = peft_tuner("lora", "Lora", "LoRA: low-rank updates of attention q and v (DoRA with use_dora=True); mergeable.")
# PEFT's LoHa and LoKr layers decide their module dropout in training with `torch.rand(1) > module_dropout`, a branch
# on a tensor's value, even when that dropout is 0.
MODULE_DROPOUT_DRAW = (
    "PEFT's {} layers branch on a random tensor's value (torch.rand(1) > module_dropout) in every training forward, "
    "which TorchDynamo cannot trace"
)
LOHA = peft_tuner(
    "loha",
    "LoHa",
    "LoHa: low-rank Hadamard-product updates of attention q and v; mergeable.",
    compile_blocker=MODULE_DROPOUT_DRAW.format("LoHa"),
)
LOKR = peft_tuner(
    "lokr",
    "LoKr",
    "LoKr: low-rank Kronecker-product updates of attention q and v; mergeable.",
    compile_blocker=MODULE_DROPOUT_DRAW.format("LoKr"),
)
IA3 = peft_tuner(
    "ia3",
    "IA3",
    "IA3: learned rescaling of attention keys and values and of the MLP output layer's input; mergeable.",
    {"target_modules": ("k", "v", "fc2"), "feedforward_modules": ("fc2",)},
)
OFT = peft_tuner("oft", "OFT", "OFT: block-diagonal orthogonal rotations of attention q and v; mergeable.")
BOFT = peft_tuner("boft", "BOFT", "BOFT: butterfly-factorised orthogonal rotations of attention q and v; mergeable.")
VERA = peft_tuner("vera", "Vera", "VeRA: scaling vectors on frozen shared random low-rank matrices for q and v.")
FOURIERFT = peft_tuner(
    "fourierft", "FourierFT", "FourierFT: sparse spectral coefficients of the q and v weight updates; mergeable."
)
