"""Building the task model a method attaches to: an `ImageClassifier` or a `CLIPClassifier`, from a backbone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import transformers
from torch import nn

from adapterzoo.backbones import backbone_name, load_backbone, load_clip
from adapterzoo.clip_classifier import DEFAULT_TEMPLATE, CLIPClassifier
from adapterzoo.image_classifier import ImageClassifier
from adapterzoo.loading_options import LoadingOptions
from adapterzoo.remote_code import load_auto

TASKS = (ImageClassifier.task, CLIPClassifier.task)


def build_task_model(
    task: str,
    backbone: str | transformers.PreTrainedModel,
    labels: Sequence[str],
    *,
    options: LoadingOptions | None = None,
    settings: Mapping[str, Any] | None = None,
) -> nn.Module:
    """The task model for ``task`` on ``backbone`` (a Hub id, a folder, or a loaded model), with ``settings`` as a
    task model's `settings()` records them (an image classifier's pooling, a CLIP classifier's template).

    A backbone given by name is loaded with transformers' loading ``options`` (dtype, device map, revision, token,
    ...), which also reach a CLIP's tokenizer. A backbone or tokenizer that ships custom code is refused unless
    ``options.trust_remote_code``."""
    settings = settings or {}
    options = options or LoadingOptions()
    if task == ImageClassifier.task:
        model = load_backbone(backbone, options) if isinstance(backbone, str) else backbone
        return ImageClassifier(model, labels, pooling=settings.get("pooling"), final_norm=settings.get("final_norm"))
    if task == CLIPClassifier.task:
        if isinstance(backbone, str):
            clip, tokenizer = load_clip(backbone, options)
        else:
            clip = backbone
            tokenizer = load_auto("AutoTokenizer", backbone_name(backbone), **options.config_kwargs())
        return CLIPClassifier(clip, tokenizer, labels, template=settings.get("template") or DEFAULT_TEMPLATE)
    raise ValueError(f"Unknown task '{task}'; adapterzoo serves: {', '.join(TASKS)}.")
