"""`adapterzoo demo` end to end at quick size: every stage runs, the table is complete, the shared adapter
round-trips."""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import HfApi

from adapterzoo.cli import main
from adapterzoo.pretraining import local_hub


def test_the_demo_adapts_compares_shares_and_reloads(zoo_hub_root: Path, tmp_path: Path, capsys) -> None:
    args = ["demo", "--quick", "--hub-root", str(zoo_hub_root), "--output-dir", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pretraining" not in out  # the backbones published earlier in the session are reused
    assert "Reloaded adapter gives identical logits" in out and out.count(": predicted ") == 4
    rows = json.loads((tmp_path / "summary.json").read_text())["rows"]
    vit, clip = "adapterzoo/vit-shapes-quick", "adapterzoo/clip-captions-quick"
    assert [(row["method"], row["backbone"]) for row in rows] == [
        ("linear-probe", vit), ("vpt", vit), ("lora", vit), ("linear-probe", "random init"), ("lora", "random init"),
        ("zero-shot", clip), ("coop", clip), ("maple", clip),
    ]  # fmt: skip
    lora = rows[2]
    assert lora["trainable"] == 2 * 2 * 8 * (32 + 32) + (32 * 4 + 4)  # 2 layers x (q, v) x r(d_in + d_out) + head
    assert all(0 <= row["accuracy"] <= 1 for row in rows[:5]) and all(row["accuracy"] is None for row in rows[5:])
    assert all(row["harmonic_mean"] is not None for row in rows[5:])
    best = max(rows[:3], key=lambda row: row["accuracy"])
    with local_hub(zoo_hub_root):
        files = HfApi().list_repo_files(f"demo/{best['method']}-shapes")
    assert {"adapter_model.safetensors", "adapterzoo_config.json", "README.md"} <= set(files)
    for row in rows:
        assert f"{row['trainable']:,}" in out
