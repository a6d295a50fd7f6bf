"""Export an adapter as a plain transformers ``*ForImageClassification`` model, the adapter merged into its weights.

The exported folder needs neither adapterzoo nor PEFT: ``AutoModelForImageClassification.from_pretrained`` loads it
and ``pipeline("image-classification")`` serves it, with the scores of `AdapterModel.predict`. Only what such a model
computes can be exported this way: an image classifier whose adapter folds into the backbone's weights (or trains
weights the class has: the head, the whole backbone) and whose head is the one transformers' class of the
architecture puts on it. Anything else refuses with `ExportError` and points to the ONNX export, which runs any method.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING

import transformers
from transformers.utils import CONFIG_NAME

from adapterzoo.architectures import Architecture, architecture_for
from adapterzoo.atomic_folder import atomic_directory
from adapterzoo.backbones import describe_backbone
from adapterzoo.errors import ExportError
from adapterzoo.image_classifier import ImageClassifier
from adapterzoo.saving import check_finite
from adapterzoo.transformers_layout import TransformersLayout, head_mismatch

if TYPE_CHECKING:
    from adapterzoo.auto import AdapterModel

ONNX_INSTEAD = 'Export to ONNX instead, which runs any method and head: model.export(path, format="onnx").'


def export_transformers(model: AdapterModel, path: str | os.PathLike) -> Path:
    """Write ``model`` as a transformers image-classification model folder at ``path``, its adapter merged in.

    The folder holds the architecture's ``*ForImageClassification`` config (the labels as ``id2label`` and
    ``label2id``), its safetensors weights and the image processor. It is written atomically: a failure leaves a
    previous export at ``path`` as it was. ``model`` itself is left untouched: a copy of it is merged (on its
    device), and the weights move into the transformers model in CPU memory, so the export briefly holds two copies.
    Raises `ExportError`, naming the reason, for what transformers' class cannot compute: a method that does not
    merge (prompts, a head of its own), a head that pools differently from the class's, a CLIP classifier, an
    architecture without such a class.
    """
    task_model = model.task_model
    if not isinstance(task_model, ImageClassifier):
        raise ExportError(
            f"A {type(task_model).__name__} scores images against its class names' text features; transformers has "
            f"no image-classification class that does. {ONNX_INSTEAD}"
        )
    parts = describe_backbone(task_model.backbone)
    arch = architecture_for(parts.model_type)
    if arch.classification_class is None:
        raise ExportError(f"transformers has no image-classification class for {arch.display_name}. {ONNX_INSTEAD}")
    mismatch = head_mismatch(task_model, arch)
    if mismatch is not None:
        raise ExportError(f"{mismatch[0].upper()}{mismatch[1:]}. {ONNX_INSTEAD}")
    exported = _as_transformers(_merged_copy(model), arch, model.method.name)
    path = Path(path)
    check_finite(exported.state_dict(), f"the export to {path}")
    with atomic_directory(path, marker=CONFIG_NAME) as staging:
        exported.save_pretrained(staging)
        getattr(model.image_processor, "image_processor", model.image_processor).save_pretrained(staging)
    return path


def _merged_copy(model: AdapterModel) -> ImageClassifier:
    """A copy of the task model with the active adapter merged in and no adapter layers left, in eval mode."""
    try:
        merged = copy.deepcopy(model).merge_and_unload()
    except NotImplementedError as exc:
        raise ExportError(f"{exc}. {ONNX_INSTEAD}") from exc
    return merged.eval()


def _as_transformers(merged: ImageClassifier, arch: Architecture, method: str) -> transformers.PreTrainedModel:
    """The architecture's classification class holding the merged backbone's and head's weights, and the labels."""
    classifier_class = getattr(transformers, arch.classification_class)
    config = TransformersLayout.of(arch).classification_config(merged)
    config.problem_type = "single_label_classification"  # the pipeline's scores are then softmax, as `predict`'s
    exported = classifier_class(config).eval()
    weights = {f"{arch.classification_prefix}.{key}": value for key, value in merged.backbone.state_dict().items()}
    weights.update({f"classifier.{key}": value for key, value in merged.classifier.state_dict().items()})
    missing, unexpected = exported.load_state_dict(weights, strict=False)
    if missing or unexpected:
        mismatched = ", ".join([*unexpected, *missing][:3])
        raise ExportError(
            f"After merging, method '{method}' leaves weights that do not fit {classifier_class.__name__} "
            f"({len(unexpected)} unexpected, {len(missing)} missing, such as {mismatched}). {ONNX_INSTEAD}"
        )
    return exported.to(dtype=next(merged.parameters()).dtype)
