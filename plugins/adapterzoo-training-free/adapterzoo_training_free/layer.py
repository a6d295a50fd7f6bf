"""The layers: each wraps the `CLIPClassifier`'s `FeatureLogits` and adds its fitted logits to the zero-shot ones.

Their tensors are buffers (nothing trains): zero until `adapterzoo.fit` calls `fit_features`, so an unfitted adapter
classifies as zero-shot CLIP does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from peft.tuners._buffer_dict import BufferDict
from torch import nn

from adapterzoo.training.fit import FeatureSet
from adapterzoo.tuners import WrappingLayer

from .closed_form import best, gda_head, grid, tip_cache, tip_logits
from .config import GDAConfig, TipAdapterConfig


class _FeatureHead(WrappingLayer):
    """Adds ``extra(adapter, features)`` to the wrapped `FeatureLogits`' logits. ``buffer_names`` are the fitted
    tensors' containers (``adapter_layer_names`` the trained ones, if any); ``fit_configs`` holds each adapter's
    config (its search settings)."""

    buffer_names: tuple[str, ...] = ()

    def __init__(self, base_layer: nn.Module, adapter_name: str, config, *, dim: int, num_classes: int):
        super().__init__(base_layer)
        self.dim, self.num_classes = dim, num_classes
        for name in self.adapter_layer_names:
            setattr(self, name, nn.ParameterDict())
        for name in self.buffer_names:
            setattr(self, name, BufferDict(persistent=True))
        self.fit_configs: dict = {}
        self.update_layer(adapter_name, config)

    def create_adapter(self, adapter_name: str, config) -> None:
        self.fit_configs[adapter_name] = config
        self.create_buffers(adapter_name, config)

    def create_buffers(self, adapter_name: str, config) -> None:
        raise NotImplementedError

    def extra(self, adapter_name: str, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        adapter = self.active_adapter_here()
        output = self.base_layer(features, logits)
        # In float32 whatever the model's dtype (bf16 keeps too few bits for exp(-β(1 - f·Fᵀ))), then cast back.
        return output if adapter is None else output + self.extra(adapter, features.float()).to(output.dtype)


class GDAHead(_FeatureHead):
    """GDA: α·(f W + b), the Gaussian discriminant head (see `gda_head`)."""

    buffer_names = ("gda_weight", "gda_bias", "gda_alpha")
    other_param_names = (*buffer_names, "fit_configs")

    def create_buffers(self, adapter_name: str, config: GDAConfig) -> None:
        self.gda_weight[adapter_name] = torch.zeros(self.dim, self.num_classes)
        self.gda_bias[adapter_name] = torch.zeros(self.num_classes)
        self.gda_alpha[adapter_name] = torch.zeros(())

    def extra(self, adapter_name: str, features: torch.Tensor) -> torch.Tensor:
        weight, bias = self.gda_weight[adapter_name].float(), self.gda_bias[adapter_name].float()
        return self.gda_alpha[adapter_name].float() * (features @ weight + bias)

    def fit_features(self, adapter_name: str, train: FeatureSet, validation: FeatureSet) -> dict[str, float]:
        """Set W and b from the few-shot features, and α by validation accuracy among ``alphas``."""
        features, labels = train.features, train.labels
        if train.views is not None:  # every augmented view is a sample of its own, normalised
            features = F.normalize(train.views, dim=-1).flatten(0, 1)
            labels = train.labels.repeat(len(train.views))
        self.num_classes = train.num_classes  # the classifier's classes now (set_classes may have changed them)
        weight, bias = gda_head(features, labels, self.num_classes)
        head = validation.features @ weight + bias
        alpha = best(
            ((a, a * head) for a in self.fit_configs[adapter_name].alphas), validation.base_logits, validation.labels
        )
        device = train.features.device
        self.gda_weight[adapter_name] = weight.to(device)
        self.gda_bias[adapter_name] = bias.to(device)
        self.gda_alpha[adapter_name] = torch.tensor(float(alpha), device=device)
        return {"alpha": float(alpha)}


class TipAdapterCache(_FeatureHead):
    """Tip-Adapter: α·exp(−β(1 − f Fᵀ))·L over the cache's keys F and one-hot values L."""

    buffer_names = ("tip_keys", "tip_values", "tip_alpha", "tip_beta")
    other_param_names = (*buffer_names, "fit_configs")

    def create_buffers(self, adapter_name: str, config: TipAdapterConfig) -> None:
        size = config.cache_size
        self.set_cache(adapter_name, torch.zeros(size, self.dim), torch.zeros(size, self.num_classes))
        self.tip_alpha[adapter_name] = torch.zeros(())
        self.tip_beta[adapter_name] = torch.zeros(())

    def extra(self, adapter_name: str, features: torch.Tensor) -> torch.Tensor:
        values = self.tip_values[adapter_name].float()
        cache = tip_logits(features, self.keys(adapter_name).float(), values, self.tip_beta[adapter_name].float())
        return self.tip_alpha[adapter_name].float() * cache

    def fit_features(self, adapter_name: str, train: FeatureSet, validation: FeatureSet) -> dict[str, float]:
        """Cache the few-shot features, and search β and α on the reference's grid by validation accuracy."""
        # The keys average the augmented views' unnormalised features (tip_cache normalises them).
        views = train.views.mean(0) if train.views is not None else train.features
        self.num_classes = train.num_classes  # the classifier's classes now (set_classes may have changed them)
        keys, values = tip_cache(views, train.labels, self.num_classes)
        config = self.fit_configs[adapter_name]
        beta, alpha = self.search(adapter_name, keys, values, validation)
        self.set_cache(adapter_name, keys.to(train.features.device), values.to(train.features.device))
        self.set_scales(adapter_name, alpha, beta)
        config.cache_size = len(keys)
        return {"alpha": float(alpha), "beta": float(beta)}

    def keys(self, adapter_name: str) -> torch.Tensor:
        return self.tip_keys[adapter_name]

    def set_cache(self, adapter_name: str, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.tip_keys[adapter_name], self.tip_values[adapter_name] = keys, values

    def set_scales(self, adapter_name: str, alpha: float, beta: float) -> None:
        device = self.tip_values[adapter_name].device
        self.tip_alpha[adapter_name] = torch.tensor(float(alpha), device=device)
        self.tip_beta[adapter_name] = torch.tensor(float(beta), device=device)

    def search(self, adapter_name: str, keys: torch.Tensor, values: torch.Tensor, validation: FeatureSet) -> tuple:
        """(β, α) of the reference's grid with the best validation accuracy."""
        config = self.fit_configs[adapter_name]
        (scale_beta, scale_alpha), (steps_beta, steps_alpha) = config.search_scale, config.search_steps

        def candidates():
            for beta in grid(scale_beta, steps_beta):
                cache = tip_logits(validation.features, keys, values, beta)
                for alpha in grid(scale_alpha, steps_alpha):
                    yield (beta, alpha), alpha * cache

        return best(candidates(), validation.base_logits, validation.labels)


class TipAdapterFCache(TipAdapterCache):
    """Tip-Adapter-F: the keys are a trained parameter. The first `fit` builds the cache and sets the initial α, β
    (``init_alpha``, ``init_beta``); `adapterzoo.train` then trains the keys (not renormalised); a second `fit`
    searches α and β again on validation, keeping the trained keys."""

    adapter_layer_names = ("tip_keys",)
    buffer_names = ("tip_values", "tip_alpha", "tip_beta")

    def keys(self, adapter_name: str) -> torch.Tensor:
        if adapter_name in self.tip_keys:
            return self.tip_keys[adapter_name]
        return self.tip_values[adapter_name].new_zeros(0, self.dim)  # unfitted: an empty cache

    def set_cache(self, adapter_name: str, keys: torch.Tensor, values: torch.Tensor) -> None:
        # An empty (unfitted) cache makes no parameter: there is nothing to train until fitting sizes it.
        if len(keys):
            self.tip_keys[adapter_name] = nn.Parameter(keys, requires_grad=adapter_name in self.active_adapters)
        self.tip_values[adapter_name] = values

    def fit_features(self, adapter_name: str, train: FeatureSet, validation: FeatureSet) -> dict[str, float]:
        config = self.fit_configs[adapter_name]
        if config.cache_size == 0:
            super().fit_features(adapter_name, train, validation)
            self.set_scales(adapter_name, config.init_alpha, config.init_beta)
            return {"alpha": config.init_alpha, "beta": config.init_beta}
        keys, values = self.tip_keys[adapter_name].detach(), self.tip_values[adapter_name]
        beta, alpha = self.search(adapter_name, keys, values, validation)
        self.set_scales(adapter_name, alpha, beta)
        return {"alpha": float(alpha), "beta": float(beta)}
