"""What the Hub's tree and paths-info routes say of a commit's files and folders, with their last commits on request.

Both routes answer a list of entries: ``{"type": "file", "oid", "size", "path", "lfs"?}`` or ``{"type": "directory",
"oid", "path"}``, and with ``expand`` a ``lastCommit`` (``{"id", "title", "date"}``): the newest commit on the
first-parent history that changed the file, or any file under the folder.
"""

from __future__ import annotations

import hashlib
from typing import Any

from adapterzoo.hub.store import Commit, FileEntry, Repo


def file_entry(path: str, entry: FileEntry) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
    if entry.lfs:
        item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": len(entry.pointer)}
    return item


def folder_entry(commit: Commit, path: str) -> dict[str, Any]:
    """A folder's entry; its oid is a stable id of the folder's content (git's tree id is not kept)."""
    prefix = path + "/"
    listing = "".join(f"{p}\0{e.oid}\n" for p, e in sorted(commit.tree.items()) if p.startswith(prefix))
    return {"type": "directory", "oid": hashlib.sha1(listing.encode()).hexdigest(), "path": path}


def is_folder(commit: Commit, path: str) -> bool:
    prefix = path + "/"
    return any(p.startswith(prefix) for p in commit.tree)


def add_last_commits(repo: Repo, commit: Commit, entries: list[dict[str, Any]]) -> None:
    """Set ``lastCommit`` on each entry, walking the history once for all of them."""
    pending = {item["path"]: item for item in entries}
    newer = commit
    while pending:
        older = repo.read_commit(newer.parents[0]) if newer.parents else None
        changed = _changed_paths(newer, older)
        for path in list(pending):
            prefix = path + "/"
            if older is None or any(p == path or p.startswith(prefix) for p in changed):
                pending.pop(path)["lastCommit"] = {"id": newer.id, "title": newer.title, "date": newer.date}
        if older is None:
            break
        newer = older


def _changed_paths(newer: Commit, older: Commit | None) -> set[str]:
    if older is None:
        return set(newer.tree)
    paths = newer.tree.keys() | older.tree.keys()
    return {p for p in paths if newer.tree.get(p) != older.tree.get(p)}
