"""The layers: each wraps the `CLIPClassifier`'s `FeatureLogits` and adds its fitted logits to the zero-shot ones.

Their tensors are buffers (nothing trains): zero until `adapterzoo.fit` calls `fit_features`, so an unfitted adapter
classifies as zero-shot CLIP does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from peft.tuners._buffer_dict import BufferDict
from torch import nn

from adapterzoo.training.fit import FeatureSet
from adapterzoo.tuners import WrappingLayer

from .closed_form import best, gda_base_head, gda_head, gda_novel_head, grid, tip_cache, tip_logits
from .config import GDAConfig, TipAdapterConfig

# Cosine similarity above 1 − this: a class's text feature is a fitted class's (recomputed with other padding,
# the same prompt gives the same feature to float32 rounding).
MATCH_TOLERANCE = 1e-5


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

    def extra(self, adapter_name: str, features: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, features: torch.Tensor, logits: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        adapter = self.active_adapter_here()
        output = self.base_layer(features, logits, text)
        if adapter is None:
            return output
        # In float32 whatever the model's dtype (bf16 keeps too few bits for exp(-β(1 - f·Fᵀ))), then cast back.
        text = None if text is None else text.float()
        return output + self.extra(adapter, features.float(), text).to(output.dtype)


class GDAHead(_FeatureHead):
    """GDA: α·(f W + b), the Gaussian discriminant head (see `gda_head`), over the current classes.

    The fitted classes are recognised by their text features (``gda_text``), so a subset or reordering of them keeps
    their head. Other classes: the ``base-to-novel`` variant synthesises their head (`gda_novel_head`) from the
    training features it keeps (``gda_samples``); the few-shot variant refuses them.
    """

    buffer_names = ("gda_weight", "gda_bias", "gda_alpha", "gda_text", "gda_samples")
    other_param_names = (*buffer_names, "fit_configs")

    def create_buffers(self, adapter_name: str, config: GDAConfig) -> None:
        self.gda_weight[adapter_name] = torch.zeros(self.dim, self.num_classes)
        self.gda_bias[adapter_name] = torch.zeros(self.num_classes)
        self.gda_alpha[adapter_name] = torch.zeros(())
        self.gda_text[adapter_name] = torch.zeros(self.num_classes, self.dim)
        if config.variant == "base-to-novel":
            self.gda_samples[adapter_name] = torch.zeros(config.fitted_samples, self.dim)
        # Per adapter: the last class texts seen, the fitted tensors then, and their head.
        self.heads: dict[str, tuple] = getattr(self, "heads", {})
        self.heads.pop(adapter_name, None)

    def extra(self, adapter_name: str, features: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        weight, bias = self.head(adapter_name, text)
        return self.gda_alpha[adapter_name].float() * (features @ weight + bias)

    def head(self, adapter_name: str, text: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """W (dim, classes) and b (classes) for the classes of ``text`` (the fitted ones when None), remembered
        until the classes or the fitted tensors change (a synthesised head costs a pinv per new class)."""
        weight, bias = self.gda_weight[adapter_name].float(), self.gda_bias[adapter_name].float()
        if text is None:
            return weight, bias
        if torch.compiler.is_compiling():
            # A traced graph (torch.compile, an export) serves one set of classes: the head the last eager pass
            # computed for them, else the fitted one (matching text features is data-dependent, which cannot trace).
            last = self.heads.get(adapter_name)
            return last[2] if last is not None else (weight, bias)
        # The fitted tensors themselves (held, so not replaced by others at the same address) and their versions.
        state = [(tensor, tensor._version) for tensor in self.fitted_tensors(adapter_name)]
        last = self.heads.get(adapter_name)
        if last is not None and _same(last[1], state) and torch.equal(last[0], text):
            return last[2]
        fitted = self.gda_text[adapter_name].float()
        if not fitted.any():  # unfitted: no head yet (α is 0)
            current = (weight.new_zeros(self.dim, len(text)), bias.new_zeros(len(text)))
        else:
            current = self.match(adapter_name, text, fitted, weight, bias)
        self.heads[adapter_name] = (text.clone(), state, current)
        return current

    def match(self, adapter_name: str, text, fitted, weight, bias) -> tuple[torch.Tensor, torch.Tensor]:
        """The fitted head's columns for the classes whose text feature is a fitted one (the prior moved to the
        current number of classes), a synthesised head for the others (base-to-novel only)."""
        # Normalised again: a bf16 model's text features, cast to float32, are unit-norm only to bf16's precision.
        similarity, index = (F.normalize(text, dim=-1) @ F.normalize(fitted, dim=-1).T).max(1)
        known = similarity > 1 - MATCH_TOLERANCE
        count = len(text)
        current_weight = weight.new_zeros(self.dim, count)
        current_bias = bias.new_zeros(count)
        current_weight[:, known] = weight[:, index[known]]
        current_bias[known] = bias[index[known]] + math.log(len(fitted) / count)
        if not known.all():
            config = self.fit_configs[adapter_name]
            if config.variant != "base-to-novel":
                raise ValueError(
                    f"This GDA head was fitted on {len(fitted)} classes, and {int((~known).sum())} of the "
                    f"{count} current classes are not among them. Classify among fitted classes, or fit with "
                    "variant='base-to-novel', which synthesises a head for classes never fitted."
                )
            novel = gda_novel_head(
                self.gda_samples[adapter_name], text[~known], config.neighbours, config.text_copies, count
            )
            current_weight[:, ~known], current_bias[~known] = novel[0].to(weight.device), novel[1].to(bias.device)
        return current_weight, current_bias

    def fitted_tensors(self, adapter_name: str) -> list[torch.Tensor]:
        names = [name for name in self.buffer_names if adapter_name in getattr(self, name)]
        return [getattr(self, name)[adapter_name] for name in names]

    def fit_features(self, adapter_name: str, train: FeatureSet, validation: FeatureSet) -> dict[str, float]:
        """Set W and b from the few-shot features (and keep them, base-to-novel), and α by validation accuracy
        among ``alphas``."""
        config = self.fit_configs[adapter_name]
        features, labels = train.features, train.labels
        if train.views is not None:  # every augmented view is a sample of its own, normalised
            features = F.normalize(train.views, dim=-1).flatten(0, 1)
            labels = train.labels.repeat(len(train.views))
        classes = train.num_classes
        if config.variant == "base-to-novel":
            if len(features) < config.neighbours:
                raise ValueError(
                    f"GDA's base-to-novel variant synthesises a new class from its {config.neighbours} nearest "
                    f"training features, and there are {len(features)}: lower `neighbours` or add views or shots."
                )
            weight, bias = gda_base_head(features, labels, classes)
        else:
            weight, bias = gda_head(features, labels, classes)
        head = validation.features @ weight + bias
        alpha = best(((a, a * head) for a in config.alphas), validation.base_logits, validation.labels)
        device = train.features.device
        self.gda_weight[adapter_name] = weight.to(device)
        self.gda_bias[adapter_name] = bias.to(device)
        self.gda_alpha[adapter_name] = torch.tensor(float(alpha), device=device)
        self.gda_text[adapter_name] = train.text.float().to(device)
        config.fitted_classes = classes
        if config.variant == "base-to-novel":
            self.gda_samples[adapter_name] = features.float().to(device)
            config.fitted_samples = len(features)
        self.num_classes = classes
        self.heads.pop(adapter_name, None)
        return {"alpha": float(alpha)}


def _same(before: list[tuple[torch.Tensor, int]], now: list[tuple[torch.Tensor, int]]) -> bool:
    """Whether the fitted tensors are the same objects, unmodified since."""
    return len(before) == len(now) and all(a is b and u == v for (a, u), (b, v) in zip(before, now, strict=True))


class TipAdapterCache(_FeatureHead):
    """Tip-Adapter: α·exp(−β(1 − f Fᵀ))·L over the cache's keys F and one-hot values L."""

    buffer_names = ("tip_keys", "tip_values", "tip_alpha", "tip_beta")
    other_param_names = (*buffer_names, "fit_configs")

    def create_buffers(self, adapter_name: str, config: TipAdapterConfig) -> None:
        size = config.cache_size
        self.set_cache(adapter_name, torch.zeros(size, self.dim), torch.zeros(size, self.num_classes))
        self.tip_alpha[adapter_name] = torch.zeros(())
        self.tip_beta[adapter_name] = torch.zeros(())

    def extra(self, adapter_name: str, features: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        values = self.tip_values[adapter_name].float()
        if text is not None and text.shape[-2] != values.shape[1]:
            raise ValueError(
                f"This Tip-Adapter's cache holds one-hot values over the {values.shape[1]} classes it was fitted on; "
                f"it cannot classify {text.shape[-2]} other classes (GDA's base-to-novel variant can)."
            )
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
        if config.cache_size == 0 or not self.keys(adapter_name).any():  # the first fit (a sized cache, all zeros)
            super().fit_features(adapter_name, train, validation)
            self.set_scales(adapter_name, config.init_alpha, config.init_beta)
            return {"alpha": config.init_alpha, "beta": config.init_beta}
        keys, values = self.tip_keys[adapter_name].detach(), self.tip_values[adapter_name]
        beta, alpha = self.search(adapter_name, keys, values, validation)
        self.set_scales(adapter_name, alpha, beta)
        return {"alpha": float(alpha), "beta": float(beta)}
