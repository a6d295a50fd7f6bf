"""Classification heads. A head receives the whole final token sequence, so heads that use patch tokens fit too."""

from __future__ import annotations

from functools import reduce
from typing import Any

import torch
from torch import nn

POOLINGS = ("cls", "mean", "cls+mean")
"""How a `LinearHead` pools the tokens: the CLS token, the mean of the patch tokens, or both concatenated (DINOv2's
classifier in transformers, twice the hidden width)."""


def head_width(hidden_size: int, pooling: str) -> int:
    """The input width of a linear head that pools with ``pooling`` over tokens of ``hidden_size``."""
    return 2 * hidden_size if pooling == "cls+mean" else hidden_size


class BorrowedModule:
    """A module that a head applies but does not own: the one at ``path`` inside ``owner``, looked up on each call.

    Not a registered submodule (its weights stay where they belong, and are saved there). A copy of the holder alone
    (PEFT copies a trained head) applies the same module; a copy made with the owner (a deep copy of the whole model)
    applies the owner's copy. The lookup uses attribute access, so it sees through adapters' wrappers that replace the
    module after the holder was built.
    """

    def __init__(self, owner: nn.Module, path: str):
        self.owner = owner
        self.path = path

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return reduce(getattr, self.path.split("."), self.owner)(x)

    def __deepcopy__(self, memo: dict[int, Any]) -> BorrowedModule:
        return BorrowedModule(memo.get(id(self.owner), self.owner), self.path)


class LinearHead(nn.Linear):
    """A linear classifier on the pooled tokens: the CLS token, the mean of the patch tokens, or both.

    It is an `nn.Linear` (weight, bias) so that PEFT's handling of trained heads (``modules_to_save``, merging and
    unloading) treats it as the linear layer it is. ``pooled_norm``, when given, normalises the pooled vector before
    the linear layer (BEiT's pooler, as transformers' ``BeitForImageClassification`` applies it). ``device`` and
    ``dtype`` are the backbone's, so that the head computes where and as the backbone does.
    """

    def __init__(
        self,
        hidden_size: int,
        num_labels: int,
        *,
        pooling: str = "cls",
        num_prefix_tokens: int = 1,
        pooled_norm: BorrowedModule | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ):
        if pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling '{pooling}'; choose one of {', '.join(POOLINGS)}.")
        if pooling != "mean" and num_prefix_tokens == 0:
            raise ValueError(f"{pooling.upper()} pooling needs a backbone with a CLS token; use pooling='mean'.")
        super().__init__(head_width(hidden_size, pooling), num_labels, device=device, dtype=dtype)
        self.pooling = pooling
        self.num_prefix_tokens = num_prefix_tokens
        self.pooled_norm = pooled_norm

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            pooled = tokens[:, 0]
        elif self.pooling == "mean":
            pooled = tokens[:, self.num_prefix_tokens :].mean(dim=1)
        else:
            pooled = torch.cat([tokens[:, 0], tokens[:, self.num_prefix_tokens :].mean(dim=1)], dim=-1)
        return pooled if self.pooled_norm is None else self.pooled_norm(pooled)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return super().forward(self.pool(tokens))

    def settings(self) -> dict:
        """What `adapterzoo_config.json` records to rebuild this head."""
        return {"type": "linear", "pooling": self.pooling}
