"""The embedded Hub's storage: repositories on disk with real commits, branches, tags and pull-request refs.

Layout of one repository (``ROOT/<type>s/<namespace>/<name>/``)::

    repo.json                   {"private": bool, "created": iso date}
    objects/<sha256>            file contents, addressed by their sha256
    commits/<commit id>.json    {"parents", "tree": {path: entry}, "title", "message", "author", "date"}
    refs/heads/<branch>         a commit id   (also refs/tags/<tag>, refs/pr/<n>)
    lock                        held while a commit or a ref changes

A commit's objects and its record are written first; the ref moves last, in one atomic rename, under the repo lock.
A push that dies half-way (client or server) therefore leaves the branch at its previous commit, and concurrent
pushes to one branch land one after the other, each on top of the previous one.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

REPO_TYPES = ("model", "dataset", "space")
DEFAULT_BRANCH = "main"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REF_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"


class HubError(Exception):
    """A request the store refuses; ``status`` and ``code`` are what the HTTP layer answers with."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


def check_repo_id(repo_id: str) -> tuple[str, str]:
    """``namespace/name``, each a plain name: no ``..``, no slashes beyond the one, nothing absolute."""
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_SEGMENT.match(p) and ".." not in p for p in parts):
        raise HubError(400, f"Invalid repo id '{repo_id}': expected 'namespace/name' made of letters, digits, . _ -")
    return parts[0], parts[1]


def check_path(path: str) -> str:
    """A file path inside a repo: relative, '/'-separated, with no empty, '.', '..' or '.git' segment."""
    segments = path.split("/")
    if (
        not path
        or "\\" in path
        or "\x00" in path
        or path.startswith("/")
        or any(s in ("", ".", "..", ".git") for s in segments)
    ):
        raise HubError(400, f"Invalid path in repo: '{path}'")
    return path


def check_ref_name(name: str) -> str:
    if not _REF_NAME.match(name) or ".." in name or name.endswith(("/", ".lock")) or "//" in name:
        raise HubError(400, f"Invalid branch or tag name '{name}'")
    return name


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


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Repo:
    """One repository on disk."""

    def __init__(self, path: Path, repo_type: str, repo_id: str):
        self.path = path
        self.type = repo_type
        self.id = repo_id
        self._thread_lock = threading.Lock()

    @property
    def private(self) -> bool:
        return json.loads((self.path / "repo.json").read_text())["private"]

    @property
    def created(self) -> str:
        return json.loads((self.path / "repo.json").read_text())["created"]

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise ref changes, across threads and across server processes sharing the root."""
        with self._thread_lock, open(self.path / "lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # objects
    def object_path(self, sha256: str) -> Path:
        return self.path / "objects" / sha256

    def has_object(self, sha256: str) -> bool:
        return self.object_path(sha256).is_file()

    def store_bytes(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.has_object(sha256):
            _atomic_write(self.object_path(sha256), data)
        return sha256

    def store_stream(self, stream: IO[bytes], size: int, expected_sha256: str) -> None:
        """Store an uploaded LFS object, refusing it unless it has the announced size and sha256."""
        digest = hashlib.sha256()
        target = self.object_path(expected_sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        received = 0
        try:
            with os.fdopen(fd, "wb") as handle:
                while received < size:
                    chunk = stream.read(min(1 << 20, size - received))
                    if not chunk:
                        break
                    digest.update(chunk)
                    handle.write(chunk)
                    received += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            if received != size or digest.hexdigest() != expected_sha256:
                raise HubError(400, f"Upload of {expected_sha256} is incomplete or does not match its sha256")
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)

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
        data = json.loads((self.path / "commits" / f"{commit_id}.json").read_text())
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
        _atomic_write(self.path / "commits" / f"{commit_id}.json", data)
        return commit_id

    def ref_path(self, ref: str) -> Path:
        return self.path / ref

    def read_ref(self, ref: str) -> str | None:
        path = self.ref_path(ref)
        return path.read_text().strip() if path.is_file() else None

    def _write_ref(self, ref: str, commit_id: str) -> None:
        _atomic_write(self.ref_path(ref), commit_id.encode())

    def refs(self, kind: str) -> dict[str, str]:
        """Refs of one kind ("heads", "tags", "pr") by name, each with its commit id."""
        base = self.path / "refs" / kind
        if not base.is_dir():
            return {}
        return {str(p.relative_to(base)): p.read_text().strip() for p in sorted(base.rglob("*")) if p.is_file()}

    def resolve(self, revision: str) -> str:
        """The commit a branch, tag, ``refs/...`` name or commit id points to."""
        revision = revision or DEFAULT_BRANCH
        candidates = [revision] if revision.startswith("refs/") else [f"refs/heads/{revision}", f"refs/tags/{revision}"]
        for ref in candidates:
            if ".." not in ref and (commit := self.read_ref(ref)):
                return commit
        if _COMMIT_ID.match(revision) and (self.path / "commits" / f"{revision}.json").is_file():
            return revision
        raise HubError(404, f"Revision Not Found for '{revision}' in {self.id}", "RevisionNotFound")

    def writable_ref(self, revision: str) -> str:
        """The ref a commit to ``revision`` moves: a branch or a pull-request ref, never a tag or a commit id."""
        revision = revision or DEFAULT_BRANCH
        if revision.startswith("refs/pr/") and self.read_ref(revision):
            return revision
        if self.read_ref(f"refs/heads/{revision}"):
            return f"refs/heads/{revision}"
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
            pr_number = None
            if create_pr:
                pr_number = self._open_pull_request(title, message, author, base=ref)
                ref = f"refs/pr/{pr_number}"
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
        _atomic_write(self.path / "discussions" / f"{number}.json", json.dumps(record).encode())
        self._write_ref(f"refs/pr/{number}", self.read_ref(base))
        return number

    def pull_request(self, number: int) -> dict:
        path = self.path / "discussions" / f"{number}.json"
        if not path.is_file():
            raise HubError(404, f"Discussion {number} does not exist in {self.id}")
        return json.loads(path.read_text())

    def create_ref(self, ref: str, commit_id: str) -> None:
        with self.locked():
            if self.read_ref(ref) is not None:
                raise HubError(409, f"Reference '{ref}' already exists in {self.id}")
            self._write_ref(ref, commit_id)

    def delete_ref(self, ref: str) -> None:
        with self.locked():
            if self.read_ref(ref) is None:
                raise HubError(404, f"Reference '{ref}' does not exist in {self.id}", "RevisionNotFound")
            self.ref_path(ref).unlink()

    def history(self, commit_id: str) -> list[Commit]:
        """The commits reachable from ``commit_id``, newest first (first parents only)."""
        commits = []
        while commit_id:
            commit = self.read_commit(commit_id)
            commits.append(commit)
            commit_id = commit.parents[0] if commit.parents else ""
        return commits


class RepoStore:
    """All repositories under one root folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._repos: dict[tuple[str, str], Repo] = {}
        self._lock = threading.Lock()

    def _repo_path(self, repo_type: str, repo_id: str) -> Path:
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type '{repo_type}'")
        namespace, name = check_repo_id(repo_id)
        return self.root / f"{repo_type}s" / namespace / name

    def get(self, repo_type: str, repo_id: str) -> Repo:
        path = self._repo_path(repo_type, repo_id)
        if not (path / "repo.json").is_file():
            raise HubError(404, f"Repository Not Found: {repo_id}", "RepoNotFound")
        with self._lock:
            return self._repos.setdefault((repo_type, repo_id), Repo(path, repo_type, repo_id))

    def create(self, repo_type: str, repo_id: str, *, private: bool, author: str) -> Repo:
        """Create a repository with an empty first commit on ``main``; 409 if it exists."""
        path = self._repo_path(repo_type, repo_id)
        with self._lock:
            if (path / "repo.json").is_file():
                raise HubError(409, f"You already created this {repo_type} repo: {repo_id}")
            path.mkdir(parents=True, exist_ok=True)
            repo = Repo(path, repo_type, repo_id)
            first = repo._write_commit([], {}, "initial commit", "", author)
            repo._write_ref(f"refs/heads/{DEFAULT_BRANCH}", first)
            _atomic_write(path / "repo.json", json.dumps({"private": private, "created": _now()}).encode())
            self._repos[(repo_type, repo_id)] = repo
            return repo


def decode_regular_file(content: str, encoding: str) -> bytes:
    if encoding != "base64":
        raise HubError(400, f"Unsupported file encoding '{encoding}'")
    try:
        return base64.b64decode(content, validate=True)
    except ValueError as exc:
        raise HubError(400, f"Invalid base64 content: {exc}") from exc
