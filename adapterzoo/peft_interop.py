"""Importing an adapter that PEFT itself saved for a transformers image-classification model.

Such a folder (or Hub repo) holds PEFT's ``adapter_config.json`` and ``adapter_model.safetensors`` but no zoo record:
`import_record` reads what the record would say from what is there. The backbone is the config's
``base_model_name_or_path`` (at its ``revision``), the method the zoo method of its ``peft_type``, the head the
default head of the backbone's architecture (the one transformers' ``*ForImageClassification`` class computes), and
the files are in the PEFT-native layout of that class (`adapterzoo.transformers_layout`). The labels come from, in
order: a transformers ``config.json`` beside the adapter (``id2label``), the base model's own ``id2label`` when its
size matches the head's, else transformers' default names ``LABEL_0``, ``LABEL_1``, ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import transformers

from adapterzoo import __version__
from adapterzoo.architectures import architecture_for
from adapterzoo.backbones import describe_backbone, load_backbone
from adapterzoo.errors import CheckpointError, MethodNotFoundError, UnsupportedBackboneError, UnsupportedTaskError
from adapterzoo.image_classifier import ImageClassifier
from adapterzoo.loading_options import LoadingOptions
from adapterzoo.method import Method
from adapterzoo.registry import get_method, list_methods, provenance
from adapterzoo.remote_code import load_auto
from adapterzoo.saving import (
    PEFT_CONFIG_NAME,
    TRANSFORMERS_CONFIG_NAME,
    WEIGHTS_NAME,
    ZOO_CONFIG_NAME,
    AdapterRecord,
    opened_weights,
    read_json_object,
)
from adapterzoo.transformers_layout import WEIGHTS_ROOT, ZOO_PREFIX, TransformersLayout

HEAD_KEY = f"{WEIGHTS_ROOT}{ImageClassifier.head_module}.weight"
"""Where PEFT saves a trained head (``modules_to_save=["classifier"]``) of a transformers classification model."""


def is_peft_adapter(folder: Path) -> bool:
    """Whether ``folder`` holds an adapter PEFT saved (its config, no zoo record)."""
    return not (folder / ZOO_CONFIG_NAME).is_file() and (folder / PEFT_CONFIG_NAME).is_file()


def import_record(
    folder: Path,
    *,
    backbone: str | transformers.PreTrainedModel | None = None,
    backbone_revision: str | None = None,
    loading: LoadingOptions | None = None,
) -> tuple[AdapterRecord, transformers.PreTrainedModel]:
    """The zoo's record of the PEFT adapter in ``folder``, and its backbone, loaded with ``loading`` (or ``backbone``
    instead).

    Refuses, naming what to do instead, an adapter for another task (a causal LM's), of a PEFT tuner that is no zoo
    method, on an unsupported base model, or without a trained head.
    """
    config = read_json_object(folder / PEFT_CONFIG_NAME)
    base = config.get("base_model_name_or_path")
    _check_task(folder, config, base)
    saved = _scan_weights(folder / WEIGHTS_NAME)
    if saved.zoo_layout:
        raise CheckpointError(
            f"{folder} holds an adapter that adapterzoo saved in its own layout, but its {ZOO_CONFIG_NAME} is missing "
            "(it records the labels and the head): restore that file, or save the adapter again."
        )
    method = _method_of(folder, config)
    if backbone is None:
        if not isinstance(base, str) or not base:
            raise CheckpointError(f"{folder / PEFT_CONFIG_NAME} names no base_model_name_or_path; pass backbone=.")
        backbone, backbone_revision = base, config.get("revision")
    model = _load_base(
        folder,
        backbone,
        (loading or LoadingOptions()).for_recorded_backbone(backbone_revision, subfolder="", saved_dtype=None),
    )
    parts = describe_backbone(model)
    layout = TransformersLayout.of(architecture_for(parts.model_type))
    expected_class = (config.get("auto_mapping") or {}).get("base_model_class", layout.classification_class)
    if expected_class != layout.classification_class:
        raise CheckpointError(
            f"{folder} is a PEFT adapter of transformers' {expected_class}; adapterzoo imports adapters of "
            f"{layout.classification_class} for this backbone. Load it with peft.PeftModel.from_pretrained."
        )
    if saved.head_shape is None:
        raise CheckpointError(
            f"{folder} holds no trained head ('{HEAD_KEY}'): adapterzoo imports PEFT adapters saved with "
            "modules_to_save=['classifier']. Load this one with peft.PeftModel.from_pretrained onto the base model."
        )
    distribution, version = provenance(method.name)
    record = AdapterRecord(
        method=method.name,
        distribution=distribution,
        distribution_version=version,
        task=ImageClassifier.task,
        backbone=backbone if isinstance(backbone, str) else None,
        backbone_revision=backbone_revision,
        labels=_labels(folder, model, saved.head_shape[0]),
        head={"type": "linear", "pooling": parts.default_pooling, "final_norm": parts.default_head_norm},
        trainable_parameters=saved.parameters,
        adapterzoo_version=__version__,
        transformers_class=layout.classification_class,
    )
    return record, model


def _check_task(folder: Path, config: dict[str, Any], base: Any) -> None:
    task_type = config.get("task_type")
    if task_type is not None:
        raise UnsupportedTaskError(
            f"{folder} holds a PEFT adapter for task_type '{task_type}' on '{base}'; adapterzoo serves image "
            "classification only. Load it with PEFT (peft.AutoPeftModel... for its task, or peft.PeftModel)."
        )


@dataclass(frozen=True)
class _SavedWeights:
    """What an adapter's weights file says of it, read from its safetensors header alone."""

    head_shape: tuple[int, ...] | None  # the trained head's weight (None: no head)
    zoo_layout: bool  # keys rooted at the zoo's task model, not at transformers' class
    parameters: int


def _scan_weights(path: Path) -> _SavedWeights:
    with opened_weights(path) as handle:
        shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    return _SavedWeights(
        head_shape=shapes.get(HEAD_KEY),
        zoo_layout=any(key.startswith(f"{WEIGHTS_ROOT}{ZOO_PREFIX}.") for key in shapes),
        parameters=sum(math.prod(shape) for shape in shapes.values()),
    )


def _method_of(folder: Path, config: dict[str, Any]) -> Method:
    """The zoo method of the adapter's ``peft_type``: one of PEFT's own tuners, as the zoo serves it."""
    peft_type = config.get("peft_type")
    name = peft_type.lower().replace("_", "-") if isinstance(peft_type, str) else ""
    if not _is_peft_tuner(name):
        importable = [info.name for info in list_methods() if _is_peft_tuner(info.name)]
        raise CheckpointError(
            f"{folder} holds a PEFT '{peft_type}' adapter; adapterzoo imports PEFT adapters of "
            f"{', '.join(importable)}. Load this one with peft.PeftModel.from_pretrained."
        )
    return get_method(name)


def _is_peft_tuner(name: str) -> bool:
    """Whether the installed method ``name`` is one of PEFT's own tuners."""
    try:
        return get_method(name).config_cls.__module__.startswith("peft.")
    except (MethodNotFoundError, ValueError):
        return False


def _load_base(
    folder: Path, backbone: str | transformers.PreTrainedModel, options: LoadingOptions
) -> transformers.PreTrainedModel:
    if not isinstance(backbone, str):
        return backbone
    try:
        return load_backbone(backbone, options)
    except UnsupportedBackboneError as exc:
        raise CheckpointError(
            f"{folder} is a PEFT adapter of '{backbone}', which adapterzoo cannot hold: {exc} "
            "Load it with peft.PeftModel.from_pretrained onto that model."
        ) from exc
    except OSError as exc:
        raise CheckpointError(
            f"Cannot load the base model '{backbone}' of the PEFT adapter in {folder} ({exc}). "
            "Pass backbone= (a Hub id, a folder or a loaded model) to from_pretrained."
        ) from exc


def _labels(folder: Path, backbone: transformers.PreTrainedModel, num_labels: int) -> list[str]:
    """The labels of a head of ``num_labels`` rows: from ``config.json`` beside the adapter, the base model's
    config, or transformers' default names, the first of these whose ``id2label`` has ``num_labels`` entries."""
    configs = []
    if (folder / TRANSFORMERS_CONFIG_NAME).is_file():
        try:
            configs.append(load_auto("AutoConfig", folder))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{folder / TRANSFORMERS_CONFIG_NAME} is not a transformers config: {exc}") from exc
    configs.append(backbone.config)
    for config in configs:
        id2label = {int(i): str(label) for i, label in (getattr(config, "id2label", None) or {}).items()}
        if sorted(id2label) == list(range(num_labels)) and len(set(id2label.values())) == num_labels:
            return [id2label[i] for i in range(num_labels)]
    return [f"LABEL_{i}" for i in range(num_labels)]
