"""The embedded Hub's storage: repositories on disk with real commits, branches, tags and pull-request refs.

Layout of one repository (``ROOT/<type>s/<namespace>/<name>/``)::

    repo.json                   {"private": bool, "created": iso date}
    objects/<sha256>            file contents, addressed by their sha256
    commits/<commit id>.json    {"parents", "tree": {path: entry}, "title", "message", "author", "date"}
    refs/heads/<branch>         a commit id   (also refs/tags/<tag>, refs/pr/<n>)
    discussions/<n>.json        a pull request's record
    cache/<kind>/<commit id>    data derived from a commit (its git objects), rebuilt whenever it is missing
    tmp/<pid>-<random>          files being written, renamed into place when complete
    lock                        held while a commit or a ref changes

A commit's objects and its record are written first; the ref moves last, in one atomic rename, under the repo lock.
A push that dies half-way (client or server) therefore leaves the branch at its previous commit, and concurrent
pushes to one branch land one after the other, each on top of the previous one. Files being written live in
``tmp/`` under their writer's process id, so they never show up as refs; a store removes those of dead processes
when it opens.

Every name is checked by `adapterzoo.hub.names` before it becomes a path, and every path is then checked to lie inside
the store's root: a name that slipped through the first check still cannot reach outside.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import IO

from adapterzoo.atomic_folder import process_alive
from adapterzoo.hub.names import (
    HubError,
    check_oid,
    check_ref_name,
    check_repo_id,
    check_revision,
    is_commit_id,
    pull_request_number,
)

REPO_TYPES = ("model", "dataset", "space")
DEFAULT_BRANCH = "main"
REF_KINDS = ("heads", "tags", "pr")
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"


def git_blob_oid(size: int, chunks: Iterable[bytes]) -> str:
    """The id git gives a file of ``size`` bytes made of ``chunks``."""
    digest = hashlib.sha1(f"blob {size}\0".encode())
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    """A file in a commit's tree. ``oid`` is its git blob id (of the LFS pointer for LFS files)."""

    sha256: str
    size: int
    oid: str
    lfs: bool

    @property
    def pointer(self) -> str:
        return LFS_POINTER.format(sha256=self.sha256, size=self.size)

    @property
    def blob_size(self) -> int:
        """The size of what git stores for this file: its content, or its LFS pointer."""
        return len(self.pointer.encode()) if self.lfs else self.size


@dataclass(frozen=True)
class Commit:
    id: str
    parents: list[str]
    tree: dict[str, FileEntry]
    title: str
    message: str
    author: str
    date: str


@dataclass
class Operation:
    """One change in a commit: add a file (from stored content or an uploaded LFS object), or delete paths."""

    kind: str  # "add", "delete_file", "delete_folder"
    path: str
    sha256: str | None = None
    lfs: bool = False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class Repo:
    """One repository on disk."""

    def __init__(self, path: Path, repo_type: str, repo_id: str, root: Path):
        self.path = path
        self.type = repo_type
        self.id = repo_id
        self._root = root.resolve()
        self._thread_lock = threading.Lock()

    def _file(self, *parts: str) -> Path:
        """``path/parts...``, refused unless it resolves inside the store's root (the second line of defence)."""
        path = self.path.joinpath(*parts)
        if not path.resolve().is_relative_to(self._root):
            raise HubError(400, f"Refused: {'/'.join(parts)!r} leads outside the hub's root")
        return path

    @property
    def private(self) -> bool:
        return json.loads(self._file("repo.json").read_text())["private"]

    @property
    def created(self) -> str:
        return json.loads(self._file("repo.json").read_text())["created"]

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise ref changes, across threads and across server processes sharing the root."""
        with self._thread_lock, open(self._file("lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # files written whole or not at all
    @contextmanager
    def _staging_file(self) -> Iterator[tuple[IO[bytes], Path]]:
        """A new file in ``tmp/`` named after this process; removed on exit unless it was moved into place."""
        folder = self._file("tmp")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{os.getpid()}-{secrets.token_hex(8)}"
        try:
            with open(path, "xb") as handle:
                yield handle, path
        finally:
            path.unlink(missing_ok=True)

    def _install(self, staged: Path, handle: IO[bytes], target: Path) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)

    def _write(self, target: Path, data: bytes) -> None:
        with self._staging_file() as (handle, staged):
            handle.write(data)
            self._install(staged, handle, target)

    def remove_debris(self) -> None:
        """Delete files that writers which are no longer running left in ``tmp/`` (and, from older versions of this
        server, ``.tmp-*`` / ``.upload-*`` files beside refs, objects and records)."""
        folder = self._file("tmp")
        for path in folder.iterdir() if folder.is_dir() else ():
            pid = path.name.split("-", 1)[0]
            if not (pid.isdigit() and process_alive(int(pid))):
                path.unlink(missing_ok=True)
        for section in ("refs", "objects", "commits", "discussions"):
            base = self._file(section)
            for path in base.rglob(".*") if base.is_dir() else ():
                if path.is_file() and path.name.startswith((".tmp-", ".upload-")):
                    path.unlink(missing_ok=True)

    # objects
    def object_path(self, sha256: str) -> Path:
        return self._file("objects", check_oid(sha256))

    def has_object(self, sha256: str) -> bool:
        return self.object_path(sha256).is_file()

    def store_chunks(
        self, chunks: Iterable[bytes], *, expected_sha256: str | None = None, expected_size: int | None = None
    ) -> str:
        """Store the concatenation of ``chunks`` as an object, written to disk as it arrives; returns its sha256.

        With ``expected_sha256`` / ``expected_size`` (an LFS upload), content that differs is refused and not kept.
        """
        digest, size = hashlib.sha256(), 0
        with self._staging_file() as (handle, staged):
            for chunk in chunks:
                digest.update(chunk)
                handle.write(chunk)
                size += len(chunk)
            sha256 = digest.hexdigest()
            if (expected_size is not None and size != expected_size) or expected_sha256 not in (None, sha256):
                raise HubError(400, f"Upload of {expected_sha256} is incomplete or does not match its sha256")
            if not self.has_object(sha256):
                self._install(staged, handle, self.object_path(sha256))
        return sha256

    def store_bytes(self, data: bytes) -> str:
        return self.store_chunks([data])

    def store_stream(self, stream: IO[bytes], size: int, expected_sha256: str) -> None:
        """Store an uploaded LFS object, refusing it unless it has the announced size and sha256."""
        check_oid(expected_sha256)

        def chunks() -> Iterator[bytes]:
            received = 0
            while received < size:
                chunk = stream.read(min(1 << 20, size - received))
                if not chunk:
                    return
                received += len(chunk)
                yield chunk

        self.store_chunks(chunks(), expected_sha256=expected_sha256, expected_size=size)

    def open_blob(self, entry: FileEntry) -> IO[bytes]:
        """What git stores for ``entry`` (``entry.blob_size`` bytes): the file's content, or its LFS pointer."""
        return BytesIO(entry.pointer.encode()) if entry.lfs else open(self.object_path(entry.sha256), "rb")

    def _entry(self, sha256: str, lfs: bool) -> FileEntry:
        path = self.object_path(sha256)
        size = path.stat().st_size
        if lfs:
            pointer = LFS_POINTER.format(sha256=sha256, size=size).encode()
            oid = git_blob_oid(len(pointer), [pointer])
        else:
            with open(path, "rb") as handle:
                oid = git_blob_oid(size, iter(lambda: handle.read(1 << 20), b""))
        return FileEntry(sha256=sha256, size=size, oid=oid, lfs=lfs)

    # commits and refs
    def read_commit(self, commit_id: str) -> Commit:
        if not is_commit_id(commit_id):
            raise HubError(500, f"{self.id} holds a damaged ref: {commit_id!r} is not a commit id")
        data = json.loads(self._file("commits", f"{commit_id}.json").read_text())
        tree = {path: FileEntry(**entry) for path, entry in data["tree"].items()}
        return Commit(commit_id, data["parents"], tree, data["title"], data["message"], data["author"], data["date"])

    def _write_commit(
        self, parents: list[str], tree: dict[str, FileEntry], title: str, message: str, author: str
    ) -> str:
        record = {
            "parents": parents,
            "tree": {path: entry.__dict__ for path, entry in sorted(tree.items())},
            "title": title,
            "message": message,
            "author": author,
            "date": _now(),
        }
        data = json.dumps(record, sort_keys=True).encode()
        commit_id = hashlib.sha1(b"commit " + data).hexdigest()
        self._write(self._file("commits", f"{commit_id}.json"), data)
        return commit_id

    # data derived from a commit: written whole or not at all, and rebuilt by its reader when missing
    def _derived_path(self, kind: str, commit_id: str) -> Path:
        if not is_commit_id(commit_id):
            raise HubError(500, f"{self.id}: {commit_id!r} is not a commit id")
        return self._file("cache", kind, commit_id)

    def read_derived(self, kind: str, commit_id: str) -> bytes | None:
        path = self._derived_path(kind, commit_id)
        return path.read_bytes() if path.is_file() else None

    def write_derived(self, kind: str, commit_id: str, data: bytes) -> None:
        self._write(self._derived_path(kind, commit_id), data)

    def ref_path(self, ref: str) -> Path:
        kind, _, name = ref.removeprefix("refs/").partition("/")
        if kind not in REF_KINDS:
            raise HubError(400, f"Invalid ref {ref!r}")
        if kind == "pr":
            if pull_request_number(ref) is None:
                raise HubError(400, f"Invalid pull request ref {ref!r}")
        else:
            check_ref_name(name)
        return self._file("refs", kind, *name.split("/"))

    def read_ref(self, ref: str) -> str | None:
        path = self.ref_path(ref)
        return path.read_text().strip() if path.is_file() else None

    def _write_ref(self, ref: str, commit_id: str) -> None:
        self._write(self.ref_path(ref), commit_id.encode())

    def refs(self, kind: str) -> dict[str, str]:
        """Refs of one kind ("heads", "tags", "pr") by name, each with its commit id; anything else in the folder
        (a file that is not a valid ref name) is not a ref."""
        base = self._file("refs", kind)
        if not base.is_dir():
            return {}
        found = {}
        for path in sorted(base.rglob("*")):
            name = path.relative_to(base).as_posix()
            valid = pull_request_number(f"refs/pr/{name}") is not None if kind == "pr" else _is_ref_name(name)
            if valid and path.is_file():
                found[name] = path.read_text().strip()
        return found

    def _check_no_conflict(self, ref: str) -> None:
        """git's rule: ``feat`` and ``feat/sub`` cannot both exist, as one would be a file and the other a folder."""
        kind, _, name = ref.removeprefix("refs/").partition("/")
        for existing in self.refs(kind):
            if name.startswith(existing + "/") or existing.startswith(name + "/"):
                raise HubError(409, f"Reference '{ref}' conflicts with the existing 'refs/{kind}/{existing}'")

    def resolve(self, revision: str) -> str:
        """The commit a branch, tag, ``refs/...`` name or commit id points to."""
        revision = check_revision(revision or DEFAULT_BRANCH)
        candidates = [revision] if revision.startswith("refs/") else [f"refs/heads/{revision}", f"refs/tags/{revision}"]
        for ref in candidates:
            if commit := self.read_ref(ref):
                return commit
        if is_commit_id(revision) and self._file("commits", f"{revision}.json").is_file():
            return revision
        raise HubError(404, f"Revision Not Found for '{revision}' in {self.id}", "RevisionNotFound")

    def writable_ref(self, revision: str) -> str:
        """The ref a commit to ``revision`` moves: a branch or a pull-request ref, never a tag or a commit id."""
        revision = check_revision(revision or DEFAULT_BRANCH)
        if revision.startswith("refs/tags/"):
            raise HubError(400, f"A commit cannot move the tag '{revision}'")
        ref = revision if revision.startswith("refs/") else f"refs/heads/{revision}"
        if self.read_ref(ref):
            return ref
        raise HubError(404, f"Branch '{revision}' does not exist in {self.id}", "RevisionNotFound")

    def commit(
        self,
        revision: str,
        operations: list[Operation],
        *,
        title: str,
        message: str,
        author: str,
        parent_commit: str | None = None,
        create_pr: bool = False,
    ) -> tuple[str, int | None]:
        """Apply ``operations`` on top of ``revision``, or of a new pull request from it.

        Returns the new commit's id and the pull request's number (None without ``create_pr``).
        """
        with self.locked():
            ref = self.writable_ref(revision)
            head = self.read_ref(ref)
            if parent_commit is not None and parent_commit != head:
                raise HubError(412, f"The branch has moved: its head is {head}, not the parent commit {parent_commit}")
            tree = dict(self.read_commit(head).tree)
            for op in operations:
                if op.kind == "add":
                    if not self.has_object(op.sha256):
                        raise HubError(422, f"No uploaded content {op.sha256} for '{op.path}'")
                    tree[op.path] = self._entry(op.sha256, op.lfs)
                elif op.kind == "delete_file":
                    if op.path not in tree:
                        raise HubError(404, f"A file with this name doesn't exist: '{op.path}'", "EntryNotFound")
                    del tree[op.path]
                else:
                    prefix = op.path.rstrip("/") + "/"
                    tree = {path: entry for path, entry in tree.items() if not path.startswith(prefix)}
            _check_tree(tree)
            pr_number = None
            if create_pr:
                pr_number = self._open_pull_request(title, message, author, base=ref)
                ref = f"refs/pr/{pr_number}"
            commit_id = self._write_commit([head], tree, title, message, author)
            self._write_ref(ref, commit_id)
            return commit_id, pr_number

    def open_pull_request(self, title: str, description: str, author: str) -> int:
        """Open a pull request against main: a ``refs/pr/<n>`` ref at main's head, and its discussion record."""
        with self.locked():
            return self._open_pull_request(title, description, author, base=f"refs/heads/{DEFAULT_BRANCH}")

    def _open_pull_request(self, title: str, description: str, author: str, base: str) -> int:
        number = 1 + max((int(n) for n in self.refs("pr")), default=0)
        record = {"title": title, "description": description, "author": author, "base": base, "date": _now()}
        self._write(self._file("discussions", f"{number}.json"), json.dumps(record).encode())
        self._write_ref(f"refs/pr/{number}", self.read_ref(base))
        return number

    def pull_request(self, number: int) -> dict:
        path = self._file("discussions", f"{number}.json")
        if not path.is_file():
            raise HubError(404, f"Discussion {number} does not exist in {self.id}")
        return json.loads(path.read_text())

    def create_ref(self, ref: str, commit_id: str) -> None:
        with self.locked():
            if self.read_ref(ref) is not None:
                raise HubError(409, f"Reference '{ref}' already exists in {self.id}")
            self._check_no_conflict(ref)
            self._write_ref(ref, commit_id)

    def delete_ref(self, ref: str) -> None:
        with self.locked():
            if self.read_ref(ref) is None:
                raise HubError(404, f"Reference '{ref}' does not exist in {self.id}", "RevisionNotFound")
            path = self.ref_path(ref)
            path.unlink()
            base = self._file("refs", ref.removeprefix("refs/").partition("/")[0])
            for folder in path.parents:
                if folder == base or any(folder.iterdir()):
                    break
                folder.rmdir()

    def history(self, commit_id: str) -> list[Commit]:
        """The commits reachable from ``commit_id``, newest first (first parents only)."""
        commits = []
        while commit_id:
            commit = self.read_commit(commit_id)
            commits.append(commit)
            commit_id = commit.parents[0] if commit.parents else ""
        return commits


def _is_ref_name(name: str) -> bool:
    try:
        check_ref_name(name)
    except HubError:
        return False
    return True


def _check_tree(tree: dict[str, FileEntry]) -> None:
    """A file and a folder cannot share a name (``a`` and ``a/b``): clients could not download both."""
    folders = {path.rsplit("/", depth)[0] for path in tree for depth in range(1, path.count("/") + 1)}
    if clashes := sorted(folders & tree.keys()):
        raise HubError(409, f"'{clashes[0]}' would be both a file and a folder in this commit")


class RepoStore:
    """All repositories under one root folder. Opening a store removes what crashed writers left behind."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._repos: dict[tuple[str, str], Repo] = {}
        self._lock = threading.Lock()
        for repo in self.all_repos():
            repo.remove_debris()

    def _repo_path(self, repo_type: str, repo_id: str) -> Path:
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}: expected one of {', '.join(REPO_TYPES)}")
        namespace, name = check_repo_id(repo_id)
        return self.root / f"{repo_type}s" / namespace / name

    def all_repos(self) -> list[Repo]:
        """Every repository in the store (folders whose names are not valid repo ids are ignored)."""
        repos = []
        for repo_type in REPO_TYPES:
            for path in sorted(self.root.glob(f"{repo_type}s/*/*/repo.json")):
                repo_id = f"{path.parent.parent.name}/{path.parent.name}"
                try:
                    repos.append(self.get(repo_type, repo_id))
                except HubError:
                    continue
        return repos

    def get(self, repo_type: str, repo_id: str) -> Repo:
        path = self._repo_path(repo_type, repo_id)
        if not (path / "repo.json").is_file():
            raise HubError(404, f"Repository Not Found: {repo_id}", "RepoNotFound")
        with self._lock:
            return self._repos.setdefault((repo_type, repo_id), Repo(path, repo_type, repo_id, self.root))

    def create(self, repo_type: str, repo_id: str, *, private: bool, author: str) -> Repo:
        """Create a repository with an empty first commit on ``main``; 409 if it exists."""
        path = self._repo_path(repo_type, repo_id)
        with self._lock:
            if (path / "repo.json").is_file():
                raise HubError(409, f"You already created this {repo_type} repo: {repo_id}")
            path.mkdir(parents=True, exist_ok=True)
            repo = Repo(path, repo_type, repo_id, self.root)
            first = repo._write_commit([], {}, "initial commit", "", author)
            repo._write_ref(f"refs/heads/{DEFAULT_BRANCH}", first)
            repo._write(path / "repo.json", json.dumps({"private": private, "created": _now()}).encode())
            self._repos[(repo_type, repo_id)] = repo
            return repo


def decode_regular_file(content: str, encoding: str) -> bytes:
    if encoding != "base64":
        raise HubError(400, f"Unsupported file encoding '{encoding}'")
    try:
        return base64.b64decode(content, validate=True)
    except ValueError as exc:
        raise HubError(400, f"Invalid base64 content: {exc}") from exc
