"""The benchmark runs end to end at tiny size (so that it keeps working) and reports what it promises; no timing is
asserted. The parameter formulas, written as functions of the backbone's shape, must match every method's count."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from adapterzoo.benchmarks import multi, run_benchmarks
from adapterzoo.benchmarks.report import END, START, multi_adapter_lines
from adapterzoo.benchmarks.run import save_backbones
from adapterzoo.benchmarks.shapes import SHAPES


def test_the_benchmark_measures_every_method_and_writes_its_reports(zoo_hub_root: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{START}\nold table\n{END}\n\nafter\n")
    results = run_benchmarks(size="tiny", seeds=2, steps=1, output=tmp_path / "results", readme=readme, progress=False)
    methods = results["methods"]
    assert {"linear-probe", "full", "lora (r 8, q v)", "vpt-deep (50)", "moment-probing", "dvpt (50, r 20)",
            "maple (2, depth 2)", "coop (16)", "zero-shot", "gda (base-to-novel)"} <= set(methods)  # fmt: skip
    for label, row in methods.items():
        assert row["trainable"] >= 0 and row["file_bytes"] > 0, label
        assert row["matches_formula"] in (True, None), (label, row["trainable"], row["formula"])
        assert row["step_seconds"] > 0 and row["peak_memory_mb"] > 0 and row["step_ratio"] > 0, label
        assert 0 <= row["accuracy"]["mean"] <= 1 and len(row["accuracy"]["scores"]) == 2, label
    assert sum(row["matches_formula"] is True for row in methods.values()) >= 15
    fitted = ("gda (base-to-novel)", "tip-adapter (16 shots)", "tip-adapter-f (16 shots)")
    assert all(methods[label]["fit_seconds"] == methods[label]["step_seconds"] for label in fitted)
    assert methods["tip-adapter-f (16 shots)"]["trainable"] == 16 * 100 * 32  # N·K·D at tiny size
    assert methods["tip-adapter (16 shots)"]["accuracy"]["metric"] == "accuracy (few-shot, all classes)"
    assert methods["full"]["percent_of_backbone"] > 100 > methods["lora (r 8, q v)"]["percent_of_backbone"]
    assert "merged_latency_ratio" in methods["lora (r 8, q v)"] and "latency_ratio" in methods["vpt-deep (50)"]
    assert results["vpt_overhead"]["overhead_ratio"] > 0
    assert all(cache["same_accuracy"] for cache in results["cache_speedup"].values())
    assert {"cpu_count", "torch", "device", "platform"} <= set(results["machine"])
    for image_format in ("JPEG", "PNG"):
        rates = results["pipeline"][image_format]["images_per_second"]
        assert set(rates) == {"0", "1", "2", "auto (0)"} and min(rates.values()) > 0, rates
    folder = tmp_path / "results"
    assert json.loads((folder / "results.json").read_text())["settings"]["timing_size"] == "tiny"
    assert (folder / "accuracy_vs_parameters.png").read_bytes()[:4] == b"\x89PNG"
    assert (folder / "cost_ratios.png").read_bytes()[:4] == b"\x89PNG"
    table = (folder / "results.md").read_text()
    assert "The data pipeline (JPEG, 500×375" in table and "A training step consumes" in table
    assert "a batch of 32 mixing 8 adapters" in table
    text = readme.read_text()
    assert "old table" not in text and table.strip() in text and text.endswith("after\n")


def test_a_readme_without_the_benchmark_block_is_refused_before_measuring(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nno block here\n")
    with pytest.raises(ValueError, match="no generated block"):
        run_benchmarks(size="tiny", output=tmp_path / "results", readme=readme, progress=False)
    assert not (tmp_path / "results").exists() and readme.read_text() == "# Title\n\nno block here\n"


def test_a_cuda_run_without_a_cuda_device_is_refused_before_measuring(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device"):
        run_benchmarks(size="tiny", device="cuda", output=tmp_path / "results", progress=False)
    assert not (tmp_path / "results").exists()


def test_without_matplotlib_the_benchmark_is_refused_before_measuring(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an absent package looks like to import
    with pytest.raises(ImportError, match=r'needs matplotlib \(not installed\): pip install "adapterzoo\[bench\]"'):
        run_benchmarks(size="tiny", output=tmp_path / "results", progress=False)
    assert not (tmp_path / "results").exists()


def test_the_multi_adapter_section_runs_alone(tmp_path: Path) -> None:
    backbones = save_backbones("tiny", tmp_path / "backbones")
    results = {"multi_adapter": multi.mixed_batches(backbones["vit"], SHAPES["tiny"], tmp_path, adapters=3, batch=6,
                                                    repeats=1)}  # fmt: skip
    assert set(results["multi_adapter"]) == {"lora (r 8, q v)", "vpt-deep (50)"}
    for row in results["multi_adapter"].values():
        assert row["mixed_seconds"] > 0 and row["throughput_ratio"] > 0
        # The backbone once, and three adapters and heads: far less than three whole models.
        assert row["shared_backbone_mib"] < row["separate_models_mib"] / 2
    (line, _) = multi_adapter_lines(results)
    assert line.startswith("lora (r 8, q v): a batch of 6 mixing 3 adapters runs at ")
