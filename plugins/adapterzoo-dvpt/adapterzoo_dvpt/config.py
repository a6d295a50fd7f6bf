"""The DVPT config: the spec of METHODS.md, with each point where the paper, its code and a re-implementation disagree
made an option (see the plugin README for the choices)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from adapterzoo.tuners import TowerTunerConfig

CHOICES = {
    "queries": ("hidden", "static"),
    "output_tokens": ("all", "prompts"),
    "scale": ("d", "r"),
    "activation": ("gelu", "quick_gelu"),
}


@dataclass
class DVPTConfig(TowerTunerConfig):
    """Dynamic visual prompt tuning: prompts before CLS, and per block a gated bottleneck beside the MLP in which the
    prompt positions attend over the patch tokens."""

    method_name: ClassVar[str] = "dvpt"

    num_prompts: int = field(default=50, metadata={"help": "Prompt tokens prepended before CLS (m)."})
    bottleneck: int = field(default=20, metadata={"help": "Width r of the bottleneck the attention runs in."})
    share_every: int = field(
        default=3, metadata={"help": "Consecutive blocks sharing one module (the released code's 3); 1: no sharing."}
    )
    queries: str = field(
        default="hidden",
        metadata={"help": "Queries: the prompt tokens' hidden states (hidden) or the learnable prompts (static)."},
    )
    keys_include_cls: bool = field(default=False, metadata={"help": "Whether CLS is among the keys and values."})
    output_tokens: str = field(
        default="all",
        metadata={"help": "Tokens the module adds to: all (prompts get the attention output) or only the prompts."},
    )
    scale: str = field(default="d", metadata={"help": "Attention scale: d^-0.5 (both codes) or r^-0.5."})
    activation: str = field(default="gelu", metadata={"help": "Bottleneck non-linearity: gelu or quick_gelu (CLIP's)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, not '{getattr(self, name)}'.")
        for name in ("num_prompts", "bottleneck", "share_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}.")
