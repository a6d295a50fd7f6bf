"""Every route of the embedded Hub, fed generated hostile names, bodies and framing over a real socket.

After each request: no 5xx (but the Xet routes' 501, which says what to do), nothing beside the root created, changed
or served, no ref moved in a repository the request did not name, the immutable tag where it was (unless its repo was
deleted, by the route that deletes repos), and the server still answering.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import quote, urlsplit

from huggingface_hub import HfApi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapterzoo.hub import EmbeddedHub

SECRET = "fuzz secret beside the root"
HOSTILE = [
    "",
    ".",
    "..",
    "../..",
    "../../../../outside/secret.txt",
    "/etc/hostname",
    "main",
    "main\n",
    "v1",
    "../tags/v1",
    "refs/tags/v1",
    "refs/heads/main",
    "refs/pr/1",
    "refs/pr/01",
    "refs/pr/../../tags/v1",
    ".tmp-x",
    "feat",
    "feat/sub",
    "a" * 300,
    "\u6a21\u578b",
    "x\x00y",
    "\uff0e\uff0e",
    "0" * 40,
    "0" * 64,
    "-1",
    "lab",
    "victim",
]
REPOS = ["lab/target", "lab/missing", "lab/target/..", "../lab/victim", "lab/target\n", "lab", "a" * 100 + "/b"]
ROUTES = [
    ("GET", "/api/whoami-v2"),
    ("POST", "/api/validate-yaml"),
    ("POST", "/api/repos/create"),
    ("DELETE", "/api/repos/delete"),
    ("POST", "/api/repos/move"),
    ("GET", "/api/{kind}?search={name}&filter={path}&sort={name}&limit={size}&cursor={path}"),
    ("PUT", "/api/{kind}/{repo}/settings"),
    ("POST", "/api/{kind}/{repo}/duplicate"),
    ("POST", "/api/{kind}/{repo}/super-squash/{name}"),
    ("GET", "/api/{kind}/{repo}"),
    ("GET", "/api/{kind}/{repo}/revision/{name}"),
    ("GET", "/api/{kind}/{repo}/tree/{name}/{path}"),
    ("GET", "/api/{kind}/{repo}/refs"),
    ("GET", "/api/{kind}/{repo}/commits/{name}"),
    ("POST", "/api/{kind}/{repo}/preupload/{name}"),
    ("POST", "/api/{kind}/{repo}/commit/{name}"),
    ("POST", "/api/{kind}/{repo}/branch/{name}"),
    ("DELETE", "/api/{kind}/{repo}/branch/{name}"),
    ("POST", "/api/{kind}/{repo}/tag/{name}"),
    ("DELETE", "/api/{kind}/{repo}/tag/{name}"),
    ("POST", "/api/{kind}/{repo}/discussions"),
    ("GET", "/api/{kind}/{repo}/discussions"),
    ("GET", "/api/{kind}/{repo}/discussions/{name}"),
    ("POST", "/api/{kind}/{repo}/discussions/{name}/{path}"),
    ("POST", "/api/{kind}/{repo}/discussions/1/comment"),
    ("POST", "/api/{kind}/{repo}/discussions/1/comment/{name}/edit"),
    ("POST", "/api/{kind}/{repo}/discussions/1/title"),
    ("POST", "/api/{kind}/{repo}/discussions/1/status"),
    ("POST", "/api/{kind}/{repo}/discussions/1/merge"),
    ("GET", "/{prefix}{repo}/resolve/{name}/{path}"),
    ("HEAD", "/{prefix}{repo}/resolve/{name}/{path}"),
    ("POST", "/{prefix}{repo}.git/info/lfs/objects/batch"),
    ("PUT", "/api/lfs-upload/{kind}/{repo}/{name}/{size}"),
    ("GET", "/api/lfs-upload/{kind}/{repo}/{name}/{size}"),
    ("GET", "/api/{kind}/{repo}/xet-write-token/{name}"),
    ("POST", "/xet/{name}/v1/xorbs/default/{path}"),
    ("POST", "/xet/{name}/v1/shards"),
    ("GET", "/{prefix}{repo}/raw/{name}/{path}"),
    ("GET", "/{prefix}{repo}/info/refs?service={name}"),
    ("GET", "/{prefix}{repo}.git/info/refs?service=git-upload-pack"),
    ("POST", "/{prefix}{repo}/git-upload-pack"),
    ("POST", "/{prefix}{repo}.git/git-receive-pack"),
]

names = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=30))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), names)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(names, inner, max_size=4)),
    max_leaves=8,
)
FIELDS = [
    "path",
    "content",
    "encoding",
    "oid",
    "algo",
    "size",
    "summary",
    "parentCommit",
    "tag",
    "startingPoint",
    "name",
    "organization",
    "private",
    "files",
    "objects",
    "pullRequest",
    "title",
    "type",
    "fromRepo",
    "toRepo",
    "repository",
    "visibility",
    "gated",
    "message",
    "description",
    "comment",
    "content",
    "status",
]
objects = st.dictionaries(st.sampled_from(FIELDS), st.one_of(json_values, st.just("b2s=")), max_size=5)
commit_lines = st.fixed_dictionaries(
    {"key": st.sampled_from(["header", "file", "lfsFile", "deletedFile", "deletedFolder", "other"]), "value": objects}
)
bodies = st.one_of(
    st.just(b""),
    json_values.map(lambda value: json.dumps(value).encode()),
    objects.map(lambda value: json.dumps(value).encode()),
    st.lists(commit_lines, max_size=4).map(lambda lines: b"".join(json.dumps(x).encode() + b"\n" for x in lines)),
    st.binary(max_size=200),
    st.just(b"[" * 50_000),
)
framings = st.sampled_from(["length", "chunked", "bad-length", "negative-length", "bad-chunk"])


def encode(name: str, raw: bool) -> str:
    return quote(name, safe="/" if raw else "")


def frame(method: str, path: str, body: bytes, framing: str) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
    if path.endswith("/git-upload-pack"):
        head += "Content-Type: application/x-git-upload-pack-request\r\n"
    if framing == "chunked":
        return (
            (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
            + f"{len(body):x}\r\n".encode()
            + body
            + (b"\r\n0\r\n\r\n" if body else b"\r\n")
        )
    if framing == "bad-chunk":
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + b"-5\r\n" + body
    length = {"length": str(len(body)), "bad-length": "12abc", "negative-length": "-1"}[framing]
    return (head + f"Content-Length: {length}\r\n\r\n").encode() + body


def exchange(hub: EmbeddedHub, request: bytes) -> tuple[int, bytes]:
    url = urlsplit(hub.url)
    with socket.create_connection((url.hostname, url.port), timeout=20) as connection:
        try:
            connection.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and hung up before reading all of a refused body
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    return int(status_line.split()[1]), rest


def snapshot(folder: Path, hub_root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and hub_root not in p.parents}


def refs(api: HfApi, repo: str) -> dict[str, str]:
    listing = api.list_repo_refs(repo, include_pull_requests=True)
    return {r.ref: r.target_commit for r in [*listing.branches, *listing.tags, *listing.pull_requests]}


def make_repos(api: HfApi) -> tuple[str, dict[str, str]]:
    """(Re)create lab/target, tagged v1, and lab/victim: the tag's commit and the victim's refs."""
    for repo in ("lab/target", "lab/victim"):
        api.delete_repo(repo, missing_ok=True)
        api.create_repo(repo)
        api.upload_file(path_or_fileobj=b"content", path_in_repo="f.txt", repo_id=repo)
    api.create_tag("lab/target", tag="v1")
    api.upload_file(path_or_fileobj=b"proposed", path_in_repo="f.txt", repo_id="lab/target", create_pr=True)
    return refs(api, "lab/target")["refs/tags/v1"], refs(api, "lab/victim")


def test_no_route_can_be_made_to_fail_escape_or_move_a_ref(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text(SECRET)
    with EmbeddedHub(tmp_path / "hub", lfs_threshold=1000) as hub:
        root = Path(hub.settings.root)
        api = HfApi(endpoint=hub.url)
        expected = dict(zip(("tag", "victim"), make_repos(api), strict=True))
        outside = snapshot(tmp_path, root)

        @settings(
            max_examples=200,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            route=st.sampled_from(ROUTES),
            kind=st.sampled_from(["models", "datasets", "spaces", "nothing"]),
            repo=st.one_of(st.sampled_from(REPOS), names),
            name=names,
            path=names,
            size=st.sampled_from(["5", "-1", "abc", "99999999999999999999"]),
            raw=st.booleans(),
            body=bodies,
            framing=framings,
        )
        def probe(route, kind, repo, name, path, size, raw, body, framing) -> None:
            method, template = route
            target = template.format(
                kind=kind,
                prefix="" if kind == "models" else f"{kind}/",
                repo=encode(repo, raw=True),
                name=encode(name, raw),
                path=encode(path, raw),
                size=size,
            )
            status, answer = exchange(hub, frame(method, target, body, framing))
            assert status < 500, (method, target, status, answer)
            assert SECRET.encode() not in answer
            assert snapshot(tmp_path, root) == outside
            if not (api.repo_exists("lab/target") and api.repo_exists("lab/victim")):
                assert (method, template) == ("DELETE", "/api/repos/delete"), (target, body)
                expected.update(zip(("tag", "victim"), make_repos(api), strict=True))
            assert refs(api, "lab/victim") == expected["victim"]
            current = refs(api, "lab/target").get("refs/tags/v1")
            if current is None:
                assert (method, template) == ("DELETE", "/api/{kind}/{repo}/tag/{name}") and name == "v1"
                api.create_tag("lab/target", tag="v1", revision=expected["tag"])
            else:
                assert current == expected["tag"]

        probe()
        assert api.model_info("lab/target").sha
