"""Export an `AdapterModel` to ONNX: one graph, ``pixel_values -> logits``, that runs without PyTorch or adapterzoo.

The graph is made by torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, built on `torch.export` and
onnxscript). The TorchScript exporter is deprecated, and cannot translate FourierFT's inverse FFT nor LoKr's
Kronecker product; the dynamo exporter translates every method's forward. Adapters that can be merged are folded into
a copy of the weights first, so that their graph is the plain backbone's (as fast and as small), and BOFT's Cayley
transform (a linear solve, which ONNX has no operator for) runs once in PyTorch. The rest (prompts, heads, CLIP's text
side) is exported as it computes. The graph computes in float32, whatever the model's dtype, so that every ONNX
runtime runs it; its batch axis is dynamic. Before the folder is written, onnxruntime runs the graph on a batch of
another size than the traced one, and its logits must equal PyTorch's.

The folder holds the graph (`ONNX_NAME`), the image processor's config (preprocess as in training), and a
``config.json``: the backbone's transformers config with the adapter's labels as ``id2label`` / ``label2id``.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image
from torch import nn

from adapterzoo.atomic_folder import atomic_directory
from adapterzoo.auto import AdapterModel, _backbone_of
from adapterzoo.environment import require_extra
from adapterzoo.errors import ExportError

ONNX_NAME = "model.onnx"
TOLERANCE = 1e-4
"""How far onnxruntime's logits may be from PyTorch's (absolute, and relative to their size) for an export to pass."""
_TRACED_BATCH, _CHECKED_BATCH = 2, 3


class _Logits(nn.Module):
    """The graph's whole interface: a batch of pixel values in, the classification logits out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def export_onnx(model: AdapterModel, path: str | Path, *, opset: int | None = None) -> Path:
    """Write ``model`` (its active adapter, prompts and head included) as an ONNX graph into the folder ``path``.

    The folder is written atomically, and replaced whole when it holds an earlier export. ``opset`` is the ONNX
    opset to target (default: the exporter's). Raises `ExportError` when the graph cannot be made or does not
    compute what the model computes, and ImportError naming ``pip install "adapterzoo[onnx]"`` without the ONNX
    packages.
    """
    require_extra("onnx", "Exporting to ONNX")
    folder = Path(path)
    graph = _Logits(_inference_copy(model)).eval()
    checked = _example_pixel_values(model, _CHECKED_BATCH)
    with torch.no_grad():  # first: a CLIP classifier computes (and caches) its class features now, not in the graph
        expected = graph(checked).numpy()
    with atomic_directory(folder, marker=ONNX_NAME) as staging:
        _export_graph(graph, _example_pixel_values(model, _TRACED_BATCH), staging / ONNX_NAME, opset, model.method.name)
        _check_against_torch(staging / ONNX_NAME, checked, expected)
        _labelled_config(model).save_pretrained(str(staging))
        model.image_processor.save_pretrained(str(staging))
    return folder


def _inference_copy(model: AdapterModel) -> nn.Module:
    """A float32 CPU copy of the model in eval mode, its active adapter merged into the weights where it can be."""
    peft_model = copy.deepcopy(model.peft_model).to(device="cpu", dtype=torch.float32).eval()
    try:
        return peft_model.merge_and_unload()
    except NotImplementedError:  # prompts, heads, ...: nothing was merged, the adapter is exported as it computes
        return peft_model


def _example_pixel_values(model: AdapterModel, batch: int) -> torch.Tensor:
    """Reproducible noise of the shape that the model's image processor gives a batch of ``batch`` images."""
    blank = Image.new("RGB", (64, 64))
    shape = model.image_processor(images=[blank] * batch, return_tensors="pt")["pixel_values"].shape
    return torch.randn(shape, generator=torch.Generator().manual_seed(batch))


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's notes that no user can act on (torchvision's absent operators, its own deprecations)."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        registration.setLevel(level)


def _export_graph(graph: nn.Module, pixel_values: torch.Tensor, file: Path, opset: int | None, method: str) -> None:
    try:
        with _quiet_exporter():
            torch.onnx.export(
                graph,
                (pixel_values,),
                str(file),
                dynamo=True,
                input_names=["pixel_values"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                opset_version=opset,
                external_data=_exceeds_protobuf_limit(graph),
                verbose=False,
            )
    except torch.onnx.OnnxExporterError as exc:
        summary = str(exc).strip().splitlines()[0]
        raise ExportError(f"Cannot export method '{method}' to ONNX: {summary}") from exc


def _exceeds_protobuf_limit(graph: nn.Module) -> bool:
    """Whether the weights must go to an external data file beside the graph: ONNX files hold at most 2 GiB."""
    size = sum(t.numel() * t.element_size() for t in [*graph.parameters(), *graph.buffers()])
    return size >= 2**31 - 2**26  # leave room for the graph itself


def _check_against_torch(file: Path, pixel_values: torch.Tensor, expected: np.ndarray) -> None:
    """Run the exported graph with onnxruntime on a batch of another size than the traced one: its logits must be
    PyTorch's."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"pixel_values": pixel_values.numpy()})
    if logits.shape != expected.shape or not np.allclose(logits, expected, atol=TOLERANCE, rtol=TOLERANCE):
        difference = np.abs(logits - expected).max() if logits.shape == expected.shape else logits.shape
        raise ExportError(
            f"The ONNX graph does not compute what the model computes (onnxruntime vs PyTorch: {difference}); "
            'export with format="transformers" where the method can be merged, or report this with the method name.'
        )


def _labelled_config(model: AdapterModel) -> transformers.PretrainedConfig:
    """The backbone's transformers config carrying the adapter's labels, as transformers' classifiers do."""
    config = copy.deepcopy(_backbone_of(model.task_model).config)
    config.id2label = dict(enumerate(model.labels))
    config.label2id = {label: index for index, label in enumerate(model.labels)}
    return config
