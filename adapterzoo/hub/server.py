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
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from adapterzoo.hub.store import (
    DEFAULT_BRANCH,
    HubError,
    Operation,
    Repo,
    RepoStore,
    check_path,
    check_ref_name,
    decode_regular_file,
)

API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}


@dataclass(frozen=True)
class HubSettings:
    """How the server behaves: where repos live, who may write, and when files go through LFS."""

    root: Path
    token: str | None = None
    user: str = "local"
    lfs_threshold: int | None = None
    verbose: bool = False


class _Body:
    """A request body, read from a Content-Length or a chunked transfer, that knows whether it arrived whole."""

    def __init__(self, handler: BaseHTTPRequestHandler):
        self.rfile = handler.rfile
        self.chunked = handler.headers.get("Transfer-Encoding", "").lower() == "chunked"
        self.remaining = int(handler.headers.get("Content-Length") or 0)
        self._buffer = b""
        self._done = False

    def _next_chunk(self) -> bytes:
        size_line = self.rfile.readline()
        if not size_line:
            raise HubError(400, "The request body ended early")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        data = self.rfile.read(size) if size else b""
        self.rfile.readline()
        if len(data) != size:
            raise HubError(400, "The request body ended early")
        if size == 0:
            self._done = True
        return data

    def read(self, n: int = -1) -> bytes:
        if not self.chunked:
            n = self.remaining if n < 0 else min(n, self.remaining)
            data = self.rfile.read(n) if n else b""
            self.remaining -= len(data)
            if len(data) < n:
                raise HubError(400, "The request body ended early")
            return data
        while not self._done and (n < 0 or len(self._buffer) < n):
            self._buffer += self._next_chunk()
        if n < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data


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

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{self.headers.get('Host') or f'{host}:{port}'}"

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", headers)

    def send_hub_error(self, error: HubError) -> None:
        # The request body may be partly unread: close the connection, and say so, so no client reuses it.
        self.close_connection = True
        headers = {"X-Error-Message": str(error).replace("\n", " "), "Connection": "close"}
        if error.code:
            headers["X-Error-Code"] = error.code
        self.send_json({"error": str(error)}, error.status, headers)

    def read_json(self) -> Any:
        try:
            return json.loads(self.body.read() or b"{}")
        except json.JSONDecodeError as exc:
            raise HubError(400, f"Invalid JSON body: {exc}") from exc

    def _dispatch(self) -> None:
        self.body = _Body(self)
        try:
            split = urlsplit(self.path)
            self.query = {key: values[-1] for key, values in parse_qs(split.query).items()}
            segments = [unquote(s) for s in split.path.strip("/").split("/")] if split.path.strip("/") else []
            self.route(segments)
            self.body.read()  # whatever the endpoint left unread must not leak into the next request
        except HubError as error:
            self.send_hub_error(error)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # report, never crash the server
            self.send_hub_error(HubError(500, f"Internal error: {exc!r}"))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    # authentication
    def user(self) -> str | None:
        """The authenticated user, None for an anonymous request; an invalid token is refused outright."""
        if self.settings.token is None:
            return self.settings.user
        header = self.headers.get("Authorization", "")
        if not header:
            return None
        if header == f"Bearer {self.settings.token}":
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
        if s[:2] == ["api", "lfs-upload"] and len(s) == 7:
            return self.lfs_transfer(API_TYPES.get(s[2], ""), f"{s[3]}/{s[4]}", s[5], s[6])
        if len(s) >= 4 and s[0] == "api" and s[1] in API_TYPES:
            return self.repo_api(API_TYPES[s[1]], f"{s[2]}/{s[3]}", s[4:])
        repo_type = "model"
        if s and s[0] in ("datasets", "spaces"):
            repo_type, s = API_TYPES[s[0]], s[1:]
        if len(s) >= 4 and s[2] == "resolve" and method in ("GET", "HEAD"):
            return self.resolve_file(repo_type, f"{s[0]}/{s[1]}", s[3], "/".join(s[4:]))
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
        if action == "discussions" and method == "GET" and len(rest) == 2 and rest[1].isdigit():
            return self.pull_request(repo_type, repo_id, int(rest[1]))
        raise HubError(404, f"No route for {method} {self.path}")

    # endpoints
    def whoami(self) -> None:
        user = self.user()
        if user is None:
            raise HubError(401, "No token given")
        self.send_json({"type": "user", "name": user, "fullname": user, "orgs": [], "auth": {"type": "access_token"}})

    def validate_yaml(self) -> None:
        content = self.read_json().get("content", "")
        try:
            if content.startswith("---"):
                yaml.safe_load(content.split("---", 2)[1])
        except (yaml.YAMLError, IndexError) as exc:
            self.send_json({"errors": [{"message": f"Invalid YAML: {exc}"}], "warnings": []}, 400)
            return
        self.send_json({"errors": [], "warnings": []})

    def create_repo(self) -> None:
        author = self.require_writer()
        payload = self.read_json()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or author}/{payload.get('name', '')}"
        private = payload.get("private", payload.get("visibility") == "private") or False
        url = f"{self.base_url}/{URL_PREFIXES.get(repo_type, '')}{repo_id}"
        try:
            self.store.create(repo_type, repo_id, private=bool(private), author=author)
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
            "tags": card.get("tags") or [],
            "cardData": card,
        }
        for key in ("library_name", "pipeline_tag"):
            if key in card:
                info[key] = card[key]
        self.send_json(info)

    def tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.repo(repo_type, repo_id)
        commit = repo.read_commit(repo.resolve(revision))
        prefix = f"{check_path(path)}/" if path else ""
        recursive = self.query.get("recursive", "").lower() in ("1", "true")
        entries, folders = [], set()
        for file_path, entry in sorted(commit.tree.items()):
            if not file_path.startswith(prefix):
                continue
            parts = file_path[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                item: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": file_path}
                if entry.lfs:
                    item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": len(entry.pointer)}
                entries.append(item)
        if path and not entries and not folders:
            raise HubError(404, f"{path} does not exist at {revision}", "EntryNotFound")
        tree_id = hashlib.sha1(commit.id.encode()).hexdigest()
        entries += [{"type": "directory", "oid": tree_id, "path": folder} for folder in sorted(folders)]
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
        for item in self.read_json().get("files", []):
            path = check_path(item["path"])
            lfs = threshold is not None and int(item.get("size", 0)) >= threshold
            existing = tree.get(path)
            oid = None if existing is None else (existing.sha256 if existing.lfs else existing.oid)
            files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        self.send_json({"files": files})

    def commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        author = self.require_writer()
        repo = self.repo(repo_type, repo_id, write=True)
        try:
            lines = [json.loads(line) for line in self.body.read().splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise HubError(400, f"Invalid commit body: {exc}") from exc
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "A commit body starts with a header line")
        header = lines[0]["value"]
        operations = [self._operation(repo, line) for line in lines[1:]]
        commit_id, pr_number = repo.commit(
            revision,
            operations,
            title=header.get("summary") or "Upload files",
            message=header.get("description") or "",
            author=author,
            parent_commit=header.get("parentCommit"),
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

    @staticmethod
    def _operation(repo: Repo, line: dict) -> Operation:
        key, value = line.get("key"), line.get("value", {})
        path = check_path(value.get("path", ""))
        if key == "file":
            return Operation("add", path, repo.store_bytes(decode_regular_file(value["content"], value["encoding"])))
        if key == "lfsFile":
            if value.get("algo", "sha256") != "sha256":
                raise HubError(400, "LFS files are addressed by sha256")
            return Operation("add", path, value["oid"], lfs=True)
        if key == "deletedFile":
            return Operation("delete_file", path)
        if key == "deletedFolder":
            return Operation("delete_folder", path)
        raise HubError(400, f"Unknown commit operation '{key}'")

    def branch(self, repo_type: str, repo_id: str, name: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        ref = f"refs/heads/{check_ref_name(name)}"
        if self.command == "DELETE":
            repo.delete_ref(ref)
        else:
            repo.create_ref(ref, repo.resolve(self.read_json().get("startingPoint") or DEFAULT_BRANCH))
        self.send_json({"success": True})

    def tag(self, repo_type: str, repo_id: str, revision_or_tag: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        if self.command == "DELETE":
            repo.delete_ref(f"refs/tags/{check_ref_name(revision_or_tag)}")
        else:
            tag = check_ref_name(self.read_json().get("tag", ""))
            repo.create_ref(f"refs/tags/{tag}", repo.resolve(revision_or_tag))
        self.send_json({"success": True})

    def open_pull_request(self, repo_type: str, repo_id: str) -> None:
        author = self.require_writer()
        repo = self.repo(repo_type, repo_id, write=True)
        payload = self.read_json()
        if not payload.get("pullRequest"):
            raise HubError(400, "This hub supports pull requests only, not discussions")
        number = repo.open_pull_request(payload.get("title", ""), payload.get("description", ""), author)
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

    def resolve_file(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.repo(repo_type, repo_id)
        commit_id = repo.resolve(revision)
        entry = repo.read_commit(commit_id).tree.get(check_path(path))
        if entry is None:
            raise HubError(404, f"Entry Not Found: {path} at {revision}", "EntryNotFound")
        headers = {"X-Repo-Commit": commit_id, "Accept-Ranges": "bytes", "ETag": f'"{entry.oid}"'}
        if entry.lfs:
            headers.update({"ETag": f'"{entry.sha256}"', "X-Linked-Etag": f'"{entry.sha256}"'})
            headers["X-Linked-Size"] = str(entry.size)
        start, end = _byte_range(self.headers.get("Range"), entry.size)
        status = HTTPStatus.PARTIAL_CONTENT if (start, end) != (0, entry.size) else HTTPStatus.OK
        if status == HTTPStatus.PARTIAL_CONTENT:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{entry.size}"
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "GET":
            with open(repo.object_path(entry.sha256), "rb") as handle:
                handle.seek(start)
                _copy(handle, self.wfile, end - start)

    # git LFS (basic transfer)
    def _signature(self, repo_type: str, repo_id: str, sha256: str, size: str) -> str:
        message = f"{repo_type}:{repo_id}:{sha256}:{size}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def lfs_batch(self, repo_type: str, repo_id: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        objects = []
        for item in self.read_json().get("objects", []):
            sha256, size = str(item["oid"]), int(item["size"])
            entry: dict[str, Any] = {"oid": sha256, "size": size, "authenticated": True}
            if not repo.has_object(sha256):
                href = f"{self.base_url}/api/lfs-upload/{repo_type}s/{repo_id}/{sha256}/{size}"
                signed = f"{href}?signature={self._signature(repo_type, repo_id, sha256, str(size))}"
                entry["actions"] = {"upload": {"href": signed}, "verify": {"href": signed}}
            objects.append(entry)
        self.send_json({"transfer": "basic", "objects": objects})

    def lfs_transfer(self, repo_type: str, repo_id: str, sha256: str, size: str) -> None:
        expected = self._signature(repo_type, repo_id, sha256, size)
        if not hmac.compare_digest(self.query.get("signature", ""), expected):
            raise HubError(403, "Invalid or missing upload signature")
        repo = self.store.get(repo_type, repo_id)
        if self.command == "PUT":
            repo.store_stream(self.body, int(size), sha256)
        elif not repo.has_object(sha256):
            raise HubError(404, f"Object {sha256} was not uploaded")
        self.send_json({"success": True})


def _card_metadata(repo: Repo, readme: Any) -> dict:
    if readme is None:
        return {}
    text = repo.object_path(readme.sha256).read_text(errors="replace")
    if not text.startswith("---"):
        return {}
    try:
        data = yaml.safe_load(text.split("---", 2)[1])
    except (yaml.YAMLError, IndexError):
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


def make_server(settings: HubSettings, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for ``settings`` (port 0 picks a free port), not yet serving."""
    handler = type(
        "BoundHubRequestHandler",
        (HubRequestHandler,),
        {"settings": settings, "store": RepoStore(settings.root), "secret": secrets.token_bytes(32)},
    )
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


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
    ):
        self.settings = HubSettings(Path(root), token=token, user=user, lfs_threshold=lfs_threshold)
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
