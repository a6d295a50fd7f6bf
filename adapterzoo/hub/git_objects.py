"""The store's commits as git objects, so that git clients can clone a repository of the embedded Hub.

The store keeps each commit as a JSON record and each file once by its sha256; git needs blobs, trees and commits.
Blobs need no conversion: a file's git blob id is already in its `FileEntry` (of its LFS pointer for an LFS file, so
that git sees pointers, as on the Hub) and its content is read from the store when it is sent. A commit's trees and
its git commit are built from the record, deterministically (author ``<name> <<name>@users.noreply.huggingface.co>``,
the record's date in UTC, its title and message), so their ids depend only on the record and its ancestors. They
differ from the store's commit ids, which hash the JSON record.

What a commit adds to its parents is cached in ``cache/git-objects/<commit id>``, so that serving a repository reads
one small file per commit rather than every commit's whole record: a JSON line (the store ids of its parents, and
the files whose blobs its parents lack), then its git commit and the trees its parents lack, in git's loose-object
framing (``<type> <size>\\0<content>``, uncompressed). A store commit never changes, so its cache never goes stale; a
lost cache file is rebuilt from the records.
"""

from __future__ import annotations

import hashlib
import json
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
_BLOB_CHUNK_BYTES = 1 << 20
_TYPE_NUMS = {cls.type_name: cls.type_num for cls in (Commit, Tree, Blob)}


def build_trees(tree: dict[str, FileEntry]) -> dict[str, Tree]:
    """The git tree of every folder of a store commit's ``tree``, by folder path ("" for the root)."""
    trees: dict[str, Tree] = {}

    def folder_tree(folder: str) -> Tree:
        if folder not in trees:
            trees[folder] = Tree()
            if folder:
                folder_tree(folder.rpartition("/")[0])
        return trees[folder]

    folder_tree("")
    for path, entry in tree.items():
        folder, _, name = path.rpartition("/")
        folder_tree(folder).add(name.encode(), FILE_MODE, entry.oid.encode())
    for folder in sorted(trees, key=lambda f: f.count("/") + bool(f), reverse=True):
        if folder:
            parent, _, name = folder.rpartition("/")
            trees[parent].add(name.encode(), FOLDER_MODE, trees[folder].id)
    return trees


def build_commit(commit: StoreCommit, tree_id: bytes, git_parents: list[bytes]) -> Commit:
    """The git commit of a store ``commit`` whose root tree is ``tree_id`` and whose parents are ``git_parents``."""
    git_commit = Commit()
    git_commit.tree = tree_id
    git_commit.parents = git_parents
    author = "".join(c for c in commit.author if c not in "<>\n\0") or "unknown"
    git_commit.author = git_commit.committer = f"{author} <{author}@users.noreply.huggingface.co>".encode()
    git_commit.author_time = git_commit.commit_time = int(datetime.fromisoformat(commit.date).timestamp())
    git_commit.author_timezone = git_commit.commit_timezone = 0
    message = f"{commit.title}\n\n{commit.message}" if commit.message else commit.title
    git_commit.message = f"{message.rstrip()}\n".encode()
    return git_commit


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
        pending = [commit_id]
        while pending:
            current = pending.pop()
            if current in self._commit_ids:
                continue
            data = self.repo.read_derived(CACHE_KIND, current)
            if data is None:
                commit = self.repo.read_commit(current)
                if missing := [parent for parent in commit.parents if parent not in self._commit_ids]:
                    pending += [current, *missing]  # a commit's git id needs its parents' ids
                    continue
                data = self._build(commit)
                self.repo.write_derived(CACHE_KIND, current, data)
            pending += self._load(current, data)
        return self._commit_ids[commit_id]

    def _build(self, commit: StoreCommit) -> bytes:
        """The cache record of ``commit``, whose parents are loaded."""
        parents = [self.repo.read_commit(parent) for parent in commit.parents]
        known_trees = {tree.id for parent in parents for tree in build_trees(parent.tree).values()}
        known_blobs = {entry.oid for parent in parents for entry in parent.tree.values()}
        trees = build_trees(commit.tree)
        git_commit = build_commit(commit, trees[""].id, [self._commit_ids[parent] for parent in commit.parents])
        new_blobs = {e.oid: [e.sha256, e.size, e.lfs] for e in commit.tree.values() if e.oid not in known_blobs}
        header = json.dumps({"parents": commit.parents, "blobs": new_blobs}).encode()
        new_trees = [tree for tree in dict.fromkeys(trees.values()) if tree.id not in known_trees]
        return header + b"\n" + b"".join(_frame(obj) for obj in [git_commit, *new_trees])

    def _load(self, commit_id: str, data: bytes) -> list[str]:
        """Take in a cache record; returns the store ids of the commit's parents."""
        header, _, frames = data.partition(b"\n")
        record = json.loads(header)
        objects = list(_unframe(frames))
        self._commit_ids[commit_id] = objects[0][0]
        self._objects.update((oid, (type_num, raw)) for oid, type_num, raw in objects)
        for oid, (sha256, size, lfs) in record["blobs"].items():
            self._blobs[oid.encode()] = FileEntry(sha256=sha256, size=size, oid=oid, lfs=lfs)
        return record["parents"]

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
        return Blob.type_num, b"".join(self._blob_chunks(sha))

    def __getitem__(self, name: bytes) -> ShaFile:
        """A blob is made of 1 MiB chunks: dulwich's pack writer compresses it chunk by chunk, and its side-band
        writer copies what is left of a chunk for every 64 KiB it sends (quadratic in a large file's size)."""
        sha = self._hex(name)
        if sha in self._blobs:
            return Blob.from_raw_chunks(Blob.type_num, self._blob_chunks(sha), sha)
        return super().__getitem__(sha)

    def _blob_chunks(self, sha: bytes) -> list[bytes]:
        with self.repo.open_blob(self._blobs[sha]) as handle:
            return list(iter(lambda: handle.read(_BLOB_CHUNK_BYTES), b""))
