"""The examples run end to end at tiny size, so that none of them rots."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_trains_saves_reloads_and_predicts(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), "--output", str(tmp_path), "--epochs", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and "reloaded: test accuracy" in result.stdout
    assert result.stdout.count("predicted:") == 4
    assert (tmp_path / "vpt-shapes" / "adapterzoo_config.json").is_file()


def test_dvpt_grading_compares_three_methods(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "dvpt_grading.py"), "--output", str(tmp_path), "--epochs", "1",
         "--per-class", "4"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = result.stdout.split("method")[-1].splitlines()[1:]
    assert [row.split()[0] for row in table] == ["dvpt", "linear-probe", "full"]
    assert all(-1 <= float(row.split()[-1]) <= 1 for row in table)


def test_maple_base_to_novel_compares_three_methods(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "maple_base_to_novel.py"), "--output", str(tmp_path), "--epochs", "1",
         "--shots", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "novel: star, ring, diamond, hexagon" in result.stdout
    table = result.stdout.split("HM")[-1].splitlines()[1:]
    assert [row.split()[0] for row in table] == ["zero-shot", "coop", "maple"]
    assert [row.split()[1] for row in table][:2] == ["0", "1,024"]  # CoOp: 16 context vectors of width 64
