"""Mixed precision against float32, for every method row: a bfloat16 model's logits, a float32 model's under bf16
autocast, and a few training steps' losses under autocast; `adapterzoo.train`'s Accelerate autocast; the precisions a
device cannot compute in, refused.

The tolerance: bfloat16 keeps 8 significant bits, so each rounding moves a value by at most u = 2**-8 of it. A logit
of the tiny 3-layer backbones passes through a few dozen roundings in sequence (patch embedding; per layer two norms,
attention and the MLP; the head), so it may drift by up to 32u = 1/8 of the logits' scale, max(1, |largest float32
logit|); the same bound holds for a loss. Measured on the tiny backbones: at most 12.7u of the scale (CoOp's logits)
and 4.8u for a loss (full fine-tuning's, measured over 3 steps; the test takes 2).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from adapterzoo import AutoAdapter, get_method, train
from adapterzoo.errors import PrecisionError
from adapterzoo.precision import check_mixed_precision
from adapterzoo.testing import LABELS, adam_losses, images, perturb_trainable, separable_images
from adapterzoo.testing.matrix import row_label, rows
from adapterzoo.training.checkpoint import Progress, load_checkpoint, save_checkpoint
from adapterzoo.training.config import TrainingConfig

BF16 = torch.bfloat16
UNIT_ROUNDOFF = 2**-8  # bfloat16: 8 significant bits
TOLERANCE = 32 * UNIT_ROUNDOFF  # of the scale; see the module's docstring
ROWS = rows()
FOUR = ["circle", "square", "triangle", "cross"]


def assert_within(got: torch.Tensor, expected: torch.Tensor) -> None:
    scale = max(1.0, expected.abs().max().item())
    difference = (got.float() - expected).abs().max().item()
    assert difference <= TOLERANCE * scale, f"{difference / UNIT_ROUNDOFF:.1f}u of scale {scale:.3f}"


def picture() -> np.ndarray:
    """One uint8 HWC image, as `predict` takes."""
    return (images(1)[0].permute(1, 2, 0).clamp(-1, 1) * 127 + 128).to(torch.uint8).numpy()


def losses(model: torch.nn.Module, steps: int, autocast: bool) -> list[float]:
    """The losses of ``steps`` Adam steps on separable images, under bf16 autocast or in float32."""
    labels = torch.tensor([0, 1, 2, 0, 1, 2])

    def call(pixel_values: torch.Tensor, labels: torch.Tensor):
        with torch.autocast("cpu", dtype=BF16, enabled=autocast):
            return model(pixel_values, labels=labels)

    return adam_losses(model, separable_images(labels), labels, steps, call)


@pytest.mark.parametrize("method, variant", ROWS, ids=[row_label(*row) for row in ROWS])
def test_every_method_computes_and_trains_in_bf16_as_in_float32(method, variant, tiny_backbone_path) -> None:
    torch.manual_seed(0)
    kind = "clip" if get_method(method).tasks[0] == "clip-classification" else "vit"
    options = {**get_method(method).tiny_options, **variant}
    full = AutoAdapter.from_backbone(str(tiny_backbone_path(kind)), method=method, labels=LABELS, **options)
    perturb_trainable(full, seed=0)  # off the identity, where an adapter could be skipped and still match
    start = copy.deepcopy(full)
    half = copy.deepcopy(full).to(BF16).eval()
    full.eval()
    with torch.no_grad():
        expected = full(images()).logits
        bf16_model = half(images()).logits
        with torch.autocast("cpu", dtype=BF16):
            autocast = full(images()).logits
    assert bf16_model.dtype == BF16 and autocast.dtype == BF16
    assert_within(bf16_model, expected)
    assert_within(autocast, expected)
    if not any(p.requires_grad for p in start.parameters()):  # zero-shot, and the methods fitted in closed form
        return
    in_float32 = losses(copy.deepcopy(start).train(), 2, autocast=False)
    mixed = losses(start.train(), 2, autocast=True)
    assert_within(torch.tensor(mixed), torch.tensor(in_float32))
    assert in_float32[-1] < in_float32[0] and mixed[-1] < mixed[0]


def test_train_with_mixed_precision_bf16_follows_float32(vit_path, shapes, tmp_path: Path) -> None:
    """Accelerate's autocast through `adapterzoo.train`: float32 weights, bf16 matrix products, the same losses."""
    logged = {}
    for precision in ("no", "bf16"):
        torch.manual_seed(0)
        model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=FOUR)
        train(
            model, shapes, max_steps=4, batch_size=8, lr=1e-2, log_steps=1, mixed_precision=precision,
            output_dir=tmp_path / precision, progress=False,
        )  # fmt: skip
        lines = (tmp_path / precision / "log.jsonl").read_text().splitlines()
        logged[precision] = [record["loss"] for record in map(json.loads, lines) if "loss" in record]
        assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert len(logged["bf16"]) == 4
    assert_within(torch.tensor(logged["bf16"]), torch.tensor(logged["no"]))
    assert logged["bf16"] != logged["no"]  # autocast did compute in bf16


def test_predict_and_evaluate_under_bf16_autocast_follow_float32(vit_path, shapes_eval) -> None:
    from adapterzoo import evaluate

    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=FOUR)
    perturb_trainable(model, seed=0)
    full, mixed = model.predict(picture(), top_k=4), model.predict(picture(), top_k=4, mixed_precision="bf16")
    assert [p["label"] for p in mixed] == [p["label"] for p in full]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(mixed, full, strict=True)) <= TOLERANCE
    in_float32 = evaluate(model, shapes_eval, split="validation", batch_size=6)
    under_autocast = evaluate(model, shapes_eval, split="validation", batch_size=6, mixed_precision="bf16")
    assert abs(under_autocast["loss"] - in_float32["loss"]) <= TOLERANCE * max(1.0, in_float32["loss"])


def test_fp16_without_a_gpu_is_refused_before_anything_runs(vit_path, shapes, tmp_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=FOUR)
    refused = r"mixed_precision='fp16' needs a GPU, not the CPU.*Use mixed_precision='bf16'"
    with pytest.raises(PrecisionError, match=refused):
        train(model, shapes, max_steps=1, mixed_precision="fp16", output_dir=tmp_path, progress=False)
    assert not tmp_path.joinpath("log.jsonl").exists()
    with pytest.raises(PrecisionError, match="needs a GPU, not the CPU"):
        model.predict(picture(), mixed_precision="fp16")


def test_bf16_on_a_gpu_without_bfloat16_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.raises(PrecisionError, match="Tesla T4 does not: use mixed_precision='fp16'"):
        check_mixed_precision("bf16", torch.device("cuda"))


def test_a_precision_that_is_not_one_is_refused(vit_path) -> None:
    with pytest.raises(ValueError, match="mixed_precision must be one of no, fp16, bf16, not 'float16'"):
        TrainingConfig(mixed_precision="float16")
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=FOUR)
    with pytest.raises(PrecisionError, match="mixed_precision must be one of no, fp16, bf16, not 'bfloat16'"):
        model.predict(picture(), mixed_precision="bfloat16")


def test_checkpoints_keep_the_loss_scaler_state(vit_path, tmp_path: Path) -> None:
    """An fp16 run resumes with the loss scale it had reached, not the initial one (which would overflow again)."""
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=FOUR)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    scaler.scale(torch.ones(()))
    scaler.update(new_scale=2.0**11)  # as after five overflowing steps
    folder = save_checkpoint(tmp_path, model, optimizer, scheduler, Progress(), {}, {}, scaler)
    restored = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    load_checkpoint(folder, model, optimizer, scheduler, restored)
    assert restored.get_scale() == 2.0**11 and restored.state_dict() == scaler.state_dict()
