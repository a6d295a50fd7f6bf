"""`AutoAdapter` builds or loads an `AdapterModel`: backbone, adapter and head as one object.

An `AdapterModel` wraps a `peft.PeftModel` around a task model (an `ImageClassifier` or a `CLIPClassifier`), so all of
PEFT's API stays available on ``model.peft_model``; it adds what a user of a vision adapter needs: `predict`,
`save_pretrained` with the zoo's record and a model card, and `AutoAdapter.from_pretrained` that rebuilds everything
from the saved folder.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
import transformers
from huggingface_hub import CommitInfo, HfApi
from peft import PeftConfig, PeftModel, get_peft_model_state_dict, set_peft_model_state_dict
from PIL import Image
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

from adapterzoo import __version__
from adapterzoo.architectures import find_architecture
from adapterzoo.atomic_folder import MANIFEST_NAME, atomic_directory
from adapterzoo.backbones import (
    backbone_name,
    describe_backbone,
    load_backbone,
    load_image_processor,
    resolve_revision,
)
from adapterzoo.clip_classifier import CLIPClassifier
from adapterzoo.compiling import DEFAULT_BACKEND, check_backend, prepare_to_compile
from adapterzoo.errors import CheckpointError, LoadingOptionError, UnsupportedBackboneError, UnsupportedTaskError
from adapterzoo.heads import head_width
from adapterzoo.hub.client import download_adapter, is_hub_id
from adapterzoo.image_classifier import ImageClassifier
from adapterzoo.loading_options import LoadingOptions
from adapterzoo.local_paths import missing_path_message
from adapterzoo.method import Method
from adapterzoo.model_card import render_model_card
from adapterzoo.multi_adapter import AdapterState, check_adapter_names, load_saved_adapter, mixed_forward
from adapterzoo.pattern_check import check_patterns
from adapterzoo.peft_interop import import_record, is_peft_adapter
from adapterzoo.placement import attach, placement_of
from adapterzoo.precision import autocast
from adapterzoo.registry import get_method, provenance
from adapterzoo.remote_code import load_auto
from adapterzoo.saving import (
    MODEL_CARD_NAME,
    PEFT_CONFIG_NAME,
    PROCESSOR_CONFIG_NAME,
    WEIGHTS_NAME,
    ZOO_CONFIG_NAME,
    AdapterRecord,
    check_card_metadata,
    check_finite,
    check_head_size,
    check_no_pickle_only,
    recover_interrupted_save,
    saved_key,
    weights_dtype,
    write_weights,
)
from adapterzoo.task_models import TASKS, build_task_model
from adapterzoo.transformers_layout import (
    TransformersLayout,
    peft_loadable_blocker,
    read_adapter_weights,
    saved_layout,
)

LEGACY_HEAD_SETTINGS = {"final_norm": "tokens"}
"""Head settings that records of format version 1 leave out: their heads normalised every token."""


class AdapterModel(nn.Module):
    """A task model with an adapter attached, ready to train, save, share and predict.

    ``peft_model`` is the `peft.PeftModel` (all of PEFT's API works on it); ``task_model`` the task model
    inside it; ``image_processor`` preprocesses exactly as the backbone expects. ``metrics``, ``license`` (a Hub
    license id) and ``datasets`` (Hub dataset ids) are saved with the adapter and shown on its model card.
    """

    def __init__(
        self,
        peft_model: PeftModel,
        *,
        method: Method,
        image_processor: Any,
        backbone: str | None,
        backbone_revision: str | None,
        trainable_parameters: int,
        metrics: dict[str, float] | None = None,
        backbone_subfolder: str = "",
        license: str | None = None,
        datasets: Sequence[str] = (),
    ):
        super().__init__()
        self.peft_model = peft_model
        self.method = method
        self.image_processor = image_processor
        self.backbone_name = backbone
        self.backbone_revision = backbone_revision
        self.backbone_subfolder = backbone_subfolder
        self.trainable_parameters = trainable_parameters
        self.metrics: dict[str, float] = dict(metrics or {})
        # The card's metadata: a Hub license id ("apache-2.0") and the Hub datasets trained on (["user/name"]).
        self.license = license
        self.datasets: list[str] = list(datasets)
        # What each inactive adapter keeps besides its weights (`load_adapter`, `set_adapter`).
        self._states: dict[str, AdapterState] = {}

    @property
    def task_model(self) -> ImageClassifier | CLIPClassifier:
        return self.peft_model.get_base_model()

    @property
    def labels(self) -> list[str]:
        return self.task_model.labels

    @property
    def adapter_name(self) -> str:
        """The active adapter: the one `forward`, `predict` and `save_pretrained` use unless told otherwise."""
        return self.peft_model.active_adapter

    @property
    def adapter_names(self) -> list[str]:
        """The names of the adapters loaded onto this model's backbone, the first first."""
        return list(self.peft_model.peft_config)

    def adapter_labels(self, adapter_name: str) -> list[str]:
        """The labels (CLIP: class names) of the loaded adapter ``adapter_name``."""
        check_adapter_names(self, [adapter_name], 1)
        return list(self.labels) if adapter_name == self.adapter_name else list(self._states[adapter_name].labels)

    def load_adapter(self, folder_or_repo_id: str | Path, adapter_name: str | None = None, **options: Any) -> str:
        """Load a saved adapter (a folder, or a Hub repo id) onto this model's backbone beside the loaded ones, and
        return its name: ``adapter_name``, by default the folder's or the repo's name. It is not made active: pass
        it in `forward`'s and `predict`'s ``adapter_names``, or `set_adapter` it.

        ``options`` select the files as in `AutoAdapter.from_pretrained` (``revision``, ``subfolder``, ``token``,
        ``cache_dir``, ``local_files_only``, ``force_download``). The adapter keeps its own labels. It must be of
        this model's method, for the same task, backbone (name and revision) and head settings, else
        `AdapterMismatchError`; see `adapterzoo.multi_adapter` for how mixed batches run.
        """
        loading = LoadingOptions.of(options, caller="AdapterModel.load_adapter")
        if loading.dtype != "auto" or loading.device_map is not None or loading.trust_remote_code:
            raise LoadingOptionError(
                "load_adapter loads an adapter onto the backbone already loaded, which decides dtype and placement "
                "and runs no remote code: drop dtype=, device_map= and trust_remote_code=."
            )
        folder = _adapter_folder(folder_or_repo_id, loading)
        name = adapter_name or PurePosixPath(str(folder_or_repo_id).rstrip("/")).name
        load_saved_adapter(self, folder, name)
        return name

    def set_adapter(self, adapter_name: str) -> None:
        """Make the loaded adapter ``adapter_name`` the active one (its labels become `labels`)."""
        check_adapter_names(self, [adapter_name], 1)
        if adapter_name == self.adapter_name:
            return
        self._states[self.adapter_name] = self._active_state()
        config = self.peft_model.peft_config[adapter_name]
        self.peft_model.set_adapter(adapter_name, inference_mode=config.inference_mode)
        state = self._states.pop(adapter_name, None)
        if state is not None:
            self._apply_state(state)

    @contextmanager
    def using_adapter(self, adapter_name: str) -> Iterator[None]:
        """Inside this context ``adapter_name`` is the active adapter; the one active before is restored after."""
        previous = self.adapter_name
        self.set_adapter(adapter_name)
        try:
            yield
        finally:
            self.set_adapter(previous)

    def _active_state(self) -> AdapterState:
        return AdapterState(
            labels=list(self.labels),
            template=getattr(self.task_model, "template", None),
            metrics=self.metrics,
            license=self.license,
            datasets=self.datasets,
            trainable_parameters=self.trainable_parameters,
        )

    def _apply_state(self, state: AdapterState) -> None:
        task_model = self.task_model
        if isinstance(task_model, CLIPClassifier):
            task_model.template = state.template or task_model.template
            task_model.set_classes(state.labels)  # which also drops text features cached for the adapter before
        else:
            task_model.labels = state.labels
        self.metrics, self.license, self.datasets = state.metrics, state.license, state.datasets
        self.trainable_parameters = state.trainable_parameters

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the model computes in: its backbone's (the adapter and the head follow it)."""
        return placement_of(_backbone_of(self.task_model))["dtype"]

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        adapter_names: Sequence[str] | None = None,
    ) -> ImageClassifierOutput:
        """Logits (and the loss, given ``labels``) of the active adapter; with ``adapter_names`` (one loaded adapter
        per example, in eval mode) of the adapter each example names, as wide as the widest of their label sets and
        ``-inf`` past an example's own labels (`adapterzoo.multi_adapter`)."""
        if adapter_names is not None:
            return mixed_forward(self, adapter_names, pixel_values, labels, features)
        return self.peft_model(pixel_values=pixel_values, labels=labels, features=features)

    def compile(self, backend: str = DEFAULT_BACKEND, **options: Any) -> AdapterModel:
        """Compile this model's forward in place with `torch.compile` (``backend``: "inductor", or "aot_eager" to
        debug; ``options`` are torch.compile's, such as ``mode="max-autotune"``), so that `predict` and calls run
        compiled; parameter names, saving and loading are unchanged. Returns the model. The first call of each input
        shape compiles (slow); later ones reuse the graph."""
        check_backend(backend)
        prepare_to_compile(self)
        super().compile(backend=backend, **options)
        return self

    def print_trainable_parameters(self) -> None:
        self.peft_model.print_trainable_parameters()

    @contextmanager
    def _explaining_merge_errors(self) -> Iterator[None]:
        try:
            yield
        except NotImplementedError as exc:
            raise NotImplementedError(
                f"Method '{self.method.name}' cannot be merged into the backbone's weights: {exc}"
            ) from exc

    def merge(self) -> None:
        """Fold the active adapter into the backbone's weights: inference then costs what the plain backbone costs."""
        with self._explaining_merge_errors():
            self.peft_model.merge_adapter()

    def unmerge(self) -> None:
        """Undo `merge`, restoring the backbone's own weights."""
        self.peft_model.unmerge_adapter()

    def merge_and_unload(self) -> ImageClassifier | CLIPClassifier:
        """The plain task model with the active adapter folded in and no adapter layers left, for deployment.

        This consumes the adapter: the returned model shares its weights with this one.
        """
        with self._explaining_merge_errors():
            return self.peft_model.merge_and_unload()

    @torch.no_grad()
    def predict(
        self,
        images: Any,
        *,
        top_k: int = 1,
        adapter_names: Sequence[str] | None = None,
        mixed_precision: str = "no",
    ) -> list:
        """Labels with scores for one image or a batch (PIL images or HWC arrays; a 4-D array or a list is a batch).

        Returns a list of ``{"label", "score"}`` dicts, best first, for one image; a list of such lists for a batch.
        ``adapter_names`` (one loaded adapter per image) classifies each image with its own adapter, which answers
        with its own labels; by default every image goes through the active adapter. ``mixed_precision`` ("bf16", or
        "fp16" on a GPU) runs the model under autocast in that precision, whatever the dtype its weights are in
        (`adapterzoo.precision`).
        """
        batch, single = _as_batch(images)
        pixel_values = self.image_processor(images=batch, return_tensors="pt")["pixel_values"]
        names = None if adapter_names is None else check_adapter_names(self, adapter_names, len(batch))
        was_training = self.training
        self.eval()
        try:
            with autocast(mixed_precision, self.device):
                logits = self(pixel_values.to(self.device, self.dtype), adapter_names=names).logits
        finally:
            self.train(was_training)
        label_sets = [self.labels] * len(batch) if names is None else [self.adapter_labels(n) for n in names]
        scores, indices = logits.float().softmax(dim=-1).topk(min(top_k, logits.shape[-1]), dim=-1)
        results = [
            [
                {"label": labels[i], "score": s}
                for s, i in zip(row_scores.tolist(), row_indices.tolist(), strict=True)
                if i < len(labels)
            ]
            for row_scores, row_indices, labels in zip(scores, indices, label_sets, strict=True)
        ]
        return results[0] if single else results

    @property
    def peft_blocker(self) -> str | None:
        """Why plain PEFT cannot load this adapter onto transformers' classification class; None when it can, and
        `save_pretrained` then writes the PEFT-native layout (`adapterzoo.transformers_layout`)."""
        config = self.peft_model.peft_config[self.adapter_name]
        return peft_loadable_blocker(
            self.method,
            self.task_model,
            config,
            self.backbone_name,
            revision=self.backbone_revision,
            subfolder=self.backbone_subfolder,
        )

    def record(self) -> AdapterRecord:
        """The zoo's record of this adapter, as `save_pretrained` writes it to ``adapterzoo_config.json``."""
        return self._record(self.peft_blocker)

    def _record(self, peft_blocker: str | None) -> AdapterRecord:
        check_card_metadata(self.license, self.datasets)
        distribution, version = provenance(self.method.name)
        transformers_class = None
        if peft_blocker is None:
            transformers_class = find_architecture(describe_backbone(self.task_model).model_type).classification_class
        return AdapterRecord(
            method=self.method.name,
            distribution=distribution,
            distribution_version=version,
            task=self.task_model.task,
            backbone=self.backbone_name,
            backbone_revision=self.backbone_revision,
            backbone_subfolder=self.backbone_subfolder,
            labels=list(self.labels),
            head=self.task_model.settings(),
            trainable_parameters=self.trainable_parameters,
            adapterzoo_version=__version__,
            metrics=dict(self.metrics),
            transformers_class=transformers_class,
            license=self.license,
            datasets=list(self.datasets),
        )

    def save_pretrained(self, save_directory: str | Path, adapter_name: str | None = None) -> Path:
        """Save the active adapter (or the loaded ``adapter_name``) and its head, atomically: a failure leaves any
        previous save in place untouched."""
        with self.using_adapter(adapter_name or self.adapter_name):
            return self._save(Path(save_directory), card_location=str(save_directory))

    def _weights(self) -> dict[str, torch.Tensor]:
        """The active adapter's (and head's) tensors, as PEFT saves them, keyed as the zoo saves them (`saved_key`)."""
        name = self.adapter_name
        weights = get_peft_model_state_dict(self.peft_model, adapter_name=name, save_embedding_layers=False)
        return {saved_key(key, name): tensor for key, tensor in weights.items()}

    def _save(self, folder: Path, *, card_location: str) -> Path:
        peft_blocker = self.peft_blocker
        record = self._record(peft_blocker)
        config = copy.deepcopy(self.peft_model.peft_config[self.adapter_name])
        config.inference_mode = True
        weights = self._weights()
        layout = TransformersLayout.for_class(record.transformers_class) if record.transformers_class else None
        if layout is not None:
            config = layout.config_to_transformers(config)
            config.revision = record.backbone_revision
            weights = layout.weights_to_transformers(weights)
        with atomic_directory(folder, marker=ZOO_CONFIG_NAME) as staging:
            record.write(staging)
            config.save_pretrained(str(staging))
            write_weights(staging / WEIGHTS_NAME, weights)
            self.image_processor.save_pretrained(str(staging))
            if layout is not None:
                layout.classification_config(self.task_model).save_pretrained(staging)
            card = render_model_card(record, location=card_location, peft_blocker=peft_blocker)
            (staging / MODEL_CARD_NAME).write_text(card)
        return folder

    def export(self, path: str | Path, format: str = "transformers", **options: Any) -> Path:
        """Write a deployable model to the folder ``path``: "transformers" (a plain ``*ForImageClassification`` with
        the adapter merged) or "onnx" (a ``pixel_values -> logits`` graph of any method; ``opset=`` picks the ONNX
        opset). Returns the folder."""
        from adapterzoo.exporting import export

        return export(self, path, format, **options)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | bool | None = None,
        revision: str | None = None,
        commit_message: str | None = None,
        commit_description: str | None = None,
        create_pr: bool = False,
    ) -> CommitInfo:
        """Upload the adapter, head, processor config and model card to a Hub repo, creating it if needed.

        ``revision`` names the branch to push to (created from main if missing); ``create_pr`` opens a pull request
        against main instead. The Hub is ``HF_ENDPOINT`` (the public Hub by default) and ``token`` the usual HF token.
        """
        check_finite(self._weights(), f"the adapter for {repo_id}")  # before anything is created on the Hub
        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision is not None and not create_pr:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="adapterzoo-push-") as staging:
            folder = self._save(Path(staging) / "adapter", card_location=repo_id)
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                revision=revision,
                commit_message=commit_message or f"Upload {self.method.name} adapter with adapterzoo",
                commit_description=commit_description,
                create_pr=create_pr,
                ignore_patterns=[MANIFEST_NAME],
            )


class AutoAdapter:
    """Builds an `AdapterModel` from a backbone and a method name, or rebuilds a saved one in one call."""

    def __init__(self) -> None:
        raise TypeError("Use AutoAdapter.from_backbone(...) or AutoAdapter.from_pretrained(...).")

    @classmethod
    def from_backbone(
        cls,
        backbone: str | transformers.PreTrainedModel,
        *,
        method: str,
        labels: Sequence[str],
        task: str | None = None,
        pooling: str | None = None,
        template: str | None = None,
        image_processor: Any = None,
        adapter_name: str = "default",
        **options: Any,
    ) -> AdapterModel:
        """Attach a fresh ``method`` adapter, for classes ``labels``, to ``backbone`` (a Hub id, a folder or a model).

        ``task`` defaults to the method's first: an `ImageClassifier` (a new head; ``pooling`` "cls", "mean" or
        "cls+mean", by default as transformers' classification class of the architecture pools) or a
        `CLIPClassifier` (a whole CLIP; ``template`` such as "a photo of a {}."). ``options`` are transformers'
        loading options (`LoadingOptions`: ``dtype``, ``device_map``, ``revision``, ``token``, ...; ``dtype="auto"``,
        the default, loads the backbone in its checkpoint's dtype) and the method's config fields
        (``num_tokens=50, deep=True`` for VPT); an unknown one raises an error listing the valid ones. The adapter and
        the head are made in the backbone's dtype and on its device. A backbone whose config, image processor or
        tokenizer ships custom code raises `RemoteCodeError` unless ``trust_remote_code=True``, which lets
        transformers run that code.
        """
        loading, method_options = LoadingOptions.split(options)
        zoo_method = get_method(method)
        task = task or zoo_method.tasks[0]
        _check_task(zoo_method, task)
        zoo_method.check_options(method_options, loading_options=LoadingOptions.names())
        if isinstance(backbone, str):
            loading = replace(loading, revision=resolve_revision(backbone, loading))
        else:
            loading.check_loaded(backbone)
        settings = {"pooling": pooling, "template": template, **zoo_method.task_settings}
        try:
            task_model = build_task_model(task, backbone, labels, options=loading, settings=settings)
        except UnsupportedBackboneError as exc:
            raise UnsupportedBackboneError(f"Method '{zoo_method.name}' ({task}): {exc}", reason=exc.reason) from exc
        zoo_method.check_backbone(describe_backbone(task_model))
        if zoo_method.head_initializer is not None and task_model.head_module is not None:
            zoo_method.head_initializer(getattr(task_model, task_model.head_module))
        config = zoo_method.make_config(task_model, head_module=task_model.head_module, **method_options)
        vision_model = _backbone_of(task_model)
        peft_model = attach(task_model, vision_model, config, adapter_name)
        if image_processor is None:
            image_processor = load_image_processor(vision_model, loading)
        return AdapterModel(
            peft_model,
            method=zoo_method,
            image_processor=image_processor,
            backbone=backbone_name(vision_model),
            backbone_revision=loading.revision,
            backbone_subfolder=loading.subfolder if isinstance(backbone, str) else "",
            trainable_parameters=peft_model.get_nb_trainable_parameters()[0],
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        backbone: str | transformers.PreTrainedModel | None = None,
        backbone_revision: str | None = None,
        is_trainable: bool = False,
        adapter_name: str = "default",
        compile: bool | str = False,
        **options: Any,
    ) -> AdapterModel:
        """Rebuild backbone, adapter and head from a saved adapter: a local folder, or a Hub repo id.

        ``options`` are transformers' loading options (`LoadingOptions`). From the Hub, ``revision`` (a branch, tag or
        commit; default main), ``subfolder``, ``token``, ``cache_dir``, ``local_files_only`` and ``force_download``
        select what to download; ``HF_ENDPOINT``, the cache and ``HF_HUB_OFFLINE=1`` are honoured. The backbone is
        loaded from the id and exact revision recorded at training time, unless ``backbone`` (and
        ``backbone_revision``) override it, with the same token, cache and offline mode; in ``dtype`` (by default
        "auto": the dtype the adapter was saved in, so that the logits are those of the saved model) and placed by
        ``device_map``. The method is resolved through installed plugins only, and only safetensors weights are read.
        Nothing in the files runs or asks to run code: custom code named by the backbone's or the adapter's configs
        raises `RemoteCodeError` unless ``trust_remote_code=True``; module patterns are checked before PEFT matches
        them (`adapterzoo.pattern_check`), and the labels against the head's size before the head is built. An
        adapter that PEFT itself saved for a transformers image-classification model (no zoo record) is imported
        (`adapterzoo.peft_interop`); both the zoo's layout and the PEFT-native one (`adapterzoo.transformers_layout`)
        load. ``compile=True`` (or a backend's name) returns it compiled for prediction (`AdapterModel.compile`).
        """
        loading = LoadingOptions.of(options, caller="AutoAdapter.from_pretrained")
        folder = _adapter_folder(name_or_path, loading)
        if is_peft_adapter(folder):  # saved by PEFT itself, for transformers' classification model
            record, backbone = import_record(
                folder, backbone=backbone, backbone_revision=backbone_revision, loading=loading
            )
            backbone_revision = record.backbone_revision
            loading = replace(loading, dtype="auto", device_map=None)  # the backbone is loaded, and placed
        else:
            record = AdapterRecord.read(folder)
        zoo_method = get_method(
            record.method, distribution=record.distribution, distribution_version=record.distribution_version
        )
        if record.task not in TASKS:
            raise CheckpointError(
                f"{folder} holds a '{record.task}' adapter; this adapterzoo serves {', '.join(TASKS)}."
            )
        task_model = _rebuild_task_model(record, folder, backbone, backbone_revision, loading)
        layout = saved_layout(record.transformers_class, task_model, folder / ZOO_CONFIG_NAME)
        config = _read_peft_config(folder, zoo_method)
        if layout is not None:
            config = layout.config_from_transformers(config)
        check_patterns(config, task_model, folder / PEFT_CONFIG_NAME)
        config.inference_mode = not is_trainable
        peft_model = attach(task_model, _backbone_of(task_model), config, adapter_name)
        weights = read_adapter_weights(folder, peft_model, layout)
        set_peft_model_state_dict(peft_model, weights, adapter_name=adapter_name)
        backbone_options = loading.for_recorded_backbone(
            record.backbone_revision, subfolder=record.backbone_subfolder, saved_dtype=None
        )
        adapter_model = AdapterModel(
            peft_model,
            method=zoo_method,
            image_processor=_saved_image_processor(folder, task_model, backbone_options),
            backbone=record.backbone,
            backbone_revision=record.backbone_revision,
            backbone_subfolder=record.backbone_subfolder,
            trainable_parameters=record.trainable_parameters,
            metrics=record.metrics,
            license=record.license,
            datasets=record.datasets,
        )
        adapter_model.train(is_trainable)
        if not compile:
            return adapter_model
        return adapter_model.compile() if compile is True else adapter_model.compile(backend=compile)


def _adapter_folder(name_or_path: str | Path, loading: LoadingOptions) -> Path:
    """The local folder of a saved adapter: ``name_or_path`` (a folder, or a Hub repo id downloaded with ``loading``'s
    file options), refused when missing or holding pickled weights only."""
    if is_hub_id(name_or_path):
        folder = download_adapter(str(name_or_path), **loading.file_kwargs())
    else:
        folder = Path(name_or_path, loading.subfolder)
        recover_interrupted_save(folder)
        if not folder.is_dir():
            raise CheckpointError(missing_path_message(folder, "saved adapter at") + ".")
    check_no_pickle_only(folder)
    return folder


def _as_batch(images: Any) -> tuple[list, bool]:
    """A list of images, and whether ``images`` was a single image."""
    if isinstance(images, Image.Image):
        return [images], True
    if isinstance(images, (np.ndarray, torch.Tensor)):
        return (list(images), False) if images.ndim == 4 else ([images], True)
    return list(images), False


def _check_task(method: Method, task: str) -> None:
    if task not in method.tasks:
        raise UnsupportedTaskError(f"Method '{method.name}' serves {', '.join(method.tasks)}, not '{task}'.")


def _backbone_of(task_model: nn.Module) -> transformers.PreTrainedModel:
    """The transformers model a task model is built on (the vision tower, or the whole CLIP)."""
    return task_model.clip if isinstance(task_model, CLIPClassifier) else task_model.backbone


def _rebuild_task_model(
    record: AdapterRecord,
    folder: Path,
    backbone: str | transformers.PreTrainedModel | None,
    revision: str | None,
    loading: LoadingOptions,
) -> nn.Module:
    """The task model a saved adapter was trained with, on its recorded backbone (or the one given instead), loaded
    with ``loading`` at the recorded (or given) revision and in the adapter's dtype unless ``loading`` names one.

    An image classifier's head is checked against the weights file before it is built: one row per recorded label.
    """
    source = backbone if backbone is not None else record.backbone
    if source is None:
        raise CheckpointError("The adapter records no backbone; pass backbone= to from_pretrained.")
    revision = revision if backbone is not None else record.backbone_revision
    if not isinstance(source, str):
        loading.check_loaded(source)
    saved_dtype = weights_dtype(folder / WEIGHTS_NAME) if isinstance(source, str) else None
    subfolder = record.backbone_subfolder if backbone is None else ""
    options = loading.for_recorded_backbone(revision, subfolder=subfolder, saved_dtype=saved_dtype)
    try:
        if record.task == ImageClassifier.task:
            if isinstance(source, str):
                source = load_backbone(source, options)
            width = head_width(describe_backbone(source).hidden_size, record.head.get("pooling", "cls"))
            check_head_size(folder / WEIGHTS_NAME, ImageClassifier.head_module, rows=len(record.labels), width=width)
        return build_task_model(
            record.task,
            source,
            record.labels,
            options=options,
            settings={**LEGACY_HEAD_SETTINGS, **record.head},
        )
    except OSError as exc:
        raise CheckpointError(
            f"Cannot load the backbone '{source}' this adapter was trained on ({exc}). "
            "Pass backbone= (a Hub id, a folder or a loaded model) to from_pretrained."
        ) from exc


def _saved_image_processor(folder: Path, task_model: nn.Module, backbone_options: LoadingOptions) -> Any:
    """The image processor saved beside the adapter; the backbone's for an adapter PEFT saved without one."""
    if is_peft_adapter(folder) and not (folder / PROCESSOR_CONFIG_NAME).is_file():
        return load_image_processor(_backbone_of(task_model), backbone_options)
    return load_auto("AutoImageProcessor", folder, trust_remote_code=backbone_options.trust_remote_code)


def _read_peft_config(folder: Path, method: Method) -> PeftConfig:
    if not (folder / PEFT_CONFIG_NAME).is_file():
        raise CheckpointError(f"{folder} lacks {PEFT_CONFIG_NAME}.")
    try:
        config = method.config_cls.from_pretrained(str(folder))
    except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{folder / PEFT_CONFIG_NAME} cannot be read as a '{method.name}' config: {exc}") from exc
    if not isinstance(config, method.config_cls):
        raise CheckpointError(
            f"{folder / PEFT_CONFIG_NAME} holds a {type(config).__name__}, but {folder.name} records method "
            f"'{method.name}' ({method.config_cls.__name__})."
        )
    return config
