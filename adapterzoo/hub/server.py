"""An embedded server that speaks the Hugging Face Hub's HTTP API to the real ``huggingface_hub`` client.

It serves what ``huggingface_hub`` and transformers use to create repos, commit files (regular uploads in the commit
body, or git-LFS uploads), download files and snapshots, read repo info, trees, refs and history, and create
branches and tags. Repositories live on disk in a `RepoStore`.

Start it with ``adapterzoo hub serve --root DIR --port N`` or, in process, ``with EmbeddedHub(root) as hub:``, and point
clients at it with ``HF_ENDPOINT=hub.url`` (set before ``huggingface_hub`` is imported) or `EmbeddedHub.activate`.

Large files: the server answers "regular" for every file unless ``lfs_threshold`` is set; files at least that large
then go through git-LFS. ``huggingface_hub`` uploads LFS files through Xet whenever ``hf_xet`` is installed, which
this server does not speak, so clients of an LFS-enabled server must set ``HF_HUB_DISABLE_XET=1``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

from adapterzoo.hub import git_http
from adapterzoo.hub.commit_body import read_commit_lines
from adapterzoo.hub.connections import BoundedHTTPServer
from adapterzoo.hub.names import HubError, check_oid, check_path, check_ref_name, check_repo_id, is_commit_id
from adapterzoo.hub.request_body import MAX_JSON_BYTES, RequestBody, field, json_object
from adapterzoo.hub.store import DEFAULT_BRANCH, REPO_TYPES, Operation, Repo, RepoStore
from adapterzoo.hub.tree_entries import add_last_commits, file_entry, folder_entry, is_folder

API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
_UNREAD_BODY_DRAINED = 1 << 20
_MAX_CARD_BYTES = 1 << 20


@dataclass(frozen=True)
class HubSettings:
    """How the server behaves: where repos live, who may write, when files go through LFS, and its resource limits.

    ``max_body_size`` bounds one request's body (a commit's files travel base64-encoded in it unless they go through
    LFS); ``timeout`` is how long a connection may sit idle or stall mid-request; ``max_connections`` caps open
    connections (each has a thread), lowered automatically when the process is short of file descriptors.
    """

    root: Path
    token: str | None = None
    user: str = "local"
    lfs_threshold: int | None = None
    verbose: bool = False
    max_body_size: int = 1 << 30
    timeout: float = 60.0
    max_connections: int = 256


def _header_value(value: str) -> str:
    """A header value in printable ASCII: anything else (non-Latin-1 names, control characters) percent-encoded."""
    return quote(value, safe=_HEADER_SAFE)


class HubRequestHandler(BaseHTTPRequestHandler):
    """Routes one HTTP request to the store. ``settings``, ``store`` and ``secret`` are set per server."""

    protocol_version = "HTTP/1.1"
    server_version = "adapterzoo-hub"
    settings: HubSettings
    store: RepoStore
    secret: bytes

    # plumbing
    def log_message(self, format: str, *args: Any) -> None:
        if self.settings.verbose:
            super().log_message(format, *args)

    def handle_one_request(self) -> None:
        self.server.mark(self.connection, idle=True)
        super().handle_one_request()

    def parse_request(self) -> bool:
        self.server.mark(self.connection, idle=False)
        return super().parse_request()

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{self.headers.get('Host') or f'{host}:{port}'}"

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, _header_value(value))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", headers)

    def send_hub_error(self, error: HubError) -> None:
        # The request body may be partly unread: close the connection, and say so, so no client reuses it.
        self.close_connection = True
        headers = {"X-Error-Message": str(error), "Connection": "close"}
        if error.code:
            headers["X-Error-Code"] = error.code
        self.send_json({"error": str(error)}, error.status, headers)

    def read_json(self, where: str = "The request body") -> dict:
        return json_object(self.body.json(), where)

    def read_form(self) -> dict[str, list[str]]:
        """A form-encoded body (``a=1&a=2``) as lists of values, at most 16 MiB."""
        data = self.body.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise HubError(413, f"A form body is limited to {MAX_JSON_BYTES} bytes")
        try:
            return parse_qs(data.decode(), errors="strict", max_num_fields=100_000)
        except (UnicodeDecodeError, ValueError) as exc:
            raise HubError(400, f"Invalid form body: {exc}") from None

    def _dispatch(self) -> None:
        try:
            self.body = RequestBody(self.headers, self.rfile, self.settings.max_body_size)
            split = urlsplit(self.path)
            self.query = {key: values[-1] for key, values in parse_qs(split.query, errors="strict").items()}
            path = split.path.strip("/")
            self.route([unquote(s, errors="strict") for s in path.split("/")] if path else [])
            self._finish_body()
        except UnicodeDecodeError:
            self.send_hub_error(HubError(400, "The request's URL is not valid percent-encoded UTF-8"))
        except HubError as error:
            self.send_hub_error(error)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # a bug of ours: log it for the operator, tell the client no more than that
            sys.stderr.write(
                f"adapterzoo hub: internal error on {self.command} {self.path!r}\n{traceback.format_exc()}"
            )
            self.send_hub_error(HubError(500, "Internal error of the hub (logged on the server)"))

    def _finish_body(self) -> None:
        """Skip what the endpoint left unread (it must not leak into the next request), or hang up if it is long."""
        self.body.read(_UNREAD_BODY_DRAINED)
        if not self.body.ended:
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    # authentication
    def user(self) -> str | None:
        """The authenticated user, None for an anonymous request; an invalid token is refused outright."""
        if self.settings.token is None:
            return self.settings.user
        header = self.headers.get("Authorization", "")
        if not header:
            return None
        password = git_http.basic_password(header)
        offered = header if password is None else f"Bearer {password}"
        if hmac.compare_digest(offered.encode(), f"Bearer {self.settings.token}".encode()):
            return self.settings.user
        raise HubError(401, "Invalid credentials in Authorization header")

    def require_writer(self) -> str:
        user = self.user()
        if user is None:
            raise HubError(401, "This hub needs a token to write: pass token= or set HF_TOKEN")
        return user

    def repo(self, repo_type: str, repo_id: str, *, write: bool = False) -> Repo:
        user = self.require_writer() if write else self.user()
        repo = self.store.get(repo_type, repo_id)
        if repo.private and user is None:
            raise HubError(404, f"Repository Not Found: {repo_id}", "RepoNotFound")
        return repo

    # routing
    def route(self, s: list[str]) -> None:
        method = self.command
        if s[:2] == ["api", "whoami-v2"] and method == "GET":
            return self.whoami()
        if s[:2] == ["api", "validate-yaml"] and method == "POST":
            return self.validate_yaml()
        if s[:3] == ["api", "repos", "create"] and method == "POST":
            return self.create_repo()
        if s[:2] == ["api", "lfs-upload"] and len(s) == 7 and s[2] in API_TYPES:
            return self.lfs_transfer(API_TYPES[s[2]], f"{s[3]}/{s[4]}", s[5], s[6])
        if len(s) >= 4 and s[0] == "api" and s[1] in API_TYPES:
            return self.repo_api(API_TYPES[s[1]], f"{s[2]}/{s[3]}", s[4:])
        repo_type = "model"
        if s and s[0] in ("datasets", "spaces"):
            repo_type, s = API_TYPES[s[0]], s[1:]
        if len(s) >= 4 and s[2] == "resolve" and method in ("GET", "HEAD"):
            return self.resolve_file(repo_type, f"{s[0]}/{s[1]}", s[3], "/".join(s[4:]))
        if len(s) >= 4 and s[2] == "raw" and method in ("GET", "HEAD"):
            return self.resolve_file(repo_type, f"{s[0]}/{s[1]}", s[3], "/".join(s[4:]), raw=True)
        if len(s) == 4 and s[2:] == ["info", "refs"] and method == "GET":
            return self.git_refs(repo_type, f"{s[0]}/{s[1].removesuffix('.git')}")
        if len(s) == 3 and s[2].startswith("git-") and method == "POST":
            return self.git_service(repo_type, f"{s[0]}/{s[1].removesuffix('.git')}", s[2])
        if len(s) == 6 and s[1].endswith(".git") and s[2:] == ["info", "lfs", "objects", "batch"]:
            return self.lfs_batch(repo_type, f"{s[0]}/{s[1][:-4]}")
        raise HubError(404, f"No route for {method} {self.path}")

    def repo_api(self, repo_type: str, repo_id: str, rest: list[str]) -> None:
        method, action = self.command, rest[0] if rest else ""
        revision = rest[1] if len(rest) > 1 else DEFAULT_BRANCH
        if method == "GET" and action in ("", "revision"):
            return self.repo_info(repo_type, repo_id, revision)
        if method == "GET" and action == "tree":
            return self.tree(repo_type, repo_id, revision, "/".join(rest[2:]))
        if method == "POST" and action == "paths-info":
            return self.paths_info(repo_type, repo_id, revision)
        if method == "GET" and action == "refs":
            return self.list_refs(repo_type, repo_id)
        if method == "GET" and action == "commits":
            return self.list_commits(repo_type, repo_id, revision)
        if method == "POST" and action == "preupload":
            return self.preupload(repo_type, repo_id, revision)
        if method == "POST" and action == "commit":
            return self.commit(repo_type, repo_id, revision)
        if action == "branch" and method in ("POST", "DELETE"):
            return self.branch(repo_type, repo_id, "/".join(rest[1:]))
        if action == "tag" and method in ("POST", "DELETE"):
            return self.tag(repo_type, repo_id, "/".join(rest[1:]))
        if action.startswith("xet-"):
            raise HubError(501, "This hub does not speak Xet: set HF_HUB_DISABLE_XET=1 to upload large files via LFS")
        if action == "discussions" and method == "POST" and len(rest) == 1:
            return self.open_pull_request(repo_type, repo_id)
        if action == "discussions" and method == "GET" and len(rest) == 2 and re.fullmatch("[0-9]{1,9}", rest[1]):
            return self.pull_request(repo_type, repo_id, int(rest[1]))
        raise HubError(404, f"No route for {method} {self.path}")

    # endpoints
    def whoami(self) -> None:
        user = self.user()
        if user is None:
            raise HubError(401, "No token given")
        self.send_json({"type": "user", "name": user, "fullname": user, "orgs": [], "auth": {"type": "access_token"}})

    def validate_yaml(self) -> None:
        content = field(self.read_json(), "content", str, "")
        try:
            if content.startswith("---"):
                _safe_yaml(content.split("---", 2)[1])
        except (yaml.YAMLError, IndexError) as exc:
            self.send_json({"errors": [{"message": f"Invalid YAML: {exc}"}], "warnings": []}, 400)
            return
        self.send_json({"errors": [], "warnings": []})

    def create_repo(self) -> None:
        author = self.require_writer()
        payload = self.read_json()
        repo_type = field(payload, "type", str, "model")
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}: expected one of {', '.join(REPO_TYPES)}")
        repo_id = f"{field(payload, 'organization', str, author)}/{field(payload, 'name', str)}"
        check_repo_id(repo_id)
        private = field(payload, "private", bool, field(payload, "visibility", str, "public") == "private")
        url = f"{self.base_url}/{URL_PREFIXES[repo_type]}{repo_id}"
        try:
            self.store.create(repo_type, repo_id, private=private, author=author)
        except HubError as error:
            if error.status != 409:
                raise
            self.send_json({"error": str(error), "url": url}, 409)
            return
        self.send_json({"url": url, "name": repo_id})

    def repo_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.repo(repo_type, repo_id)
        commit = repo.read_commit(repo.resolve(revision))
        siblings = []
        for path, entry in sorted(commit.tree.items()):
            sibling: dict[str, Any] = {"rfilename": path, "size": entry.size, "blobId": entry.oid}
            if entry.lfs:
                sibling["lfs"] = {"size": entry.size, "sha256": entry.sha256, "pointerSize": len(entry.pointer)}
            siblings.append(sibling)
        card = _card_metadata(repo, commit.tree.get("README.md"))
        tags = card.get("tags")
        info = {
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": commit.id,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "lastModified": commit.date,
            "createdAt": repo.created,
            "siblings": siblings,
            "tags": [str(tag) for tag in tags] if isinstance(tags, list) else [],
            "cardData": card,
        }
        for key in ("library_name", "pipeline_tag"):
            if isinstance(card.get(key), str):
                info[key] = card[key]
        self.send_json(info)

    def tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.repo(repo_type, repo_id)
        commit = repo.read_commit(repo.resolve(revision))
        prefix = f"{check_path(path)}/" if path else ""
        recursive = self.query.get("recursive", "").lower() in ("1", "true")
        files, folders = [], set()
        for file_path, entry in sorted(commit.tree.items()):
            if not file_path.startswith(prefix):
                continue
            parts = file_path[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                files.append(file_entry(file_path, entry))
        if path and not files and not folders:
            raise HubError(404, f"{path} does not exist at {revision}", "EntryNotFound")
        entries = files + [folder_entry(commit, folder) for folder in sorted(folders)]
        if self.query.get("expand", "").lower() in ("1", "true"):
            add_last_commits(repo, commit, entries)
        self.send_json(entries)

    def paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        """The entries of the given paths (files or folders; paths that do not exist are left out)."""
        repo = self.repo(repo_type, repo_id)
        commit = repo.read_commit(repo.resolve(revision))
        form = self.read_form()
        entries = []
        for path in dict.fromkeys(form.get("paths", [])):
            path = check_path(path.strip("/"))
            if path in commit.tree:
                entries.append(file_entry(path, commit.tree[path]))
            elif is_folder(commit, path):
                entries.append(folder_entry(commit, path))
        if form.get("expand", ["false"])[-1].lower() in ("1", "true"):
            add_last_commits(repo, commit, entries)
        self.send_json(entries)

    def list_refs(self, repo_type: str, repo_id: str) -> None:
        repo = self.repo(repo_type, repo_id)

        def listing(kind: str, prefix: str) -> list[dict]:
            return [
                {"name": name, "ref": f"{prefix}{name}", "targetCommit": commit}
                for name, commit in repo.refs(kind).items()
            ]

        self.send_json(
            {
                "branches": listing("heads", "refs/heads/"),
                "tags": listing("tags", "refs/tags/"),
                "converts": [],
                "pullRequests": listing("pr", "refs/pr/"),
            }
        )

    def list_commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.repo(repo_type, repo_id)
        history = repo.history(repo.resolve(revision))
        self.send_json(
            [
                {"id": c.id, "title": c.title, "message": c.message, "authors": [{"user": c.author}], "date": c.date}
                for c in history
            ]
        )

    def preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        tree = repo.read_commit(repo.resolve(revision)).tree
        threshold = self.settings.lfs_threshold
        files = []
        for item in field(self.read_json(), "files", list, []):
            where = "Each item of 'files'"
            item = json_object(item, where)
            path = check_path(field(item, "path", str, where=where))
            size = field(item, "size", int, 0, where=where)
            lfs = threshold is not None and size >= threshold
            existing = tree.get(path)
            oid = None if existing is None else (existing.sha256 if existing.lfs else existing.oid)
            files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        self.send_json({"files": files})

    def commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        author = self.require_writer()
        repo = self.repo(repo_type, repo_id, write=True)
        repo.writable_ref(revision)
        lines = read_commit_lines(self.body, repo.store_chunks)
        first = next(lines, None)
        if first is None or first.key != "header":
            raise HubError(400, "A commit body starts with a header line")
        where = "The commit's header"
        if first.value is None:
            raise HubError(400, f"{where} lacks 'value'")
        parent_commit = field(first.value, "parentCommit", str, None, where=where)
        if parent_commit is not None and not is_commit_id(parent_commit):
            raise HubError(400, f"'parentCommit' must be a commit id (40 hex digits), not {parent_commit[:60]!r}")
        operations = [_operation(line.key, line.value, line.content_sha256) for line in lines]
        commit_id, pr_number = repo.commit(
            revision,
            operations,
            title=field(first.value, "summary", str, "", where=where) or "Upload files",
            message=field(first.value, "description", str, "", where=where),
            author=author,
            parent_commit=parent_commit,
            create_pr=self.query.get("create_pr") == "1",
        )
        url = f"{self.base_url}/{URL_PREFIXES[repo_type]}{repo_id}"
        self.send_json(
            {
                "success": True,
                "commitOid": commit_id,
                "commitUrl": f"{url}/commit/{commit_id}",
                "pullRequestUrl": f"{url}/discussions/{pr_number}" if pr_number else None,
            }
        )

    def branch(self, repo_type: str, repo_id: str, name: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        ref = f"refs/heads/{check_ref_name(name)}"
        if self.command == "DELETE":
            repo.delete_ref(ref)
        else:
            starting_point = field(self.read_json(), "startingPoint", str, DEFAULT_BRANCH)
            repo.create_ref(ref, repo.resolve(starting_point))
        self.send_json({"success": True})

    def tag(self, repo_type: str, repo_id: str, revision_or_tag: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        if self.command == "DELETE":
            repo.delete_ref(f"refs/tags/{check_ref_name(revision_or_tag)}")
        else:
            tag = check_ref_name(field(self.read_json(), "tag", str))
            repo.create_ref(f"refs/tags/{tag}", repo.resolve(revision_or_tag))
        self.send_json({"success": True})

    def open_pull_request(self, repo_type: str, repo_id: str) -> None:
        author = self.require_writer()
        repo = self.repo(repo_type, repo_id, write=True)
        payload = self.read_json()
        if not field(payload, "pullRequest", bool, False):
            raise HubError(400, "This hub supports pull requests only, not discussions")
        title, description = field(payload, "title", str, ""), field(payload, "description", str, "")
        number = repo.open_pull_request(title, description, author)
        url = f"{self.base_url}/{URL_PREFIXES[repo_type]}{repo_id}/discussions/{number}"
        self.send_json({"num": number, "url": url})

    def pull_request(self, repo_type: str, repo_id: str, number: int) -> None:
        repo = self.repo(repo_type, repo_id)
        record = repo.pull_request(number)
        self.send_json(
            {
                "num": number,
                "title": record["title"],
                "author": {"name": record["author"]},
                "createdAt": record["date"],
                "status": "open",
                "repo": {"name": repo_id, "type": repo_type},
                "isPullRequest": True,
                "events": [],
                "changes": {"base": record["base"]},
                "filesWithConflicts": [],
            }
        )

    def resolve_file(self, repo_type: str, repo_id: str, revision: str, path: str, *, raw: bool = False) -> None:
        """A file's content; with ``raw`` (the /raw/ route) what git stores for it: an LFS file's pointer."""
        repo = self.repo(repo_type, repo_id)
        commit_id = repo.resolve(revision)
        entry = repo.read_commit(commit_id).tree.get(check_path(path))
        if entry is None:
            raise HubError(404, f"Entry Not Found: {path} at {revision}", "EntryNotFound")
        headers = {"X-Repo-Commit": commit_id, "Accept-Ranges": "bytes", "ETag": f'"{entry.oid}"'}
        if entry.lfs and not raw:
            headers.update({"ETag": f'"{entry.sha256}"', "X-Linked-Etag": f'"{entry.sha256}"'})
            headers["X-Linked-Size"] = str(entry.size)
        size = entry.blob_size if raw else entry.size
        start, end = _byte_range(self.headers.get("Range"), size)
        status = HTTPStatus.PARTIAL_CONTENT if (start, end) != (0, size) else HTTPStatus.OK
        if status == HTTPStatus.PARTIAL_CONTENT:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "GET":
            with repo.open_blob(entry) if raw else open(repo.object_path(entry.sha256), "rb") as handle:
                handle.seek(start)
                _copy(handle, self.wfile, end - start)

    # git smart HTTP, read-only
    def send_git_error(self, error: HubError) -> None:
        """A refusal git shows its user (a text/plain body becomes "remote: ..." lines); a 401 asks for credentials,
        which git sends only when asked."""
        self.close_connection = True
        headers = {"X-Error-Message": str(error), "Connection": "close"}
        if error.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="adapterzoo hub"'
        self._send(error.status, f"{error}\n".encode(), "text/plain; charset=utf-8", headers)

    def git_view(self, repo_type: str, repo_id: str) -> git_http.GitView:
        try:
            repo = self.repo(repo_type, repo_id)
        except HubError as error:
            if error.code != "RepoNotFound" or self.user() is not None:
                raise
            raise HubError(401, f"Repository not found or private: {repo_id} (give a token as password)") from None
        return git_http.GitView(repo)

    def git_refs(self, repo_type: str, repo_id: str) -> None:
        try:
            git_http.check_service(self.query.get("service"))
            view = self.git_view(repo_type, repo_id)
            content_type = f"application/x-{git_http.UPLOAD_PACK}-advertisement"
            git_http.respond(self, content_type, lambda write: git_http.advertise_refs(view, write))
        except HubError as error:
            self.send_git_error(error)

    def git_service(self, repo_type: str, repo_id: str, service: str) -> None:
        try:
            git_http.check_service(service)
            if self.headers.get("Content-Type") != f"application/x-{service}-request":
                raise HubError(415, f"A {service} request has the Content-Type application/x-{service}-request")
            view = self.git_view(repo_type, repo_id)
            read = git_http.request_reader(self.headers, self.body)
            content_type = f"application/x-{service}-result"
            git_http.respond(self, content_type, lambda write: git_http.upload_pack(view, read, write))
        except HubError as error:
            self.send_git_error(error)

    # git LFS (basic transfer)
    def _signature(self, repo_type: str, repo_id: str, sha256: str, size: str) -> str:
        message = f"{repo_type}:{repo_id}:{sha256}:{size}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def lfs_batch(self, repo_type: str, repo_id: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        objects = []
        for item in field(self.read_json(), "objects", list, []):
            where = "Each item of 'objects'"
            item = json_object(item, where)
            sha256, size = check_oid(field(item, "oid", str, where=where)), field(item, "size", int, where=where)
            if not 0 <= size <= self.settings.max_body_size:
                raise HubError(413, f"LFS object {sha256} of {size} bytes exceeds this hub's limit")
            entry: dict[str, Any] = {"oid": sha256, "size": size, "authenticated": True}
            if not repo.has_object(sha256):
                href = f"{self.base_url}/api/lfs-upload/{repo_type}s/{repo_id}/{sha256}/{size}"
                signed = f"{href}?signature={self._signature(repo_type, repo_id, sha256, str(size))}"
                entry["actions"] = {"upload": {"href": signed}, "verify": {"href": signed}}
            objects.append(entry)
        self.send_json({"transfer": "basic", "objects": objects})

    def lfs_transfer(self, repo_type: str, repo_id: str, sha256: str, size: str) -> None:
        expected = self._signature(repo_type, repo_id, sha256, size)
        if not hmac.compare_digest(self.query.get("signature", "").encode(), expected.encode()):
            raise HubError(403, "Invalid or missing upload signature")
        repo = self.store.get(repo_type, repo_id)
        if self.command == "PUT":
            repo.store_stream(self.body, int(size), sha256)
        elif not repo.has_object(sha256):
            raise HubError(404, f"Object {sha256} was not uploaded")
        self.send_json({"success": True})


def _operation(key: Any, value: dict | None, content_sha256: str | None) -> Operation:
    """One commit line after the header, as a store `Operation`, with every field checked."""
    where = f"The commit's {key!r} line" if isinstance(key, str) else "A commit line"
    if value is None:
        raise HubError(400, f"{where} lacks 'value'")
    path = check_path(field(value, "path", str, where=where))
    if key == "file":
        if content_sha256 is None:
            raise HubError(400, f"{where} for '{path}' lacks 'content'")
        if field(value, "encoding", str, where=where) != "base64":
            raise HubError(400, f"Unsupported file encoding {value['encoding']!r}: this hub reads base64")
        return Operation("add", path, content_sha256)
    if content_sha256 is not None:
        raise HubError(400, f"{where} cannot carry 'content'")
    if key == "lfsFile":
        if field(value, "algo", str, "sha256", where=where) != "sha256":
            raise HubError(400, "LFS files are addressed by sha256")
        return Operation("add", path, check_oid(field(value, "oid", str, where=where)), lfs=True)
    if key == "deletedFile":
        return Operation("delete_file", path)
    if key == "deletedFolder":
        return Operation("delete_folder", path)
    raise HubError(400, f"Unknown commit operation {key!r}")


def _safe_yaml(text: str) -> Any:
    """YAML front matter, refusing aliases: a few nested aliases expand to gigabytes once the data is serialised."""
    if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
        raise yaml.YAMLError("aliases (*name) are not allowed in model card metadata")
    return yaml.safe_load(text)


def _card_metadata(repo: Repo, readme: Any) -> dict:
    """The README's YAML front matter as JSON-ready data; {} when there is none or it cannot be read safely."""
    if readme is None or readme.size > _MAX_CARD_BYTES:
        return {}
    text = repo.object_path(readme.sha256).read_text(errors="replace")
    if not text.startswith("---"):
        return {}
    try:
        data = json.loads(json.dumps(_safe_yaml(text.split("---", 2)[1]), default=str))
    except (yaml.YAMLError, IndexError, TypeError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _byte_range(header: str | None, size: int) -> tuple[int, int]:
    """The [start, end) of a single ``bytes=a-b`` range, or of the whole file."""
    if not header or not header.startswith("bytes=") or "," in header:
        return 0, size
    first, _, last = header[len("bytes=") :].partition("-")
    try:
        if first:
            start, end = int(first), (int(last) + 1 if last else size)
        else:
            start, end = max(0, size - int(last)), size
    except ValueError:
        return 0, size
    if start >= size or start >= end:
        raise HubError(416, f"Requested range not satisfiable: {header}")
    return start, min(end, size)


def _copy(source: IO[bytes], target: IO[bytes], count: int) -> None:
    while count > 0:
        chunk = source.read(min(1 << 20, count))
        if not chunk:
            break
        target.write(chunk)
        count -= len(chunk)


def make_server(settings: HubSettings, host: str = "127.0.0.1", port: int = 0) -> BoundedHTTPServer:
    """An HTTP server for ``settings`` (port 0 picks a free port), not yet serving."""
    handler = type(
        "BoundHubRequestHandler",
        (HubRequestHandler,),
        {
            "settings": settings,
            "store": RepoStore(settings.root),
            "secret": secrets.token_bytes(32),
            "timeout": settings.timeout,
        },
    )
    return BoundedHTTPServer((host, port), handler, max_connections=settings.max_connections)


class EmbeddedHub:
    """The embedded Hub in a background thread of this process.

    >>> with EmbeddedHub("hub-data") as hub, hub.activate():
    ...     model.push_to_hub("me/vit-vpt")          # goes to hub.url
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        port: int = 0,
        token: str | None = None,
        user: str = "local",
        lfs_threshold: int | None = None,
        **limits: Any,
    ):
        """``limits`` are `HubSettings`' ``max_body_size``, ``timeout`` and ``max_connections``."""
        self.settings = HubSettings(Path(root), token=token, user=user, lfs_threshold=lfs_threshold, **limits)
        self._server = make_server(self.settings, port=port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> EmbeddedHub:
        self._thread = threading.Thread(target=self._server.serve_forever, name="adapterzoo-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> EmbeddedHub:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @contextmanager
    def activate(self) -> Iterator[None]:
        """Point this process's ``huggingface_hub`` (and so transformers) at this hub while the block runs."""
        with use_endpoint(self.url):
            yield


@contextmanager
def use_endpoint(url: str) -> Iterator[None]:
    """Point ``huggingface_hub`` and transformers at ``url`` in this process, as ``HF_ENDPOINT`` would at import time.

    ``huggingface_hub`` reads ``HF_ENDPOINT`` once, into a constant, a URL template and its default ``HfApi``, and
    transformers keeps a shared ``HfApi`` made on first use: all are switched here, and restored afterwards.
    """
    from huggingface_hub import constants, hf_api
    from transformers.utils import hub as transformers_hub

    saved = constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint
    constants.ENDPOINT = url
    constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"
    hf_api.api.endpoint = url
    transformers_hub._hf_api = None
    try:
        yield
    finally:
        constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint = saved
        transformers_hub._hf_api = None


def serve(settings: HubSettings, host: str, port: int, announce: Callable[[str], None] = print) -> None:
    """Serve until interrupted (the ``adapterzoo hub serve`` command)."""
    server = make_server(settings, host, port)
    bound_host, bound_port = server.server_address[:2]
    announce(f"adapterzoo hub serving {settings.root} at http://{bound_host}:{bound_port}")
    announce(f"point clients at it with: export HF_ENDPOINT=http://{bound_host}:{bound_port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
