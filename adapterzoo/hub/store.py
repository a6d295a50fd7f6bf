"""The embedded Hub's storage: repositories on disk with real commits, branches, tags and pull-request refs.

Layout of one repository (``ROOT/<type>s/<namespace>/<name>/``)::

    repo.json                   {"private": bool, "created": iso date}
    objects/<sha256>            file contents, addressed by their sha256
    commits/<commit id>.json    {"parents", "tree": {path: entry}, "title", "message", "author", "date"}
    refs/heads/<branch>         a commit id   (also refs/tags/<tag>, refs/pr/<n>)
    discussions/<n>.json        a discussion's or pull request's record and events (see `adapterzoo.hub.discussions`)
    cache/<kind>/<commit id>    data derived from a commit (its git objects), rebuilt whenever it is missing
    tmp/<pid>-<random>          files being written, renamed into place when complete
    lock                        held while a commit or a ref changes

Xorbs uploaded through Xet are shared by all repositories, as on the Hub (a client skips uploading chunks it
already sent to this endpoint, whichever repo they went to): ``ROOT/xet/xorbs/<hash>``, with ``ROOT/xet/id`` naming
this store in the CAS URL (so a client's Xet cache never mixes two stores), and ``ROOT/xet/tmp/`` for uploads.

A commit's objects and its record are written first; the ref moves last, in one atomic rename, under the repo lock.
A push that dies half-way (client or server) therefore leaves the branch at its previous commit, and concurrent
pushes to one branch land one after the other, each on top of the previous one. Files being written live in
``tmp/`` under their writer's process id, so they never show up as refs; a store removes those of dead processes
when it opens.

Whole repositories are deleted, moved and duplicated by renaming one folder: a deleted repo is first renamed into
``ROOT/.tmp/<pid>-<random>`` and then removed, a duplicate is assembled there and renamed into place, and a move
renames the folder to its new id. A crash leaves the old state or the new one, and the store clears ``ROOT/.tmp`` of
dead processes' folders when it opens. A `Repo` is bound to the folder it was opened on: once that folder is gone
(deleted, moved, or replaced by a new repo of the same id), its locked operations answer 404 instead of writing.

Every name is checked by `adapterzoo.hub.names` before it becomes a path, and every path is then checked to lie inside
the store's root: a name that slipped through the first check still cannot reach outside.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import IO, TYPE_CHECKING

from adapterzoo.atomic_folder import process_alive
from adapterzoo.faults import fault_point
from adapterzoo.hub.names import (
    HubError,
    check_oid,
    check_ref_name,
    check_repo_id,
    check_revision,
    is_commit_id,
    pull_request_number,
)

if TYPE_CHECKING:
    from adapterzoo.hub.discussions import Discussions

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
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@contextmanager
def _staging_path(folder: Path) -> Iterator[Path]:
    """A new path in ``folder`` (which exists: a writer never creates a folder a delete just removed) named after
    this process; its file is removed on exit unless moved into place."""
    path = folder / f"{os.getpid()}-{secrets.token_hex(8)}"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def _staging_file(folder: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """A new file in ``folder`` (see `_staging_path`), open for writing."""
    with _staging_path(folder) as path, open(path, "xb") as handle:
        yield handle, path


def _install(staged: Path, handle: IO[bytes], target: Path) -> None:
    """Move a staged file to ``target``, whose folder exists, once its content is on disk."""
    handle.flush()
    os.fsync(handle.fileno())
    os.replace(staged, target)


def _remove_dead_writers(folder: Path) -> None:
    """Delete the files in a ``tmp/`` folder whose writers are no longer running."""
    for path in folder.iterdir() if folder.is_dir() else ():
        pid = path.name.split("-", 1)[0]
        if not (pid.isdigit() and process_alive(int(pid))):
            path.unlink(missing_ok=True)


def _write_hashed(handle: IO[bytes], chunks: Iterable[bytes]) -> tuple[str, int]:
    """Write ``chunks`` to ``handle``; their sha256 and total size."""
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        handle.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


class Repo:
    """One repository on disk."""

    def __init__(self, path: Path, repo_type: str, repo_id: str, root: Path):
        self.path = path
        self.type = repo_type
        self.id = repo_id
        self._root = root.resolve()
        self._thread_lock = threading.Lock()
        self._folder_id = _folder_id(path)

    def _file(self, *parts: str) -> Path:
        """``path/parts...``, refused unless it resolves inside the store's root (the second line of defence)."""
        path = self.path.joinpath(*parts)
        if not path.resolve().is_relative_to(self._root):
            raise HubError(400, f"Refused: {'/'.join(parts)!r} leads outside the hub's root")
        return path

    def is_current(self) -> bool:
        """Whether this repo's folder is still the one it was opened on (not deleted, moved or replaced)."""
        return _folder_id(self.path) == self._folder_id

    def not_found(self) -> HubError:
        return HubError(404, f"Repository Not Found: {self.id}", "RepoNotFound")

    def _metadata(self) -> dict:
        try:
            return json.loads(self._file("repo.json").read_text())
        except FileNotFoundError:
            raise self.not_found() from None

    @property
    def private(self) -> bool:
        return self._metadata()["private"]

    @property
    def created(self) -> str:
        return self._metadata()["created"]

    def set_private(self, private: bool) -> None:
        with self.locked():
            metadata = {**self._metadata(), "private": private}
            self._write(self._file("repo.json"), json.dumps(metadata).encode())

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise ref changes, across threads and across server processes sharing the root; a 404 once this
        repo's folder was deleted or moved (by another thread or process) before the lock was taken."""
        with self._thread_lock:
            try:
                handle = open(self._file("lock"), "a")
            except FileNotFoundError:
                raise self.not_found() from None
            with handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    if not self.is_current() or not self._file("repo.json").is_file():
                        raise self.not_found()
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    # files written whole or not at all
    @contextmanager
    def _staging_file(self) -> Iterator[tuple[IO[bytes], Path]]:
        """A new file in this repo's ``tmp/`` (see `_staging_file`), which is never created once the repo is gone."""
        folder = self._file("tmp")
        self._make_folder(folder)
        with _staging_file(folder) as staged:
            yield staged

    def _install(self, staged: Path, handle: IO[bytes], target: Path) -> None:
        self._make_folder(target.parent)
        try:
            _install(staged, handle, target)
        except FileNotFoundError:
            raise self.not_found() from None  # the repo was deleted or moved under this writer

    def _make_folder(self, folder: Path) -> None:
        """Create ``folder`` inside this repo's folder, never the repo's folder itself: a writer that outlived a
        delete or a move must not bring it back. A 404 once it is gone."""
        current = self.path
        try:
            for part in folder.relative_to(self.path).parts:
                current = current / part
                current.mkdir(exist_ok=True)
        except FileNotFoundError:
            raise self.not_found() from None

    def _write(self, target: Path, data: bytes) -> None:
        with self._staging_file() as (handle, staged):
            handle.write(data)
            self._install(staged, handle, target)

    def remove_debris(self) -> None:
        """Delete files that writers which are no longer running left in ``tmp/`` (and, from older versions of this
        server, ``.tmp-*`` / ``.upload-*`` files beside refs, objects and records)."""
        _remove_dead_writers(self._file("tmp"))
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
        with self._staging_file() as (handle, staged):
            sha256, size = _write_hashed(handle, chunks)
            if (expected_size is not None and size != expected_size) or expected_sha256 not in (None, sha256):
                raise HubError(400, f"Upload of {expected_sha256} is incomplete or does not match its sha256")
            if not self.has_object(sha256):
                self._install(staged, handle, self.object_path(sha256))
        return sha256

    def store_objects(self, contents: Iterable[tuple[str, Iterable[bytes]]]) -> None:
        """Store each ``(sha256, chunks)`` as an object, all or none: every one is written and checked against its
        sha256 before any is moved into place (the files of one Xet shard)."""
        self._make_folder(self._file("tmp"))
        try:
            with ExitStack() as stack:
                staged = []
                for expected_sha256, chunks in contents:
                    path = stack.enter_context(_staging_path(self._file("tmp")))
                    with open(path, "xb") as handle:
                        sha256, _ = _write_hashed(handle, chunks)
                        handle.flush()
                        os.fsync(handle.fileno())
                    if sha256 != expected_sha256:
                        raise HubError(400, f"An uploaded file rebuilds to sha256 {sha256}, not {expected_sha256}")
                    staged.append((path, sha256))
                for path, sha256 in staged:
                    if not self.has_object(sha256):
                        self._make_folder(self._file("objects"))
                        os.replace(path, self.object_path(sha256))
        except FileNotFoundError:
            raise self.not_found() from None  # the repo was deleted or moved under this writer

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
        try:
            data = json.loads(self._file("commits", f"{commit_id}.json").read_text())
        except FileNotFoundError:
            self._metadata()  # a 404 when the repo was deleted or moved while this request read it
            raise
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
        try:
            return self.ref_path(ref).read_text().strip()
        except (
            FileNotFoundError,
            IsADirectoryError,
            NotADirectoryError,
        ):  # no such ref, or ``feat`` beside ``feat/sub``
            return None

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
                    kept = {path: entry for path, entry in tree.items() if not path.startswith(op.path + "/")}
                    if len(kept) == len(tree):
                        raise HubError(404, f"A folder with this name doesn't exist: '{op.path}'", "EntryNotFound")
                    tree = kept
            _check_tree(tree)
            pr_number = None
            if create_pr:
                pr_number = self.discussions.add(title, message, author, base=ref)
                ref = f"refs/pr/{pr_number}"
            commit_id = self._write_commit([head], tree, title, message, author)
            self._write_ref(ref, commit_id)
            return commit_id, pr_number

    def squash(self, branch: str, title: str, author: str) -> str:
        """Replace ``branch``'s history by one commit holding its current files; returns that commit's id."""
        ref = f"refs/heads/{check_ref_name(branch)}"
        with self.locked():
            head = self.read_ref(ref)
            if head is None:
                raise HubError(404, f"Branch '{branch}' does not exist in {self.id}", "RevisionNotFound")
            commit_id = self._write_commit([], self.read_commit(head).tree, title, "", author)
            self._write_ref(ref, commit_id)
            return commit_id

    # discussions and pull requests (what their records mean is `adapterzoo.hub.discussions`')
    @property
    def discussions(self) -> Discussions:
        from adapterzoo.hub.discussions import Discussions  # which builds on this module

        return Discussions(self)

    def discussion_numbers(self) -> list[int]:
        """The numbers of the discussion records and pull-request refs, in order."""
        folder = self._file("discussions")
        files = {int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit()} if folder.is_dir() else set()
        return sorted(files | {int(n) for n in self.refs("pr")})

    def read_discussion(self, number: int) -> dict | None:
        path = self._file("discussions", f"{number}.json")
        return json.loads(path.read_text()) if path.is_file() else None

    def write_discussion(self, number: int, record: dict) -> None:
        """Replace discussion ``number``'s record, whole or not at all (the caller holds `locked`)."""
        self._write(self._file("discussions", f"{number}.json"), json.dumps(record).encode())

    def start_pull_request(self, number: int, base: str) -> str:
        """Point ``refs/pr/<number>`` at the head of the ``base`` ref (the caller holds `locked`); returns it."""
        head = self.read_ref(base)
        if head is None:
            raise HubError(404, f"Reference '{base}' does not exist in {self.id}", "RevisionNotFound")
        self._write_ref(f"refs/pr/{number}", head)
        return head

    def merged_tree(self, source: str, since: str, head: str) -> tuple[dict[str, FileEntry], list[str]]:
        """``head``'s tree with the changes commit ``source`` made since commit ``since``, and the conflicts: the
        paths ``head`` also changed since then, differently."""
        old, new, tree = self.read_commit(since).tree, self.read_commit(source).tree, dict(self.read_commit(head).tree)
        theirs, ours = changed_paths(old, tree), changed_paths(old, new)
        conflicts = sorted(path for path in ours & theirs if new.get(path) != tree.get(path))
        for path in ours:
            if path in new:
                tree[path] = new[path]
            else:
                tree.pop(path, None)
        return tree, conflicts

    def merge(self, source: str, since: str, target: str, *, title: str, message: str, author: str) -> str:
        """Commit on the ``target`` ref what commit ``source`` changed since commit ``since`` (the caller holds
        `locked`). Conflicts are refused with a 409 that names them, and nothing is written."""
        head = self.read_ref(target)
        if head is None:
            raise HubError(404, f"Reference '{target}' does not exist in {self.id}", "RevisionNotFound")
        tree, conflicts = self.merged_tree(source, since, head)
        if conflicts:
            raise HubError(409, f"Merge conflict: {', '.join(conflicts)} changed on both sides", "MergeConflict")
        _check_tree(tree)
        commit_id = self._write_commit([head, source], tree, title, message, author)
        self._write_ref(target, commit_id)
        return commit_id

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


def _folder_id(path: Path) -> tuple[int, int] | None:
    """What tells a folder from another one later made at the same path."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def _link_or_copy(source: str, target: str) -> None:
    """A hard link to an immutable file (objects and commit records never change), or a copy where links fail."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _is_ref_name(name: str) -> bool:
    try:
        check_ref_name(name)
    except HubError:
        return False
    return True


def changed_paths(old: dict[str, FileEntry], new: dict[str, FileEntry]) -> set[str]:
    """The paths added, deleted or modified from tree ``old`` to tree ``new``."""
    return {path for path in old.keys() | new.keys() if old.get(path) != new.get(path)}


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
        self._scratch = self.root / ".tmp"
        for path in self._scratch.iterdir() if self._scratch.is_dir() else ():
            pid = path.name.split("-", 1)[0]
            if not (pid.isdigit() and process_alive(int(pid))):
                shutil.rmtree(path, ignore_errors=True)
        for repo in self.all_repos():
            repo.remove_debris()
        for folder in ("tmp", "xorbs"):
            (self.root / "xet" / folder).mkdir(parents=True, exist_ok=True)
        _remove_dead_writers(self.root / "xet" / "tmp")
        id_file = self.root / "xet" / "id"
        if not id_file.is_file():
            with _staging_file(self.root / "xet" / "tmp") as (handle, staged):
                handle.write(secrets.token_hex(8).encode())
                handle.flush()
                with suppress(FileExistsError):  # another server on this root named it first
                    os.link(staged, id_file)
        self.xet_id = id_file.read_text().strip()

    def xorb_path(self, xorb_hash: str) -> Path:
        return self.root / "xet" / "xorbs" / check_oid(xorb_hash)

    def store_xorb(self, xorb_hash: str, chunks: Iterable[bytes], check: Callable[[IO[bytes]], None]) -> bool:
        """Store an uploaded xorb under its hash once ``check`` accepted it (reading the staged copy); False, and
        nothing written, when a xorb of that hash is already stored."""
        target = self.xorb_path(xorb_hash)
        with _staging_file(self.root / "xet" / "tmp") as (handle, staged):
            _write_hashed(handle, chunks)
            handle.flush()
            with open(staged, "rb") as reader:
                check(reader)
            if target.is_file():
                return False
            _install(staged, handle, target)
        return True

    def _repo_path(self, repo_type: str, repo_id: str) -> Path:
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}: expected one of {', '.join(REPO_TYPES)}")
        namespace, name = check_repo_id(repo_id)
        return self.root / f"{repo_type}s" / namespace / name

    def all_repos(self, repo_types: Iterable[str] = REPO_TYPES) -> list[Repo]:
        """Every repository of these types in the store (folders whose names are not valid repo ids are ignored)."""
        repos = []
        for repo_type in repo_types:
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
            repo = self._repos.get((repo_type, repo_id))
            if repo is None or not repo.is_current():  # first use, or deleted and made again (by another process)
                repo = self._repos[(repo_type, repo_id)] = Repo(path, repo_type, repo_id, self.root)
            return repo

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

    def _scratch_folder(self) -> Path:
        """A new path in ``ROOT/.tmp`` named after this process (not created)."""
        self._scratch.mkdir(exist_ok=True)
        return self._scratch / f"{os.getpid()}-{secrets.token_hex(8)}"

    def _rename_into(self, source: Path, repo_type: str, repo_id: str) -> None:
        """Rename the folder ``source`` to be ``repo_id``; 409 if that repo exists. Hold ``self._lock``."""
        target = self._repo_path(repo_type, repo_id)
        if target.exists():
            raise HubError(409, f"A {repo_type} repo named {repo_id} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(source, target)
        except OSError as exc:  # another process made it meanwhile (a folder that is not empty)
            raise HubError(409, f"A {repo_type} repo named {repo_id} already exists") from exc

    def delete(self, repo_type: str, repo_id: str) -> None:
        """Delete a repository: its folder leaves the store in one rename, then its files are removed."""
        repo = self.get(repo_type, repo_id)
        trash = self._scratch_folder()
        with repo.locked(), self._lock:
            os.rename(repo.path, trash)
            self._repos.pop((repo_type, repo_id), None)
        fault_point("hub.delete.renamed")
        shutil.rmtree(trash, ignore_errors=True)

    def move(self, repo_type: str, from_id: str, to_id: str) -> Repo:
        """Rename a repository to ``to_id`` (in another namespace or not); 409 if that repo exists."""
        repo = self.get(repo_type, from_id)
        with repo.locked(), self._lock:
            self._rename_into(repo.path, repo_type, to_id)
            self._repos.pop((repo_type, from_id), None)
        return self.get(repo_type, to_id)

    def duplicate(self, repo_type: str, from_id: str, to_id: str, *, private: bool | None = None) -> Repo:
        """A new repository ``to_id`` with ``from_id``'s files, history, branches and tags (not its pull requests);
        as private as the source unless ``private`` says. 409 if ``to_id`` exists."""
        source = self.get(repo_type, from_id)
        staging = self._scratch_folder()
        try:
            with source.locked():
                for section in ("objects", "commits", "refs/heads", "refs/tags"):
                    origin = source._file(*section.split("/"))
                    if origin.is_dir():
                        immutable = section in ("objects", "commits")
                        shutil.copytree(
                            origin, staging / section, copy_function=_link_or_copy if immutable else shutil.copy2
                        )
                metadata = {"private": source.private if private is None else private, "created": _now()}
            (staging / "repo.json").write_text(json.dumps(metadata))
            fault_point("hub.duplicate.staged")
            with self._lock:
                self._rename_into(staging, repo_type, to_id)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.get(repo_type, to_id)
