"""Saves that always come back: the process is killed (a real SIGKILL, in a forked child) at every step of the save
protocol, singly and in pairs, and the next load must find the newest complete save, with nothing left over."""

from __future__ import annotations

import itertools
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from adapterzoo.atomic_folder import MANIFEST_NAME, atomic_directory, recover, save_sequence
from adapterzoo.errors import CheckpointError
from adapterzoo.faults import set_fault

MARKER = "adapterzoo_config.json"
POINTS = [
    "files-written",
    "manifest-written",
    "previous-moved-aside",
    "moved-in",
    "previous-half-deleted",
    "recovery-moved-aside",
]
LOST_WHEN_KILLED_AT = {"files-written", "recovery-moved-aside"}  # the save had not finished writing its folder


def write_version(folder: Path, version: int) -> None:
    (folder / MARKER).write_text(json.dumps({"version": version}))
    save_file({"weight": np.full((4, 3), version, dtype=np.float32)}, str(folder / "adapter_model.safetensors"))
    (folder / "preprocessor_config.json").write_text(json.dumps({"size": version}))
    (folder / "README.md").write_text(f"version {version}\n" * version)


def save(target: Path, version: int) -> None:
    with atomic_directory(target, marker=MARKER) as staging:
        write_version(staging, version)


def save_killed_at(target: Path, version: int, point: str) -> bool:
    """Save ``version`` in a child process killed with SIGKILL at ``point``; whether it was killed there."""
    pid = os.fork()
    if pid == 0:
        try:
            set_fault(f"kill@{point}")
            save(target, version)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def loaded_version(target: Path) -> int:
    recover(target, marker=MARKER)
    assert save_sequence(target, MARKER) is not None, "the folder left after recovery is not a complete save"
    version = json.loads((target / MARKER).read_text())["version"]
    assert (target / "README.md").read_text() == f"version {version}\n" * version
    assert (target / "preprocessor_config.json").read_text() == json.dumps({"size": version})
    return version


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p != target)


@pytest.mark.parametrize("first, second", [(p, None) for p in POINTS] + list(itertools.product(POINTS, POINTS)))
def test_load_finds_the_newest_complete_save_after_any_crashes(tmp_path: Path, first: str, second: str | None) -> None:
    target = tmp_path / "adapter"
    save(target, 1)
    newest = 1
    for version, point in ((2, first), (3, second)):
        if point is None:
            continue
        killed = save_killed_at(target, version, point)
        if not (killed and point in LOST_WHEN_KILLED_AT):
            newest = version
    assert loaded_version(target) == newest
    assert leftovers(target) == []
    save(target, 4)
    assert loaded_version(target) == 4 and leftovers(target) == []


def test_a_deletion_cut_short_never_shadows_a_complete_save(tmp_path: Path) -> None:
    target = tmp_path / "adapter"
    save(target, 1)
    assert save_killed_at(target, 2, "previous-half-deleted")
    half_deleted = [p for p in target.parent.iterdir() if p.name.endswith(".old")]
    assert len(half_deleted) == 1 and (half_deleted[0] / MANIFEST_NAME).is_file()
    assert save_killed_at(target, 3, "previous-moved-aside")
    assert not target.exists()
    assert loaded_version(target) == 3 and leftovers(target) == []


def test_a_live_writers_staging_folder_is_not_removed(tmp_path: Path) -> None:
    target = tmp_path / "adapter"
    save(target, 1)
    live = tmp_path / f".adapter.7-{os.getppid()}.saving"
    live.mkdir()
    (live / MARKER).write_text("{")
    assert loaded_version(target) == 1
    assert leftovers(target) == [live.name]


def test_saves_from_before_manifests_still_load_and_order_below_new_ones(tmp_path: Path) -> None:
    target = tmp_path / "adapter"
    legacy_backup = tmp_path / ".adapter.0123456789abcdef.old"
    legacy_backup.mkdir()
    write_version(legacy_backup, 1)
    assert loaded_version(target) == 1 and leftovers(target) == []
    assert not (target / MANIFEST_NAME).exists()
    save(target, 2)
    assert loaded_version(target) == 2 and save_sequence(target, MARKER) == 1


def test_a_folder_that_no_save_made_is_never_touched(tmp_path: Path) -> None:
    target = tmp_path / "results"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    backup = tmp_path / ".results.5-1.old"
    backup.mkdir()
    write_version(backup, 5)
    (backup / MANIFEST_NAME).write_text(json.dumps({"sequence": 5, "files": {}}))
    recover(target, marker=MARKER)
    with pytest.raises(CheckpointError, match="holds no adapterzoo save"):
        save(target, 6)
    assert (target / "notes.txt").read_text() == "keep me" and backup.exists()
