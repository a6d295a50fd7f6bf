"""`adapterzoo demo` end to end at quick size: every stage runs, the table is complete, the shared adapter
round-trips, the CLIP comparison holds each protocol's rows and its plots are written."""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import HfApi

from adapterzoo import demo_plots
from adapterzoo.cli import main
from adapterzoo.demo import DemoRow, _plot
from adapterzoo.demo_clip import installed
from adapterzoo.pretraining import local_hub


def test_the_demo_adapts_compares_shares_and_reloads(zoo_hub_root: Path, tmp_path: Path, capsys) -> None:
    args = ["demo", "--quick", "--hub-root", str(zoo_hub_root), "--output-dir", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pretraining" not in out  # the backbones published earlier in the session are reused
    assert "Reloaded adapter gives identical logits" in out and out.count(": predicted ") == 4
    rows = json.loads((tmp_path / "summary.json").read_text())["rows"]
    vit, clip = "adapterzoo/vit-shapes-quick", "adapterzoo/clip-captions-quick"
    assert [(row["method"], row["backbone"]) for row in rows[:5]] == [
        ("linear-probe", vit), ("vpt", vit), ("lora", vit), ("linear-probe", "random init"), ("lora", "random init"),
    ]  # fmt: skip
    lora = rows[2]
    assert lora["trainable"] == 2 * 2 * 8 * (32 + 32) + (32 * 4 + 4)  # 2 layers x (q, v) x r(d_in + d_out) + head
    assert all(0 <= row["accuracy"] <= 1 for row in rows[:5]) and all(row["protocol"] is None for row in rows[:5])
    best = max(rows[:3], key=lambda row: row["accuracy"])
    with local_hub(zoo_hub_root):
        files = HfApi().list_repo_files(f"demo/{best['method']}-shapes")
    assert {"adapter_model.safetensors", "adapterzoo_config.json", "README.md"} <= set(files)
    for row in rows:
        assert f"{row['trainable']:,}" in out
    _check_clip_rows(rows[5:], clip)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["plots"] == ["accuracy_vs_parameters.png", "accuracy_vs_time.png"]
    assert all((tmp_path / name).read_bytes().startswith(b"\x89PNG") for name in summary["plots"])


def _check_clip_rows(rows: list[dict], clip: str) -> None:
    """Base-to-novel: each method once, 2 shots, scores in range; the fitted ones train nothing but Tip-Adapter-F's
    keys, and add nothing on the novel half (zero-shot's novel accuracy). Few-shot: zero-shot, then GDA and
    Tip-Adapter at each of the quick shot counts, on all classes."""
    assert all(row["backbone"] == clip for row in rows)
    methods = ["zero-shot", "coop", "cocoop", "maple", "tip-adapter", "tip-adapter-f", "gda"]
    b2n = {row["method"]: row for row in rows if row["protocol"] == "base-to-novel"}
    assert list(b2n) == [m for m in methods if m != "cocoop" or installed("cocoop")]
    for method, row in b2n.items():
        assert row["shots"] == 2 and row["accuracy"] is None
        assert all(0 <= row[key] <= 1 for key in ("base", "novel", "harmonic_mean"))
        assert row["seconds"] < 0.1 if method == "zero-shot" else row["seconds"] > 0
    assert b2n["tip-adapter"]["trainable"] == b2n["gda"]["trainable"] == b2n["zero-shot"]["trainable"] == 0
    assert b2n["tip-adapter-f"]["trainable"] == 4 * 2 * 32  # the keys: 4 base classes x 2 shots x D
    assert b2n["tip-adapter"]["novel"] == b2n["tip-adapter-f"]["novel"] == b2n["zero-shot"]["novel"]
    few = [(row["method"], row["shots"], row["trainable"]) for row in rows if row["protocol"] == "few-shot"]
    assert few == [("zero-shot", 0, 0), ("gda", 1, 0), ("gda", 2, 0), ("tip-adapter", 1, 0), ("tip-adapter", 2, 0)]
    assert all(0 <= row["accuracy"] <= 1 for row in rows if row["protocol"] == "few-shot")


def test_without_matplotlib_the_demo_says_how_to_get_its_plots(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(demo_plots, "missing_modules", lambda extra: ["matplotlib"])
    rows = [DemoRow("gda", "clip", 0, 0.5, protocol="few-shot", shots=1)]
    assert _plot(rows, tmp_path) == [] and not list(tmp_path.iterdir())
    assert 'Plotting needs matplotlib (not installed): pip install "adapterzoo[bench]"' in capsys.readouterr().out
