"""Several adapters on one backbone: `load_saved_adapter` adds a saved adapter to an `AdapterModel`, and
`mixed_forward` runs a batch in which every example names the adapter it goes through.

The mechanism. All adapters of a model are of its method (PEFT keeps adapters of one type in a `PeftModel`) and live
in its tuner's per-adapter containers; each keeps its own labels (or CLIP class names and template) and record. A
mixed batch is grouped by adapter and each group runs with its adapter active, its logits scattered back into the
batch's order: exact for every method, since each example computes what it computes alone. The LoRA family goes
further: its backbone runs the whole batch at once through PEFT's own mixed batch (``adapter_names=``, a per-example
LoRA in every layer; DoRA excepted, which PEFT cannot mix), and only the heads (or CLIP's class texts) run per
group, on the features. Logits are as wide as the widest label set in the batch; an example's columns past its
adapter's labels are ``-inf`` (probability 0).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from peft import set_peft_model_state_dict
from peft.tuners.lora import LoraModel
from peft.utils import ModulesToSaveWrapper
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

from adapterzoo.errors import AdapterMismatchError, UnknownAdapterError
from adapterzoo.image_classifier import ImageClassifier
from adapterzoo.pattern_check import check_patterns
from adapterzoo.peft_interop import is_peft_adapter
from adapterzoo.placement import follow
from adapterzoo.saving import PEFT_CONFIG_NAME, WEIGHTS_NAME, ZOO_CONFIG_NAME, AdapterRecord, check_head_size
from adapterzoo.transformers_layout import read_adapter_weights, saved_layout

if TYPE_CHECKING:
    from adapterzoo.auto import AdapterModel


@dataclass
class AdapterState:
    """What an `AdapterModel` keeps of an adapter that is not active, besides its weights (which PEFT keeps): the
    labels (CLIP's class names), CLIP's prompt template, and the record's metadata."""

    labels: list[str]
    template: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    license: str | None = None
    datasets: list[str] = field(default_factory=list)
    trainable_parameters: int = 0


def load_saved_adapter(model: AdapterModel, folder: Path, adapter_name: str) -> None:
    """Add the adapter saved in ``folder`` to ``model`` as ``adapter_name`` (not made active).

    Refused with `AdapterMismatchError` before anything changes: another method, task or backbone (name or revision)
    than the model's, another head (pooling, norm; or, for a method that replaces the head, another number of labels).
    A failure while loading the weights leaves the model as it was.
    """
    from adapterzoo.auto import _backbone_of, _read_peft_config

    _check_new_name(model, adapter_name)
    if is_peft_adapter(folder):
        raise AdapterMismatchError(
            f"{folder} was saved by PEFT without adapterzoo's record: load it alone with AutoAdapter.from_pretrained "
            "and save it with save_pretrained, then load that folder."
        )
    record = AdapterRecord.read(folder)
    _check_joins(model, record, folder)
    task_model = model.task_model
    config = _read_peft_config(folder, model.method)
    layout = saved_layout(record.transformers_class, task_model, folder / ZOO_CONFIG_NAME)
    if layout is not None:
        config = layout.config_from_transformers(config)
    check_patterns(config, task_model, folder / PEFT_CONFIG_NAME)
    config.inference_mode = True
    state = AdapterState(
        labels=list(record.labels),
        template=record.head.get("template"),
        metrics=dict(record.metrics),
        license=record.license,
        datasets=list(record.datasets),
        trainable_parameters=record.trainable_parameters,
    )
    peft_model = model.peft_model
    active = model._active_state()
    # Made while the task model holds its labels: tuners size per-class state by the current classes (Tip-Adapter).
    model._apply_state(state)
    try:
        peft_model.add_adapter(adapter_name, config)
        try:
            _size_head(task_model, adapter_name, len(record.labels))
            follow(peft_model, _backbone_of(task_model))
            weights = read_adapter_weights(folder, peft_model, layout, adapter_name=adapter_name)
            set_peft_model_state_dict(peft_model, weights, adapter_name=adapter_name)
        except BaseException:
            peft_model.delete_adapter(adapter_name)
            raise
    finally:
        model._apply_state(active)
    model._states[adapter_name] = state


def _check_new_name(model: AdapterModel, adapter_name: str) -> None:
    """Refuse a name that is loaded, or that weight keys could not tell from a part of the model (`saved_key`)."""
    if adapter_name in model.adapter_names:
        raise ValueError(f"An adapter named '{adapter_name}' is already loaded: pass another adapter_name=.")
    parts = {part for path, _ in model.task_model.named_modules() for part in path.split(".")}
    if not adapter_name or "." in adapter_name or adapter_name in parts - set(model.adapter_names):
        raise ValueError(
            f"'{adapter_name}' cannot name an adapter: names are non-empty, without '.', and not the name of a part "
            "of the model (its weights' keys would be ambiguous). Pass another adapter_name=."
        )


def _check_joins(model: AdapterModel, record: AdapterRecord, folder: Path) -> None:
    """Refuse an adapter that cannot share ``model``'s backbone and tuner."""
    from adapterzoo.auto import LEGACY_HEAD_SETTINGS

    task_model = model.task_model
    lead = f"{folder} cannot join this model's adapters:"
    if record.method != model.method.name:
        raise AdapterMismatchError(
            f"{lead} it holds a '{record.method}' adapter and the model's are '{model.method.name}' (PEFT keeps "
            "adapters of one type in a model). Load it as a model of its own with AutoAdapter.from_pretrained."
        )
    if record.task != task_model.task:
        raise AdapterMismatchError(f"{lead} it serves '{record.task}', the model '{task_model.task}'.")
    revisions_differ = None not in (record.backbone_revision, model.backbone_revision) and (
        record.backbone_revision != model.backbone_revision
    )
    if record.backbone != model.backbone_name or revisions_differ:
        raise AdapterMismatchError(
            f"{lead} it was trained on the backbone '{record.backbone}' (revision {record.backbone_revision}), the "
            f"model holds '{model.backbone_name}' (revision {model.backbone_revision}). Load it as a model of its "
            "own with AutoAdapter.from_pretrained."
        )
    if isinstance(task_model, ImageClassifier):
        head = {**LEGACY_HEAD_SETTINGS, **record.head}
        if head != task_model.settings():
            raise AdapterMismatchError(f"{lead} its head is {head}, the model's {task_model.settings()}.")
        if model.method.replaces_head and len(record.labels) != len(model.labels):
            raise AdapterMismatchError(
                f"{lead} '{model.method.name}' builds every adapter's head as wide as the model's, for "
                f"{len(model.labels)} labels, and this adapter has {len(record.labels)}."
            )
        check_head_size(
            folder / WEIGHTS_NAME,
            ImageClassifier.head_module,
            rows=len(record.labels),
            width=task_model.classifier.in_features,
        )


def _size_head(task_model: nn.Module, adapter_name: str, rows: int) -> None:
    """Give ``adapter_name`` a head copy of ``rows`` outputs: PEFT copies the model's head, as wide as its labels."""
    wrapper = getattr(task_model, task_model.head_module) if task_model.head_module else None
    if not isinstance(wrapper, ModulesToSaveWrapper) or adapter_name not in wrapper.modules_to_save:
        return
    head = wrapper.modules_to_save[adapter_name]
    if head.out_features == rows:
        return
    resized = copy.deepcopy(head)
    resized.weight = nn.Parameter(head.weight.new_empty(rows, head.in_features), requires_grad=False)
    if head.bias is not None:
        resized.bias = nn.Parameter(head.bias.new_empty(rows), requires_grad=False)
    resized.out_features = rows
    wrapper.modules_to_save[adapter_name] = resized


def check_adapter_names(model: AdapterModel, adapter_names: Sequence[str], batch: int) -> list[str]:
    """``adapter_names`` as a list, one loaded adapter per example of a batch of ``batch``."""
    if isinstance(adapter_names, str):
        raise TypeError(
            f"adapter_names takes one adapter name per image, got the string '{adapter_names}': pass a list, or "
            "model.set_adapter(name) to run the whole batch through one adapter."
        )
    names = list(adapter_names)
    if len(names) != batch:
        raise ValueError(f"adapter_names has {len(names)} names for a batch of {batch} images: give one per image.")
    unknown = sorted(set(names) - set(model.adapter_names))
    if unknown:
        missing = ", ".join(repr(name) for name in unknown)
        raise UnknownAdapterError(
            f"No adapter named {missing} is loaded (loaded: {', '.join(model.adapter_names)}). Load one with "
            "model.load_adapter(folder_or_repo_id, adapter_name=...)."
        )
    return names


def _mixes_in_layers(model: AdapterModel, names: Sequence[str]) -> bool:
    """Whether PEFT's mixed batch serves these adapters: LoRA's, without DoRA (which PEFT refuses to mix)."""
    configs = model.peft_model.peft_config
    lora = isinstance(model.peft_model.base_model, LoraModel)
    return lora and not any(getattr(configs[name], "use_dora", False) for name in set(names))


def mixed_forward(
    model: AdapterModel,
    adapter_names: Sequence[str],
    pixel_values: torch.Tensor | None,
    labels: torch.Tensor | None,
    features: torch.Tensor | None,
) -> ImageClassifierOutput:
    """Classify each example with the adapter ``adapter_names`` names for it (see this module's docstring)."""
    inputs = features if features is not None else pixel_values
    names = check_adapter_names(model, adapter_names, inputs.shape[0])
    if model.training:
        raise ValueError("adapter_names mixes adapters at inference: call model.eval() first.")
    if features is None and _mixes_in_layers(model, names):
        with model.peft_model._enable_peft_forward_hooks(adapter_names=names):
            features = model.task_model.encode(pixel_values)
        pixel_values = None
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(name, []).append(index)
    width = max(len(model.adapter_labels(name)) for name in groups)
    logits = None
    for name, rows in groups.items():
        index = torch.tensor(rows, device=inputs.device)
        with model.using_adapter(name):
            group = model.peft_model(
                pixel_values=None if pixel_values is None else pixel_values[index],
                features=None if features is None else features[index],
            ).logits
        if logits is None:
            logits = group.new_full((len(names), width), float("-inf"))
        logits[index, : group.shape[-1]] = group
    loss = F.cross_entropy(logits, labels) if labels is not None else None
    return ImageClassifierOutput(loss=loss, logits=logits)
