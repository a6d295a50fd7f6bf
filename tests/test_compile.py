"""`compile`: every method on ViT and CLIP, and LoRA on every architecture, traces with no graph break and trains as
eager does; `train(compile=True)` saves and checkpoints what an eager run does; refusals name their reason."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

import pytest
import torch
import torch._dynamo
from safetensors.torch import load_file
from torch._dynamo.utils import counters

from adapterzoo import AutoAdapter, evaluate, train
from adapterzoo.benchmarks import compiled as compiled_benchmark
from adapterzoo.compiling import prepare_to_compile
from adapterzoo.errors import CompileError
from adapterzoo.registry import get_method
from adapterzoo.testing import (
    LABELS,
    VISION_KINDS,
    adam_losses,
    images,
    perturb_trainable,
    save_tiny_backbone,
    separable_images,
)
from adapterzoo.testing.matrix import row_label, rows

STEPS = 2
LOSS_TOLERANCE = 1e-5
"""aot_eager runs eager's kernels on a traced graph: only reassociation separates its losses from eager's."""


@pytest.fixture(scope="session")
def one_layer_path(tmp_path_factory: pytest.TempPathFactory):
    """``one_layer_path(kind)``: a tiny backbone of one transformer layer (Swin: its two tiny stages), saved once.
    Tracing time grows with the layers, and one shows whatever breaks a graph as well as three."""
    root = tmp_path_factory.mktemp("one-layer-backbones")

    @cache
    def path(kind: str) -> Path:
        return save_tiny_backbone(root / kind, kind, num_hidden_layers=1)

    return path


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


@pytest.mark.parametrize("method, variant, kind, task", compile_cases())
def test_every_method_compiles_with_no_graph_break_and_trains_as_eager(
    one_layer_path, method, variant, kind, task
) -> None:
    torch._dynamo.reset()  # each case its own graphs: the recompile limit counts across models
    torch.manual_seed(0)
    # MaPLe prompts its `depth` first layers: the one there is
    options = {**get_method(method).tiny_options, **variant, **({"depth": 1} if method == "maple" else {})}
    backbone = str(one_layer_path(kind))
    eager = AutoAdapter.from_backbone(backbone, method=method, labels=LABELS, task=task, **options)
    compiled = copy.deepcopy(eager)
    prepare_to_compile(compiled)
    # fullgraph: any graph break, in the adapter or the backbone, is an error
    call = torch.compile(compiled, backend="aot_eager", fullgraph=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    pixel_values = separable_images(labels)
    if any(p.requires_grad for p in eager.parameters()) and get_method(method).compile_blocker is None:
        torch.manual_seed(1)  # dropout's draws, alike in both
        expected = adam_losses(eager.train(), pixel_values, labels, STEPS)
        torch.manual_seed(1)
        losses = adam_losses(compiled.train(), pixel_values, labels, STEPS, call)
        assert losses == pytest.approx(expected, rel=LOSS_TOLERANCE)
        return
    # nothing to train, or a training that cannot trace (declared): inference compiles
    with torch.no_grad():
        expected = eager.eval()(pixel_values).logits
        torch.testing.assert_close(call.eval()(pixel_values).logits, expected, rtol=1e-5, atol=1e-5)


FOUR = ["circle", "square", "triangle", "cross"]


def build(backbone: Path, method: str = "lora", **options) -> AutoAdapter:
    torch.manual_seed(0)
    return AutoAdapter.from_backbone(str(backbone), method=method, labels=FOUR, **options)


def logged_losses(folder: Path) -> list[float]:
    lines = (folder / "log.jsonl").read_text().splitlines()
    return [record["loss"] for record in map(json.loads, lines) if "loss" in record]


def test_train_compiled_with_inductor_matches_eager_and_saves_what_eager_saves(
    one_layer_path, shapes, shapes_eval, tmp_path
) -> None:
    torch._dynamo.reset()
    options = dict(epochs=1, batch_size=8, log_steps=1, save_steps=1, save_total_limit=5, progress=False)
    eager, compiled = build(one_layer_path("vit")), build(one_layer_path("vit"))
    train(eager, shapes, shapes_eval, output_dir=tmp_path / "eager", **options)
    result = train(compiled, shapes, shapes_eval, output_dir=tmp_path / "compiled", compile=True, **options)
    # inductor fuses and reorders float arithmetic: equal within 1e-4
    assert logged_losses(tmp_path / "compiled") == pytest.approx(logged_losses(tmp_path / "eager"), rel=1e-4)
    for relative in ("final/adapter_model.safetensors", "checkpoints/step-00000002/trainable.safetensors"):
        saved, reference = load_file(tmp_path / "compiled" / relative), load_file(tmp_path / "eager" / relative)
        assert saved.keys() == reference.keys() and not any("_orig_mod" in key for key in saved)
        assert all(torch.allclose(saved[key], reference[key], atol=1e-4) for key in saved)
    loaded = AutoAdapter.from_pretrained(result.final_dir)  # an uncompiled model
    assert evaluate(loaded, shapes_eval)["accuracy"] == result.metrics["accuracy"]


def test_compiled_training_resumes_from_eager_checkpoints_and_evaluates_without_recompiling(
    one_layer_path, shapes, shapes_eval, tmp_path
) -> None:
    options = dict(epochs=1, batch_size=8, save_steps=1, save_total_limit=5, progress=False)
    straight = build(one_layer_path("vit"))
    train(straight, shapes, output_dir=tmp_path / "straight", **options)
    torch._dynamo.reset()
    counters["stats"].clear()
    resumed = build(one_layer_path("vit"))
    checkpoint = tmp_path / "straight" / "checkpoints" / "step-00000001"
    train(
        resumed, shapes, shapes_eval, output_dir=tmp_path / "resumed", resume_from=str(checkpoint), eval_steps=1,
        compile=True, compile_backend="aot_eager", **options,
    )  # fmt: skip
    first, second = dict(straight.named_parameters()), dict(resumed.named_parameters())
    assert all(torch.allclose(first[n], p, atol=1e-6) for n, p in second.items() if p.requires_grad)
    # evaluation after each step ran the eager model, and switching modes back did not recompile the step
    assert counters["stats"]["unique_graphs"] == 1


def test_compiled_training_on_cached_features_trains_the_head_as_eager(one_layer_path, shapes, tmp_path) -> None:
    torch._dynamo.reset()
    options = dict(epochs=2, batch_size=8, cache_features="yes", progress=False)
    eager, compiled = build(one_layer_path("vit"), "linear-probe"), build(one_layer_path("vit"), "linear-probe")
    train(eager, shapes, output_dir=tmp_path / "eager", **options)
    train(compiled, shapes, output_dir=tmp_path / "compiled", compile=True, compile_backend="aot_eager", **options)
    first, second = dict(eager.named_parameters()), dict(compiled.named_parameters())
    assert all(torch.allclose(first[n], p, atol=1e-6) for n, p in second.items() if p.requires_grad)


@pytest.mark.parametrize("method", ["loha", "lokr"])
def test_a_method_whose_training_cannot_trace_refuses_compile_saying_why(vit_path, shapes, tmp_path, method) -> None:
    model = build(vit_path, method)
    name = {"loha": "LoHa", "lokr": "LoKr"}[method]
    with pytest.raises(CompileError, match=rf"'{method}' cannot train compiled: PEFT's {name} layers branch on a "):
        train(model, shapes, compile=True, output_dir=tmp_path, progress=False)
    assert not (tmp_path / "log.jsonl").exists()  # refused before anything ran


def test_an_unknown_backend_is_refused_listing_the_known_ones(vit_path, shapes, tmp_path) -> None:
    with pytest.raises(CompileError, match="Unknown torch.compile backend 'indutor'; choose one of .*inductor"):
        train(build(vit_path), shapes, compile=True, compile_backend="indutor", output_dir=tmp_path, progress=False)
    with pytest.raises(CompileError, match="Unknown torch.compile backend 'fast'"):
        build(vit_path).compile(backend="fast")


def test_a_loaded_adapter_compiles_for_prediction(one_layer_path, tmp_path) -> None:
    torch._dynamo.reset()
    counters.clear()
    model = build(one_layer_path("vit"))
    perturb_trainable(model, seed=0)
    model.save_pretrained(tmp_path / "adapter")
    eager = AutoAdapter.from_pretrained(tmp_path / "adapter")
    compiled = AutoAdapter.from_pretrained(tmp_path / "adapter", compile="aot_eager")
    batch = (images(3) * 60 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # HWC photos
    expected, predicted = eager.predict(batch, top_k=4), compiled.predict(batch, top_k=4)
    assert [[p["label"] for p in row] for row in predicted] == [[p["label"] for p in row] for row in expected]
    scores = torch.tensor([[p["score"] for p in row] for row in predicted])
    torch.testing.assert_close(scores, torch.tensor([[p["score"] for p in row] for row in expected]))
    assert counters["stats"]["unique_graphs"] == 1  # predict ran the compiled forward
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # names unchanged: no _orig_mod


def test_the_compile_benchmark_times_eager_and_compiled_and_writes_its_block(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{compiled_benchmark.START}\nold\n{compiled_benchmark.END}\n")
    results = compiled_benchmark.run_compile_benchmark(
        size="tiny", methods=("linear-probe",), backend="aot_eager", repeats=1, output=tmp_path / "out", readme=readme,
        progress=False,
    )  # fmt: skip
    assert set(results["methods"]) == {"linear-probe"}
    for row in results["methods"].values():
        for timed in (row["step"], row["inference"]):
            assert timed["ratio"] == timed["compiled_seconds"] / timed["eager_seconds"] > 0
    table = (tmp_path / "out" / "compile.md").read_text()
    assert "| linear-probe | " in table and "(aot_eager)" in table
    assert json.loads((tmp_path / "out" / "compile.json").read_text())["settings"]["backend"] == "aot_eager"
    assert "old" not in readme.read_text() and table.strip() in readme.read_text()
