"""Classification heads. A head receives the whole final token sequence, so heads that use patch tokens fit too."""

from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("cls", "mean")


class LinearHead(nn.Linear):
    """A linear classifier on one pooled token: the CLS token, or the mean of the patch tokens.

    It is an `nn.Linear` (weight, bias) so that PEFT's handling of trained heads (``modules_to_save``, merging and
    unloading) treats it as the linear layer it is.
    """

    def __init__(self, hidden_size: int, num_labels: int, *, pooling: str = "cls", num_prefix_tokens: int = 1):
        if pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling '{pooling}'; choose one of {', '.join(POOLINGS)}.")
        if pooling == "cls" and num_prefix_tokens == 0:
            raise ValueError("CLS pooling needs a backbone with a CLS token; use pooling='mean'.")
        super().__init__(hidden_size, num_labels)
        self.pooling = pooling
        self.num_prefix_tokens = num_prefix_tokens

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return tokens[:, 0]
        return tokens[:, self.num_prefix_tokens :].mean(dim=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return super().forward(self.pool(tokens))

    def settings(self) -> dict:
        """What `adapterzoo_config.json` records to rebuild this head."""
        return {"type": "linear", "pooling": self.pooling}
