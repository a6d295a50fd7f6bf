"""The GPU benchmark's dry run (``--device cpu --size tiny``) goes the whole way, from the steps to gpu.json and the
table; its FLOP count agrees with a count by hand, and MFU is what the count, the time and the peak imply."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from adapterzoo.benchmarks import flops, gpu


@pytest.mark.parametrize("input_needs_grad", [False, True])
def test_a_training_steps_flops_equal_the_count_by_hand(input_needs_grad: bool) -> None:
    batch, width_in, hidden, width_out = 5, 7, 11, 3
    model = torch.nn.Sequential(torch.nn.Linear(width_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, width_out))
    inputs = torch.randn(batch, width_in, requires_grad=input_needs_grad)

    def step() -> None:
        model(inputs).sum().backward()

    first, second = 2 * batch * width_in * hidden, 2 * batch * hidden * width_out  # one Linear forward: 2·B·in·out
    # Backward: each Linear's weight gradient costs its forward again, and its input gradient once more, except the
    # first layer's when its input needs none (autograd skips it).
    expected = first * (3 if input_needs_grad else 2) + second * 3
    assert flops.count_flops(step) == expected


def test_fused_attention_counts_what_its_matrix_products_do() -> None:
    batch, heads, length, width = 2, 3, 16, 8
    query, key, value = (torch.randn(batch, heads, length, width, requires_grad=True) for _ in range(3))

    def step() -> None:
        torch.nn.functional.scaled_dot_product_attention(query, key, value).sum().backward()

    # Each product is 2·B·H·S²·D. Forward: Q·Kᵀ and A·V; backward, as PyTorch counts CUDA's fused kernels: Q·Kᵀ again
    # (the kernel recomputes it rather than keep A), then dV, dA, dQ and dK.
    assert flops.count_flops(step) == (2 + 5) * 2 * batch * heads * length**2 * width


def test_known_devices_have_their_dense_bf16_peak_and_others_none() -> None:
    assert flops.peak_tflops("NVIDIA H200") == 989.5
    assert flops.peak_tflops("NVIDIA H100 80GB HBM3") == 989.5
    assert flops.peak_tflops("NVIDIA H100 PCIe") == 756.5
    assert flops.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert flops.peak_tflops("NVIDIA GeForce GTX 1080") is None
    assert gpu.resolve_peak("cpu", None) == (None, "MFU left out: no known peak for cpu (give --peak-tflops)")
    assert flops.mfu(2e12, 0.5, 8.0) == 0.5


def test_the_dry_run_measures_counts_and_writes_gpu_json_and_the_table(tmp_path: Path, capsys) -> None:
    output = tmp_path / "results"
    argv = ["--device", "cpu", "--size", "tiny", "--batch", "4", "--steps", "1", "--workers", "0",
            "--pipeline-images", "4", "--peak-tflops", "2", "--methods", "linear-probe", "full", "lora", "coop",
            "tip-adapter", "--compiled", "coop", "--compile-backend", "aot_eager", "--output", str(output),
            "--no-progress"]  # fmt: skip
    assert gpu.main(argv) == 0
    results = json.loads((output / "gpu.json").read_text())
    rows = results["methods"]
    assert set(rows) == {"linear-probe", "full", "lora (r 8, q v)", "dora (r 8, q v)", "coop (16)",
                         "tip-adapter (16 shots)"}  # fmt: skip
    for label, row in rows.items():
        assert row["peak_memory_mb"] > 0 and row["step_seconds"] > 0, label
        if "fit_seconds" in row:  # a fitted method has no step to count
            assert "flops" not in row and "mfu" not in row, label
            continue
        assert row["images_per_second"] == 4 / row["step_seconds"], label
        assert row["mfu"] == row["flops"] / row["step_seconds"] / 2e12, label
    # A frozen backbone's backward computes no weight gradients: the linear probe counts least, full fine-tuning most.
    assert 0 < rows["linear-probe"]["flops"] < rows["lora (r 8, q v)"]["flops"] < rows["full"]["flops"]
    assert rows["coop (16)"]["backbone"] == "clip" and rows["lora (r 8, q v)"]["backbone"] == "vit"
    assert results["settings"]["peak_source"] == "given: 2.0 TFLOP/s"
    assert set(results["pipeline"]["JPEG"]["images_per_second"]) == {"0"}
    compiled = results["compiled"]
    assert compiled["settings"]["backend"] == "aot_eager"
    assert list(compiled["methods"]) == ["coop (16)"]
    for row in compiled["methods"].values():
        for timed in (row["step"], row["inference"]):
            assert timed["ratio"] == pytest.approx(timed["compiled_seconds"] / timed["eager_seconds"])
    table = (output / "gpu.md").read_text()
    assert "MFU against given: 2.0 TFLOP/s." in table
    assert table.strip() in capsys.readouterr().out
    lora = rows["lora (r 8, q v)"]
    assert f"| lora (r 8, q v) | vit | {1000 * lora['step_seconds']:.1f} |" in table
    assert f"| {100 * lora['mfu']:.1f}% |" in table and "| tip-adapter (16 shots) | clip | fit: " in table
    assert "The data pipeline (JPEG, 500×375" in table and "`torch.compile` (aot_eager) against eager" in table
    mixed = results["multi_adapter"]["lora (r 8, q v)"]
    assert mixed["adapters"] == 8 and mixed["batch"] == 4 and mixed["throughput_ratio"] > 0
    assert f"a batch of 4 mixing 8 adapters runs at {mixed['throughput_ratio']:.2f}×" in table


def test_a_failing_row_or_section_is_recorded_and_the_run_goes_on(tmp_path: Path, monkeypatch) -> None:
    measured = gpu.measure.training_step

    def training_step(row, *args, **kwargs):
        if row.method == "full":
            raise RuntimeError("CUDA out of memory")
        return measured(row, *args, **kwargs)

    def mixed_batches(*args, **kwargs):
        raise ValueError("no adapters")

    monkeypatch.setattr(gpu.measure, "training_step", training_step)
    monkeypatch.setattr(gpu.multi, "mixed_batches", mixed_batches)
    results = gpu.run_gpu_benchmark(device="cpu", size="tiny", batch=2, steps=1, methods=["linear-probe", "full"],
                                    compiled_methods=(), workers=(0,), pipeline_images=2, output=tmp_path,
                                    progress=False)  # fmt: skip
    assert results["errors"] == {"full": "RuntimeError: CUDA out of memory", "multi_adapter": "ValueError: no adapters"}
    assert list(results["methods"]) == ["linear-probe"] and "multi_adapter" not in results and results["pipeline"]
    table = (tmp_path / "gpu.md").read_text()
    assert "Failed: full: RuntimeError: CUDA out of memory" in table and "| linear-probe | vit |" in table


def test_an_unknown_method_or_worker_count_is_refused(capsys) -> None:
    with pytest.raises(ValueError, match=r"--methods nope: no such installed method; choose from .*lora"):
        gpu.main(["--device", "cpu", "--size", "tiny", "--methods", "lora", "nope"])
    with pytest.raises(SystemExit):
        gpu.main(["--workers", "0", "many"])
    assert "'many' is not a worker count: give a number or auto." in capsys.readouterr().err


def test_the_script_installs_once_then_runs_the_benchmark_on_cuda(tmp_path: Path) -> None:
    """gpu.sh in a copy of the repository whose .venv python is a stand-in that logs its calls (and whose torch
    "has CUDA"): the first run installs the pinned torch and the packages, the second only runs."""
    root = Path(__file__).parents[1]
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    shutil.copy(root / "benchmarks" / "gpu.sh", repo / "benchmarks" / "gpu.sh")
    shutil.copy(root / "pyproject.toml", repo / "pyproject.toml")
    for plugin in ("adapterzoo-vpt", "adapterzoo-maple"):
        (repo / "plugins" / plugin).mkdir(parents=True)
        shutil.copy(root / "plugins" / plugin / "pyproject.toml", repo / "plugins" / plugin / "pyproject.toml")
    log = tmp_path / "calls"
    python = repo / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\necho "$@" >>{log}\n')
    python.chmod(0o755)

    def run() -> list[str]:
        log.write_text("")
        subprocess.run(["bash", str(repo / "benchmarks" / "gpu.sh"), "--methods", "lora"], check=True)
        return log.read_text().splitlines()

    torch_pin = re.search(r'"(torch>=[^"]*)"', (root / "pyproject.toml").read_text()).group(1)
    first = run()
    assert f"-m pip install --quiet {torch_pin}" in first
    assert "-m pip install --quiet -e . -e plugins/adapterzoo-maple/ -e plugins/adapterzoo-vpt/" in first
    assert first[-1] == "-m adapterzoo.benchmarks.gpu --device cuda --methods lora"
    second = run()
    assert not any("pip install" in call for call in second)
    assert second[-1] == first[-1]
