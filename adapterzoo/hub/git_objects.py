"""The store's commits as git objects, so that git clients can clone a repository of the embedded Hub.

The store keeps each commit as a JSON record and each file once by its sha256; git needs blobs, trees and commits.
Blobs need no conversion: a file's git blob id is already in its `FileEntry` (of its LFS pointer for an LFS file, so
that git sees pointers, as on the Hub) and its content is read from the store when it is sent. A commit's trees and
its git commit are built from the record, deterministically (author ``<name> <<name>@users.noreply.huggingface.co>``,
the record's date in UTC, its title and message), so their ids depend only on the record and its ancestors. They
differ from the store's commit ids, which hash the JSON record.

Built objects are cached per store commit in ``cache/git-objects/<commit id>``: the commit then its trees, in git's
loose-object framing (``<type> <size>\\0<content>``, uncompressed). A store commit never changes, so the cache never
goes stale; a lost cache file is rebuilt from its record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime

from dulwich.object_store import BaseObjectStore
from dulwich.objects import Blob, Commit, ShaFile, Tree, sha_to_hex
from dulwich.pack import Pack

from adapterzoo.hub.store import Commit as StoreCommit
from adapterzoo.hub.store import FileEntry, Repo

CACHE_KIND = "git-objects"
FILE_MODE = 0o100644
FOLDER_MODE = 0o040000
_TYPE_NUMS = {cls.type_name: cls.type_num for cls in (Commit, Tree, Blob)}


def build_objects(commit: StoreCommit, git_parents: list[bytes]) -> list[ShaFile]:
    """The git commit for a store ``commit`` whose parents have the ids ``git_parents``, followed by its trees."""
    trees: dict[str, Tree] = {}

    def folder_tree(folder: str) -> Tree:
        if folder not in trees:
            trees[folder] = Tree()
            if folder:
                folder_tree(folder.rpartition("/")[0])
        return trees[folder]

    folder_tree("")
    for path, entry in commit.tree.items():
        folder, _, name = path.rpartition("/")
        folder_tree(folder).add(name.encode(), FILE_MODE, entry.oid.encode())
    for folder in sorted(trees, key=lambda f: f.count("/") + bool(f), reverse=True):
        if folder:
            parent, _, name = folder.rpartition("/")
            trees[parent].add(name.encode(), FOLDER_MODE, trees[folder].id)
    git_commit = Commit()
    git_commit.tree = trees[""].id
    git_commit.parents = git_parents
    author = "".join(c for c in commit.author if c not in "<>\n\0") or "unknown"
    git_commit.author = git_commit.committer = f"{author} <{author}@users.noreply.huggingface.co>".encode()
    git_commit.author_time = git_commit.commit_time = int(datetime.fromisoformat(commit.date).timestamp())
    git_commit.author_timezone = git_commit.commit_timezone = 0
    message = f"{commit.title}\n\n{commit.message}" if commit.message else commit.title
    git_commit.message = f"{message.rstrip()}\n".encode()
    return [git_commit, *trees.values()]


def _frames(objects: list[ShaFile]) -> bytes:
    return b"".join(_frame(obj) for obj in objects)


def _frame(obj: ShaFile) -> bytes:
    raw = obj.as_raw_string()
    return obj.type_name + b" " + str(len(raw)).encode() + b"\0" + raw


def _unframe(data: bytes) -> Iterator[tuple[bytes, int, bytes]]:
    """(hex id, type number, content) of each framed object in ``data``."""
    start = 0
    while start < len(data):
        header_end = data.index(b"\0", start)
        type_name, size = data[start:header_end].split(b" ")
        end = header_end + 1 + int(size)
        yield hashlib.sha1(data[start:end]).hexdigest().encode(), _TYPE_NUMS[type_name], data[header_end + 1 : end]
        start = end


class StoreObjects(BaseObjectStore):
    """The git objects of a store repository's commits that `add_history` loaded: commits and trees held in memory,
    blobs read from the store when asked for. Read-only: it serves clones and fetches, never pushes."""

    def __init__(self, repo: Repo):
        super().__init__()
        self.repo = repo
        self._objects: dict[bytes, tuple[int, bytes]] = {}
        self._blobs: dict[bytes, FileEntry] = {}
        self._commit_ids: dict[str, bytes] = {}

    def add_history(self, commit_id: str) -> bytes:
        """Load the objects of the store commit ``commit_id`` and of its ancestors; returns its git commit id."""
        read: dict[str, StoreCommit] = {}
        pending = [commit_id]
        while pending:
            current = pending[-1]
            if current in self._commit_ids:
                pending.pop()
                continue
            if current not in read:
                read[current] = self.repo.read_commit(current)
            commit = read[current]
            missing = [parent for parent in commit.parents if parent not in self._commit_ids]
            if missing:
                pending.extend(missing)
                continue
            pending.pop()
            self._add_commit(commit)
        return self._commit_ids[commit_id]

    def _add_commit(self, commit: StoreCommit) -> None:
        data = self.repo.read_derived(CACHE_KIND, commit.id)
        if data is None:
            data = _frames(build_objects(commit, [self._commit_ids[parent] for parent in commit.parents]))
            self.repo.write_derived(CACHE_KIND, commit.id, data)
        objects = list(_unframe(data))
        self._commit_ids[commit.id] = objects[0][0]
        self._objects.update((oid, (type_num, raw)) for oid, type_num, raw in objects)
        self._blobs.update((entry.oid.encode(), entry) for entry in commit.tree.values())

    def _hex(self, sha: bytes) -> bytes:
        return sha_to_hex(sha) if len(sha) == 20 else sha

    def contains_loose(self, sha: bytes) -> bool:
        sha = self._hex(sha)
        return sha in self._objects or sha in self._blobs

    def __iter__(self) -> Iterator[bytes]:
        yield from self._objects
        yield from self._blobs

    @property
    def packs(self) -> list[Pack]:
        return []

    def get_raw(self, name: bytes) -> tuple[int, bytes]:
        sha = self._hex(name)
        if sha in self._objects:
            return self._objects[sha]
        with self.repo.open_blob(self._blobs[sha]) as handle:
            return Blob.type_num, handle.read()
