"""Several processes with DDP: `torchrun --nproc_per_node 2` on CPUs (gloo), picked up by Accelerate."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from adapterzoo import AutoAdapter, evaluate
from adapterzoo.data import builtin_dataset

FOUR = ["circle", "square", "triangle", "cross"]
SCRIPT = """
import json, sys, torch
from accelerate import PartialState
from adapterzoo import AutoAdapter, train
from adapterzoo.data import builtin_dataset

vit, output, reports = sys.argv[1], sys.argv[2], sys.argv[3]
PartialState()  # a plain state made before training settles on one process on CPUs; train must still join the group
four = {four!r}
train_data = builtin_dataset("shapes", "train", num_per_class=4, classes=four)
eval_data = builtin_dataset("shapes", "validation", num_per_class=3, classes=four).select(range(11))
torch.manual_seed(0)
model = AutoAdapter.from_backbone(vit, method="lora", labels=four)
result = train(model, train_data, eval_data, epochs=2, batch_size=2, save_steps=2, output_dir=output, progress=False)
state = PartialState()
report = {{"rank": state.process_index, "world": state.num_processes, "metrics": result.metrics}}
with open(f"{{reports}}/rank-{{state.process_index}}.json", "w") as file:  # one file each: stdout lines interleave
    json.dump(report, file)
"""


def test_two_processes_gather_every_example_once_and_only_the_main_one_writes(vit_path: Path, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT.format(four=FOUR)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    command += [str(vit_path), str(tmp_path / "run"), str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("rank-*.json"))]
    assert sorted(r["rank"] for r in reports) == [0, 1] and all(r["world"] == 2 for r in reports)
    assert all(r["metrics"]["num_examples"] == 11 for r in reports)
    eval_data = builtin_dataset("shapes", "validation", num_per_class=3, classes=FOUR).select(range(11))
    single = evaluate(AutoAdapter.from_pretrained(tmp_path / "run" / "final"), eval_data)
    assert reports[0]["metrics"]["accuracy"] == single["accuracy"] == reports[1]["metrics"]["accuracy"]
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r.get("event") for r in records].count("start") == 1 and [r.get("event") for r in records].count("end") == 1
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == sorted(set(steps))
    start = records[0]
    assert start["total_steps"] == 2 * 16 // (2 * 2)  # epochs x examples / (batch per process x processes)
    checkpoint = max((tmp_path / "run" / "checkpoints").iterdir())
    assert json.loads((checkpoint / "trainer_state.json").read_text())["progress"]["step"] == start["total_steps"]
