"""The DVPT tuner: wraps the patch embeddings, each block's MLP (and the norm before it) and the head (see layer.py)."""

from __future__ import annotations

import re

from torch import nn

from adapterzoo.backbones import BackboneParts, mlp_norm
from adapterzoo.image_classifier import ImageClassifier
from adapterzoo.tuners import MLPInput, TowerTuner, WrappingLayer

from .config import DVPTConfig
from .layer import DVPTMLP, DVPTEmbeddings, DVPTHead


class DVPTModel(TowerTuner):
    """Dynamic Visual Prompt Tuning as a PEFT tuner on an `ImageClassifier`."""

    prefix = "dvpt_"
    tuner_layer_cls = WrappingLayer

    def target_pattern(self, parts: BackboneParts, config: DVPTConfig) -> str:
        head = re.escape(ImageClassifier.head_module)
        return rf"(?:{re.escape(parts.embeddings)}|{head}|{self.mlp_pattern(parts)})"

    def wrap(
        self,
        target: nn.Module,
        adapter_name: str,
        config: DVPTConfig,
        *,
        parts: BackboneParts,
        name: str,
        parent: nn.Module,
        key: str,
    ) -> WrappingLayer:
        if key == parts.embeddings:
            return DVPTEmbeddings(target, adapter_name, config, parts)
        if key == ImageClassifier.head_module:
            return DVPTHead(
                target, adapter_name, config, hidden_size=parts.hidden_size, num_class_tokens=parts.num_class_tokens
            )
        if name == mlp_norm(parent):
            return MLPInput(target, adapter_name)
        return DVPTMLP(
            target,
            adapter_name,
            index=parts.layer_paths.index(key.rsplit(".", 1)[0]),
            prompt_source=self.model.get_submodule(parts.embeddings),
            block=parent,
        )
