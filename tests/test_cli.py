"""The command line: `adapterzoo train` (flags and YAML config), `adapterzoo evaluate`, Ctrl-C and resume; versions,
extras checked up front, progress bars, one-line user errors, the datasets a user has (issue 18)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
import torch
import yaml
from safetensors.torch import load_file

from adapterzoo import MethodInfo, __version__, evaluate
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


def test_an_unknown_config_key_is_named(tmp_path: Path, capsys) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("epochz: 3\n")
    message = _failure(capsys, "train", "--config", str(config))
    assert message.startswith(f"adapterzoo train: Unknown key in {config} 'epochz'. Did you mean 'epochs'?")


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


# A command line without rough edges: versions, extras checked up front, progress, one-line errors (issue 18).


@pytest.fixture(scope="module")
def saved_adapter(vit_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=sorted(FOUR))
    return model.save_pretrained(tmp_path_factory.mktemp("adapter") / "final")


def _validation() -> datasets.Dataset:
    return builtin_dataset("shapes", "validation", num_per_class=2, classes=FOUR)


def _quietly_exiting(call: str) -> str:
    """A script that runs ``call`` of the command line and carries on when it exits (as --help and --version do)."""
    return f"from adapterzoo.cli import main\ntry:\n    {call}\nexcept SystemExit:\n    pass"


def _failure(capsys, *args: str) -> str:
    """The one line a user error exits with (as the interpreter prints a SystemExit's message)."""
    with pytest.raises(SystemExit) as failed:
        main(list(args))
    message = str(failed.value.code)
    assert "\n" not in message and "Traceback" not in capsys.readouterr().err
    return message


def test_version_names_adapterzoo_and_the_libraries_it_runs_on(capsys, heavy_imports) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    first, libraries = capsys.readouterr().out.splitlines()
    assert first.startswith(f"adapterzoo {__version__} (Python ")
    for name in ("torch", "transformers", "peft", "huggingface_hub", "datasets", "accelerate"):
        assert f"{name} {importlib.metadata.version(name)}" in libraries
    assert heavy_imports(_quietly_exiting("main(['--version'])")) == []


def test_bench_without_matplotlib_refuses_at_once_before_measuring(run_python, tmp_path: Path) -> None:
    output = tmp_path / "results"
    started = time.perf_counter()
    printed = run_python(f"""
        import sys
        sys.modules["matplotlib"] = None  # what an absent package looks like to import
        from adapterzoo.cli import main
        try:
            main(["bench", "--size", "tiny", "--output", {str(output)!r}])
        except SystemExit as refused:
            print(refused.code)
        print(sorted(name for name in ("torch", "transformers") if name in sys.modules))
    """)  # fmt: skip
    assert time.perf_counter() - started < 10  # a fresh interpreter on a loaded CI machine; the measuring takes minutes
    message, heavy = printed.splitlines()
    needs = 'Plotting the benchmark results needs matplotlib (not installed): pip install "adapterzoo[bench]"'
    assert message == f"adapterzoo bench: {needs}"
    assert heavy == "[]" and not output.exists()


def test_evaluate_shows_its_progress_without_transformers_loading_bars(saved_adapter: Path, tmp_path: Path) -> None:
    _validation().save_to_disk(tmp_path / "data")
    evaluating = adapterzoo("evaluate", str(saved_adapter), "--dataset", str(tmp_path / "data"), "--split",
                            "validation", "--batch-size", "2")  # fmt: skip
    output = evaluating.communicate(timeout=120)[0]
    assert evaluating.returncode == 0, output
    assert "evaluating: 100%" in output and "4/4" in output  # 8 images, 2 a batch
    assert "Loading weights" not in output and "Writing model shards" not in output
    assert json.loads(output[output.index("{") :])["num_examples"] == 8


def test_evaluate_without_progress_and_the_transformers_hook_restored(saved_adapter: Path, tmp_path: Path, capsys):
    from transformers.utils.logging import set_tqdm_hook

    _validation().save_to_disk(tmp_path / "data")
    assert main(["evaluate", str(saved_adapter), "--dataset", str(tmp_path / "data"), "--split", "validation",
                 "--no-progress"]) == 0  # fmt: skip
    assert "evaluating" not in capsys.readouterr().err
    assert set_tqdm_hook(None) is None  # the command put back what it found


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("runs/vpt/fnal", "No adapter folder runs/vpt/fnal (did you mean runs/vpt/final?)"),
        ("./runs/vtp/final", "No adapter folder ./runs/vtp/final (did you mean ./runs/vpt/final?)"),
        ("runs/best", "No adapter folder runs/best"),  # runs/ is a folder here: a path, not a Hub id
    ],
)
def test_a_typo_in_a_local_path_is_one_line_naming_it(given: str, says: str, tmp_path: Path, monkeypatch, capsys):
    (tmp_path / "runs" / "vpt" / "final").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert _failure(capsys, "evaluate", given, "--dataset", "builtin:shapes") == f"adapterzoo evaluate: {says}"


def test_a_path_typo_fails_at_once_with_exit_status_1(vit_path: Path, tmp_path: Path) -> None:
    """Through the real entry point: one line on stderr, no traceback, before torch loads (about a second)."""
    started = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-m", "adapterzoo", "train", "--backbone", str(vit_path) + "x", "--method", "lora",
         "--dataset", "builtin:shapes"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert time.perf_counter() - started < 10
    assert process.returncode == 1 and process.stdout == ""
    assert process.stderr == f"adapterzoo train: No backbone folder {vit_path}x (did you mean {vit_path}?)\n"


def test_other_user_errors_are_one_line(saved_adapter: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text("epochs: 1\n")
    message = _failure(capsys, "train", "--config", "run.yml")
    assert message == "adapterzoo train: No config file run.yml (did you mean run.yaml?)"
    message = _failure(capsys, "evaluate", str(saved_adapter), "--dataset", "./data")
    assert message == "adapterzoo evaluate: No dataset folder ./data"
    message = _failure(capsys, "evaluate", str(saved_adapter), "--dataset", "builtin:shapes", "--metrics", "acc")
    assert message.startswith("adapterzoo evaluate: Unknown metric 'acc'")
    message = _failure(capsys, "train", "--method", "vtp", "--help")
    assert message.startswith("adapterzoo: No method named 'vtp' is installed. Did you mean 'vpt'?")


def test_a_folder_written_by_save_to_disk_is_loaded_as_such(saved_adapter: Path, tmp_path: Path, capsys) -> None:
    validation = _validation()
    datasets.DatasetDict({"validation": validation}).save_to_disk(tmp_path / "dict")
    assert main(["evaluate", str(saved_adapter), "--dataset", str(tmp_path / "dict"), "--split", "validation",
                 "--no-progress"]) == 0  # fmt: skip
    expected = evaluate(AutoAdapter.from_pretrained(saved_adapter), validation)
    assert json.loads(_last_json(capsys)) == pytest.approx(expected)
    validation.save_to_disk(tmp_path / "one")  # one Dataset, whose split is "validation"
    message = _failure(capsys, "evaluate", str(saved_adapter), "--dataset", str(tmp_path / "one"))
    one_split = "holds one split, 'validation' (saved by save_to_disk), not 'test'."
    assert message == f"adapterzoo evaluate: {tmp_path / 'one'} {one_split}"


def _preprocessed(size: int) -> datasets.Dataset:
    from transformers import ViTImageProcessorPil

    processor = ViTImageProcessorPil(size={"height": size, "width": size})

    def preprocess(batch: dict) -> dict:
        return {"pixel_values": processor(images=batch["image"], return_tensors="np")["pixel_values"]}

    return _validation().map(preprocess, batched=True, remove_columns=["image", "caption"])


def test_a_dataset_of_preprocessed_pixel_values_is_used_as_it_is(saved_adapter: Path, vit_path: Path, tmp_path, capsys):
    model = AutoAdapter.from_pretrained(saved_adapter)
    size = model.image_processor.size["height"]
    _preprocessed(size).save_to_disk(tmp_path / "pixels")
    assert main(["evaluate", str(saved_adapter), "--dataset", str(tmp_path / "pixels"), "--split", "validation",
                 "--no-progress"]) == 0  # fmt: skip
    assert json.loads(_last_json(capsys)) == pytest.approx(evaluate(model, _validation()))  # what the images give
    assert main(["train", "--backbone", str(vit_path), "--method", "lora", "--dataset", str(tmp_path / "pixels"),
                 "--split", "validation", "--eval-split", "none", "--epochs", "1", "--output-dir",
                 str(tmp_path / "run"), "--no-progress"]) == 0  # fmt: skip
    assert json.loads(_last_json(capsys))["steps"] == 1
    message = _failure(capsys, "train", "--backbone", str(vit_path), "--method", "lora", "--dataset",
                       str(tmp_path / "pixels"), "--split", "validation", "--augment")  # fmt: skip
    assert message.startswith("adapterzoo train: Column 'pixel_values' holds preprocessed pixel values, and augment")
    _preprocessed(2 * size).save_to_disk(tmp_path / "large")
    message = _failure(capsys, "evaluate", str(saved_adapter), "--dataset", str(tmp_path / "large"), "--split",
                       "validation")  # fmt: skip
    shapes = f"of shape (3, {2 * size}, {2 * size}), but the model takes (3, {size}, {size}): give the images"
    assert message.startswith("adapterzoo evaluate: Column 'pixel_values' holds preprocessed pixel values " + shapes)


def test_training_without_tensorboard_says_so_once(tmp_path: Path, monkeypatch, capsys) -> None:
    from adapterzoo.training.logs import RunLogger, tensorboard_missing

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as when tensorboard is not installed
    tensorboard_missing.cache_clear()
    first, second = RunLogger(tmp_path / "a", enabled=True), RunLogger(tmp_path / "b", enabled=True)
    assert first.tensorboard is None and second.tensorboard is None
    notice = 'TensorBoard logging is off: tensorboard is not installed (pip install "adapterzoo[tensorboard]").\n'
    assert capsys.readouterr().out == notice
    tensorboard_missing.cache_clear()


def test_train_help_shows_the_recipe_of_the_method_given(capsys, heavy_imports) -> None:
    from adapterzoo.registry import method_recipe

    with pytest.raises(SystemExit):
        main(["train", "--method", "vpt", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "adamw or sgd (default: sgd, vpt's recipe)" in text and "SGD momentum (default: 0.9, vpt's recipe)" in text
    assert "passes over the training set (default: 10)" in text  # not in the recipe
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "adamw or sgd (default: adamw)" in text and "`adapterzoo train --method M --help` shows M's" in text
    assert main(["methods", "--recipe", "maple"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == method_recipe("maple") != {}
    assert heavy_imports(_quietly_exiting("main(['train', '--method', 'vpt', '--help'])")) == []
