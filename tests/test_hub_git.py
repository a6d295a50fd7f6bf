"""git clone / fetch / pull from the embedded Hub with the system git, and its /raw/ URLs."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, constants

from adapterzoo.hub import EmbeddedHub, git_http

GIT = shutil.which("git")
pytestmark = pytest.mark.skipif(GIT is None, reason="needs the git command")

FILES = {
    "README.md": b"# a model\n",
    "config.json": b'{"hidden": 8}\n',
    "weights/adapter.bin": bytes(range(256)) * 4,
    "weights/deep/nested/notes.txt": "caf\u00e9 \u6a21\u578b\n".encode(),
}


@pytest.fixture
def git(tmp_path: Path):
    """Run the system git as a user would, but with no configuration of this machine's and never a prompt."""
    home = tmp_path / "git-home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "tester",
        "GIT_AUTHOR_EMAIL": "tester@example.com",
        "GIT_COMMITTER_NAME": "tester",
        "GIT_COMMITTER_EMAIL": "tester@example.com",
    }

    def run(*args: str, cwd: Path = tmp_path, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([GIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    return run


@pytest.fixture
def lfs_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A hub sending files of 1000 bytes or more through git-LFS (which huggingface_hub uses only without Xet)."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    with EmbeddedHub(tmp_path / "hub", lfs_threshold=1000) as hub:
        yield hub


def tracked_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(folder).parts
    }


def pkt(line: bytes) -> bytes:
    return b"%04x%s" % (len(line) + 4, line)


def commit(api: HfApi, repo: str, files: dict[str, bytes], title: str, **kwargs) -> str:
    operations = [CommitOperationAdd(path, content) for path, content in files.items()]
    return api.create_commit(repo, operations, commit_message=title, **kwargs).oid


def test_a_clone_holds_the_files_and_history_of_main(lfs_hub: EmbeddedHub, git, tmp_path: Path) -> None:
    api = HfApi(endpoint=lfs_hub.url)
    api.create_repo("lab/model")
    commit(api, "lab/model", {"README.md": b"draft\n", "weights/deep/nested/notes.txt": b"draft"}, "Start")
    commit(api, "lab/model", {**FILES, "README.md": b"older"}, "Add the adapter", commit_description="Trained.")
    commit(api, "lab/model", {"README.md": FILES["README.md"]}, "Touch")
    git("clone", f"{lfs_hub.url}/lab/model", "model")
    clone = tmp_path / "model"
    pointer = git("show", "HEAD:weights/adapter.bin", cwd=clone).stdout
    assert tracked_files(clone) == {**FILES, "weights/adapter.bin": pointer.encode()}
    assert pointer.startswith("version https://git-lfs.github.com/spec/v1\noid sha256:") and "size 1024" in pointer
    titles = git("log", "--format=%s", cwd=clone).stdout.splitlines()
    assert titles == ["Touch", "Add the adapter", "Start", "initial commit"]
    assert git("log", "-1", "--format=%b", "HEAD~1", cwd=clone).stdout.strip() == "Trained."
    assert (
        git("log", "-1", "--format=%an <%ae>", cwd=clone).stdout.strip() == "local <local@users.noreply.huggingface.co>"
    )
    git("fsck", "--strict", cwd=clone)
    blob_ids = git("ls-tree", "-r", "--format=%(path) %(objectname)", "HEAD", cwd=clone).stdout.split("\n")
    hub_ids = {f.path: f.blob_id for f in api.list_repo_tree("lab/model", recursive=True) if hasattr(f, "blob_id")}
    assert dict(line.split(" ") for line in blob_ids if line) == hub_ids
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=clone).stdout.strip() == "main"

    api.create_repo("lab/data", repo_type="dataset")
    commit(api, "lab/data", {"train/part-0.csv": b"a,b\n1,2\n"}, "Data", repo_type="dataset")
    git("clone", f"{lfs_hub.url}/datasets/lab/data.git", "data")
    assert tracked_files(tmp_path / "data") == {"train/part-0.csv": b"a,b\n1,2\n"}


def test_clone_a_branch_or_a_tag_and_pull_new_commits(hub: EmbeddedHub, api: HfApi, git, tmp_path: Path) -> None:
    api.create_repo("lab/repo")
    commit(api, "lab/repo", {"a.txt": b"one"}, "One")
    api.create_tag("lab/repo", tag="v1")
    api.create_branch("lab/repo", branch="dev")
    commit(api, "lab/repo", {"dev.txt": b"dev"}, "On dev", revision="dev")
    commit(api, "lab/repo", {"a.txt": b"two"}, "Two")

    git("clone", "--branch", "dev", f"{hub.url}/lab/repo", "dev")
    assert tracked_files(tmp_path / "dev") == {"a.txt": b"one", "dev.txt": b"dev"}
    git("clone", "--branch", "v1", f"{hub.url}/lab/repo", "v1")
    assert tracked_files(tmp_path / "v1") == {"a.txt": b"one"}
    git("clone", "--depth", "1", f"{hub.url}/lab/repo", "shallow")
    assert git("log", "--format=%s", cwd=tmp_path / "shallow").stdout.split() == ["Two"]
    partial = git("clone", "--filter=blob:none", f"{hub.url}/lab/repo", "partial")  # not offered: a full clone
    assert "filtering not recognized" in partial.stderr and tracked_files(tmp_path / "partial") == {"a.txt": b"two"}
    git("clone", f"{hub.url}/lab/repo.git", "main")
    main = tmp_path / "main"
    assert tracked_files(main) == {"a.txt": b"two"}
    remote_refs = git("ls-remote", f"{hub.url}/lab/repo", cwd=main).stdout
    assert {"HEAD", "refs/heads/main", "refs/heads/dev", "refs/tags/v1"} <= {
        line.split("\t")[1] for line in remote_refs.splitlines()
    }

    before = git("rev-parse", "HEAD", cwd=main).stdout.strip()
    commit(api, "lab/repo", {"b/c.txt": b"three"}, "Three")
    pulled = git("pull", "--ff-only", cwd=main)
    assert "Fast-forward" in pulled.stdout
    assert tracked_files(main) == {"a.txt": b"two", "b/c.txt": b"three"}
    assert git("rev-parse", "HEAD~1", cwd=main).stdout.strip() == before
    assert git("log", "-1", "--format=%s", cwd=main).stdout.strip() == "Three"

    pr = api.create_commit("lab/repo", [CommitOperationAdd("pr.txt", b"pr")], commit_message="PR", create_pr=True)
    git("fetch", "origin", f"refs/pr/{pr.pr_num}:pr", cwd=main)
    assert git("show", "pr:pr.txt", cwd=main).stdout == "pr"

    # Each commit's git objects are built once, then read from the cache; built again, they are the same.
    cache = hub.settings.root / "models" / "lab" / "repo" / "cache"
    assert len(list((cache / "git-objects").iterdir())) == 6  # initial, One, On dev, Two, Three, PR
    shutil.rmtree(cache)
    git("clone", f"{hub.url}/lab/repo", "again")
    assert git("rev-parse", "HEAD", cwd=tmp_path / "again").stdout == git("rev-parse", "HEAD", cwd=main).stdout


def test_a_private_repo_clones_only_with_the_token(tmp_path: Path, git, raw_request) -> None:
    with EmbeddedHub(tmp_path / "hub", token="s3cret") as hub:
        api = HfApi(endpoint=hub.url, token="s3cret")
        api.create_repo("lab/private", private=True)
        commit(api, "lab/private", {"secret.txt": b"hidden"}, "Secret")
        host = hub.url.removeprefix("http://")

        refused = git("clone", f"{hub.url}/lab/private", "anonymous", check=False)
        assert refused.returncode != 0 and "could not read Username" in refused.stderr  # asked for credentials
        assert not (tmp_path / "anonymous" / "secret.txt").exists()
        for repo in ("lab/private", "lab/absent"):  # the same answer: no telling which exists
            status, _, headers = raw_request(hub, "GET", f"/{repo}/info/refs?service=git-upload-pack")
            assert (status, headers["WWW-Authenticate"]) == (401, 'Basic realm="adapterzoo hub"')
        wrong = git("clone", f"http://me:wrong@{host}/lab/private", "wrong", check=False)
        assert wrong.returncode != 0 and "Authentication failed" in wrong.stderr

        git("clone", f"http://me:s3cret@{host}/lab/private", "with-password")
        assert tracked_files(tmp_path / "with-password") == {"secret.txt": b"hidden"}
        header = "http.extraHeader=Authorization: Bearer s3cret"
        git("-c", header, "clone", f"{hub.url}/lab/private", "with-header")
        assert tracked_files(tmp_path / "with-header") == {"secret.txt": b"hidden"}


def test_push_is_refused_with_a_pointer_to_huggingface_hub(hub: EmbeddedHub, api: HfApi, git, tmp_path: Path) -> None:
    api.create_repo("lab/repo")
    git("clone", f"{hub.url}/lab/repo", "repo")
    clone = tmp_path / "repo"
    (clone / "new.txt").write_text("new")
    git("add", "new.txt", cwd=clone)
    git("commit", "-m", "Local change", cwd=clone)
    pushed = git("push", "origin", "main", cwd=clone, check=False)
    assert pushed.returncode != 0
    assert "read-only over git" in pushed.stderr and "huggingface_hub" in pushed.stderr
    assert [c.title for c in api.list_repo_commits("lab/repo")] == ["initial commit"]


def test_raw_urls_serve_what_git_stores(lfs_hub: EmbeddedHub, raw_request) -> None:
    api = HfApi(endpoint=lfs_hub.url)
    api.create_repo("lab/model")
    commit(api, "lab/model", FILES, "Add")
    api.create_repo("lab/data", repo_type="dataset")
    commit(api, "lab/data", {"x/y.csv": b"1,2\n"}, "Data", repo_type="dataset")

    status, body, headers = raw_request(lfs_hub, "GET", "/lab/model/raw/main/config.json")
    assert (status, body) == (200, FILES["config.json"])
    assert headers["X-Repo-Commit"] == api.model_info("lab/model").sha
    status, body, headers = raw_request(lfs_hub, "GET", "/lab/model/raw/main/weights/adapter.bin")
    entry = next(f for f in api.list_repo_tree("lab/model", "weights") if f.path == "weights/adapter.bin")
    assert (
        status == 200
        and body.decode() == f"version https://git-lfs.github.com/spec/v1\noid sha256:{entry.lfs.sha256}\nsize 1024\n"
    )
    assert "X-Linked-Size" not in headers and headers["ETag"] == f'"{entry.blob_id}"'
    status, body, _ = raw_request(lfs_hub, "GET", "/lab/model/resolve/main/weights/adapter.bin")
    assert (status, body) == (200, FILES["weights/adapter.bin"])
    status, body, _ = raw_request(lfs_hub, "GET", "/datasets/lab/data/raw/main/x/y.csv", headers={"Range": "bytes=2-"})
    assert (status, body) == (206, b"2\n")

    for path, code in [
        ("/lab/model/raw/main/missing.txt", "EntryNotFound"),
        ("/lab/model/raw/nobranch/config.json", "RevisionNotFound"),
        ("/lab/absent/raw/main/config.json", "RepoNotFound"),
        ("/lab/data/raw/main/x/y.csv", "RepoNotFound"),
    ]:
        status, _, headers = raw_request(lfs_hub, "GET", path)
        assert (status, headers.get("X-Error-Code")) == (404, code), path
    assert raw_request(lfs_hub, "GET", "/lab/model/raw/main/../../etc/passwd")[0] == 400


def test_hostile_git_requests_are_refused(
    hub: EmbeddedHub, api: HfApi, raw_request, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.create_repo("lab/repo")
    upload = {"Content-Type": "application/x-git-upload-pack-request"}
    gzipped = {**upload, "Content-Encoding": "gzip"}

    def wants(sha: bytes) -> bytes:
        return pkt(b"want %s side-band-64k thin-pack ofs-delta\n" % sha) + b"0000"

    unknown = wants(b"0" * 40) + pkt(b"done\n")
    for method, path, body, headers, status, message in [
        ("GET", "/lab/repo/info/refs?service=git-evil", b"", {}, 400, b"Unsupported git service"),
        ("GET", "/lab/repo/info/refs", b"", {}, 400, b"Unsupported git service"),
        ("GET", "/lab/repo/info/refs?service=git-receive-pack", b"", {}, 403, b"read-only over git"),
        ("POST", "/lab/repo/git-receive-pack", b"0000", {}, 403, b"read-only over git"),
        ("POST", "/lab/repo/git-evil", b"", upload, 400, b"Unsupported git service"),
        ("POST", "/lab/repo/git-upload-pack", b"0000", {}, 415, b"Content-Type"),
        ("POST", "/lab/repo/git-upload-pack", b"garbage that is no pkt-line", upload, 400, b"Invalid git-upload-pack"),
        ("POST", "/lab/repo/git-upload-pack", unknown, upload, 400, b"wants invalid object"),
        ("POST", "/lab/repo/git-upload-pack", b"\x1f\x8b garbage", gzipped, 400, b"Invalid gzip"),
        ("POST", "/lab/repo/git-upload-pack", b"", {**upload, "Content-Encoding": "br"}, 415, b"Content-Encoding"),
        ("GET", "/lab/absent/info/refs?service=git-upload-pack", b"", {}, 404, b"Repository Not Found"),
        ("GET", "/lab/repo..git/info/refs?service=git-upload-pack", b"", {}, 400, b"Invalid repo id"),
    ]:
        answer, text, answer_headers = raw_request(hub, method, path, body, headers)
        assert (answer, answer_headers["Content-Type"]) == (status, "text/plain; charset=utf-8"), (path, text)
        assert message in text and answer_headers["X-Error-Message"], (path, text)

    # git gzips requests past 1 KiB (many haves); inflated, they are bounded.
    advertised = raw_request(hub, "GET", "/lab/repo/info/refs?service=git-upload-pack")[1]
    tip = advertised.split(b"\n")[1][8:48]
    haves = b"".join(pkt(b"have %040x\n" % n) for n in range(1000))
    request = gzip.compress(wants(tip) + haves + pkt(b"done\n"))
    answer, text, _ = raw_request(hub, "POST", "/lab/repo/git-upload-pack", request, gzipped)
    assert answer == 200 and b"PACK" in text
    monkeypatch.setattr(git_http, "MAX_REQUEST_BYTES", 10_000)
    answer, text, _ = raw_request(hub, "POST", "/lab/repo/git-upload-pack", request, gzipped)
    assert (answer, len(request) < 10_000) == (413, True) and b"limited to 10000 bytes" in text
    assert raw_request(hub, "GET", "/lab/repo/info/refs?service=git-upload-pack")[0] == 200
