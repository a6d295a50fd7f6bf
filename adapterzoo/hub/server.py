"""An embedded server that speaks the Hugging Face Hub's HTTP API to the real ``huggingface_hub`` client.

It serves what ``huggingface_hub``, transformers and datasets use to create repos, commit files (regular uploads in
the commit body, Xet or git-LFS uploads), download files and snapshots, read repo info, trees, refs and history, and
create branches and tags; and to list and search repos (`adapterzoo.hub.listing`), delete, move, duplicate them, change
their visibility and squash a branch's history. Repositories live on disk in a `RepoStore`.

Start it with ``adapterzoo hub serve --root DIR --port N`` or, in process, ``with EmbeddedHub(root) as hub:``, and point
clients at it with ``HF_ENDPOINT=hub.url`` (set before ``huggingface_hub`` is imported) or `EmbeddedHub.activate`.

Large and binary files: the preupload route answers "lfs" by the Hub's rule (`upload_modes`: binary, at least
``lfs_threshold`` bytes, 10 MiB by default, or matching an LFS pattern of ``.gitattributes``). ``huggingface_hub``
then uploads them through Xet when ``hf_xet`` is installed (the default), which this server speaks for uploads
(`xet`: a write token, then xorbs and shards on ``/xet/<store id>/v1/...``, each file rebuilt into an ordinary object),
or else through git-LFS (``HF_HUB_DISABLE_XET=1``). Downloads are plain HTTP either way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

from adapterzoo.hub import git_http, xet
from adapterzoo.hub.commit_body import read_commit_lines
from adapterzoo.hub.connections import BoundedHTTPServer
from adapterzoo.hub.descriptions import MAX_CARD_BYTES, describe, safe_yaml
from adapterzoo.hub.listing import list_page, next_page_url, parse_query
from adapterzoo.hub.names import (
    HubError,
    check_oid,
    check_path,
    check_ref_name,
    check_repo_id,
    is_commit_id,
    pull_request_number,
)
from adapterzoo.hub.request_body import MAX_JSON_BYTES, RequestBody, field, json_object
from adapterzoo.hub.store import DEFAULT_BRANCH, REPO_TYPES, Operation, Repo, RepoStore
from adapterzoo.hub.tree_entries import add_last_commits, file_entry, folder_entry, is_folder
from adapterzoo.hub.upload_modes import DEFAULT_THRESHOLD, lfs_patterns, upload_mode
from adapterzoo.hub.users import Accounts, Caller, SingleUser, UserDirectory, load_accounts

API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
_UNREAD_BODY_DRAINED = 1 << 20


@dataclass(frozen=True)
class HubSettings:
    """How the server behaves: where repos live, who may write, when files go through LFS, and its resource limits.

    Who may write is ``token`` (held by ``user``, who may write anywhere; none: everyone is ``user``) or, instead,
    ``users``: the users, tokens and organisations of a users file (see `adapterzoo.hub.users`).

    ``max_body_size`` bounds one request's body (a commit's files travel base64-encoded in it unless they go through
    LFS); ``timeout`` is how long a connection may sit idle or stall mid-request; ``max_connections`` caps open
    connections (each has a thread), lowered automatically when the process is short of file descriptors.
    """

    root: Path
    token: str | None = None
    user: str = "local"
    lfs_threshold: int = DEFAULT_THRESHOLD
    verbose: bool = False
    max_body_size: int = 1 << 30
    timeout: float = 60.0
    max_connections: int = 256
    users: UserDirectory | None = None

    def __post_init__(self) -> None:
        if self.users is not None and self.token is not None:
            raise ValueError("A users file gives each user their own tokens: it cannot be combined with a token")


def _header_value(value: str) -> str:
    """A header value in printable ASCII: anything else (non-Latin-1 names, control characters) percent-encoded."""
    return quote(value, safe=_HEADER_SAFE)


class HubRequestHandler(BaseHTTPRequestHandler):
    """Routes one HTTP request to the store. ``settings``, ``accounts``, ``store`` and ``secret`` are set per
    server."""

    protocol_version = "HTTP/1.1"
    server_version = "adapterzoo-hub"
    settings: HubSettings
    accounts: Accounts
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
        self._caller_known = False  # one connection serves several requests, each with its own credentials
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

    # authentication and permissions
    def caller(self) -> Caller | None:
        """Who sent this request, None if anonymous; an invalid token is refused outright (401). git sends the token
        as the password of Basic authentication. Authenticated once per request (listings ask once per repo)."""
        if not self._caller_known:
            header = self.headers.get("Authorization", "")
            password = git_http.basic_password(header)
            self._caller = self.accounts.authenticate(header if password is None else f"Bearer {password}")
            self._caller_known = True
        return self._caller

    def may_read(self, repo: Repo) -> bool:
        """Whether this request may see ``repo``: a private one is seen by its namespace's owner and members only."""
        return not repo.private or self.accounts.may_read(self.caller(), repo.id.split("/")[0])

    def check_write(self, repo_type: str, repo_id: str) -> str:
        """The user, if this request may write ``repo_id``: 401 without a token, 403 if it may not."""
        return self.accounts.check_write(self.caller(), repo_type, repo_id)

    def check_contributor(self) -> str:
        """The user, if this request may open pull requests and discussions and comment (a write token)."""
        return self.accounts.check_contributor(self.caller())

    def repo(self, repo_type: str, repo_id: str, *, write: bool = False) -> Repo:
        if write:
            self.check_write(repo_type, repo_id)
        else:
            self.caller()  # an invalid token is refused even where none is needed
        repo = self.store.get(repo_type, repo_id)
        if not self.may_read(repo):
            raise repo.not_found()
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
        if s[:3] == ["api", "repos", "delete"] and method == "DELETE":
            return self.delete_repo()
        if s[:3] == ["api", "repos", "move"] and method == "POST":
            return self.move_repo()
        if len(s) == 2 and s[0] == "api" and s[1] in API_TYPES and method == "GET":
            return self.list_repos(API_TYPES[s[1]])
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
        if s[:1] == ["xet"] and len(s) >= 4 and s[2] == "v1" and repo_type == "model":
            return self.xet_cas(s[1], s[3:])
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
        if method == "PUT" and action == "settings" and len(rest) == 1:
            return self.repo_settings(repo_type, repo_id)
        if method == "POST" and action == "duplicate" and len(rest) == 1:
            return self.duplicate_repo(repo_type, repo_id)
        if method == "POST" and action == "super-squash" and len(rest) <= 2:
            return self.super_squash(repo_type, repo_id, revision)
        if action == "branch" and method in ("POST", "DELETE"):
            return self.branch(repo_type, repo_id, "/".join(rest[1:]))
        if action == "tag" and method in ("POST", "DELETE"):
            return self.tag(repo_type, repo_id, "/".join(rest[1:]))
        if action == "xet-write-token" and method == "GET":
            return self.xet_write_token(repo_type, repo_id)
        if action == "discussions":
            return self.discussions_api(repo_type, repo_id, rest[1:])
        raise HubError(404, f"No route for {method} {self.path}")

    def discussions_api(self, repo_type: str, repo_id: str, rest: list[str]) -> None:
        method = self.command
        if not rest and method in ("GET", "POST"):
            return (self.list_discussions if method == "GET" else self.open_discussion)(repo_type, repo_id)
        if rest and re.fullmatch("[0-9]{1,9}", rest[0]):
            number, action = int(rest[0]), rest[1:]
            if method == "GET" and not action:
                return self.discussion(repo_type, repo_id, number)
            if method == "POST" and action == ["comment"]:
                return self.comment_discussion(repo_type, repo_id, number)
            if method == "POST" and len(action) == 3 and action[0] == "comment" and action[2] == "edit":
                return self.edit_discussion_comment(repo_type, repo_id, number, action[1])
            if method == "POST" and action == ["title"]:
                return self.rename_discussion(repo_type, repo_id, number)
            if method == "POST" and action == ["status"]:
                return self.change_discussion_status(repo_type, repo_id, number)
            if method == "POST" and action == ["merge"]:
                return self.merge_pull_request(repo_type, repo_id, number)
        raise HubError(404, f"No route for {method} {self.path}")

    # endpoints
    def whoami(self) -> None:
        caller = self.caller()
        if caller is None:
            raise HubError(401, "No token given")
        self.send_json(self.accounts.whoami(caller))

    def validate_yaml(self) -> None:
        content = field(self.read_json(), "content", str, "")
        try:
            if content.startswith("---"):
                safe_yaml(content.split("---", 2)[1])
        except (yaml.YAMLError, IndexError) as exc:
            self.send_json({"errors": [{"message": f"Invalid YAML: {exc}"}], "warnings": []}, 400)
            return
        self.send_json({"errors": [], "warnings": []})

    def create_repo(self) -> None:
        payload = self.read_json()
        repo_type, repo_id = self._named_repo(payload)
        author = self.check_write(repo_type, repo_id)
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

    def _named_repo(self, payload: dict) -> tuple[str, str]:
        """The repo type and id a create or delete body names (``type``, ``organization``, ``name``), the
        namespace defaulting to the requester's."""
        repo_type = field(payload, "type", str, "model")
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}: expected one of {', '.join(REPO_TYPES)}")
        caller = self.caller()
        namespace = field(payload, "organization", str, None) or (caller.name if caller else "")
        return repo_type, f"{namespace}/{field(payload, 'name', str)}"

    def delete_repo(self) -> None:
        repo_type, repo_id = self._named_repo(self.read_json())
        self.check_write(repo_type, repo_id)
        self.store.delete(repo_type, self.repo(repo_type, repo_id).id)
        self.send_json({"success": True})

    def move_repo(self) -> None:
        payload = self.read_json()
        repo_type = field(payload, "type", str, "model")
        from_id, to_id = field(payload, "fromRepo", str), field(payload, "toRepo", str)
        self.check_write(repo_type, from_id)
        self.check_write(repo_type, to_id)
        check_repo_id(to_id)
        self.store.move(repo_type, self.repo(repo_type, from_id).id, to_id)
        self.send_json({"success": True, "url": f"{self.base_url}/{URL_PREFIXES[repo_type]}{to_id}"})

    def repo_settings(self, repo_type: str, repo_id: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        payload = self.read_json()
        if not payload:
            raise HubError(400, "Pass 'visibility' ('public' or 'private') to change a repo's settings")
        private = _private_setting(payload, repo_type)
        if private is not None:
            repo.set_private(private)
        self.send_json({"success": True})

    def duplicate_repo(self, repo_type: str, repo_id: str) -> None:
        payload = self.read_json()
        if unsupported := sorted(set(payload) - {"repository", "visibility", "private"}):
            raise HubError(
                400, f"This hub cannot duplicate with {unsupported[0]!r}: only 'repository' and 'visibility'"
            )
        to_id = field(payload, "repository", str)
        self.check_write(repo_type, to_id)
        check_repo_id(to_id)
        source = self.repo(repo_type, repo_id)
        settings = {key: value for key, value in payload.items() if key != "repository"}
        private = _private_setting(settings, repo_type) if settings else None
        url = f"{self.base_url}/{URL_PREFIXES[repo_type]}{to_id}"
        try:
            self.store.duplicate(repo_type, source.id, to_id, private=private)
        except HubError as error:
            if error.status != 409:
                raise
            self.send_json({"error": str(error), "url": url}, 409)  # the client's exist_ok reads the url
            return
        self.send_json({"url": url, "filesCopyPending": False})

    def super_squash(self, repo_type: str, repo_id: str, branch: str) -> None:
        author = self.check_write(repo_type, repo_id)
        repo = self.repo(repo_type, repo_id)
        message = field(self.read_json(), "message", str, "") or f"Super-squash branch '{branch}'"
        self.send_json({"commitId": repo.squash(branch, message, author)})

    def list_repos(self, repo_type: str) -> None:
        listing = parse_query(repo_type, parse_qs(urlsplit(self.path).query, errors="strict"))
        items, after = list_page(self.store.all_repos([repo_type]), listing, self.may_read)
        headers = {}
        if after is not None:
            headers["Link"] = f'<{next_page_url(f"{self.base_url}/api/{repo_type}s", listing, after)}>; rel="next"'
        self.send_json(items, headers=headers)

    def repo_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.repo(repo_type, repo_id)
        self.send_json(describe(repo, repo.read_commit(repo.resolve(revision))))

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
        repo = self.repo(repo_type, repo_id)
        self.check_contributor()
        tree = repo.read_commit(repo.resolve(revision)).tree
        attributes = tree.get(".gitattributes")
        patterns = []
        if attributes is not None and attributes.size <= MAX_CARD_BYTES:
            patterns = lfs_patterns(repo.object_path(attributes.sha256).read_text(errors="replace"))
        files = []
        for item in field(self.read_json(), "files", list, []):
            where = "Each item of 'files'"
            item = json_object(item, where)
            path = check_path(field(item, "path", str, where=where))
            size = field(item, "size", int, 0, where=where)
            sample = _base64(field(item, "sample", str, "", where=where), "'sample'")
            mode = upload_mode(path, size, sample, self.settings.lfs_threshold, patterns)
            existing = tree.get(path)
            oid = None if existing is None else (existing.sha256 if existing.lfs else existing.oid)
            files.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self.send_json({"files": files})

    def commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.repo(repo_type, repo_id)
        create_pr = self.query.get("create_pr") == "1"
        author = self.committer(repo, revision, create_pr)
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
            create_pr=create_pr,
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

    def committer(self, repo: Repo, revision: str, create_pr: bool) -> str:
        """Who commits: to a branch, a writer; to a new pull request, any contributor; to an open pull request's
        ref, its author or a writer."""
        if create_pr:
            return self.check_contributor()
        number = pull_request_number(revision or "")
        if number is None:
            return self.check_write(repo.type, repo.id)
        if repo.discussions.get(number)["status"] != "open":
            raise HubError(409, f"Pull request {number} is not open: commits to {revision} are refused")
        return self.discussion_moderator(repo, number)

    def discussion_moderator(self, repo: Repo, number: int) -> str:
        """The user, if they opened discussion ``number`` or may write the repo."""
        user = self.check_contributor()
        if user == repo.discussions.get(number)["author"]:
            return user
        return self.check_write(repo.type, repo.id)

    def list_discussions(self, repo_type: str, repo_id: str) -> None:
        page = self.query.get("p", "0")
        if not re.fullmatch("[0-9]{1,6}", page):
            raise HubError(400, f"Invalid page {page[:20]!r}: expected a number")
        listing = self.repo(repo_type, repo_id).discussions.listing(
            kind=self.query.get("type", "all"),
            status=self.query.get("status", "all"),
            author=self.query.get("author"),
            page=int(page),
        )
        self.send_json(listing)

    def open_discussion(self, repo_type: str, repo_id: str) -> None:
        repo = self.repo(repo_type, repo_id)
        author = self.check_contributor()
        payload = self.read_json()
        title, description = field(payload, "title", str), field(payload, "description", str, "")
        number = repo.discussions.open(
            title, description, author, pull_request=field(payload, "pullRequest", bool, False)
        )
        url = f"{self.base_url}/{URL_PREFIXES[repo_type]}{repo_id}/discussions/{number}"
        self.send_json({"num": number, "url": url})

    def discussion(self, repo_type: str, repo_id: str, number: int) -> None:
        repo = self.repo(repo_type, repo_id)
        self.send_json(repo.discussions.details(number, diff=self.query.get("diff") == "1"))

    def comment_discussion(self, repo_type: str, repo_id: str, number: int) -> None:
        repo = self.repo(repo_type, repo_id)
        author = self.check_contributor()
        comment = field(self.read_json(), "comment", str)
        self.send_json({"newMessage": repo.discussions.comment(number, author, comment)})

    def edit_discussion_comment(self, repo_type: str, repo_id: str, number: int, comment_id: str) -> None:
        repo = self.repo(repo_type, repo_id)
        author = self.check_contributor()
        content = field(self.read_json(), "content", str)
        self.send_json({"updatedComment": repo.discussions.edit_comment(number, comment_id, author, content)})

    def rename_discussion(self, repo_type: str, repo_id: str, number: int) -> None:
        repo = self.repo(repo_type, repo_id)
        author = self.discussion_moderator(repo, number)
        title = field(self.read_json(), "title", str)
        self.send_json({"newTitle": repo.discussions.rename(number, author, title)})

    def change_discussion_status(self, repo_type: str, repo_id: str, number: int) -> None:
        repo = self.repo(repo_type, repo_id)
        author = self.discussion_moderator(repo, number)
        payload = self.read_json()
        status, comment = field(payload, "status", str), field(payload, "comment", str, None)
        self.send_json({"newStatus": repo.discussions.set_status(number, author, status, comment)})

    def merge_pull_request(self, repo_type: str, repo_id: str, number: int) -> None:
        author = self.check_write(repo_type, repo_id)
        repo = self.repo(repo_type, repo_id)
        comment = field(self.read_json(), "comment", str, None)
        self.send_json({"success": True, "mergeCommitId": repo.discussions.merge(number, author, comment)})

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
            if error.code != "RepoNotFound" or self.caller() is not None:
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
        repo = self.repo(repo_type, repo_id)
        self.check_contributor()
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

    # Xet (uploads; see `adapterzoo.hub.xet`)
    def xet_write_token(self, repo_type: str, repo_id: str) -> None:
        self.repo(repo_type, repo_id, write=True)
        expires = int(time.time()) + xet.TOKEN_SECONDS
        token = xet.write_token(self.secret, repo_type, repo_id, expires)
        self.send_json({"accessToken": token, "exp": expires, "casUrl": f"{self.base_url}/xet/{self.store.xet_id}"})

    def xet_cas(self, store_id: str, rest: list[str]) -> None:
        if store_id != self.store.xet_id:
            raise HubError(404, "This Xet endpoint belongs to another store: clients get the current one with a token")
        repo_type, repo_id = xet.check_token(self.secret, self.headers.get("Authorization", ""))
        repo = self.store.get(repo_type, repo_id)
        if self.command == "GET" and len(rest) == 3 and rest[0] == "chunks":
            raise HubError(404, f"No deduplication information for chunk {check_oid(rest[2])}")
        if self.command == "POST" and len(rest) == 3 and rest[0] == "xorbs":
            inserted = self.store.store_xorb(check_oid(rest[2]), self._body_pieces(xet.MAX_XORB_BYTES), xet.check_xorb)
            return self.send_json({"was_inserted": inserted})
        if self.command == "POST" and rest == ["shards"]:
            shard = b"".join(self._body_pieces(xet.MAX_SHARD_BYTES))
            xet.store_shard(shard, repo, self.store, self.settings.max_body_size)
            return self.send_json({"result": 1})
        raise HubError(404, f"No route for {self.command} {self.path}")

    def _body_pieces(self, limit: int) -> Iterator[bytes]:
        """The request body in pieces as it arrives, refused (413) past ``limit`` bytes."""
        if not self.body.chunked and self.body.remaining > limit:
            raise HubError(413, f"This body is limited to {limit} bytes")
        received = 0
        while piece := self.body.read(1 << 20):
            received += len(piece)
            if received > limit:
                raise HubError(413, f"This body is limited to {limit} bytes")
            yield piece


def _operation(key: Any, value: dict | None, content_sha256: str | None) -> Operation:
    """One commit line after the header, as a store `Operation`, with every field checked."""
    where = f"The commit's {key!r} line" if isinstance(key, str) else "A commit line"
    if value is None:
        raise HubError(400, f"{where} lacks 'value'")
    path = field(value, "path", str, where=where)
    path = check_path(path.removesuffix("/") if key == "deletedFolder" else path)
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


def _private_setting(payload: dict, repo_type: str) -> bool | None:
    """Whether a settings or duplicate body makes the repo private (``visibility`` or, from older clients,
    ``private``), None when it does not say; settings this hub has no use for are refused, not ignored."""
    if unsupported := sorted(set(payload) - {"visibility", "private", "gated"}):
        raise HubError(400, f"This hub has no setting {unsupported[0]!r}: it knows 'visibility' and 'private'")
    if payload.get("gated") is not None and payload["gated"] is not False:
        raise HubError(400, "This hub does not gate repositories: 'gated' can only be false")
    visibility = field(payload, "visibility", str, None)
    if visibility not in (None, "public", "private"):
        raise HubError(400, f"Invalid visibility {visibility!r} for a {repo_type}: expected 'public' or 'private'")
    return visibility == "private" if visibility is not None else field(payload, "private", bool, None)


def _base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise HubError(400, f"{what} is not valid base64: {exc}") from None


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
            "accounts": settings.users or SingleUser(settings.user, settings.token),
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
        users: str | os.PathLike | Mapping[str, Any] | None = None,
        lfs_threshold: int = DEFAULT_THRESHOLD,
        **limits: Any,
    ):
        """``users`` is a users file or its content (see `adapterzoo.hub.users`), instead of ``token`` and ``user``;
        ``limits`` are `HubSettings`' ``max_body_size``, ``timeout`` and ``max_connections``."""
        directory = None if users is None else load_accounts(users)
        self.settings = HubSettings(
            Path(root), token=token, user=user, users=directory, lfs_threshold=lfs_threshold, **limits
        )
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
    """Point ``huggingface_hub``, transformers and datasets at ``url`` in this process, as ``HF_ENDPOINT`` would at
    import time.

    ``huggingface_hub`` reads ``HF_ENDPOINT`` once, into a constant, a URL template and its default ``HfApi``,
    transformers keeps a shared ``HfApi`` made on first use, and datasets copies ``HF_ENDPOINT`` into its own config:
    all are switched here (datasets also when imported inside the block, through the variable), and restored after.
    """
    from huggingface_hub import constants, hf_api
    from transformers.utils import hub as transformers_hub

    saved = constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint
    saved_variable = os.environ.get("HF_ENDPOINT")
    datasets_config = sys.modules.get("datasets.config")
    saved_datasets = datasets_config and (datasets_config.HF_ENDPOINT, datasets_config.HUB_DATASETS_URL)
    constants.ENDPOINT = os.environ["HF_ENDPOINT"] = url
    constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"
    hf_api.api.endpoint = url
    transformers_hub._hf_api = None
    if datasets_config:
        datasets_config.HF_ENDPOINT = url
        datasets_config.HUB_DATASETS_URL = url + "/datasets/{repo_id}/resolve/{revision}/{path}"
    try:
        yield
    finally:
        constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint = saved
        transformers_hub._hf_api = None
        if datasets_config:
            datasets_config.HF_ENDPOINT, datasets_config.HUB_DATASETS_URL = saved_datasets
        if saved_variable is None:
            os.environ.pop("HF_ENDPOINT", None)
        else:
            os.environ["HF_ENDPOINT"] = saved_variable


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
