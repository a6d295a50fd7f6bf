"""Every example runs end to end at quick size on the zoo's quick pretrained backbones, so that none of them rots.

The examples find those backbones on the session's local Hub (ADAPTERZOO_HOME, set for the whole test session), where
the ``zoo_hub_root`` fixture published them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def run_example(zoo_hub_root: Path, tmp_path: Path):
    def run(name: str, *args: str, launcher: tuple[str, ...] = ()) -> str:
        command = [sys.executable, *launcher, str(EXAMPLES / name), "--quick", "--output", str(tmp_path), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-4000:]
        return result.stdout

    return run


def test_quickstart_trains_saves_reloads_and_predicts(run_example, tmp_path: Path) -> None:
    out = run_example("quickstart.py")
    accuracy = out.split("test accuracy: ")[1].split()[0]
    assert f"reloaded: test accuracy {accuracy}" in out  # the reloaded adapter scores exactly the same
    assert out.count("predicted:") == 4
    assert (tmp_path / "vpt-shapes" / "adapterzoo_config.json").is_file()


def test_lora_merge_keeps_the_logits(run_example) -> None:
    out = run_example("lora_merge.py")
    for line in ("merged: largest logit difference", "merge_and_unload: largest logit difference"):
        assert float(out.split(line)[1].split()[0]) < 1e-4
    assert all(name in out for name in ("plain backbone", "LoRA, unmerged", "LoRA, merged"))


def test_maple_base_to_novel_compares_three_methods(run_example) -> None:
    out = run_example("maple_base_to_novel.py", "--epochs", "1", "--shots", "2")
    assert "novel: star, ring, diamond, hexagon" in out
    table = out.split("HM")[-1].splitlines()[1:]
    assert [row.split()[0] for row in table] == ["zero-shot", "coop", "maple"]
    assert [row.split()[1] for row in table][:2] == ["0", "512"]  # CoOp: 16 context vectors of width 32


def test_dvpt_grading_compares_three_methods(run_example) -> None:
    out = run_example("dvpt_grading.py", "--epochs", "1", "--per-class", "4")
    table = out.split("method")[-1].splitlines()[1:]
    assert [row.split()[0] for row in table] == ["dvpt", "linear-probe", "full"]
    assert all(-1 <= float(row.split()[-1]) <= 1 for row in table)


def test_moment_probing_trains_the_same_with_cached_features(run_example) -> None:
    out = run_example("moment_probing_cached.py", "--epochs", "2")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] in (["yes"], ["no"])}
    assert rows["yes"][2] == rows["no"][2]  # the same accuracy either way
    assert "speed-up:" in out


def test_hub_push_pull_round_trips_and_pins_a_revision(run_example) -> None:
    out = run_example("hub_push_pull.py")
    assert "identical logits: True" in out and "still gives the first adapter: True" in out
    assert "adapter_model.safetensors" in out


def test_multi_process_trains_with_two_cpu_processes(run_example) -> None:
    launcher = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    out = run_example("multi_process.py", "--epochs", "1", launcher=launcher)
    assert out.count("2 process(es) on cpu") == 1  # only the main process reports
    assert "over 100 test images" in out
