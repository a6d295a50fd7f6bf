"""Evaluating an adapted model on a dataset with the shipped metrics, on one process or gathered across several."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

import datasets
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from adapterzoo.data.device_preprocessing import DevicePreprocessing
from adapterzoo.data.loading import find_columns, label_ids, load_image_dataset, split_name
from adapterzoo.data.pixel_values import check_pixel_values
from adapterzoo.data.transforms import Collate, ImageExamples, SkippedRows
from adapterzoo.data.workers import loader_options
from adapterzoo.faults import fault_point
from adapterzoo.metrics import load_metric
from adapterzoo.precision import autocast
from adapterzoo.training.config import PREPROCESS_PLACES

# The result key each metric reports (besides "loss" and "num_examples", always reported).
METRIC_KEYS = {
    "accuracy": "accuracy",
    "top_k_accuracy": "top_k_accuracy",
    "f1": "macro_f1",
    "quadratic_kappa": "quadratic_kappa",
}


def check_metrics(names: Sequence[str], metric_for_best: str | None = None) -> None:
    """Refuse, before any work, metrics evaluation cannot compute and a best-checkpoint metric it will not report."""
    for name in names:
        if name == "base_novel_accuracy":
            raise ValueError("'base_novel_accuracy' compares two class splits: run the base-to-novel protocol for it.")
        if name not in METRIC_KEYS:
            raise ValueError(f"Unknown metric '{name}'; choose from {', '.join(METRIC_KEYS)}.")
    reported = ["loss", *(METRIC_KEYS[name] for name in names)]
    if metric_for_best is not None and metric_for_best not in reported:
        raise ValueError(f"metric_for_best '{metric_for_best}' is not reported by metrics {list(names)}: {reported}.")


@cache
def _metric(name: str):
    return load_metric(name)


def compute_metrics(names: Sequence[str], logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The named metrics of ``logits`` against ``labels``, plus the mean cross-entropy and the example count."""
    check_metrics(names)
    results: dict[str, float] = {
        "loss": F.cross_entropy(logits.float(), labels).item(),
        "num_examples": len(labels),
    }
    predictions, references, num_classes = logits.argmax(-1).numpy(), labels.numpy(), logits.shape[-1]
    for name in names:
        if name == "top_k_accuracy":
            scores = logits.float().numpy()
            value = _metric(name).compute(predictions=scores, references=references, k=min(5, num_classes))
            results[name] = value[name]
            continue
        options = {"num_classes": num_classes} if name in ("f1", "quadratic_kappa") else {}
        results.update(_metric(name).compute(predictions=predictions, references=references, **options))
    return results


@torch.no_grad()
def gather_logits(
    model: torch.nn.Module,
    loader: DataLoader,
    accelerator: Accelerator,
    skipped: SkippedRows | None = None,
    *,
    progress: bool = False,
    preprocess: Callable[[dict], dict] | None = None,
) -> tuple[torch.Tensor, ...]:
    """Logits and labels of every example in ``loader``, gathered from all processes, each example exactly once.

    Rows the loader skipped for unreadable images are recorded in ``skipped`` (pass one when it may skip). With
    ``progress``, the main process shows a bar of the batches (cleared at the end when it sits under training's bar).
    ``preprocess`` makes the pixel values of a decode-only loader's batches (`DevicePreprocessing`).
    """
    was_training = model.training
    model.eval()
    all_logits, all_labels = [], []
    try:
        show = progress and accelerator.is_main_process
        for batch in tqdm(loader, desc="evaluating", unit="batch", leave=None, disable=not show):
            if skipped is not None and not skipped.take(batch):
                continue
            fault_point("evaluation")
            if preprocess is not None:
                batch = preprocess(batch)
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            logits = model(**inputs).logits
            logits, labels = accelerator.gather_for_metrics((logits.contiguous(), batch["labels"]))
            all_logits.append(logits.cpu())
            all_labels.append(labels.cpu())
        if skipped is not None and not all_logits:
            skipped.check_some_left(loader.dataset)
    finally:
        model.train(was_training)
    return torch.cat(all_logits), torch.cat(all_labels)


def evaluation_loader(
    model,
    dataset: datasets.Dataset,
    batch_size: int,
    image_column=None,
    label_column=None,
    skip_bad_images=False,
    num_workers: int | str = 0,
    decode_only: bool = False,
):
    """A loader of ``dataset``'s examples, preprocessed for ``model`` (in ``num_workers`` processes, see
    `loader_options`; with ``decode_only``, only decoded, for `DevicePreprocessing`), with labels mapped to the
    model's by name."""
    columns = find_columns(dataset, image_column, label_column)
    labels = label_ids(dataset, columns, model.labels)
    check_pixel_values(dataset, columns, model.image_processor)
    split = split_name(dataset, "evaluation")
    examples = ImageExamples(
        dataset, columns, labels, split=split, skip_bad_images=skip_bad_images, decode_only=decode_only
    )
    device = next(model.parameters()).device
    loading = loader_options(num_workers, device)
    return DataLoader(examples, batch_size=batch_size, collate_fn=Collate(model.image_processor), **loading)


def predict_dataset(
    model: torch.nn.Module,
    dataset: datasets.Dataset,
    *,
    batch_size: int = 64,
    image_column: str | None = None,
    label_column: str | None = None,
    progress: bool = False,
    mixed_precision: str = "no",
    preprocess_on: str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits and label ids of every example of ``dataset``, gathered from all processes; with ``progress``, a
    bar of the batches; with ``mixed_precision`` ("bf16", "fp16" on a GPU), computed under autocast; with
    ``preprocess_on="device"``, images preprocessed where the model computes (`DevicePreprocessing`)."""
    preprocess = _device_preprocessing(model, preprocess_on)
    accelerator = Accelerator(cpu=not torch.accelerator.is_available())
    loader = evaluation_loader(
        model, dataset, batch_size, image_column, label_column, decode_only=preprocess is not None
    )
    with autocast(mixed_precision, accelerator.device):
        return gather_logits(
            model.to(accelerator.device), accelerator.prepare(loader), accelerator, progress=progress,
            preprocess=preprocess,
        )  # fmt: skip


def _device_preprocessing(model: torch.nn.Module, preprocess_on: str) -> DevicePreprocessing | None:
    """``model``'s device preprocessing for ``preprocess_on="device"``, None for "cpu"."""
    if preprocess_on not in PREPROCESS_PLACES:
        raise ValueError(f"preprocess_on must be one of {', '.join(PREPROCESS_PLACES)}, not '{preprocess_on}'.")
    return DevicePreprocessing(model.image_processor) if preprocess_on == "device" else None


def evaluate(
    model: torch.nn.Module,
    dataset: datasets.Dataset | str,
    *,
    split: str = "test",
    metrics: Sequence[str] = ("accuracy",),
    batch_size: int = 64,
    image_column: str | None = None,
    label_column: str | None = None,
    progress: bool = False,
    mixed_precision: str = "no",
    preprocess_on: str = "cpu",
) -> dict[str, float]:
    """Evaluate an `AdapterModel` on a dataset (a `datasets.Dataset` or a source `load_image_dataset` accepts);
    ``progress`` shows a bar of the batches (``adapterzoo evaluate`` turns it on); ``mixed_precision`` and
    ``preprocess_on`` as in `predict_dataset`."""
    check_metrics(metrics)  # before the predicting, not after
    dataset = load_image_dataset(dataset, split)
    logits, labels = predict_dataset(
        model, dataset, batch_size=batch_size, image_column=image_column, label_column=label_column,
        progress=progress, mixed_precision=mixed_precision, preprocess_on=preprocess_on,
    )  # fmt: skip
    return compute_metrics(metrics, logits, labels)
