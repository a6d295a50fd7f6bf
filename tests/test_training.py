"""adapterzoo.train: recipes, the optimizer and schedule, checkpoints and exact resume, the feature cache, bad input."""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import datasets
import pytest
import torch

from adapterzoo import AutoAdapter, UnknownOptionError, evaluate, train
from adapterzoo.data import builtin_dataset
from adapterzoo.data.loading import DatasetError
from adapterzoo.training.config import TrainingConfig
from adapterzoo.training.optim import build_optimizer, build_scheduler

FOUR = ["circle", "square", "triangle", "cross"]


def build(vit_path: Path, method: str = "lora", seed: int = 0, **options):
    torch.manual_seed(seed)
    return AutoAdapter.from_backbone(str(vit_path), method=method, labels=FOUR, **options)


def log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


def trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_training_lowers_the_loss_and_saves_final_and_best(vit_path, shapes, shapes_eval, tmp_path, capsys) -> None:
    model = build(vit_path)
    backbone = {n: p.clone() for n, p in model.task_model.backbone.named_parameters() if not p.requires_grad}
    result = train(model, shapes, shapes_eval, epochs=4, batch_size=8, output_dir=tmp_path, progress=False)
    records = [r for r in log(tmp_path) if "loss" in r]
    assert records[-1]["loss"] < records[0]["loss"]
    assert f"{model.trainable_parameters:,} trainable parameters" in capsys.readouterr().out
    assert result.steps == 4 * 3 and result.metrics["num_examples"] == len(shapes_eval)
    assert result.best_dir == tmp_path / "best" and result.final_dir == tmp_path / "final"
    best = AutoAdapter.from_pretrained(result.best_dir)
    assert best.metrics["accuracy"] == result.best_metric
    final = AutoAdapter.from_pretrained(result.final_dir)
    assert evaluate(final, shapes_eval)["accuracy"] == result.metrics["accuracy"]
    after = dict(model.task_model.backbone.named_parameters())
    assert all(torch.equal(after[n], p) for n, p in backbone.items())


def test_the_recipe_sets_the_papers_optimizer_and_the_user_overrides_it(vit_path, shapes, tmp_path) -> None:
    model = build(vit_path, "vpt", num_tokens=2)
    train(model, shapes, epochs=1, batch_size=8, output_dir=tmp_path / "recipe", progress=False)
    start = log(tmp_path / "recipe")[0]
    assert start["config"]["optimizer"] == "sgd" and start["config"]["momentum"] == 0.9
    assert start["lr"] == 1.0 * 8 / 256  # VPT: lr = base_lr x batch / 256
    own = dict(lr=0.01, optimizer="adamw")
    train(model, shapes, epochs=1, batch_size=8, output_dir=tmp_path / "own", progress=False, **own)
    start = log(tmp_path / "own")[0]
    assert start["config"]["optimizer"] == "adamw" and start["lr"] == 0.01


def test_only_trainable_parameters_reach_the_optimizer(vit_path) -> None:
    model = build(vit_path, "vpt", num_tokens=2, projection_dim=4)
    optimizer = build_optimizer(model, TrainingConfig(weight_decay=0.1), lr=0.1)
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    decayed = {id(p) for group in optimizer.param_groups if group["weight_decay"] > 0 for p in group["params"]}
    assert decayed == {id(p) for p in model.parameters() if p.requires_grad and p.ndim >= 2}


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"scheduler": "cosine", "warmup_steps": 2}, [1 / 3, 2 / 3, 1.0, (1 + math.cos(math.pi / 8)) / 2]),
        ({"scheduler": "linear", "warmup_steps": 0}, [1.0, 0.9, 0.8, 0.7]),
        ({"scheduler": "constant", "warmup_steps": 2, "warmup_lr": 1e-3}, [0.01, 0.01, 1.0, 1.0]),
    ],
)
def test_the_schedule(options: dict, expected: list[float]) -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = build_scheduler(optimizer, TrainingConfig(**options), total_steps=10)
    factors = []
    for _ in expected:
        factors.append(optimizer.param_groups[0]["lr"] / 0.1)
        optimizer.step()
        scheduler.step()
    assert factors == pytest.approx(expected)


def interrupted_after(dataset: datasets.Dataset, accesses: int) -> datasets.Dataset:
    """A view of ``dataset`` that raises KeyboardInterrupt, as Ctrl-C would, on its (accesses + 1)-th read."""
    counter = itertools.count()

    def transform(batch: dict) -> dict:
        if next(counter) >= accesses:
            raise KeyboardInterrupt
        return batch

    return dataset.with_transform(transform)


def test_a_stopped_and_resumed_run_ends_with_the_same_weights(vit_path, shapes, tmp_path) -> None:
    options = dict(
        epochs=3, batch_size=4, gradient_accumulation_steps=2, augment=True, max_grad_norm=0.5, save_steps=2,
        progress=False,
    )  # fmt: skip
    method = {"method": "vpt", "num_tokens": 2, "deep": True, "dropout": 0.3}
    straight = build(vit_path, **method)
    train(straight, shapes, output_dir=tmp_path / "straight", **options)
    with pytest.raises(KeyboardInterrupt):
        # One read per example to check the labels, then four per batch: Ctrl-C in the 10th batch, after step 4.
        stopping = interrupted_after(shapes, len(shapes) + 4 * 9 + 3)
        train(build(vit_path, **method), stopping, output_dir=tmp_path / "run", **options)
    checkpoints = sorted((tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints and json.loads((checkpoints[-1] / "trainer_state.json").read_text())["progress"]["step"] == 4
    resumed = build(vit_path, **method)
    train(resumed, shapes, output_dir=tmp_path / "run", resume_from="latest", **options)
    first, second = trainable(straight), trainable(resumed)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_loader_workers_change_nothing_and_a_run_resumes_exactly_with_them(vit_path, shapes, tmp_path) -> None:
    """Persistent workers see each epoch's augmentation seed (shared memory), and a run resumed mid-epoch with
    workers (a skipped-ahead loader) ends where the uninterrupted one does."""
    options = dict(epochs=2, batch_size=4, augment=True, save_steps=4, save_total_limit=10, progress=False)
    method = {"method": "vpt", "num_tokens": 2, "deep": True, "dropout": 0.3}
    alone, workers = build(vit_path, **method), build(vit_path, **method)
    train(alone, shapes, output_dir=tmp_path / "alone", num_workers=0, **options)
    train(workers, shapes, output_dir=tmp_path / "workers", num_workers=2, **options)
    resumed = build(vit_path, **method)
    checkpoint = tmp_path / "workers" / "checkpoints" / "step-00000008"  # epoch 2, batch 2
    train(resumed, shapes, output_dir=tmp_path / "resumed", num_workers=2, resume_from=str(checkpoint), **options)
    first, second, third = trainable(alone), trainable(workers), trainable(resumed)
    assert all(torch.equal(first[n], second[n]) and torch.equal(first[n], third[n]) for n in first)


def test_num_workers_is_auto_by_default_and_checked() -> None:
    from adapterzoo.data.workers import loader_options

    assert TrainingConfig().num_workers == "auto" and TrainingConfig(num_workers="3").num_workers == 3
    for bad in (-1, "two", "1.5"):
        with pytest.raises(ValueError, match="num_workers must be 'auto' or a count"):
            TrainingConfig(num_workers=bad)
    assert loader_options("auto", torch.device("cpu")) == {"num_workers": 0, "persistent_workers": False,
                                                          "pin_memory": False}  # fmt: skip
    on_gpu = loader_options("auto", torch.device("cuda"))
    assert on_gpu["pin_memory"] and on_gpu["persistent_workers"] == (on_gpu["num_workers"] > 0)
    assert on_gpu["num_workers"] == min(8, len(os.sched_getaffinity(0)) - 1)
    assert loader_options(2, torch.device("cpu"))["num_workers"] == 2


def test_checkpoints_hold_the_trainable_state_and_are_pruned(vit_path, shapes, tmp_path) -> None:
    model = build(vit_path, "vpt", num_tokens=2)
    train(model, shapes, epochs=3, batch_size=8, save_total_limit=2, output_dir=tmp_path, progress=False)
    checkpoints = sorted((tmp_path / "checkpoints").iterdir())
    assert [c.name for c in checkpoints] == ["step-00000006", "step-00000009"]
    assert sorted(p.name for p in checkpoints[-1].iterdir()) == [
        ".adapterzoo-save.json",
        "optimizer.pt",
        "rng.pt",
        "trainable.safetensors",
        "trainer_state.json",
    ]
    from safetensors.torch import load_file

    saved = load_file(checkpoints[-1] / "trainable.safetensors")
    assert sum(t.numel() for t in saved.values()) == model.trainable_parameters


def test_the_best_checkpoint_follows_the_chosen_metric(vit_path, shapes, shapes_eval, tmp_path) -> None:
    model = build(vit_path)
    result = train(
        model, shapes, shapes_eval, epochs=3, batch_size=8, metric_for_best="loss", greater_is_better=False,
        output_dir=tmp_path, progress=False,
    )  # fmt: skip
    losses = {r["step"]: r["eval_loss"] for r in log(tmp_path) if "eval_loss" in r}
    assert result.best_step == min(losses, key=losses.get) and result.best_metric == min(losses.values())
    assert AutoAdapter.from_pretrained(tmp_path / "best").metrics["loss"] == result.best_metric


def test_bf16_mixed_precision_trains_on_the_cpu(vit_path, shapes, tmp_path) -> None:
    model = build(vit_path)
    before = trainable(model)
    train(model, shapes, epochs=1, batch_size=8, mixed_precision="bf16", output_dir=tmp_path, progress=False)
    losses = [r["loss"] for r in log(tmp_path) if "loss" in r]
    assert losses and all(math.isfinite(v) for v in losses)
    assert any(not torch.equal(before[n], p) for n, p in trainable(model).items())


def test_the_feature_cache_gives_the_same_head_as_the_full_forward(vit_path, shapes, shapes_eval, tmp_path) -> None:
    cached, direct = build(vit_path, "linear-probe"), build(vit_path, "linear-probe")
    common = dict(epochs=2, batch_size=8, progress=False)
    with_cache = train(cached, shapes, shapes_eval, cache_features="yes", output_dir=tmp_path / "c", **common)
    without = train(direct, shapes, shapes_eval, cache_features="no", output_dir=tmp_path / "d", **common)
    first, second = trainable(cached), trainable(direct)
    assert all(torch.allclose(first[n], second[n], atol=1e-6) for n in first)
    assert with_cache.metrics["accuracy"] == without.metrics["accuracy"]


@pytest.mark.parametrize(
    "method, options, reason",
    [("lora", {}, "'lora' adapts the backbone"), ("linear-probe", {"augment": True}, "augmentation changes")],
)
def test_the_feature_cache_says_why_it_cannot_apply(vit_path, shapes, tmp_path, method, options, reason) -> None:
    with pytest.raises(ValueError, match=f"Cannot cache backbone features: {reason}"):
        train(build(vit_path, method), shapes, cache_features="yes", output_dir=tmp_path, **options)


def test_bad_datasets_are_refused_before_training(vit_path, shapes, tmp_path) -> None:
    model = build(vit_path)
    no_image = shapes.remove_columns("image")
    with pytest.raises(DatasetError, match="No image column found.*image_column="):
        train(model, no_image, output_dir=tmp_path / "a")
    with pytest.raises(DatasetError, match="no label column 'grade'"):
        train(model, shapes, label_column="grade", output_dir=tmp_path / "b")
    others = builtin_dataset("shapes", "train", num_per_class=1, classes=["circle", "star"])
    with pytest.raises(DatasetError, match=r"labels the model does not know: \['star'\]"):
        train(model, others, output_dir=tmp_path / "c")
    with pytest.raises(DatasetError, match="split is empty"):
        train(model, shapes.select([]), output_dir=tmp_path / "d")
    with pytest.raises(UnknownOptionError, match="Unknown training option 'epoch'. Did you mean 'epochs'"):
        train(model, shapes, epoch=3, output_dir=tmp_path / "e")
    with pytest.raises(ValueError, match="metric_for_best 'macro_f1' is not reported"):
        train(model, shapes, shapes, metric_for_best="macro_f1", output_dir=tmp_path / "f")
    assert not any((tmp_path / name).exists() for name in "abcdef")


def test_labels_are_matched_by_name_not_by_position(vit_path, tmp_path) -> None:
    reordered = builtin_dataset("shapes", "validation", num_per_class=2, classes=list(reversed(FOUR)))
    model = build(vit_path, "linear-probe")
    metrics = evaluate(model, reordered, metrics=["accuracy"])
    predictions = [ranked[0]["label"] for ranked in model.predict(list(reordered["image"]))]
    truth = [reordered.features["label"].names[i] for i in reordered["label"]]
    correct = sum(p == t for p, t in zip(predictions, truth, strict=True))
    assert metrics["accuracy"] == pytest.approx(correct / len(truth))


def test_metrics_reach_tensorboard(vit_path, shapes, shapes_eval, tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    options = dict(epochs=2, batch_size=8, log_steps=1, output_dir=tmp_path, progress=False)
    train(build(vit_path), shapes, shapes_eval, **options)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"loss", "lr", "eval/accuracy", "eval/loss"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss")] == list(range(1, 7))


def test_the_best_adapter_is_pushed_to_the_hub(vit_path, shapes, shapes_eval, tmp_path) -> None:
    from adapterzoo.hub import EmbeddedHub

    with EmbeddedHub(tmp_path / "hub") as hub, hub.activate():
        model = build(vit_path)
        result = train(
            model, shapes, shapes_eval, epochs=2, batch_size=8, push_to_hub="lab/shapes-lora",
            output_dir=tmp_path / "run", progress=False,
        )  # fmt: skip
        pulled = AutoAdapter.from_pretrained("lab/shapes-lora")
        assert pulled.metrics["accuracy"] == result.best_metric
        best = AutoAdapter.from_pretrained(result.best_dir)
        with torch.no_grad():
            pixels = torch.randn(2, 3, 32, 32)
            assert torch.equal(pulled(pixels).logits, best(pixels).logits)


def test_the_feature_cache_keeps_the_models_mode_and_drops_what_it_is_told(vit_path, shapes) -> None:
    from adapterzoo.training.evaluation import evaluation_loader
    from adapterzoo.training.feature_cache import encode_features

    model = build(vit_path, "linear-probe").train()
    batches = list(evaluation_loader(model, shapes, 8))
    cached = encode_features(model, batches, torch.device("cpu"), keep=lambda batch: batch is not batches[0])
    assert model.training and len(cached) == len(shapes) - 8
    with torch.no_grad():
        expected = model.eval().task_model.encode(batches[1]["pixel_values"])
    assert torch.equal(cached.tensors[0][:8], expected) and torch.equal(cached.tensors[1][:8], batches[1]["labels"])
    assert len(encode_features(model, batches, torch.device("cpu"), keep=lambda batch: False)) == 0
