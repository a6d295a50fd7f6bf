"""`compile`: every method on ViT and CLIP, and LoRA on every architecture, traces with no graph break and trains as
eager does; `train(compile=True)` saves and checkpoints what an eager run does; refusals name their reason."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch._dynamo

from adapterzoo import AutoAdapter, train
from adapterzoo.compiling import prepare_to_compile
from adapterzoo.errors import CompileError
from adapterzoo.registry import get_method
from adapterzoo.testing import LABELS, VISION_KINDS, separable_images
from adapterzoo.testing.matrix import row_label, rows

STEPS = 3
LOSS_TOLERANCE = 1e-5
"""aot_eager runs eager's kernels on a traced graph: only reassociation separates its losses from eager's."""


def compile_cases() -> list:
    """Every method row on the tiny ViT (image classification) and the tiny CLIP (CLIP classification), and LoRA's
    image classifier on every other architecture."""
    cases = []
    for method, variant in rows():
        for kind, task in (("vit", "image-classification"), ("clip", "clip-classification")):
            if task in get_method(method).tasks:
                cases.append(pytest.param(method, variant, kind, task, id=f"{row_label(method, variant)}-{kind}"))
    for kind in VISION_KINDS:
        if kind != "vit":
            cases.append(pytest.param("lora", {}, kind, "image-classification", id=f"lora-{kind}-image"))
    return cases


def steps(model: torch.nn.Module, call, labels: torch.Tensor, pixel_values: torch.Tensor) -> list[float]:
    """Losses of ``STEPS`` Adam steps of ``model``'s trainable parameters, each forward through ``call``."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(STEPS):
        loss = call(pixel_values, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("method, variant, kind, task", compile_cases())
def test_every_method_compiles_with_no_graph_break_and_trains_as_eager(
    tiny_backbone_path, method, variant, kind, task
) -> None:
    torch._dynamo.reset()  # each case its own graphs: the recompile limit counts across models
    torch.manual_seed(0)
    options = {**get_method(method).tiny_options, **variant}
    eager = AutoAdapter.from_backbone(str(tiny_backbone_path(kind)), method=method, labels=LABELS, task=task, **options)
    compiled = copy.deepcopy(eager)
    prepare_to_compile(compiled)
    # fullgraph: any graph break, in the adapter or the backbone, is an error
    call = torch.compile(compiled, backend="aot_eager", fullgraph=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    pixel_values = separable_images(labels)
    if any(p.requires_grad for p in eager.parameters()) and get_method(method).compile_blocker is None:
        torch.manual_seed(1)  # dropout's draws, alike in both
        expected = steps(eager.train(), eager, labels, pixel_values)
        torch.manual_seed(1)
        assert steps(compiled.train(), call, labels, pixel_values) == pytest.approx(expected, rel=LOSS_TOLERANCE)
    # inference (every method; the only compiled use of a method whose training cannot trace)
    with torch.no_grad():
        expected = eager.eval()(pixel_values).logits
        torch.testing.assert_close(call.eval()(pixel_values).logits, expected, rtol=1e-5, atol=1e-5)
