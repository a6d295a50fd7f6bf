"""The one place that decides which names the embedded Hub accepts: repo ids, revisions, ref names, paths, oids.

Every route goes through the store, and the store checks every name here before it touches the disk. A name that
fails raises a 400 `HubError` that names the rule it broke, with the name quoted so that control characters show.
"""

from __future__ import annotations

import re

MAX_REPO_ID = 96
MAX_REF_NAME = 200
MAX_PATH = 1000
MAX_SEGMENT_BYTES = 255
MAX_PR_NUMBER = 10**9

_REPO_SEGMENT = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?", re.ASCII)
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_COMMIT_ID = re.compile(r"[0-9a-f]{40}")
_OID = re.compile(r"[0-9a-f]{64}")
_PR_REF = re.compile(r"refs/pr/([1-9][0-9]{0,8})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class HubError(Exception):
    """A request the store refuses; ``status`` and ``code`` are what the HTTP layer answers with."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


def _refuse(kind: str, name: object, rule: str) -> HubError:
    shown = repr(name) if len(repr(name)) <= 120 else repr(name)[:117] + "..."
    return HubError(400, f"Invalid {kind} {shown}: {rule}")


def check_repo_id(repo_id: object) -> tuple[str, str]:
    """``namespace/name`` by the Hub's rules: ASCII letters, digits, ``_ . -``; no ``..`` or ``--``; no leading or
    trailing ``.`` or ``-``; at most 96 characters. Returns the two parts."""
    if not isinstance(repo_id, str):
        raise _refuse("repo id", repo_id, "it must be a string")
    if len(repo_id) > MAX_REPO_ID:
        raise _refuse("repo id", repo_id, f"it is longer than {MAX_REPO_ID} characters")
    parts = repo_id.split("/")
    if len(parts) != 2:
        raise _refuse("repo id", repo_id, "expected 'namespace/name'")
    for part in parts:
        if not _REPO_SEGMENT.fullmatch(part):
            raise _refuse(
                "repo id",
                repo_id,
                "each part is ASCII letters, digits, '_', '.', '-', not starting or ending in . or -",
            )
        if ".." in part or "--" in part:
            raise _refuse("repo id", repo_id, "'..' and '--' are not allowed")
    if repo_id.endswith(".git"):
        raise _refuse("repo id", repo_id, "it cannot end in '.git'")
    return parts[0], parts[1]


def check_ref_name(name: object, kind: str = "branch or tag name") -> str:
    """A branch or tag name by git's rules (``git check-ref-format --allow-onelevel``), in ASCII, at most 200
    characters, each '/'-separated part at most 255 bytes, and not itself starting with ``refs/``."""
    if not isinstance(name, str):
        raise _refuse(kind, name, "it must be a string")
    if not name:
        raise _refuse(kind, name, "it is empty")
    if len(name) > MAX_REF_NAME:
        raise _refuse(kind, name, f"it is longer than {MAX_REF_NAME} characters")
    if not name.isascii():
        raise _refuse(kind, name, "only ASCII characters are allowed")
    if _REF_FORBIDDEN.search(name):
        raise _refuse(kind, name, "control characters, space and ~ ^ : ? * [ \\ are not allowed")
    if name.startswith("/") or name.endswith("/") or "//" in name:
        raise _refuse(kind, name, "it cannot start or end with '/' or hold '//'")
    if ".." in name or "@{" in name or name == "@" or name.endswith("."):
        raise _refuse(kind, name, "'..', '@{', a lone '@' and a trailing '.' are not allowed")
    if any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        raise _refuse(kind, name, "no part may start with '.' or end with '.lock'")
    if name.startswith("refs/"):
        raise _refuse(kind, name, "it cannot start with 'refs/'")
    return name


def is_commit_id(revision: str) -> bool:
    return bool(_COMMIT_ID.fullmatch(revision))


def pull_request_number(revision: str) -> int | None:
    """N for ``refs/pr/N`` (the refs this server makes), else None."""
    match = _PR_REF.fullmatch(revision)
    return int(match.group(1)) if match else None


def check_revision(revision: object) -> str:
    """A revision a client may name: a commit id, ``refs/pr/N``, ``refs/heads/<name>``, ``refs/tags/<name>``, or a
    branch or tag name."""
    if not isinstance(revision, str):
        raise _refuse("revision", revision, "it must be a string")
    if is_commit_id(revision) or pull_request_number(revision) is not None:
        return revision
    for prefix in ("refs/heads/", "refs/tags/"):
        if revision.startswith(prefix):
            check_ref_name(revision[len(prefix) :], "revision")
            return revision
    if revision.startswith("refs/"):
        raise _refuse("revision", revision, "of refs/ only refs/heads/, refs/tags/ and refs/pr/N exist here")
    return check_ref_name(revision, "revision")


def check_path(path: object) -> str:
    """A file path inside a repo: relative, '/'-separated, no empty, '.', '..' or '.git' part, no backslash, no
    control characters, at most 1000 characters and 255 bytes a part."""
    if not isinstance(path, str):
        raise _refuse("path in repo", path, "it must be a string")
    if not path:
        raise _refuse("path in repo", path, "it is empty")
    if len(path) > MAX_PATH:
        raise _refuse("path in repo", path, f"it is longer than {MAX_PATH} characters")
    if "\\" in path or _CONTROL.search(path):
        raise _refuse("path in repo", path, "backslashes and control characters are not allowed")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse("path in repo", path, "it is not valid Unicode") from None
    if path.startswith("/"):
        raise _refuse("path in repo", path, "it must be relative")
    for segment in path.split("/"):
        if segment in ("", ".", "..", ".git"):
            raise _refuse("path in repo", path, "empty, '.', '..' and '.git' parts are not allowed")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise _refuse("path in repo", path, f"a part is longer than {MAX_SEGMENT_BYTES} bytes")
    return path


def check_oid(oid: object) -> str:
    """An LFS object id: exactly 64 lowercase hex digits (a sha256)."""
    if not isinstance(oid, str) or not _OID.fullmatch(oid):
        raise _refuse("LFS oid", oid, "expected 64 lowercase hex digits")
    return oid
