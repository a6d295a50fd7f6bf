"""Training under faults: a Ctrl-C (a real SIGINT) or a crash at each point of a run, then a resume, ends with the
very weights of an uninterrupted run; a diverging run stops before a non-finite update and saves nothing broken;
damaged checkpoints and a full disk are named as such."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adapterzoo import AutoAdapter, train
from adapterzoo.errors import CheckpointError, NonFiniteError
from adapterzoo.faults import SimulatedCrash, set_fault
from adapterzoo.training.checkpoint import latest_checkpoint

FOUR = ["circle", "square", "triangle", "cross"]
OPTIONS = dict(
    epochs=2, batch_size=4, gradient_accumulation_steps=2, augment=True, max_grad_norm=0.5, save_steps=2,
    progress=False, lr=0.05,
)  # fmt: skip
METHOD = dict(method="vpt", num_tokens=2, deep=True, dropout=0.3)
# (action, point#occurrence): every place a run can be stopped, each past the first checkpoint or before it.
FAULTS = [
    ("interrupt", "forward#7"),
    ("interrupt", "backward#4"),
    ("interrupt", "optimizer-step#9"),
    ("interrupt", "evaluation#2"),
    ("interrupt", "epoch-end#1"),
    ("interrupt", "checkpoint-write#2"),
    ("raise", "forward#9"),
    ("raise", "backward#2"),
    ("raise", "optimizer-step#6"),
    ("raise", "evaluation#3"),
    ("raise", "epoch-end#1"),
    ("raise", "checkpoint-write#2"),
    ("raise", "manifest-written#3"),
]


def build(vit_path: Path):
    torch.manual_seed(123)
    return AutoAdapter.from_backbone(str(vit_path), labels=FOUR, **METHOD)


def saved(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter_model.safetensors")


def same(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.fixture(scope="module")
def uninterrupted(vit_path, shapes, shapes_eval, tmp_path_factory) -> dict:
    runs = {}
    for seed in (0, 1):
        folder = tmp_path_factory.mktemp(f"straight-{seed}")
        result = train(build(vit_path), shapes, shapes_eval, output_dir=folder, seed=seed, **OPTIONS)
        runs[seed] = (result, saved(folder / "final"), saved(folder / "best"))
    return runs


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("action, point", FAULTS)
def test_a_run_stopped_anywhere_resumes_to_the_same_weights(
    vit_path, shapes, shapes_eval, uninterrupted, tmp_path, seed, action, point
) -> None:
    set_fault(f"{action}@{point}")
    try:
        with pytest.raises(KeyboardInterrupt if action == "interrupt" else SimulatedCrash):
            train(build(vit_path), shapes, shapes_eval, output_dir=tmp_path, seed=seed, **OPTIONS)
    finally:
        set_fault(None)
    resume = "latest" if latest_checkpoint(tmp_path) is not None else None
    result = train(build(vit_path), shapes, shapes_eval, output_dir=tmp_path, seed=seed, resume_from=resume, **OPTIONS)
    reference, final, best = uninterrupted[seed]
    assert same(saved(tmp_path / "final"), final)
    assert same(saved(tmp_path / "best"), best)
    assert (result.best_step, result.best_metric, result.steps) == (
        reference.best_step,
        reference.best_metric,
        reference.steps,
    )


def test_a_diverging_run_stops_before_the_broken_update_and_keeps_its_checkpoints(vit_path, shapes, tmp_path) -> None:
    with pytest.raises(NonFiniteError) as error:
        train(build(vit_path), shapes, output_dir=tmp_path, **{**OPTIONS, "lr": 1e30, "max_grad_norm": None})
    message = str(error.value)
    assert "at step" in message and "learning rate 1e+30" in message and "the last finite loss was" in message
    assert not (tmp_path / "final").exists() and not (tmp_path / "best").exists()
    for checkpoint in (tmp_path / "checkpoints").glob("step-*"):
        weights = load_file(checkpoint / "trainable.safetensors")
        assert all(tensor.isfinite().all() for tensor in weights.values())


def test_skipping_non_finite_updates_leaves_them_out_and_counts_them(vit_path, shapes, tmp_path) -> None:
    def poisoned(batch: dict) -> dict:
        batch["image"] = [image.point(lambda _: 0) if i == 0 else image for i, image in enumerate(batch["image"])]
        return batch

    model = build(vit_path)
    original = model.peft_model.base_model.model.forward

    def nan_on_black(pixel_values=None, labels=None, features=None):
        output = original(pixel_values=pixel_values, labels=labels, features=features)
        if (pixel_values.flatten(1).std(dim=1) == 0).any():
            output.loss = output.loss * float("nan")
        return output

    model.peft_model.base_model.model.forward = nan_on_black
    result = train(model, shapes.with_transform(poisoned), output_dir=tmp_path, nonfinite="skip", **OPTIONS)
    assert result.skipped_updates > 0
    assert all(tensor.isfinite().all() for tensor in saved(tmp_path / "final").values())


def test_non_finite_weights_are_never_saved_or_pushed(vit_path, tmp_path) -> None:
    model = build(vit_path)
    with torch.no_grad():
        next(p for p in model.parameters() if p.requires_grad).fill_(float("inf"))
    with pytest.raises(NonFiniteError, match="NaN or infinite"):
        model.save_pretrained(tmp_path / "adapter")
    with pytest.raises(NonFiniteError, match="NaN or infinite"):
        model.push_to_hub("lab/never")
    assert not (tmp_path / "adapter").exists()


@pytest.mark.parametrize(
    "damage, file",
    [
        (lambda folder: (folder / "trainable.safetensors").write_bytes(b"\x08"), "trainable.safetensors"),
        (lambda folder: (folder / "trainer_state.json").write_text('{"progress": {"st'), "trainer_state.json"),
        (lambda folder: (folder / "rng.pt").unlink(), "rng.pt"),
        (lambda folder: (folder / "optimizer.pt").write_bytes(b"PK\x03\x04"), "optimizer.pt"),
    ],
)
def test_a_damaged_checkpoint_names_the_file_and_an_earlier_one(vit_path, shapes, tmp_path, damage, file) -> None:
    train(build(vit_path), shapes, output_dir=tmp_path, **{**OPTIONS, "save_total_limit": 3})
    checkpoints = sorted((tmp_path / "checkpoints").iterdir())
    damage(checkpoints[-1])
    with pytest.raises(CheckpointError) as error:
        train(build(vit_path), shapes, output_dir=tmp_path, resume_from=str(checkpoints[-1]), **OPTIONS)
    assert str(checkpoints[-1] / file) in str(error.value)
    assert f"Resume from {checkpoints[-2]} instead" in str(error.value)


def test_a_full_disk_is_named_and_keeps_the_previous_checkpoint(vit_path, tmp_path) -> None:
    """A real full disk: a 2 MiB tmpfs, mounted in a private mount namespace (``unshare``), filled up mid-run."""
    run = tmp_path / "disk" / "run"
    script = f"""
        import json, os, shutil
        from pathlib import Path
        import torch
        from adapterzoo import AutoAdapter, train
        from adapterzoo.data import builtin_dataset
        from adapterzoo.errors import DiskFullError
        from adapterzoo.training import checkpoint

        shapes = builtin_dataset("shapes", "train", num_per_class=6, classes={FOUR!r})
        torch.manual_seed(0)
        model = AutoAdapter.from_backbone({str(vit_path)!r}, labels={FOUR!r}, **{METHOD!r})
        run = Path({str(run)!r})
        saving = checkpoint.save_checkpoint

        def fill_after_first(*args, **kwargs):
            folder = saving(*args, **kwargs)
            if folder.name == "step-00000002":
                with open(run.parent / "filler", "wb", buffering=0) as handle:
                    try:
                        while True:
                            handle.write(b"x" * 4096)
                    except OSError:
                        pass
            return folder

        checkpoint.save_checkpoint = fill_after_first
        import adapterzoo.training.trainer as trainer
        trainer.save_checkpoint = fill_after_first
        try:
            train(model, shapes, output_dir=run, **{OPTIONS!r})
        except DiskFullError as exc:
            print(json.dumps({{"error": str(exc), "checkpoints": sorted(os.listdir(run / "checkpoints"))}}))
    """
    (tmp_path / "disk").mkdir()
    command = f'mount -t tmpfs -o size=2m tmpfs {tmp_path / "disk"} && exec {sys.executable} -c "$SCRIPT"'
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", command],
        env={**os.environ, "SCRIPT": textwrap.dedent(script)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "No space left on the device while saving" in report["error"] and "step-00000004" in report["error"]
    assert report["checkpoints"] == ["step-00000002"]


TRAIN_SCRIPT = """
import sys, torch
from pathlib import Path
from adapterzoo import AutoAdapter, train
from adapterzoo.data import builtin_dataset
from adapterzoo.training.checkpoint import latest_checkpoint
FOUR = {four!r}
shapes = builtin_dataset("shapes", "train", num_per_class=6, classes=FOUR)
evaluation = builtin_dataset("shapes", "validation", num_per_class=2, classes=FOUR)
torch.manual_seed(123)
model = AutoAdapter.from_backbone({vit!r}, labels=FOUR, **{method!r})
resume = "latest" if latest_checkpoint(Path(sys.argv[1])) is not None else None
train(model, shapes, evaluation, output_dir=sys.argv[1], resume_from=resume, **{options!r})
"""


@pytest.mark.parametrize("point", ["optimizer-step#5", "manifest-written#2"])
def test_a_process_killed_by_sigkill_resumes_to_the_same_weights(vit_path, uninterrupted, tmp_path, point) -> None:
    script = TRAIN_SCRIPT.format(four=FOUR, vit=str(vit_path), method=METHOD, options=OPTIONS)
    killed = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env={**os.environ, "ADAPTERZOO_FAULT": f"kill@{point}"},
        capture_output=True,
    )
    assert killed.returncode == -signal.SIGKILL
    resumed = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _, final, best = uninterrupted[0]
    assert same(saved(tmp_path / "final"), final) and same(saved(tmp_path / "best"), best)
