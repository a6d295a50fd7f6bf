"""The GDA and Tip-Adapter tuners: each wraps the `CLIPClassifier`'s `feature_logits` (see layer.py)."""

from __future__ import annotations

import torch
from torch import nn

from adapterzoo.backbones import BackboneParts
from adapterzoo.tuners import TowerTuner, TowerTunerConfig, WrappingLayer

from .layer import GDAHead, TipAdapterCache, TipAdapterFCache

TARGET = "feature_logits"


class _FeatureHeadTuner(TowerTuner):
    """Wraps the classifier's `FeatureLogits` with ``layer_cls``."""

    layer_cls: type[WrappingLayer]

    def target_pattern(self, parts: BackboneParts, config: TowerTunerConfig) -> str:
        return TARGET

    def classes(self, config: TowerTunerConfig) -> int:
        """How many classes an adapter's head is made for: a saved head is as wide as the classes it was fitted on,
        whichever classes the classifier has now."""
        return getattr(config, "fitted_classes", 0) or len(self.model.class_names)

    def wrap(self, target: nn.Module, adapter_name: str, config: TowerTunerConfig, **where) -> WrappingLayer:
        dim = self.model.clip.config.projection_dim
        return self.layer_cls(target, adapter_name, config, dim=dim, num_classes=self.classes(config))

    def _create_and_replace(
        self, peft_config: TowerTunerConfig, adapter_name: str, target: nn.Module, *args, **kwargs
    ) -> None:
        if isinstance(target, self.tuner_layer_cls):  # another adapter on the wrapped head: made for its own classes
            target.num_classes = self.classes(peft_config)
        super()._create_and_replace(peft_config, adapter_name, target, *args, **kwargs)

    def _replace_module(self, parent: nn.Module, child_name: str, new_module: nn.Module, child: nn.Module) -> None:
        # PEFT's own places the new layer by the wrapped module's first weight, which `FeatureLogits` has none of.
        setattr(parent, child_name, new_module)


class GDAModel(_FeatureHeadTuner):
    """GDA (Wang et al., ICLR 2024): a Gaussian discriminant head on CLIP's image features."""

    prefix = "gda_"
    tuner_layer_cls = GDAHead
    layer_cls = GDAHead


class TipAdapterModel(_FeatureHeadTuner):
    """Tip-Adapter (Zhang et al., ECCV 2022): a cache of the few-shot features."""

    prefix = "tip_"
    tuner_layer_cls = TipAdapterCache
    layer_cls = TipAdapterCache


class TipAdapterFModel(_FeatureHeadTuner):
    """Tip-Adapter-F (Zhang et al., ECCV 2022): the cache's keys fine-tuned."""

    prefix = "tip_"
    tuner_layer_cls = TipAdapterFCache
    layer_cls = TipAdapterFCache


def gda_linear_head(classifier, adapter_name: str = "default") -> nn.Linear:
    """A fitted GDA and the zero-shot classifier as one linear layer on the normalised image features, for the
    classifier's current classes: weight scale·T + α·Wᵀ, bias α·b (T the class-text features, scale CLIP's logit
    scale)."""
    layer = classifier.get_submodule(TARGET)
    if not isinstance(layer, GDAHead):
        raise ValueError("The classifier has no GDA head to merge.")
    with torch.no_grad():
        text = classifier.encode_text().float()
        weight, bias = layer.head(adapter_name, text)
        alpha = layer.gda_alpha[adapter_name]
        linear = nn.Linear(layer.dim, len(text))
        linear.weight.copy_(classifier.clip.logit_scale.exp().float() * text + alpha * weight.T)
        linear.bias.copy_(alpha * bias)
    return linear
