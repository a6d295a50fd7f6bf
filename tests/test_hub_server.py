"""The embedded Hub, driven by the real huggingface_hub client over HTTP on loopback (and by raw HTTP for refusals)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from adapterzoo.hub import EmbeddedHub


def download(hub: EmbeddedHub, repo_id: str, filename: str, tmp_path: Path, **kwargs) -> bytes:
    path = hf_hub_download(repo_id, filename, endpoint=hub.url, cache_dir=tmp_path / "cache", **kwargs)
    return Path(path).read_bytes()


def test_repos_are_created_once_and_described(api: HfApi) -> None:
    url = api.create_repo("lab/first")
    assert url.repo_id == "lab/first" and url.endpoint == api.endpoint
    with pytest.raises(HfHubHTTPError) as error:
        api.create_repo("lab/first")
    assert error.value.response.status_code == 409
    assert api.create_repo("lab/first", exist_ok=True).repo_id == "lab/first"
    info = api.model_info("lab/first")
    assert info.id == "lab/first" and len(info.sha) == 40 and info.siblings == [] and info.private is False
    assert api.create_repo("unnamespaced").repo_id == "local/unnamespaced"
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("lab/missing")


def test_commits_have_ids_history_and_content(api: HfApi, hub: EmbeddedHub, tmp_path: Path) -> None:
    api.create_repo("lab/files")
    first = api.upload_file(path_or_fileobj=b"one", path_in_repo="a.txt", repo_id="lab/files", commit_message="add a")
    second = api.create_commit(
        "lab/files",
        [
            CommitOperationAdd("nested/b.bin", b"\x00\x01two"),
            CommitOperationAdd("a.txt", b"one, edited"),
        ],
        commit_message="add b, edit a",
    )
    third = api.create_commit("lab/files", [CommitOperationDelete("a.txt")], commit_message="drop a")
    assert len({first.oid, second.oid, third.oid}) == 3
    history = api.list_repo_commits("lab/files")
    assert [c.commit_id for c in history][:3] == [third.oid, second.oid, first.oid]
    assert [c.title for c in history] == ["drop a", "add b, edit a", "add a", "initial commit"]
    assert api.list_repo_files("lab/files") == ["nested/b.bin"]
    assert download(hub, "lab/files", "a.txt", tmp_path, revision=first.oid) == b"one"
    assert download(hub, "lab/files", "a.txt", tmp_path, revision=second.oid) == b"one, edited"
    assert download(hub, "lab/files", "nested/b.bin", tmp_path) == b"\x00\x01two"
    tree = {entry.path: entry for entry in api.list_repo_tree("lab/files", recursive=True)}
    assert set(tree) == {"nested", "nested/b.bin"} and tree["nested/b.bin"].size == 5


def test_folders_upload_and_snapshots_download(api: HfApi, hub: EmbeddedHub, tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "config.json").write_text('{"x": 1}')
    (source / "sub" / "weights.bin").write_bytes(os.urandom(70_000))
    api.create_repo("lab/folder")
    api.upload_folder(repo_id="lab/folder", folder_path=source)
    snapshot = Path(snapshot_download("lab/folder", endpoint=hub.url, cache_dir=tmp_path / "cache"))
    assert (snapshot / "config.json").read_text() == '{"x": 1}'
    assert (snapshot / "sub" / "weights.bin").read_bytes() == (source / "sub" / "weights.bin").read_bytes()


def test_branches_tags_and_pull_requests(api: HfApi, hub: EmbeddedHub, tmp_path: Path) -> None:
    api.create_repo("lab/refs")
    on_main = api.upload_file(path_or_fileobj=b"main v1", path_in_repo="f.txt", repo_id="lab/refs")
    api.create_branch("lab/refs", branch="dev")
    api.create_branch("lab/refs", branch="dev", exist_ok=True)
    on_dev = api.upload_file(path_or_fileobj=b"dev v2", path_in_repo="f.txt", repo_id="lab/refs", revision="dev")
    api.create_tag("lab/refs", tag="v1.0", revision=on_main.oid)
    pr = api.upload_file(path_or_fileobj=b"proposed", path_in_repo="f.txt", repo_id="lab/refs", create_pr=True)
    assert pr.pr_revision == "refs/pr/1"
    assert download(hub, "lab/refs", "f.txt", tmp_path) == b"main v1"
    assert download(hub, "lab/refs", "f.txt", tmp_path, revision="dev") == b"dev v2"
    assert download(hub, "lab/refs", "f.txt", tmp_path, revision="v1.0") == b"main v1"
    assert download(hub, "lab/refs", "f.txt", tmp_path, revision="refs/pr/1") == b"proposed"
    refs = api.list_repo_refs("lab/refs", include_pull_requests=True)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": on_main.oid, "dev": on_dev.oid}
    assert {t.name: t.target_commit for t in refs.tags} == {"v1.0": on_main.oid}
    assert [p.ref for p in refs.pull_requests] == ["refs/pr/1"]
    with pytest.raises(RevisionNotFoundError):
        api.model_info("lab/refs", revision="no-such-branch")


def test_a_stale_parent_commit_is_refused(api: HfApi) -> None:
    api.create_repo("lab/race")
    base = api.model_info("lab/race").sha
    api.upload_file(path_or_fileobj=b"1", path_in_repo="a", repo_id="lab/race")
    with pytest.raises(HfHubHTTPError) as error:
        api.create_commit("lab/race", [CommitOperationAdd("b", b"2")], commit_message="late", parent_commit=base)
    assert error.value.response.status_code == 412
    assert api.list_repo_files("lab/race") == ["a"]


def test_concurrent_pushes_land_as_separate_commits(api: HfApi, hub: EmbeddedHub, tmp_path: Path) -> None:
    api.create_repo("lab/busy")
    payloads = {f"worker-{i}": os.urandom(200_000) for i in range(4)}
    results, errors = {}, []

    def push(name: str) -> None:
        try:
            content = payloads[name]
            operations = [CommitOperationAdd(f"{name}.bin", content), CommitOperationAdd("shared", content)]
            results[name] = api.create_commit("lab/busy", operations, commit_message=name).oid
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(name,)) for name in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    history = api.list_repo_commits("lab/busy")
    assert sorted(c.commit_id for c in history[:4]) == sorted(results.values())
    assert sorted(api.list_repo_files("lab/busy")) == sorted([*(f"{n}.bin" for n in payloads), "shared"])
    assert download(hub, "lab/busy", "shared", tmp_path) == payloads[history[0].title]


def test_private_repos_and_tokens(tmp_path: Path) -> None:
    with EmbeddedHub(tmp_path / "hub", token="secret", user="ana") as hub:
        owner, anonymous, intruder = (HfApi(endpoint=hub.url, token=t) for t in ("secret", False, "wrong"))
        with pytest.raises(HfHubHTTPError) as error:
            anonymous.create_repo("ana/denied")
        assert error.value.response.status_code == 401
        with pytest.raises(HfHubHTTPError):
            intruder.create_repo("ana/denied")
        assert owner.whoami()["name"] == "ana"
        owner.create_repo("ana/open")
        owner.create_repo("ana/closed", private=True)
        owner.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="ana/closed")
        assert anonymous.model_info("ana/open").private is False
        assert owner.model_info("ana/closed").private is True
        with pytest.raises(RepositoryNotFoundError):
            anonymous.model_info("ana/closed")
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download("ana/closed", "x", endpoint=hub.url, token=False, cache_dir=tmp_path / "cache")
        with pytest.raises(HfHubHTTPError):
            anonymous.upload_file(path_or_fileobj=b"y", path_in_repo="y", repo_id="ana/open")


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/lab/safe/resolve/main/..%2F..%2Frepo.json"),
        ("GET", "/lab/safe/resolve/main/../../objects"),
        ("GET", "/..%2F..%2Fetc/passwd/resolve/main/x"),
        ("GET", "/api/models/../lab/revision/main"),
        ("GET", "/api/models/lab/safe/tree/main/..%2F.."),
        ("POST", "/api/models/lab/safe/branch/..%2F..%2Fescape"),
    ],
)
def test_escaping_paths_and_ids_are_refused(hub: EmbeddedHub, api: HfApi, method: str, path: str, raw_request) -> None:
    api.create_repo("lab/safe")
    status, _, _ = raw_request(hub, method, path, b"{}" if method == "POST" else b"")
    assert status in (400, 404)
    assert not (Path(hub.settings.root) / "escape").exists()


@pytest.mark.parametrize("bad_path", ["../outside.txt", "/etc/passwd", "a/../../b", "a\\b", ".git/config", "a//b"])
def test_a_commit_with_an_escaping_file_path_is_refused_whole(
    hub: EmbeddedHub, api: HfApi, bad_path: str, raw_request
) -> None:
    api.create_repo("lab/paths")
    head = api.model_info("lab/paths").sha
    lines = [
        {"key": "header", "value": {"summary": "evil"}},
        {"key": "file", "value": {"path": "fine.txt", "content": "b2s=", "encoding": "base64"}},
        {"key": "file", "value": {"path": bad_path, "content": "b2s=", "encoding": "base64"}},
    ]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    status, _, _ = raw_request(hub, "POST", "/api/models/lab/paths/commit/main", body)
    assert status == 400
    assert api.model_info("lab/paths").sha == head
    assert not list(Path(hub.settings.root).rglob("outside.txt"))


def test_an_upload_cut_off_by_the_client_leaves_the_previous_commit(hub: EmbeddedHub, api: HfApi) -> None:
    api.create_repo("lab/cut")
    head = api.upload_file(path_or_fileobj=b"kept", path_in_repo="a", repo_id="lab/cut").oid
    line = json.dumps({"key": "file", "value": {"path": "a", "content": "Y2hhbmdlZA==", "encoding": "base64"}})
    body = (json.dumps({"key": "header", "value": {"summary": "cut"}}) + "\n" + line + "\n").encode()
    host, port = urlsplit(hub.url).hostname, urlsplit(hub.url).port
    with socket.create_connection((host, port)) as connection:
        connection.sendall(
            b"POST /api/models/lab/cut/commit/main HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
            + f"Content-Length: {len(body) + 1000}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
    time.sleep(0.3)
    assert api.model_info("lab/cut").sha == head
    assert api.list_repo_commits("lab/cut")[0].commit_id == head


def test_a_server_killed_mid_push_keeps_the_previous_commit(tmp_path: Path) -> None:
    def start() -> tuple[subprocess.Popen, str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "adapterzoo", "hub", "serve", "--root", str(tmp_path / "hub"), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        url = process.stdout.readline().strip().rsplit(" at ", 1)[1]
        return process, url

    server, url = start()
    api = HfApi(endpoint=url)
    api.create_repo("lab/crash")
    head = api.upload_file(path_or_fileobj=b"before", path_in_repo="a", repo_id="lab/crash").oid
    body = b'{"key": "header", "value": {"summary": "never"}}\n' + b'{"key": "file", "value": {"path": "a", '
    with socket.create_connection((urlsplit(url).hostname, urlsplit(url).port)) as connection:
        connection.sendall(
            b"POST /api/models/lab/crash/commit/main HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {len(body) + 10_000}\r\n\r\n".encode()
            + body
        )
        time.sleep(0.3)
        server.send_signal(signal.SIGKILL)
        server.wait()
    server, url = start()
    try:
        api = HfApi(endpoint=url)
        assert api.model_info("lab/crash").sha == head
        assert Path(hf_hub_download("lab/crash", "a", endpoint=url, cache_dir=tmp_path / "c")).read_bytes() == b"before"
    finally:
        server.terminate()
        server.wait()


def test_large_files_go_through_git_lfs(tmp_path: Path, run_python, raw_request) -> None:
    payload = tmp_path / "big.bin"
    payload.write_bytes(os.urandom(300_000))
    with EmbeddedHub(tmp_path / "hub", lfs_threshold=100_000) as hub:
        run_python(
            f"""
            from huggingface_hub import HfApi
            api = HfApi()
            api.create_repo("lab/lfs")
            api.upload_file(path_or_fileobj={str(payload)!r}, path_in_repo="big.bin", repo_id="lab/lfs")
            api.upload_file(path_or_fileobj=b"small", path_in_repo="small.txt", repo_id="lab/lfs")
            """,
            env={"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1"},
        )
        api = HfApi(endpoint=hub.url)
        files = {f.path: f for f in api.list_repo_tree("lab/lfs")}
        assert files["big.bin"].lfs is not None and files["big.bin"].lfs.size == 300_000
        assert files["small.txt"].lfs is None
        assert download(hub, "lab/lfs", "big.bin", tmp_path) == payload.read_bytes()
        status, _, _ = raw_request(hub, "PUT", f"/api/lfs-upload/models/lab/lfs/{'0' * 64}/5", b"hello")
        assert status == 403


def test_downloads_resume_from_a_byte_range(hub: EmbeddedHub, api: HfApi, raw_request) -> None:
    api.create_repo("lab/range")
    api.upload_file(path_or_fileobj=b"0123456789", path_in_repo="digits", repo_id="lab/range")
    status, body, headers = raw_request(hub, "GET", "/lab/range/resolve/main/digits", headers={"Range": "bytes=4-"})
    assert (status, body, headers["Content-Range"]) == (206, b"456789", "bytes 4-9/10")


def test_text_files_past_the_lfs_threshold_go_through_xet(tmp_path: Path) -> None:
    with EmbeddedHub(tmp_path / "hub", lfs_threshold=1000) as hub:
        api = HfApi(endpoint=hub.url)
        api.create_repo("lab/xet")
        api.upload_file(path_or_fileobj=b"x" * 5000, path_in_repo="big.txt", repo_id="lab/xet")
        api.upload_file(path_or_fileobj=b"x" * 500, path_in_repo="small.txt", repo_id="lab/xet")
        files = {f.path: f for f in api.list_repo_tree("lab/xet")}
        assert files["big.txt"].lfs is not None and files["small.txt"].lfs is None
        assert any((tmp_path / "hub" / "xet" / "xorbs").iterdir())
        assert download(hub, "lab/xet", "big.txt", tmp_path) == b"x" * 5000


def test_paths_info_last_commits_and_copies(api: HfApi, hub: EmbeddedHub, tmp_path: Path) -> None:
    from huggingface_hub import CommitOperationCopy
    from huggingface_hub.hf_api import RepoFile, RepoFolder

    api.create_repo("lab/paths")
    first = api.create_commit(
        "lab/paths", [CommitOperationAdd("a.txt", b"a"), CommitOperationAdd("d/b.txt", b"b")], commit_message="one"
    )
    second = api.create_commit("lab/paths", [CommitOperationAdd("d/c.txt", b"c")], commit_message="two")
    info = {item.path: item for item in api.get_paths_info("lab/paths", ["a.txt", "d", "missing"], expand=True)}
    assert set(info) == {"a.txt", "d"}
    assert isinstance(info["a.txt"], RepoFile) and info["a.txt"].size == 1
    assert isinstance(info["d"], RepoFolder)
    assert info["a.txt"].last_commit.oid == first.oid and info["a.txt"].last_commit.title == "one"
    assert info["d"].last_commit.oid == second.oid
    tree = {item.path: item for item in api.list_repo_tree("lab/paths", recursive=True, expand=True)}
    assert tree["d/b.txt"].last_commit.oid == first.oid and tree["d/c.txt"].last_commit.oid == second.oid
    assert all(item.last_commit is None for item in api.list_repo_tree("lab/paths"))
    folder_before = info["d"].tree_id
    api.create_commit("lab/paths", [CommitOperationCopy("d/b.txt", "e/b-copy.txt")], commit_message="copy")
    assert download(hub, "lab/paths", "e/b-copy.txt", tmp_path) == b"b"
    assert api.get_paths_info("lab/paths", ["d"])[0].tree_id == folder_before
