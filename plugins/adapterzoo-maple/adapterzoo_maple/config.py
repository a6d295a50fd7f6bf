"""The CoOp, CoCoOp and MaPLe configs. Defaults are the references' (github.com/KaiyangZhou/CoOp,
github.com/muzairkhattak/multimodal-prompt-learning)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from adapterzoo.tuners import TowerTunerConfig


@dataclass
class CoOpConfig(TowerTunerConfig):
    """CoOp: ``num_context`` learnable vectors shared by all classes, then the class name: "[ctx] {class}."."""

    method_name: ClassVar[str] = "coop"

    num_context: int = field(default=16, metadata={"help": "Learnable context vectors (without context_init)."})
    context_init: str | None = field(
        default=None,
        metadata={"help": "A phrase whose tokens initialise the context, all of them learnable (default: N(0, 0.02))."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_context < 1:
            raise ValueError(f"num_context must be at least 1, not {self.num_context}.")

    def feature_cache_blocker(self) -> str | None:
        return None  # CoOp learns on the text side only: image features never change


@dataclass
class CoCoOpConfig(CoOpConfig):
    """CoCoOp: CoOp's context, from "a photo of a" (the ctxv1 config), plus a Meta-Net's bias for each image."""

    method_name: ClassVar[str] = "cocoop"

    num_context: int = field(default=4, metadata={"help": "Learnable context vectors (without context_init)."})
    context_init: str | None = field(
        default="a photo of a",
        metadata={"help": "A phrase whose tokens initialise the context, all of them learnable (None: N(0, 0.02))."},
    )


@dataclass
class MaPLeConfig(TowerTunerConfig):
    """MaPLe: ``num_context`` text context vectors after SOS, the rest of ``context_init`` kept as frozen words, coupled
    into vision prompts (Linear text -> vision); deep prompts replace both towers' prompt outputs up to ``depth``."""

    method_name: ClassVar[str] = "maple"

    num_context: int = field(default=2, metadata={"help": "Learnable context vectors n (the first n tokens)."})
    context_init: str | None = field(
        default="a photo of a",
        metadata={"help": "Phrase before the class name; its first num_context tokens start the learnable context."},
    )
    depth: int = field(default=9, metadata={"help": "Prompt depth J: prompts in layers 0..J-1 of both towers."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_context < 1 or self.depth < 1:
            raise ValueError(f"num_context and depth must be at least 1, not {self.num_context} and {self.depth}.")

    def feature_cache_blocker(self) -> str | None:
        return "MaPLe prompts the vision tower too, so image features change while training"
