"""`ImageClassifier`: a vision backbone plus a head that sees the whole final token sequence."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

from adapterzoo.backbones import backbone_name, describe_backbone
from adapterzoo.errors import UnsupportedBackboneError
from adapterzoo.heads import LinearHead
from adapterzoo.labels import checked_labels


class ImageClassifier(nn.Module):
    """A vision backbone and a classification head, the task model that adapters attach to.

    The head receives the final token sequence after the backbone's final norm (CLIP's ``last_hidden_state`` is
    normalised here, since CLIP itself normalises only its pooled token). The default head is linear on the CLS
    token, or on the mean of the patch tokens for backbones without one.
    """

    task = "image-classification"
    head_module = "classifier"
    """The attribute holding the head: PEFT trains and saves it beside every adapter (``modules_to_save``)."""

    def __init__(self, backbone: transformers.PreTrainedModel, labels: Sequence[str], *, pooling: str | None = None):
        super().__init__()
        labels = checked_labels(labels, owner="An ImageClassifier")
        parts = describe_backbone(backbone)
        if parts.root:
            raise UnsupportedBackboneError(
                f"Pass the vision tower, not the whole {type(backbone).__name__}: its '{parts.root}' attribute."
            )
        self.backbone = backbone
        self.labels = labels
        self.final_norm_path = None if parts.sequence_is_normed else parts.final_norm
        self.classifier = LinearHead(
            parts.hidden_size,
            len(labels),
            pooling=pooling or parts.default_pooling,
            num_prefix_tokens=parts.num_prefix_tokens,
        )
        # PEFT records this as the adapter's base_model_name_or_path.
        self.name_or_path = backbone_name(backbone)

    def settings(self) -> dict:
        """What `adapterzoo_config.json` records to rebuild this task model (its head)."""
        return self.classifier.settings()

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The final token sequence, (batch, tokens, hidden), after the backbone's final norm."""
        tokens = self.backbone(pixel_values=pixel_values).last_hidden_state
        if self.final_norm_path is not None:
            # Attribute access (not get_submodule) sees through PEFT wrappers around the whole backbone.
            tokens = reduce(getattr, self.final_norm_path.split("."), self.backbone)(tokens)
        return tokens

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
