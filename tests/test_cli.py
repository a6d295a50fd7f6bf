"""The command line: `adapterzoo train` (flags and YAML config), `adapterzoo evaluate`, Ctrl-C and resume."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adapterzoo import MethodInfo, UnknownOptionError, evaluate
from adapterzoo.auto import AutoAdapter
from adapterzoo.cli import build_parser, main
from adapterzoo.data import builtin_dataset
from adapterzoo.training.config import TrainingConfig

FOUR = ["circle", "square", "triangle", "cross"]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset as a user would have it on disk: split/class/image.png."""
    root = tmp_path_factory.mktemp("images")
    for split, count in (("train", 4), ("validation", 2)):
        data = builtin_dataset("shapes", split, num_per_class=count, classes=FOUR)
        for index, (image, label) in enumerate(zip(data["image"], data["label"], strict=True)):
            folder = root / split / FOUR[label]
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{index}.png")
    return root


def adapterzoo(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "adapterzoo", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_every_training_option_is_a_documented_flag() -> None:
    train_help = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for field in dataclasses.fields(TrainingConfig):
        flag = "--" + field.name.replace("_", "-")
        assert flag in train_help
        assert field.metadata["help"].split()[0] in train_help


def test_the_command_line_and_the_hub_server_start_without_torch(heavy_imports) -> None:
    """Every command's flags, and the embedded Hub server, load without torch: `--help` and `adapterzoo hub serve`
    answer at once (torch, transformers and PEFT load when a command needs them)."""
    assert (
        heavy_imports("from adapterzoo.cli import build_parser; from adapterzoo.hub import serve; build_parser()") == []
    )


def test_listing_the_methods_loads_no_torch(heavy_imports) -> None:
    """`adapterzoo methods` imports only the plugins' declarations, so it answers at once."""
    assert heavy_imports("from adapterzoo.cli import main; main(['methods'])") == []


def test_the_methods_table_keeps_its_columns_aligned_for_long_names(monkeypatch, capsys) -> None:
    installed = [
        MethodInfo("a", "adapterzoo-a-distribution-with-a-long-name", "1.0", "Summary of a."),
        MethodInfo("a-method-with-a-long-name", "b", "10.20.300", "Summary of b."),
    ]
    monkeypatch.setattr("adapterzoo.list_methods", lambda: installed)
    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(maxsplit=3) for line in lines] == [
        [info.name, info.distribution, info.version, info.summary] for info in installed
    ]
    assert len({line.index("Summary") for line in lines}) == 1
    assert len({line.index(info.version) for line, info in zip(lines, installed, strict=True)}) == 1


def test_train_from_a_config_file_then_evaluate(image_folder: Path, vit_path: Path, tmp_path: Path, capsys) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        f"backbone: {vit_path}\nmethod: vpt\nmethod_options: {{num_tokens: 2}}\ndataset: {image_folder}\n"
        f"epochs: 2\nbatch_size: 4\noutput_dir: {tmp_path / 'run'}\nprogress: false\n"
    )
    assert main(["train", "--config", str(config), "--option", "deep=true", "--epochs", "3"]) == 0
    summary = json.loads(_last_json(capsys))
    assert summary["steps"] == 3 * 4
    model = AutoAdapter.from_pretrained(tmp_path / "run" / "final")
    assert model.peft_model.peft_config["default"].deep is True and model.labels == sorted(FOUR)
    output = tmp_path / "metrics.json"
    assert main(["evaluate", str(tmp_path / "run" / "final"), "--dataset", str(image_folder), "--split",
                 "validation", "--metrics", "accuracy", "f1", "--output", str(output)]) == 0  # fmt: skip
    metrics = json.loads(output.read_text())
    validation = builtin_dataset("shapes", "validation", num_per_class=2, classes=FOUR)
    assert metrics == pytest.approx(evaluate(model, validation, metrics=["accuracy", "f1"]))


def test_train_records_the_hub_dataset_it_trained_on(
    image_folder: Path, vit_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapterzoo.data import loading

    load = loading.load_image_dataset
    asked = []

    def from_the_hub(source, split="train", **options):  # "me/shapes" stands for a Hub dataset: the image folder
        asked.append(source)
        return load(str(image_folder) if source == "me/shapes" else source, split, **options)

    monkeypatch.setattr(loading, "load_image_dataset", from_the_hub)
    assert main(["train", "--backbone", str(vit_path), "--method", "lora", "--dataset", "me/shapes", "--epochs", "1",
                 "--output-dir", str(tmp_path / "run"), "--no-progress"]) == 0  # fmt: skip
    assert "me/shapes" in asked
    assert AutoAdapter.from_pretrained(tmp_path / "run" / "final").datasets == ["me/shapes"]
    assert main(["train", "--backbone", str(vit_path), "--method", "lora", "--dataset", str(image_folder),
                 "--epochs", "1", "--output-dir", str(tmp_path / "local"), "--no-progress"]) == 0  # fmt: skip
    assert AutoAdapter.from_pretrained(tmp_path / "local" / "final").datasets == []  # a folder is no Hub dataset


def _last_json(capsys) -> str:
    out = capsys.readouterr().out
    return out[out.rindex("\n{") + 1 :] if "\n{" in out else out[out.index("{") :]


def test_an_unknown_config_key_is_named(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("epochz: 3\n")
    with pytest.raises(UnknownOptionError, match="Unknown key in .*run.yaml 'epochz'. Did you mean 'epochs'"):
        main(["train", "--config", str(config)])


def test_ctrl_c_saves_a_checkpoint_that_resumes_to_the_same_weights(image_folder, vit_path, tmp_path) -> None:
    common = ["train", "--backbone", str(vit_path), "--method", "lora", "--dataset", str(image_folder), "--epochs",
              "25", "--batch-size", "4", "--eval-split", "none", "--log-steps", "1", "--no-progress"]  # fmt: skip
    straight = adapterzoo(*common, "--output-dir", str(tmp_path / "straight"))
    stopped = adapterzoo(*common, "--output-dir", str(tmp_path / "stopped"))
    log = tmp_path / "stopped" / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.is_file() and log.read_text().count('"loss"') >= 5):
        time.sleep(0.05)
    stopped.send_signal(signal.SIGINT)
    output = stopped.communicate(timeout=120)[0]
    assert stopped.returncode != 0 and "interrupted: checkpoint saved" in output
    resumed = adapterzoo(*common, "--output-dir", str(tmp_path / "stopped"), "--resume-from", "latest")
    assert "resumed from" in resumed.communicate(timeout=300)[0] and resumed.returncode == 0
    assert straight.wait(timeout=300) == 0
    first = load_file(tmp_path / "straight" / "final" / "adapter_model.safetensors")
    second = load_file(tmp_path / "stopped" / "final" / "adapter_model.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
