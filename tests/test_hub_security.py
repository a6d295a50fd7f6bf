"""The embedded Hub against an attacker: names that try to leave the root or move refs, malformed bodies, idle and
numerous connections, crash debris. Each case was reproduced against the server before it was hardened."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import resource
import socket
import subprocess
import sys
import tracemalloc
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from adapterzoo.hub import EmbeddedHub
from adapterzoo.hub.commit_body import read_commit_lines
from adapterzoo.hub.store import RepoStore

SECRET = "top secret outside the hub"


@pytest.fixture
def outside(hub: EmbeddedHub) -> Path:
    """A file beside the hub's root that no request may read."""
    path = Path(hub.settings.root).parent / "outside.txt"
    path.write_text(SECRET)
    return path


def ndjson(*lines: dict) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


HEADER = {"key": "header", "value": {"summary": "attack"}}


def commit(raw_request, hub: EmbeddedHub, repo: str, revision: str, *lines: dict, query: str = ""):
    path = f"/api/models/{repo}/commit/{quote(revision, safe='')}{query}"
    return raw_request(hub, "POST", path, ndjson(HEADER, *lines))


def refs(api: HfApi, repo: str) -> dict:
    listing = api.list_repo_refs(repo, include_pull_requests=True)
    return {r.ref: r.target_commit for r in [*listing.branches, *listing.tags, *listing.pull_requests]}


def error_of(body: bytes) -> str:
    return json.loads(body)["error"]


@pytest.mark.parametrize("oid", ["/etc/hostname", "../../../../outside.txt", "A" * 64, "0" * 63, "0" * 65])
def test_an_lfs_oid_is_a_sha256_never_a_path(hub, api, raw_request, outside: Path, oid: str) -> None:
    api.create_repo("lab/lfs")
    head = api.model_info("lab/lfs").sha
    line = {"key": "lfsFile", "value": {"path": "x", "algo": "sha256", "oid": oid, "size": 5}}
    status, body, _ = commit(raw_request, hub, "lab/lfs", "main", line)
    assert status == 400 and "LFS oid" in error_of(body) and "64 lowercase hex" in error_of(body)
    assert api.model_info("lab/lfs").sha == head
    status, body, _ = raw_request(hub, "GET", "/lab/lfs/resolve/main/x")
    assert status == 404 and SECRET.encode() not in body


def test_the_lfs_batch_endpoint_is_no_existence_oracle(hub, api, raw_request, tmp_path: Path) -> None:
    api.create_repo("lab/oracle")
    answers = []
    for oid in ["/etc/hostname", "/no/such/file/anywhere"]:
        body = json.dumps({"operation": "upload", "objects": [{"oid": oid, "size": 5}]}).encode()
        status, answer, _ = raw_request(hub, "POST", "/lab/oracle.git/info/lfs/objects/batch", body)
        answers.append((status, error_of(answer).replace(oid, "<oid>")))
    assert answers[0] == answers[1] and answers[0][0] == 400


def test_an_upload_to_an_escaping_oid_is_refused_even_when_signed(hub, api, raw_request) -> None:
    api.create_repo("lab/up")
    oid = "../../../../escaped"
    secret = hub._server.RequestHandlerClass.secret
    signature = hmac.new(secret, f"model:lab/up:{oid}:5".encode(), hashlib.sha256).hexdigest()
    path = f"/api/lfs-upload/models/lab/up/{quote(oid, safe='')}/5?signature={signature}"
    status, body, _ = raw_request(hub, "PUT", path, b"hello")
    assert status == 400 and "LFS oid" in error_of(body)
    root = Path(hub.settings.root)
    assert not list(root.parent.rglob("escaped"))


def test_a_commit_cannot_move_a_tag_or_another_repos_branch(hub, api, raw_request) -> None:
    api.create_repo("lab/target")
    api.create_repo("lab/victim")
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="f", repo_id="lab/target")
    api.create_tag("lab/target", tag="v1")
    before = {repo: refs(api, repo) for repo in ("lab/target", "lab/victim")}
    add = {"key": "file", "value": {"path": "f", "content": "ZXZpbA==", "encoding": "base64"}}
    for revision in ["../tags/v1", "refs/tags/v1", "v1", "../../../../models/lab/victim/refs/heads/main"]:
        status, body, _ = commit(raw_request, hub, "lab/target", revision, add)
        assert 400 <= status < 500, (revision, status, body)
    assert {repo: refs(api, repo) for repo in ("lab/target", "lab/victim")} == before


@pytest.mark.parametrize(
    "payload, rule",
    [
        ({"name": "model\n", "organization": "lab"}, "each part is ASCII"),
        ({"name": "model", "organization": "lab\n"}, "each part is ASCII"),
        ({"name": "a\uff0eb", "organization": "lab"}, "each part is ASCII"),
        ({"name": "a..b", "organization": "lab"}, "'..' and '--'"),
        ({"name": "-a", "organization": "lab"}, "not starting or ending"),
        ({"name": "x" * 200, "organization": "lab"}, "longer than 96"),
        ({"name": "a/b", "organization": "lab"}, "namespace/name"),
        ({"name": 5, "organization": "lab"}, "must be a string, not an integer"),
        ({"organization": "lab"}, "lacks 'name'"),
    ],
)
def test_repo_names_follow_the_hubs_rules(hub, raw_request, payload: dict, rule: str) -> None:
    status, body, headers = raw_request(hub, "POST", "/api/repos/create", json.dumps(payload).encode())
    assert status == 400 and rule in error_of(body)
    assert "\n" not in headers["X-Error-Message"]
    assert not list(Path(hub.settings.root).glob("models/*/*"))


@pytest.mark.parametrize(
    "name, rule",
    [
        ("main\n", "control characters"),
        ("feat~1", "control characters"),
        ("a..b", "'..'"),
        (".hidden", "start with '.'"),
        ("x.lock", "end with '.lock'"),
        ("x" * 5000, "longer than 200"),
        ("caf\u00e9", "only ASCII"),
        ("refs/heads/x", "cannot start with 'refs/'"),
        ("a//b", "'//'"),
    ],
)
def test_branch_names_follow_gits_rules(hub, api, raw_request, name: str, rule: str) -> None:
    api.create_repo("lab/branches")
    status, body, _ = raw_request(hub, "POST", f"/api/models/lab/branches/branch/{quote(name, safe='')}", b"{}")
    assert status == 400 and rule in error_of(body)
    assert set(refs(api, "lab/branches")) == {"refs/heads/main"}


def test_a_long_revision_is_a_400_not_a_500(hub, api, raw_request) -> None:
    api.create_repo("lab/long")
    for path in [f"/api/models/lab/long/revision/{'r' * 5000}", f"/lab/long/resolve/{'r' * 5000}/f"]:
        status, body, _ = raw_request(hub, "GET", path)
        assert status == 400 and "longer than 200" in error_of(body)


def test_refs_that_would_nest_in_each_other_conflict(hub, api) -> None:
    api.create_repo("lab/nest")
    api.create_branch("lab/nest", branch="feat")
    with pytest.raises(HfHubHTTPError) as error:
        api.create_branch("lab/nest", branch="feat/sub")
    assert error.value.response.status_code == 409 and "conflicts with" in str(error.value)
    api.create_branch("lab/nest", branch="topic/one")
    with pytest.raises(HfHubHTTPError) as error:
        api.create_branch("lab/nest", branch="topic")
    assert error.value.response.status_code == 409
    api.delete_branch("lab/nest", branch="topic/one")
    api.create_branch("lab/nest", branch="topic")
    assert {"refs/heads/feat", "refs/heads/topic"} <= set(refs(api, "lab/nest"))


def test_a_file_and_a_folder_cannot_share_a_name(hub, api) -> None:
    api.create_repo("lab/clash")
    api.upload_file(path_or_fileobj=b"file", path_in_repo="a", repo_id="lab/clash")
    with pytest.raises(HfHubHTTPError) as error:
        api.upload_file(path_or_fileobj=b"nested", path_in_repo="a/b", repo_id="lab/clash")
    assert error.value.response.status_code == 409 and "both a file and a folder" in str(error.value)


MALFORMED = [
    ("POST", "/api/repos/create", {}, b"[1, 2]", "must be a JSON object, not an array"),
    ("POST", "/api/repos/create", {}, b'{"name": "x", "private": "yes"}', "must be true or false"),
    ("POST", "/api/repos/create", {}, b"\xff\xfe{}", "Invalid JSON body"),
    ("POST", "/api/repos/create", {}, b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("POST", "/api/repos/create", {}, b'{"name": ', "Invalid JSON body"),
    ("POST", "/api/models/lab/m/preupload/main", {}, b'{"files": [{"path": 5}]}', "must be a string"),
    ("POST", "/api/models/lab/m/preupload/main", {}, b'{"files": {"path": "x"}}', "must be an array"),
    ("POST", "/api/models/lab/m/preupload/main", {}, b'{"files": ["x"]}', "must be a JSON object"),
    ("POST", "/api/models/lab/m/commit/main", {}, b'{"key": "header"}\n', "lacks 'value'"),
    ("POST", "/api/models/lab/m/commit/main", {}, b"[]\n", "expected a JSON object"),
    ("POST", "/api/models/lab/m/commit/main", {}, ndjson(HEADER, {"key": "file", "value": {"path": 5}}), "string"),
    ("POST", "/api/models/lab/m/commit/main", {}, ndjson(HEADER, {"key": "deletedFile"}), "lacks 'value'"),
    ("POST", "/api/models/lab/m/commit/main", {}, ndjson(HEADER, {"key": "deletedFile", "value": {}}), "lacks 'path'"),
    ("POST", "/api/models/lab/m/commit/main", {}, ndjson(HEADER, {"key": "x", "value": {"path": "a"}}), "Unknown"),
    ("POST", "/api/models/lab/m/commit/main", {}, ndjson({"key": "header", "value": {"summary": ["x"]}}), "only"),
    ("POST", "/api/models/lab/m/branch/b", {}, b'{"startingPoint": 3}', "must be a string"),
    ("POST", "/api/models/lab/m/tag/main", {}, b"{}", "lacks 'tag'"),
    ("POST", "/api/models/lab/m/discussions", {}, b'{"pullRequest": true, "title": {}}', "must be a string"),
    ("POST", "/lab/m.git/info/lfs/objects/batch", {}, b'{"objects": [{"oid": 1, "size": 1}]}', "must be a string"),
    ("POST", "/api/repos/create", {"Content-Length": "-1"}, b"", "Invalid Content-Length"),
    ("POST", "/api/repos/create", {"Content-Length": "abc"}, b"", "Invalid Content-Length"),
    ("POST", "/api/repos/create", {"Transfer-Encoding": "chunked"}, b"zz\r\n{}\r\n0\r\n\r\n", "chunk size"),
    ("POST", "/api/repos/create", {"Transfer-Encoding": "gzip"}, b"", "Unsupported Transfer-Encoding"),
    ("GET", "/lab/m/resolve/main/%FF%FE", {}, b"", "not valid percent-encoded UTF-8"),
]


@pytest.mark.parametrize("method, path, headers, body, message", MALFORMED)
def test_malformed_requests_get_a_4xx_that_says_why(
    hub, api, raw_request, method, path, headers, body, message
) -> None:
    api.create_repo("lab/m")
    head = api.model_info("lab/m").sha
    if "Content-Length" in headers or "Transfer-Encoding" in headers:
        status, answer = send_raw(hub, method, path, headers, body)
    else:
        status, answer, _ = raw_request(hub, method, path, body)
    assert 400 <= status < 500, (status, answer)
    assert message in error_of(answer)
    assert api.model_info("lab/m").sha == head


def send_raw(hub: EmbeddedHub, method: str, path: str, headers: dict, body: bytes) -> tuple[int, bytes]:
    """A request whose framing headers are written as given (http.client would fix them)."""
    url = urlsplit(hub.url)
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection((url.hostname, url.port), timeout=10) as connection:
        connection.sendall(head.encode() + b"\r\n" + body)
        response = connection.makefile("rb").read()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(
    "path, status, encoded",
    [
        ("/lab/names/resolve/main/\u6a21\u578b.bin", 404, "%E6%A8%A1%E5%9E%8B.bin"),
        ("/api/models/lab/names/revision/\u5206\u652f", 400, "%E5%88%86%E6%94%AF"),
    ],
)
def test_non_latin1_names_are_percent_encoded_in_headers(hub, api, raw_request, path, status, encoded) -> None:
    api.create_repo("lab/names")
    answer_status, body, headers = raw_request(hub, "GET", quote(path))
    assert answer_status == status
    assert headers["X-Error-Message"].isascii() and encoded in headers["X-Error-Message"]
    assert path.rsplit("/", 1)[1] in error_of(body)


def test_an_oversized_body_is_refused_before_it_is_read(tmp_path: Path, raw_request) -> None:
    with EmbeddedHub(tmp_path / "hub", max_body_size=1000) as hub:
        HfApi(endpoint=hub.url).create_repo("lab/big")
        line = {
            "key": "file",
            "value": {"path": "f", "content": base64.b64encode(os.urandom(2000)).decode(), "encoding": "base64"},
        }
        status, body, _ = raw_request(hub, "POST", "/api/models/lab/big/commit/main", ndjson(HEADER, line))
        assert status == 413 and "limit of 1000 bytes" in error_of(body)
        api = HfApi(endpoint=hub.url)
        api.upload_file(path_or_fileobj=b"small", path_in_repo="ok", repo_id="lab/big")
        assert api.list_repo_files("lab/big") == ["ok"]


def test_idle_connections_are_closed_after_the_timeout(tmp_path: Path) -> None:
    with EmbeddedHub(tmp_path / "hub", timeout=0.5) as hub:
        url = urlsplit(hub.url)
        with socket.create_connection((url.hostname, url.port), timeout=30) as idle:
            assert idle.recv(1) == b""
        with socket.create_connection((url.hostname, url.port), timeout=30) as stalled:
            stalled.sendall(b"POST /api/repos/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            assert stalled.recv(1) == b""
        assert HfApi(endpoint=hub.url, token="any").whoami()["name"] == "local"


def test_the_hub_answers_while_300_idle_connections_are_open(hub, api) -> None:
    url = urlsplit(hub.url)
    idle = [socket.create_connection((url.hostname, url.port), timeout=10) for _ in range(300)]
    try:
        api.create_repo("lab/busy")
        api.upload_file(path_or_fileobj=b"still here", path_in_repo="f", repo_id="lab/busy")
        assert api.list_repo_files("lab/busy") == ["f"]
    finally:
        for connection in idle:
            connection.close()


def test_a_server_short_of_file_descriptors_still_serves(tmp_path: Path) -> None:
    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))

    server = subprocess.Popen(
        [sys.executable, "-m", "adapterzoo", "hub", "serve", "--root", str(tmp_path / "hub"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=limit_files,
    )
    try:
        url = urlsplit(server.stdout.readline().strip().rsplit(" at ", 1)[1])
        idle = []
        for _ in range(300):
            connection = socket.socket()
            connection.settimeout(0.2)
            try:
                connection.connect((url.hostname, url.port))
            except OSError:
                pass
            idle.append(connection)
        api = HfApi(endpoint=f"http://{url.hostname}:{url.port}")
        api.create_repo("lab/fds")
        api.upload_file(path_or_fileobj=b"served", path_in_repo="f", repo_id="lab/fds")
        assert api.list_repo_files("lab/fds") == ["f"]
        for connection in idle:
            connection.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_crash_debris_is_no_ref_and_is_cleaned_at_start(tmp_path: Path) -> None:
    with EmbeddedHub(tmp_path / "hub") as hub:
        api = HfApi(endpoint=hub.url)
        api.create_repo("lab/debris")
        head = api.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="lab/debris").oid
    repo = tmp_path / "hub" / "models" / "lab" / "debris"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftovers = [
        repo / "refs" / "heads" / ".tmp-abc123",
        repo / "refs" / "pr" / ".tmp-def456",
        repo / "objects" / ".upload-xyz",
        repo / "tmp" / f"{dead.stdout.strip()}-0123456789abcdef",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(head)
    live = repo / "tmp" / f"{os.getpid()}-fedcba9876543210"
    live.write_text("a write in progress in a live process")
    assert set(RepoStore(tmp_path / "hub").get("model", "lab/debris").refs("heads")) == {"main"}
    assert not any(path.exists() for path in leftovers) and live.exists()
    (repo / "refs" / "heads" / ".tmp-again").write_text(head)
    (repo / "refs" / "pr" / ".tmp-again").write_text(head)
    with EmbeddedHub(tmp_path / "hub") as hub:
        api = HfApi(endpoint=hub.url)
        assert refs(api, "lab/debris") == {"refs/heads/main": head}
        pr = api.upload_file(path_or_fileobj=b"y", path_in_repo="y", repo_id="lab/debris", create_pr=True)
        assert pr.pr_revision == "refs/pr/1"


def test_a_commit_body_is_read_in_bounded_memory() -> None:
    content = os.urandom(32 << 20)
    body = ndjson(
        HEADER,
        {"key": "file", "value": {"path": "big", "content": base64.b64encode(content).decode(), "encoding": "base64"}},
    )
    stored = {}

    def store(chunks) -> str:
        digest, size = hashlib.sha256(), 0
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
        stored[digest.hexdigest()] = size
        return digest.hexdigest()

    stream = io.BytesIO(body)
    tracemalloc.start()
    try:
        lines = list(read_commit_lines(stream, store))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert stored == {hashlib.sha256(content).hexdigest(): len(content)}
    assert lines[1].content_sha256 in stored and lines[1].value == {"path": "big", "encoding": "base64"}
    assert peak < len(content) // 4  # pieces of about 1 MiB; reading the line whole would take 2.3x its size


def test_yaml_aliases_in_a_model_card_are_not_expanded(hub, api, raw_request) -> None:
    levels = "".join(f"l{i + 1}: &l{i + 1} [*l{i}, *l{i}, *l{i}, *l{i}]\n" for i in range(20))
    api.create_repo("lab/card")
    card = base64.b64encode(f"---\nl0: &l0 [x, x]\n{levels}---\n".encode()).decode()
    line = {"key": "file", "value": {"path": "README.md", "content": card, "encoding": "base64"}}
    assert commit(raw_request, hub, "lab/card", "main", line)[0] == 200  # huggingface_hub would refuse to send it
    status, body, _ = raw_request(hub, "GET", "/api/models/lab/card")
    assert status == 200 and json.loads(body)["cardData"] == {}
    aliased = json.dumps({"content": "---\na: &a [1]\nb: *a\n---"}).encode()
    status, body, _ = raw_request(hub, "POST", "/api/validate-yaml", aliased)
    assert status == 400 and "aliases" in json.loads(body)["errors"][0]["message"]
