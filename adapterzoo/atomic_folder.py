"""Folders written whole or not at all, that come back after any sequence of crashes: the protocol of every save.

A save of ``<dir>/<name>`` writes a staging folder ``<dir>/.<name>.<seq>-<pid>.saving``; its last file is the
manifest (`MANIFEST_NAME`), which records the save's sequence number (one more than any save of that name before it)
and the size of every file. The save then moves the previous folder aside as ``.<name>.<seq>-<pid>.old``, moves the
staging folder in, and deletes the old one.

`recover` runs before every save and every load. It looks at every candidate (the folder, backups, staging folders),
keeps the newest *complete* one as the folder (manifest present and readable, every file there with its recorded
size, safetensors headers and JSON files readable) and deletes the rest, except what a live process is still
writing. Order comes from the sequence numbers in the manifests, never from names. Saves made before manifests
existed count as complete when they hold their marker file, and as older than any save with a manifest.

`fault_point` marks each step, so that tests can kill the process there (see `adapterzoo.faults`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from adapterzoo.errors import CheckpointError, DiskFullError
from adapterzoo.faults import fault_point

MANIFEST_NAME = ".adapterzoo-save.json"
_MAX_SAFETENSORS_HEADER = 100 << 20


@dataclass(frozen=True)
class Candidate:
    """A folder that may hold a save of the target: the target itself, a backup, or a staging folder."""

    path: Path
    sequence: int | None  # None: incomplete
    writer_pid: int | None  # the process that made it, when its name says

    @property
    def complete(self) -> bool:
        return self.sequence is not None


def process_alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs (on this machine); a writer's files are left alone while it does."""
    if pid is None or pid == os.getpid():
        return pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _readable_safetensors(path: Path) -> bool:
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            return False
        (length,) = struct.unpack("<Q", prefix)
        if length > _MAX_SAFETENSORS_HEADER:
            return False
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            return False
    if not isinstance(header, dict):
        return False
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    return path.stat().st_size == 8 + length + max(ends, default=0)


def _readable(path: Path) -> bool:
    try:
        if path.suffix == ".safetensors":
            return _readable_safetensors(path)
        if path.suffix == ".json":
            json.loads(path.read_text())
        return True
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False


def _manifest(folder: Path) -> tuple[int, dict[str, int]] | None:
    try:
        record = json.loads((folder / MANIFEST_NAME).read_text())
        return int(record["sequence"]), {str(name): int(size) for name, size in dict(record["files"]).items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def damaged_files(folder: Path, marker: str) -> list[str]:
    """The files of the save in ``folder`` that are missing, of the wrong size or unreadable (``MANIFEST_NAME`` when
    the manifest itself is); [] for an intact save, or for one from before manifests whose marker is readable."""
    if not (folder / MANIFEST_NAME).exists():
        return [] if (folder / marker).is_file() and _readable(folder / marker) else [marker]
    manifest = _manifest(folder)
    if manifest is None:
        return [MANIFEST_NAME]
    damaged = []
    for name, size in manifest[1].items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size or not _readable(path):
            damaged.append(name)
    return damaged


def save_sequence(folder: Path, marker: str) -> int | None:
    """The sequence number of the complete save in ``folder``; 0 for a complete save from before manifests; None
    when ``folder`` holds no complete save."""
    if damaged_files(folder, marker):
        return None
    manifest = _manifest(folder) if (folder / MANIFEST_NAME).exists() else None
    return 0 if manifest is None else manifest[0]


def _candidates(target: Path, marker: str) -> list[Candidate]:
    found = []
    if target.is_dir():
        found.append(Candidate(target, save_sequence(target, marker), None))
    for path in target.parent.glob(f".{target.name}.*"):
        kind = path.suffix
        if kind not in (".old", ".saving") or not path.is_dir():
            continue
        tag = path.name[len(target.name) + 2 : -len(kind)]
        pid = tag.rsplit("-", 1)[1] if "-" in tag else ""
        found.append(Candidate(path, save_sequence(path, marker), int(pid) if pid.isdigit() else None))
    return found


def _holds_something_else(target: Path, marker: str) -> bool:
    """Whether ``target`` is a non-empty folder that no save made (no marker, no manifest): never touched."""
    if not target.is_dir() or (target / marker).is_file() or (target / MANIFEST_NAME).is_file():
        return False
    return any(target.iterdir())


def recover(target: str | os.PathLike, *, marker: str) -> int:
    """Make ``target`` the newest complete save of it and delete leftovers of dead writers; return its sequence
    number (-1 when there is no complete save). A folder that no save made is left alone."""
    target = Path(target)
    if _holds_something_else(target, marker):
        return -1
    candidates = _candidates(target, marker)
    complete = [c for c in candidates if c.complete]
    newest = max(complete, key=lambda c: (c.sequence, c.path == target), default=None)
    if newest is not None and newest.path != target:
        if target.exists():
            aside = target.with_name(f".{target.name}.recovered-{os.getpid()}.old")
            os.rename(target, aside)
            candidates.append(Candidate(aside, None, None))
            fault_point("recovery-moved-aside")
        os.rename(newest.path, target)
    kept = {target, newest.path if newest else target}
    for candidate in candidates:
        if candidate.path not in kept and not process_alive(candidate.writer_pid):
            shutil.rmtree(candidate.path, ignore_errors=True)
    return -1 if newest is None else newest.sequence


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_manifest(staging: Path, sequence: int) -> None:
    files = {}
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            _fsync(path)
            files[path.relative_to(staging).as_posix()] = path.stat().st_size
    manifest = staging / MANIFEST_NAME
    manifest.write_text(json.dumps({"sequence": sequence, "files": files}, indent=2, sort_keys=True))
    _fsync(manifest)
    _fsync(staging)


@contextmanager
def atomic_directory(target: str | os.PathLike, *, marker: str) -> Iterator[Path]:
    """Write a folder atomically: yield a staging folder, then swap it in place of ``target`` (see the module's text).

    If the body raises, the staging folder is removed and ``target`` keeps its previous content. A folder that
    exists, is not empty and lacks the ``marker`` file of what is written here is never replaced.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise CheckpointError(f"Cannot save to {target}: it is a file.")
    if _holds_something_else(target, marker):
        raise CheckpointError(f"Refusing to replace {target}: it is not empty and holds no adapterzoo save.")
    sequence = recover(target, marker=marker) + 1
    staging = target.with_name(f".{target.name}.{sequence}-{os.getpid()}.saving")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        yield staging
        fault_point("files-written")
        _write_manifest(staging, sequence)
        fault_point("manifest-written")
        backup = None
        if target.exists():
            backup = target.with_name(f".{target.name}.{sequence}-{os.getpid()}.old")
            os.rename(target, backup)
            fault_point("previous-moved-aside")
        os.rename(staging, target)
        fault_point("moved-in")
        _fsync(target.parent)
        if backup is not None:
            _delete_tree(backup)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            free = shutil.disk_usage(target.parent).free
            kept = f"the previous save in {target} is kept" if target.is_dir() else "earlier saves are untouched"
            raise DiskFullError(
                errno.ENOSPC, f"No space left on the device while saving {target} ({free:,} bytes free); {kept}"
            ) from exc
        raise


def _delete_tree(folder: Path) -> None:
    """``shutil.rmtree``, one entry at a time (files before their folders, the manifest last), with a fault point
    after the first entry: a deletion cut short leaves a save that is visibly incomplete."""
    for index, path in enumerate(sorted(folder.rglob("*"), reverse=True)):
        path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
        if index == 0:
            fault_point("previous-half-deleted")
    folder.rmdir()
