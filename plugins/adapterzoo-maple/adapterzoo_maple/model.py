"""The CoOp, CoCoOp and MaPLe tuners: they attach to a `CLIPClassifier` (see layer.py for where the prompts go)."""

from __future__ import annotations

import re

from torch import nn

from adapterzoo.backbones import BackboneParts, describe_text_tower
from adapterzoo.tuners import TowerTuner, WrappingLayer

from .config import CoCoOpConfig, CoOpConfig, MaPLeConfig
from .layer import CoCoOpPromptLearner, CoOpContext, MaPLeEncoderLayer, MaPLePromptLearner, MaPLeVisionEmbeddings


class CoOpModel(TowerTuner):
    """CoOp (Zhou et al., IJCV 2022): learnable context in place of the prompt template's words."""

    prefix = "coop_"
    tuner_layer_cls = WrappingLayer

    def target_pattern(self, parts: BackboneParts, config: CoOpConfig) -> str:
        return re.escape(describe_text_tower(self.model).token_embedding)

    def wrap(
        self,
        target: nn.Module,
        adapter_name: str,
        config: CoOpConfig,
        *,
        parts: BackboneParts,
        name: str,
        parent: nn.Module,
        key: str,
    ) -> WrappingLayer:
        return CoOpContext(target, adapter_name, config, tokenizer=self.model.tokenizer)


class CoCoOpModel(CoOpModel):
    """CoCoOp (Zhou et al., CVPR 2022): CoOp's context plus a bias computed from each image by a small Meta-Net; it
    wraps the same token embedding as CoOp."""

    prefix = "cocoop_"

    def wrap(
        self,
        target: nn.Module,
        adapter_name: str,
        config: CoCoOpConfig,
        *,
        parts: BackboneParts,
        name: str,
        parent: nn.Module,
        key: str,
    ) -> WrappingLayer:
        feature_dim = self.model.clip.config.projection_dim  # the image features the Meta-Net reads
        return CoCoOpPromptLearner(
            target, adapter_name, config, tokenizer=self.model.tokenizer, feature_dim=feature_dim
        )


class MaPLeModel(TowerTuner):
    """MaPLe (Khattak et al., CVPR 2023): coupled prompts in the first ``depth`` layers of both CLIP towers."""

    prefix = "maple_"
    tuner_layer_cls = WrappingLayer

    def target_pattern(self, parts: BackboneParts, config: MaPLeConfig) -> str:
        text = describe_text_tower(self.model)
        deepest = min(text.num_layers, parts.num_layers)
        if config.depth > deepest:
            raise ValueError(f"MaPLe's depth {config.depth} exceeds the towers' {deepest} layers.")
        deep = "|".join(str(i) for i in range(1, config.depth))
        layers = [text.layers, parts.layers] if deep else []
        alternatives = [re.escape(text.token_embedding), re.escape(parts.embeddings)]
        alternatives += [rf"{re.escape(path)}\.(?:{deep})" for path in layers]
        return f"(?:{'|'.join(alternatives)})"

    def wrap(
        self,
        target: nn.Module,
        adapter_name: str,
        config: MaPLeConfig,
        *,
        parts: BackboneParts,
        name: str,
        parent: nn.Module,
        key: str,
    ) -> WrappingLayer:
        text = describe_text_tower(self.model)
        if key == text.token_embedding:
            return MaPLePromptLearner(
                target, adapter_name, config, tokenizer=self.model.tokenizer, vision_width=parts.hidden_size
            )
        learner = self.model.get_submodule(text.token_embedding)
        if key == parts.embeddings:
            return MaPLeVisionEmbeddings(target, adapter_name, learner=learner)
        tower, layers = ("text", text) if key in text.layer_paths else ("vision", parts)
        return MaPLeEncoderLayer(
            target, adapter_name, learner=learner, index=layers.layer_paths.index(key), tower=tower
        )
