"""bfloat16 models on the CPU: every method's adapter and head are made in the backbone's dtype, train, predict,
survive a save and reload exactly, and train with `adapterzoo.train` (plain and under Accelerate's bf16 autocast)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from adapterzoo import AutoAdapter, get_method, train
from adapterzoo.placement import follow
from adapterzoo.testing import LABELS, VISION_KINDS, images, perturb_trainable, separable_images
from adapterzoo.testing.matrix import row_label, rows
from adapterzoo.training.fit import is_fitted

BF16 = torch.bfloat16
ROWS = [*rows(), ("lora", {"use_dora": True})]
FOUR = ["circle", "square", "triangle", "cross"]


def backbone_path_for(method: str, tiny_backbone_path) -> Path:
    return tiny_backbone_path("clip" if get_method(method).tasks[0] == "clip-classification" else "vit")


def float_dtypes(model: torch.nn.Module) -> set[torch.dtype]:
    return {tensor.dtype for tensor in model.state_dict().values() if tensor.is_floating_point()}


@pytest.mark.parametrize("method, variant", ROWS, ids=[row_label(*row) for row in ROWS])
def test_every_method_runs_and_steps_in_bf16(method: str, variant: dict, tiny_backbone_path) -> None:
    torch.manual_seed(0)
    options = {**get_method(method).tiny_options, **variant}
    path = backbone_path_for(method, tiny_backbone_path)
    model = AutoAdapter.from_backbone(str(path), method=method, labels=LABELS, dtype=BF16, **options)
    assert float_dtypes(model) == {BF16} and model.dtype == BF16
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    output = model(separable_images(labels), labels=labels)  # float32 pixels, as image processors give them
    assert output.logits.dtype == BF16 and math.isfinite(output.loss.item())
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not trainable:  # zero-shot, and the methods fitted in closed form before anything trains
        assert method == "zero-shot" or is_fitted(model)
        return
    before = {name: p.detach().clone() for name, p in trainable.items()}
    optimizer = torch.optim.Adam(trainable.values(), lr=1e-2)
    output.loss.backward()
    optimizer.step()
    assert any(not torch.equal(before[name], p) for name, p in trainable.items())
    assert float_dtypes(model) == {BF16}


@pytest.mark.parametrize("kind", VISION_KINDS)
def test_every_architecture_takes_float32_pixels_in_bf16(kind: str, tiny_backbone_path) -> None:
    model = AutoAdapter.from_backbone(str(tiny_backbone_path(kind)), method="lora", labels=LABELS, dtype=BF16).eval()
    with torch.no_grad():
        logits = model(images()).logits  # float32, as image processors give them
    assert logits.dtype == BF16 and logits.isfinite().all()


def test_a_bf16_model_trains_and_leaves_the_backbone_untouched(vit_path: Path) -> None:
    torch.manual_seed(0)
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS, dtype=BF16)
    backbone = {n: p.clone() for n, p in model.task_model.backbone.named_parameters() if not p.requires_grad}
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    pixels = separable_images(labels)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(8):
        loss = model(pixels, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    after = dict(model.task_model.backbone.named_parameters())
    assert all(torch.equal(after[name], p) for name, p in backbone.items())


def test_bf16_predictions_follow_the_float32_model(vit_path: Path) -> None:
    full = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS).eval()
    perturb_trainable(full, seed=0)
    half = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS, dtype="bfloat16").eval()
    half.load_state_dict(full.state_dict())  # the same adapter and head, rounded to bfloat16
    with torch.no_grad():
        expected, got = full(images()).logits, half(images()).logits
    assert got.dtype == BF16
    # bfloat16 keeps 8 bits of mantissa: through 3 tiny layers the logits stay within a few hundredths.
    torch.testing.assert_close(got.float(), expected, atol=0.05, rtol=0.05)
    picture = (images(1)[0].permute(1, 2, 0).clamp(-1, 1) * 127 + 128).to(torch.uint8).numpy()
    predicted = half.predict(picture, top_k=len(LABELS))
    assert [p["label"] for p in predicted] == [p["label"] for p in full.predict(picture, top_k=len(LABELS))]
    assert math.isclose(sum(p["score"] for p in predicted), 1.0, abs_tol=1e-2)


@pytest.mark.parametrize("method, options", [("lora", {}), ("vpt", {"num_tokens": 2}), ("coop", {"num_context": 2})])
def test_a_bf16_round_trip_gives_identical_logits(method, options, tiny_backbone_path, tmp_path: Path) -> None:
    path = backbone_path_for(method, tiny_backbone_path)
    model = AutoAdapter.from_backbone(str(path), method=method, labels=LABELS, dtype=BF16, **options).eval()
    perturb_trainable(model, seed=1)
    model.save_pretrained(tmp_path / "adapter")
    loaded = AutoAdapter.from_pretrained(tmp_path / "adapter")  # dtype "auto": the dtype it was saved in
    assert loaded.dtype == BF16 and float_dtypes(loaded) == {BF16}
    with torch.no_grad():
        assert torch.equal(loaded(images()).logits, model(images()).logits)
    as_float32 = AutoAdapter.from_pretrained(tmp_path / "adapter", dtype=torch.float32)
    assert float_dtypes(as_float32) == {torch.float32}
    with torch.no_grad():
        got, expected = as_float32(images()).logits, model(images()).logits.float()
    atol = 0.05  # bfloat16 keeps 8 bits of mantissa: through 3 tiny layers, a few hundredths
    if hasattr(as_float32.task_model, "clip"):  # CLIP's logits are cosines times exp(logit_scale): compare cosines
        scale = as_float32.task_model.clip.logit_scale.exp()
        got, expected, atol = got / scale, expected / scale, 0.01
    torch.testing.assert_close(got, expected, atol=atol, rtol=0.05)


@pytest.mark.parametrize("mixed_precision", ["no", "bf16"])
def test_train_runs_a_bf16_model_on_the_cpu(mixed_precision, vit_path, shapes, shapes_eval, tmp_path) -> None:
    torch.manual_seed(0)
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=FOUR, dtype=BF16)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    result = train(
        model, shapes, shapes_eval, epochs=2, batch_size=8, lr=1e-2, optimizer="adamw",
        mixed_precision=mixed_precision, output_dir=tmp_path, progress=False,
    )  # fmt: skip
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    losses = [record["loss"] for record in records if "loss" in record]
    assert losses and all(math.isfinite(v) for v in losses)
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if p.requires_grad)
    assert float_dtypes(model) == {BF16}
    final = AutoAdapter.from_pretrained(result.final_dir)
    assert final.dtype == BF16 and final.metrics["accuracy"] == result.metrics["accuracy"]


def test_follow_moves_only_what_the_backbone_does_not_own_and_keeps_shared_tensors_shared() -> None:
    backbone = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2)).to(BF16)
    backbone[1].float()  # a part the backbone keeps in float32 on purpose stays so
    shared = torch.ones(3)
    first, second = torch.nn.Module(), torch.nn.Module()
    first.register_buffer("projection", shared)
    second.register_buffer("projection", shared)
    head = torch.nn.Linear(2, 3)
    weight = head.weight
    model = torch.nn.ModuleDict({"backbone": backbone, "first": first, "second": second, "head": head})
    follow(model, backbone)
    assert first.projection is second.projection and first.projection.dtype == BF16
    assert head.weight is weight and head.weight.dtype == BF16 and head.bias.dtype == BF16
    assert backbone[0].weight.dtype == BF16 and backbone[1].weight.dtype == torch.float32
