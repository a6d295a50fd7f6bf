"""`CLIPClassifier`: a CLIP model, class names and a prompt template; open-vocabulary classification.

Logits are ``exp(logit_scale) · norm(image features) @ norm(class-text features)ᵀ``, the text features of the class
names filled into the template (``"a photo of a {}."``), pooled at the end-of-text token and projected. Zero-shot CLIP
is this model with no adapter; prompt learners (CoOp, MaPLe) attach to it and bring their own template. A prompt
learner that conditions the prompts on each image (CoCoOp) makes the class-text features per image: (batch, classes,
dim), computed in one text pass over every (image, class) prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

from adapterzoo.backbones import backbone_name, describe_text_tower
from adapterzoo.labels import checked_labels

DEFAULT_TEMPLATE = "a photo of a {}."


class FeatureLogits(nn.Module):
    """Where methods on CLIP's frozen image features (Tip-Adapter, GDA) add their logits: it returns the zero-shot
    logits unchanged, and such a method wraps it to add its own, computed from the normalised image features and,
    when given, the normalised class-text features the logits were made from (which classes are current): (classes,
    dim), or (batch, classes, dim) when a prompt learner conditions the class prompts on each image (CoCoOp)."""

    def forward(self, features: torch.Tensor, logits: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        return logits


class CLIPClassifier(nn.Module):
    """A CLIP model that classifies images among ``class_names``, which `set_classes` changes at any time.

    Text features are computed once and cached while nothing on the text side trains or adapts; while a prompt
    learner is active on the text tower they are recomputed at every forward pass.
    """

    task = "clip-classification"
    head_module = None

    def __init__(
        self, clip: transformers.CLIPModel, tokenizer, class_names: Sequence[str], *, template: str = DEFAULT_TEMPLATE
    ):
        super().__init__()
        if template.count("{}") != 1:
            raise ValueError(f"A prompt template holds one '{{}}' for the class name, got '{template}'.")
        self.clip = clip
        self.tokenizer = tokenizer
        self.template = template
        self.text_parts = describe_text_tower(clip)
        self._text_cache: dict[tuple, torch.Tensor] = {}
        self._prompt_ids: dict[tuple, torch.Tensor] = {}
        self.feature_logits = FeatureLogits()
        self.set_classes(class_names)
        # PEFT records this as the adapter's base_model_name_or_path.
        self.name_or_path = backbone_name(clip)

    @property
    def labels(self) -> list[str]:
        return self.class_names

    def set_classes(self, class_names: Sequence[str]) -> None:
        """Classify among these classes from now on (open vocabulary: no retraining)."""
        self.class_names = checked_labels(class_names, owner="A CLIPClassifier", kind="class name")
        self._text_cache.clear()
        self._prompt_ids.clear()

    def settings(self) -> dict:
        """What `adapterzoo_config.json` records to rebuild this classifier."""
        return {"type": "clip", "template": self.template}

    def prompt_template(self) -> tuple[str, bool]:
        """The template in use, and whether an adapter on the text tower supplies it (CoOp's and MaPLe's contexts)."""
        embedding = self.clip.get_submodule(self.text_parts.token_embedding)
        supplied = getattr(embedding, "active_template", None)
        template = supplied() if callable(supplied) else None
        return (template, True) if template is not None else (self.template, False)

    def prompt_ids(self, template: str) -> torch.Tensor:
        """Token ids of the template filled with every class name, padded to one length (no attention mask needed:
        the causal mask and end-of-text pooling make padding irrelevant); tokenized once per template and classes."""
        key = (template, tuple(self.class_names))
        if key not in self._prompt_ids:
            self._prompt_ids[key] = self._tokenize(template)
        return self._prompt_ids[key]

    def prepare_to_compile(self) -> None:
        """Tokenize the current prompts now: the tokenizer is Python and Rust code that TorchDynamo cannot trace, so a
        compiled forward must find them tokenized (classes set later are tokenized at a graph break, then cached)."""
        self.prompt_ids(self.prompt_template()[0])

    def _tokenize(self, template: str) -> torch.Tensor:
        ids = self.tokenizer([template.format(name) for name in self.class_names], padding=True, return_tensors="pt")
        ids = ids["input_ids"]
        if ids.shape[1] > self.text_parts.max_length:
            raise ValueError(
                f"Prompts of {ids.shape[1]} tokens exceed the text tower's {self.text_parts.max_length} positions."
            )
        return ids

    def image_conditioner(self) -> nn.Module | None:
        """The token embedding when its active adapter conditions the prompts on each image, else None.

        Such a wrapper defines ``image_conditioned()`` (whether the active adapter does) and
        ``conditioned_on(image)``, a context manager inside which it reads the token ids as one block of the classes'
        prompts per row of ``image`` (the normalised image features, (batch, dim)), in that order.
        """
        embedding = self.clip.get_submodule(self.text_parts.token_embedding)
        conditioned = getattr(embedding, "image_conditioned", None)
        return embedding if callable(conditioned) and conditioned() else None

    def encode_text(self, image: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised text features of the current classes, (classes, dim); (batch, classes, dim) when the active
        adapter conditions the prompts on the normalised image features ``image`` (see `image_conditioner`)."""
        conditioner = self.image_conditioner()
        if conditioner is not None:
            return self._conditioned_text(conditioner, image)
        template, adapted = self.prompt_template()
        device = self.clip.logit_scale.device
        text_side = chain(self.clip.text_model.parameters(), self.clip.text_projection.parameters())
        text_trains = adapted or any(p.requires_grad for p in text_side)
        key = (template, tuple(self.class_names), device)
        if not text_trains and key in self._text_cache:
            return self._text_cache[key]
        ids = self.prompt_ids(template).to(device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and text_trains):
            features = F.normalize(self.clip.get_text_features(input_ids=ids).pooler_output, dim=-1)
        if not text_trains:
            self._text_cache[key] = features
        return features

    def _conditioned_text(self, conditioner: nn.Module, image: torch.Tensor | None) -> torch.Tensor:
        """Every image's class-text features in one text pass over the (image, class) prompts, image-major."""
        if image is None:
            raise ValueError("The active adapter conditions the class prompts on each image: pass the image features.")
        ids = self.prompt_ids(self.prompt_template()[0]).to(image.device)
        with conditioner.conditioned_on(image):
            features = self.clip.get_text_features(input_ids=ids.repeat(image.shape[0], 1)).pooler_output
        return F.normalize(features, dim=-1).view(image.shape[0], ids.shape[0], -1)

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised image features, (batch, dim)."""
        return F.normalize(self.clip.get_image_features(pixel_values=pixel_values).pooler_output, dim=-1)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
    ) -> ImageClassifierOutput:
        """Classify images, or precomputed image ``features`` (`encode`'s output) when the vision side is frozen."""
        image = features if features is not None else self.encode(pixel_values)
        text = self.encode_text(image)
        similarity = image @ text.T if text.dim() == 2 else torch.einsum("bd,bcd->bc", image, text)
        logits = self.feature_logits(image, self.clip.logit_scale.exp() * similarity, text)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)
