"""The PEFT-native layout: an adapter saved so that plain PEFT loads it onto transformers' classification class.

adapterzoo's `ImageClassifier` holds the backbone at ``backbone`` and the head at ``classifier``; transformers'
``*ForImageClassification`` class of the same architecture holds the backbone at its ``classification_prefix``
(``vit``, ``vision_model``, ...) and the head at ``classifier`` too, and its default head computes what the zoo's
default head computes. So an adapter of one of PEFT's own tuners on such a classifier is a PEFT adapter of that class
once its weight keys and module patterns say ``vit.`` where they said ``backbone.``: `TransformersLayout` renames both
ways, and `peft_loadable_blocker` says which combinations qualify.

Renaming is plain string work on prefixes (no regex is compiled here), so a pattern read from a file is renamed back
and then checked by `adapterzoo.pattern_check` exactly as one saved in the zoo's own layout.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from peft import PeftConfig, PeftModel, get_peft_model_state_dict

from adapterzoo.architectures import ARCHITECTURES, Architecture, find_architecture
from adapterzoo.backbones import describe_backbone
from adapterzoo.errors import CheckpointError
from adapterzoo.image_classifier import ImageClassifier
from adapterzoo.method import ROLE_OPTIONS, Method
from adapterzoo.remote_code import load_auto
from adapterzoo.saving import WEIGHTS_NAME, read_weights, saved_key

ZOO_PREFIX = "backbone"
"""Where the zoo's `ImageClassifier` holds the backbone."""
WEIGHTS_ROOT = "base_model.model."
"""The root of a PEFT adapter's weight keys: PEFT's wrapper, then the wrapped model."""
NAME_FIELDS = (*ROLE_OPTIONS, "target_parameters")
"""PEFT config fields holding module names or a regex of them, besides the ``*_pattern`` dicts' keys."""


@dataclass(frozen=True)
class TransformersLayout:
    """Renames between the zoo's `ImageClassifier` and transformers' ``classification_class`` of one architecture."""

    classification_class: str
    prefix: str

    @classmethod
    def of(cls, arch: Architecture) -> TransformersLayout:
        return cls(arch.classification_class, arch.classification_prefix)

    @classmethod
    def for_class(cls, classification_class: str) -> TransformersLayout | None:
        """The layout of transformers' ``classification_class``, None for a class no architecture names."""
        arch = next((a for a in ARCHITECTURES if a.classification_class == classification_class), None)
        return None if arch is None else cls.of(arch)

    @property
    def auto_mapping(self) -> dict[str, str]:
        """What ``AutoPeftModel`` reads to build the base model: transformers' class, by its public name."""
        return {"base_model_class": self.classification_class, "parent_library": "transformers"}

    def weights_to_transformers(self, weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {_renamed(key, WEIGHTS_ROOT + ZOO_PREFIX, WEIGHTS_ROOT + self.prefix): t for key, t in weights.items()}

    def weights_from_transformers(self, weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {_renamed(key, WEIGHTS_ROOT + self.prefix, WEIGHTS_ROOT + ZOO_PREFIX): t for key, t in weights.items()}

    def config_to_transformers(self, config: PeftConfig) -> PeftConfig:
        """A copy of ``config`` whose module patterns name transformers' modules, with ``auto_mapping`` set."""
        renamed = _with_names(config, lambda name: _renamed(name, ZOO_PREFIX, self.prefix))
        renamed.auto_mapping = self.auto_mapping
        return renamed

    def config_from_transformers(self, config: PeftConfig) -> PeftConfig:
        """A copy of ``config`` whose module patterns name the zoo's modules again."""
        renamed = _with_names(config, lambda name: _renamed(name, self.prefix, ZOO_PREFIX))
        renamed.auto_mapping = None
        return renamed

    def classification_config(self, task_model: ImageClassifier) -> transformers.PretrainedConfig:
        """transformers' config of the classification class for ``task_model``: the backbone's, with its labels.

        CLIP's and SigLIP's classes take the whole model's config, built around the vision tower's.
        """
        model_class = getattr(transformers, self.classification_class)
        config = copy.deepcopy(task_model.backbone.config)
        if not isinstance(config, model_class.config_class):
            config = model_class.config_class(vision_config=config.to_dict())
        config.architectures = [self.classification_class]
        config.id2label = task_model.id2label
        config.label2id = task_model.label2id
        return config


def saved_layout(transformers_class: str | None, task_model: Any, record_path: Path) -> TransformersLayout | None:
    """The layout a record names (None: the zoo's own), checked against the task model it was rebuilt as."""
    if transformers_class is None:
        return None
    arch = find_architecture(describe_backbone(task_model).model_type)
    if not isinstance(task_model, ImageClassifier) or arch is None or arch.classification_class != transformers_class:
        served = arch.classification_class if arch is not None else None
        raise CheckpointError(
            f"{record_path} roots its PEFT files at transformers' {transformers_class}, which does not hold this "
            f"backbone (its classification class: {served}). Pass the backbone the adapter was trained on."
        )
    return TransformersLayout.of(arch)


def read_adapter_weights(
    folder: Path, peft_model: PeftModel, layout: TransformersLayout | None, adapter_name: str | None = None
) -> dict[str, torch.Tensor]:
    """The saved weights of ``peft_model``'s adapter ``adapter_name`` (by default the active one), keyed as in the
    zoo's layout whichever one they are in: checked key by key and shape by shape against what the adapter holds
    (`adapterzoo.saving.read_weights`)."""
    adapter = adapter_name or peft_model.active_adapter
    own = get_peft_model_state_dict(peft_model, adapter_name=adapter, save_embedding_layers=False)
    keys = {saved_key(key, adapter): key for key in own}
    expected = {saved: own[key] for saved, key in keys.items()}
    if layout is None:
        saved = read_weights(folder / WEIGHTS_NAME, expected)
    else:
        saved = layout.weights_from_transformers(
            read_weights(folder / WEIGHTS_NAME, layout.weights_to_transformers(expected))
        )
    return {keys[key]: tensor for key, tensor in saved.items()}


def _renamed(name: str, old: str, new: str) -> str:
    """``name`` with a leading module path ``old`` replaced by ``new``, in a plain name or a regex of the zoo's."""
    for separator in (".", re.escape(".")):
        if name.startswith(old + separator):
            return new + separator + name[len(old + separator) :]
    return name


def _with_names(config: PeftConfig, rename: Callable[[str], str]) -> PeftConfig:
    """A copy of ``config`` with every module name or pattern it holds renamed (keys of the ``*_pattern`` dicts)."""
    renamed = copy.deepcopy(config)
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name in NAME_FIELDS:
            setattr(renamed, field.name, _map_names(value, rename))
        elif field.name.endswith("_pattern") and isinstance(value, dict):
            setattr(renamed, field.name, {rename(key): item for key, item in value.items()})
    return renamed


def _map_names(value: Any, rename: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return rename(value)
    if isinstance(value, (list, tuple, set)):
        return type(value)(rename(item) if isinstance(item, str) else item for item in value)
    return value


def head_mismatch(task_model: ImageClassifier, arch: Architecture) -> str | None:
    """How ``task_model``'s head differs from the one ``arch``'s classification class computes; None if it does not.

    The head is that class's when it is the architecture's default (`ImageClassifier`); where the final norm applies
    matters only for a sequence that has not passed it.
    """
    parts = describe_backbone(task_model.backbone)
    expected = {"type": "linear", "pooling": parts.default_pooling, "final_norm": parts.default_head_norm}
    settings = task_model.settings()
    if parts.sequence_is_normed:
        del expected["final_norm"], settings["final_norm"]
    if settings == expected:
        return None
    differing = ", ".join(f"{key}={value!r}" for key, value in settings.items() if expected.get(key) != value)
    wanted = ", ".join(f"{key}={value!r}" for key, value in expected.items() if settings.get(key) != value)
    return f"the head ({differing}) is not the one {arch.classification_class} computes ({wanted})"


def peft_loadable_blocker(
    method: Method,
    task_model: Any,
    config: PeftConfig,
    backbone: str | None,
    revision: str | None = None,
    subfolder: str = "",
) -> str | None:
    """Why an adapter cannot be saved in the PEFT-native layout, or None when it can.

    It can when it is an adapter of one of PEFT's own tuners (PEFT reads its config), on an `ImageClassifier` with
    the default head of its architecture, which transformers has a classification class for, on a backbone loaded
    from a checkpoint of that class's model type (a whole CLIP, not CLIP's vision tower alone), recorded by name.
    """
    if not isinstance(task_model, ImageClassifier):
        return f"plain PEFT has no model for the '{task_model.task}' task"
    if not method.config_cls.__module__.startswith("peft."):
        return f"method '{method.name}' is adapterzoo's, not one of PEFT's own tuners"
    parts = describe_backbone(task_model.backbone)
    arch = find_architecture(parts.model_type)
    if arch is None or arch.classification_class is None:
        return f"transformers has no image-classification class for the '{parts.architecture}' architecture"
    mismatch = head_mismatch(task_model, arch)
    if mismatch is not None:
        return f"{mismatch}; use the default pooling and final_norm"
    if backbone is None:
        return "the backbone was not loaded from a Hub id or a folder, so PEFT could not find it"
    if subfolder:
        return f"the backbone lies in the subfolder '{subfolder}' of its repo, which PEFT's base model id cannot name"
    expected = getattr(transformers, arch.classification_class).config_class.model_type
    model_type = parts.model_type
    if model_type != expected:  # a tower's config (CLIP's vision tower): the checkpoint may hold the whole model
        try:
            model_type = load_auto("AutoConfig", backbone, revision=revision).model_type
        except OSError as exc:
            return f"the backbone's config cannot be read to check what {arch.classification_class} loads ({exc})"
    if model_type != expected:
        return f"{arch.classification_class} loads '{expected}' checkpoints, and '{backbone}' is a '{model_type}' one"
    return None
