"""`ImageClassifier`: a vision backbone plus a head that sees the whole final token sequence."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

from adapterzoo.backbones import backbone_name, describe_backbone
from adapterzoo.errors import UnsupportedBackboneError
from adapterzoo.heads import BorrowedModule, LinearHead
from adapterzoo.labels import checked_labels
from adapterzoo.placement import placement_of

FINAL_NORMS = ("tokens", "pooled", "none")


class ImageClassifier(nn.Module):
    """A vision backbone and a classification head, the task model that adapters attach to.

    The head receives the final token sequence. The default head is the one transformers' ``*ForImageClassification``
    class of the architecture has (linear on the CLS token; on the mean of the patch tokens without one; DINOv2's CLS
    and mean concatenated; CLIP's mean of the patch tokens without the final norm; BEiT's norm after the mean), so that
    a weight tuner's adapter is also a plain PEFT adapter of that class. ``final_norm`` says where the backbone's final
    norm applies when its sequence has not passed it: "tokens" (to every token, before the head), "pooled" (to the
    head's pooled vector) or "none".
    """

    task = "image-classification"
    head_module = "classifier"
    """The attribute holding the head: PEFT trains and saves it beside every adapter (``modules_to_save``)."""

    def __init__(
        self,
        backbone: transformers.PreTrainedModel,
        labels: Sequence[str],
        *,
        pooling: str | None = None,
        final_norm: str | None = None,
    ):
        super().__init__()
        labels = checked_labels(labels, owner="An ImageClassifier")
        parts = describe_backbone(backbone)
        if parts.root:
            raise UnsupportedBackboneError(
                f"Pass the vision tower, not the whole {type(backbone).__name__}: its '{parts.root}' attribute."
            )
        self.backbone = backbone
        self.labels = labels
        if pooling is None:
            # A head asked for on normalised tokens is the zoo's first default (methods that replace the head get
            # such tokens, as their papers have it): CLS, or the mean without one. Otherwise transformers' head.
            token_pooling = "cls" if parts.num_prefix_tokens else "mean"
            pooling = token_pooling if final_norm == "tokens" else parts.default_pooling
        final_norm = final_norm or parts.default_head_norm
        if final_norm not in FINAL_NORMS or (final_norm == "pooled" and parts.sequence_is_normed):
            allowed = ("tokens", "none") if parts.sequence_is_normed else FINAL_NORMS
            raise ValueError(f"final_norm '{final_norm}' is not one of {', '.join(allowed)} for this backbone.")
        self.final_norm = final_norm
        norm = BorrowedModule(self, f"backbone.{parts.final_norm}")
        self.token_norm = norm if final_norm == "tokens" and not parts.sequence_is_normed else None
        self.classifier = LinearHead(
            parts.hidden_size,
            len(labels),
            pooling=pooling,
            num_prefix_tokens=parts.num_prefix_tokens,
            pooled_norm=norm if final_norm == "pooled" else None,
            **placement_of(backbone),
        )
        # PEFT records this as the adapter's base_model_name_or_path.
        self.name_or_path = backbone_name(backbone)

    def settings(self) -> dict:
        """What `adapterzoo_config.json` records to rebuild this task model (its head)."""
        return {**self.classifier.settings(), "final_norm": self.final_norm}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The final token sequence, (batch, tokens, hidden), after the final norm where it applies to each token.

        Pixels come in the backbone's dtype (image processors give float32; not every architecture casts them)."""
        tokens = self.backbone(pixel_values=pixel_values.to(self.backbone.dtype)).last_hidden_state
        return tokens if self.token_norm is None else self.token_norm(tokens)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
    ) -> ImageClassifierOutput:
        """Classify images, or precomputed ``features`` (the output of `encode`) when the backbone is frozen."""
        tokens = features if features is not None else self.encode(pixel_values)
        logits = self.classifier(tokens)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)
