"""Discovery and repository management on the embedded Hub, driven by huggingface_hub's HfApi and the ``hf`` CLI:
listing and search, deleting, moving, duplicating, visibility, squashing history, deleting folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import HfHubHTTPError, RemoteEntryNotFoundError, RepositoryNotFoundError

from adapterzoo import faults
from adapterzoo.hub import EmbeddedHub, listing
from adapterzoo.hub.store import RepoStore

CARD = b"""---
tags: [vision, adapterzoo]
library_name: peft
pipeline_tag: image-classification
license: apache-2.0
---
# A card
"""
HF = Path(sys.executable).with_name("hf")


def status_of(call) -> int:
    with pytest.raises(HfHubHTTPError) as error:
        call()
    return error.value.response.status_code


@pytest.fixture
def zoo(api: HfApi) -> HfApi:
    """Models lab/vit-a (carded), lab/ViT-b, other/resnet, a dataset and a space, made in this order."""
    api.create_repo("lab/vit-a")
    api.upload_file(path_or_fileobj=CARD, path_in_repo="README.md", repo_id="lab/vit-a")
    api.create_repo("lab/ViT-b")
    api.create_repo("other/resnet")
    api.upload_file(path_or_fileobj=b"w", path_in_repo="weights.bin", repo_id="other/resnet")
    api.create_repo("lab/shapes", repo_type="dataset")
    card = b"---\nlanguage: [en]\nlicense: mit\n---\n"
    api.upload_file(path_or_fileobj=card, path_in_repo="README.md", repo_id="lab/shapes", repo_type="dataset")
    api.create_repo("lab/demo", repo_type="space", space_sdk="gradio")
    api.upload_file(
        path_or_fileobj=b"---\nsdk: gradio\n---\n", path_in_repo="README.md", repo_id="lab/demo", repo_type="space"
    )
    return api


def ids(infos) -> list[str]:
    return [info.id for info in infos]


def test_listing_searches_filters_and_sorts(zoo: HfApi) -> None:
    assert ids(zoo.list_models()) == ["lab/ViT-b", "lab/vit-a", "other/resnet"]
    assert ids(zoo.list_models(search="VIT")) == ["lab/ViT-b", "lab/vit-a"]
    assert ids(zoo.list_models(author="other")) == ["other/resnet"]
    for tag in ("vision", "peft", "image-classification", "license:apache-2.0"):
        assert ids(zoo.list_models(filter=tag)) == ["lab/vit-a"], tag
    assert ids(zoo.list_models(filter=["vision", "peft"], search="vit", author="lab")) == ["lab/vit-a"]
    assert ids(zoo.list_models(filter=["vision", "no-such-tag"])) == []
    assert ids(zoo.list_models(pipeline_tag="image-classification")) == ["lab/vit-a"]
    assert ids(zoo.list_models(gated=True)) == []
    # dates sort newest first
    assert ids(zoo.list_models(sort="created_at")) == ["other/resnet", "lab/ViT-b", "lab/vit-a"]
    zoo.upload_file(path_or_fileobj=b"new", path_in_repo="new.txt", repo_id="lab/vit-a")
    assert ids(zoo.list_models(sort="last_modified")) == ["lab/vit-a", "other/resnet", "lab/ViT-b"]
    assert ids(zoo.list_models(sort="created_at")) == ["other/resnet", "lab/ViT-b", "lab/vit-a"]
    assert ids(zoo.list_models(sort="created_at", limit=1)) == ["other/resnet"]
    assert ids(zoo.list_datasets(language="en")) == ids(zoo.list_datasets(filter="license:mit")) == ["lab/shapes"]
    assert ids(zoo.list_datasets(dataset_name="shap", search="lab")) == ["lab/shapes"]
    assert ids(zoo.list_spaces()) == ["lab/demo"]


def test_listing_answers_the_fields_asked_for(zoo: HfApi) -> None:
    carded = next(iter(zoo.list_models(search="vit-a")))
    assert carded.library_name == "peft" and carded.pipeline_tag == "image-classification"
    assert {"vision", "peft", "image-classification"} <= set(carded.tags) and carded.created_at is not None
    assert carded.siblings is None and carded.sha is None
    full = next(iter(zoo.list_models(search="resnet", full=True)))
    info = zoo.model_info("other/resnet")
    assert full.sha == info.sha and full.last_modified == info.last_modified and full.author == "other"
    assert [s.rfilename for s in full.siblings] == ["weights.bin"]
    expanded = next(iter(zoo.list_models(search="vit-a", expand=["sha", "cardData"])))
    assert expanded.sha == zoo.model_info("lab/vit-a").sha and expanded.card_data.license == "apache-2.0"
    assert expanded.tags is None and expanded.created_at is None
    with_card = next(iter(zoo.list_models(search="vit-a", cardData=True)))
    assert with_card.card_data.library_name == "peft"
    dataset = next(iter(zoo.list_datasets()))
    assert dataset.sha == zoo.dataset_info("lab/shapes").sha and "language:en" in dataset.tags
    assert next(iter(zoo.list_spaces(expand=["sdk"]))).sdk == "gradio"


def test_listing_pages_follow_the_link_header(
    api: HfApi, hub: EmbeddedHub, raw_request, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "PAGE_SIZE", 2)
    names = [f"ns/model-{i}" for i in range(5)]
    for name in names:
        api.create_repo(name)
    assert ids(api.list_models()) == names
    assert ids(api.list_models(limit=3)) == names[:3]
    assert ids(api.list_models(search="model", sort="created_at")) == names[::-1]
    status, body, headers = raw_request(hub, "GET", "/api/models?search=model&limit=2")
    assert status == 200 and [item["id"] for item in json.loads(body)] == names[:2]
    link = headers["Link"]
    assert link.startswith(f"<{hub.url}/api/models?cursor=") and link.endswith('>; rel="next"')
    api.delete_repo(names[2])  # a page starts after the last repo seen, whatever changed meanwhile
    status, body, headers = raw_request(hub, "GET", link[len(hub.url) + 1 : link.index(">")])
    assert [item["id"] for item in json.loads(body)] == names[3:] and "Link" not in headers


def test_bad_listing_queries_are_4xx_that_say_why(api: HfApi, hub: EmbeddedHub, raw_request) -> None:
    api.create_repo("lab/one")
    assert status_of(lambda: list(api.list_models(sort="downloads"))) == 400
    assert status_of(lambda: list(api.list_models(expand=["nonsense"]))) == 400
    assert status_of(lambda: list(api.list_models(num_parameters="min:1B"))) == 400
    for query in (
        "limit=abc",
        "limit=0",
        "limit=-3",
        "direction=up",
        "cursor=%%%",
        "cursor=e30",
        "search=a&cursor=e30",
    ):
        status, body, headers = raw_request(hub, "GET", f"/api/models?{query}")
        assert status == 400 and json.loads(body)["error"].startswith("Invalid"), (query, body)
        assert unquote(headers["X-Error-Message"]) == json.loads(body)["error"]


def test_private_repos_are_listed_only_for_readers(tmp_path: Path) -> None:
    with EmbeddedHub(tmp_path / "hub", token="secret", user="ana") as hub:
        owner, anonymous = HfApi(endpoint=hub.url, token="secret"), HfApi(endpoint=hub.url, token=False)
        owner.create_repo("ana/open")
        owner.create_repo("ana/hidden", private=True)
        assert ids(owner.list_models()) == ["ana/hidden", "ana/open"]
        assert ids(anonymous.list_models()) == ["ana/open"]
        owner.update_repo_settings("ana/open", private=True)
        owner.update_repo_settings("ana/hidden", visibility="public")
        assert ids(anonymous.list_models()) == ["ana/hidden"]
        assert anonymous.model_info("ana/hidden").private is False
        with pytest.raises(RepositoryNotFoundError):
            anonymous.model_info("ana/open")
        writes = [
            lambda: anonymous.delete_repo("ana/hidden"),
            lambda: anonymous.move_repo("ana/hidden", "ana/moved"),
            lambda: anonymous.update_repo_settings("ana/hidden", private=True),
            lambda: anonymous.duplicate_repo("ana/hidden", "ana/copy"),
            lambda: anonymous.super_squash_history("ana/hidden"),
        ]
        assert [status_of(write) for write in writes] == [401] * len(writes)
        assert ids(owner.list_models()) == ["ana/hidden", "ana/open"]


def test_settings_other_than_visibility_are_refused(api: HfApi) -> None:
    api.create_repo("lab/settings")
    assert status_of(lambda: api.update_repo_settings("lab/settings", gated="auto")) == 400
    api.update_repo_settings("lab/settings", gated=False)  # not gated: what every repo here is
    assert api.model_info("lab/settings").private is False
    with pytest.raises(RepositoryNotFoundError):
        api.update_repo_settings("lab/missing", private=True)


def test_deleted_repos_are_gone_and_their_ids_free(api: HfApi, hub: EmbeddedHub) -> None:
    api.create_repo("lab/doomed", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="lab/doomed", repo_type="dataset")
    api.delete_repo("lab/doomed", repo_type="dataset")
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("lab/doomed")
    with pytest.raises(RepositoryNotFoundError):
        api.delete_repo("lab/doomed", repo_type="dataset")
    api.delete_repo("lab/doomed", repo_type="dataset", missing_ok=True)
    api.create_repo("lab/doomed", repo_type="dataset")
    assert api.list_repo_files("lab/doomed", repo_type="dataset") == []
    api.create_repo("unnamespaced")
    api.delete_repo("unnamespaced")  # the requester's namespace, as for create_repo
    assert not api.repo_exists("local/unnamespaced")
    assert not (Path(hub.settings.root) / ".tmp").exists() or not any((Path(hub.settings.root) / ".tmp").iterdir())


def test_moved_repos_keep_files_and_history_and_leave_a_404(api: HfApi) -> None:
    api.create_repo("lab/old")
    commit = api.upload_file(path_or_fileobj=b"w", path_in_repo="w.bin", repo_id="lab/old")
    api.create_tag("lab/old", tag="v1")
    api.move_repo("lab/old", "neworg/renamed")  # into a namespace that had no repo
    assert api.list_repo_files("neworg/renamed") == ["w.bin"]
    assert api.list_repo_commits("neworg/renamed")[0].commit_id == commit.oid
    assert [t.name for t in api.list_repo_refs("neworg/renamed").tags] == ["v1"]
    api.upload_file(path_or_fileobj=b"v", path_in_repo="v.bin", repo_id="neworg/renamed")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("lab/old")
    api.create_repo("lab/taken")
    assert status_of(lambda: api.move_repo("neworg/renamed", "lab/taken")) == 409
    assert status_of(lambda: api.move_repo("neworg/renamed", "lab/bad..name")) == 400
    assert status_of(lambda: api.move_repo("neworg/renamed", "neworg/renamed")) == 409
    with pytest.raises(RepositoryNotFoundError):
        api.move_repo("lab/old", "lab/older")
    assert api.list_repo_files("neworg/renamed") == ["v.bin", "w.bin"]


def test_duplicates_copy_files_history_and_refs(api: HfApi, hub: EmbeddedHub, tmp_path: Path) -> None:
    api.create_repo("lab/source", private=True)
    first = api.upload_file(path_or_fileobj=b"1", path_in_repo="a.txt", repo_id="lab/source")
    api.create_branch("lab/source", branch="dev")
    api.upload_file(path_or_fileobj=b"2", path_in_repo="a.txt", repo_id="lab/source", create_pr=True)
    url = api.duplicate_repo("lab/source", "team/copy")
    assert url.repo_id == "team/copy" and url.files_copy_pending is False
    assert api.model_info("team/copy").private is True
    assert [c.commit_id for c in api.list_repo_commits("team/copy")] == [
        c.commit_id for c in api.list_repo_commits("lab/source")
    ]
    refs = api.list_repo_refs("team/copy", include_pull_requests=True)
    assert sorted(b.name for b in refs.branches) == ["dev", "main"] and refs.pull_requests == []
    api.upload_file(path_or_fileobj=b"3", path_in_repo="a.txt", repo_id="team/copy")
    path = api.hf_hub_download("lab/source", "a.txt", cache_dir=tmp_path)  # the source is untouched
    assert Path(path).read_bytes() == b"1" and api.model_info("lab/source").sha == first.oid
    assert api.duplicate_repo("lab/source", "local/source", visibility="public").repo_id == "local/source"
    assert api.model_info("local/source").private is False
    assert status_of(lambda: api.duplicate_repo("lab/source", "team/copy")) == 409
    assert api.duplicate_repo("lab/source", "team/copy", exist_ok=True).repo_id == "team/copy"
    assert (
        status_of(lambda: api.duplicate_repo("lab/source", "team/other", repo_type="space", space_hardware="t4")) == 400
    )
    with pytest.raises(RepositoryNotFoundError):
        api.duplicate_repo("lab/missing", "team/x")


def test_super_squash_keeps_the_files_in_one_commit(api: HfApi, hub: EmbeddedHub, tmp_path: Path) -> None:
    api.create_repo("lab/long")
    for i in range(3):
        api.upload_file(path_or_fileobj=str(i).encode(), path_in_repo=f"f{i}.txt", repo_id="lab/long")
    api.create_branch("lab/long", branch="feat/x")
    api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="lab/long", revision="feat/x")
    before = api.list_repo_commits("lab/long", revision="feat/x")
    api.super_squash_history("lab/long", commit_message="one commit")
    (squashed,) = api.list_repo_commits("lab/long")
    assert squashed.title == "one commit" and api.list_repo_files("lab/long") == ["f0.txt", "f1.txt", "f2.txt"]
    assert api.list_repo_commits("lab/long", revision="feat/x") == before
    api.super_squash_history("lab/long", branch="feat/x")
    assert len(api.list_repo_commits("lab/long", revision="feat/x")) == 1
    assert api.list_repo_files("lab/long", revision="feat/x") == ["f0.txt", "f1.txt", "f2.txt", "x.txt"]
    assert status_of(lambda: api.super_squash_history("lab/long", branch="nope")) == 404


def test_folders_are_deleted_with_a_trailing_slash(api: HfApi) -> None:
    api.create_repo("lab/folders")
    files = ["sub/a", "sub/deep/b", "subway", "other/c", "top"]
    api.create_commit("lab/folders", [CommitOperationAdd(f, f.encode()) for f in files], commit_message="add")
    api.create_commit("lab/folders", [CommitOperationDelete("sub/")], commit_message="drop sub/")
    assert api.list_repo_files("lab/folders") == ["other/c", "subway", "top"]
    api.delete_folder("other", repo_id="lab/folders")
    assert api.list_repo_files("lab/folders") == ["subway", "top"]
    with pytest.raises(RemoteEntryNotFoundError):
        api.create_commit("lab/folders", [CommitOperationDelete("sub/")], commit_message="again")
    with pytest.raises(RemoteEntryNotFoundError):
        api.delete_folder("top", repo_id="lab/folders")  # a file is not a folder
    assert api.list_repo_files("lab/folders") == ["subway", "top"]


def test_the_hf_cli_lists_and_deletes(api: HfApi, hub: EmbeddedHub, tmp_path: Path) -> None:
    api.create_repo("lab/cli-model")
    api.create_repo("lab/other")
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), "HF_TOKEN": "unused"}

    def hf(*args: str) -> str:
        result = subprocess.run([str(HF), *args], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    listed = json.loads(hf("models", "ls", "--search", "cli", "--format", "json"))
    assert [item["id"] for item in listed] == ["lab/cli-model"]
    hf("repos", "delete", "lab/cli-model", "--yes")
    assert ids(api.list_models()) == ["lab/other"]


def test_a_commit_racing_a_delete_lands_before_it_or_is_a_404(api: HfApi, hub: EmbeddedHub) -> None:
    api.create_repo("lab/raced")
    statuses: list[int] = []

    def push(i: int) -> None:
        try:
            api.create_commit("lab/raced", [CommitOperationAdd(f"f{i}", b"x" * 1000)], commit_message=str(i))
            statuses.append(200)
        except HfHubHTTPError as error:
            statuses.append(error.response.status_code)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    api.delete_repo("lab/raced")
    for thread in threads:
        thread.join()
    assert set(statuses) <= {200, 404} and len(statuses) == 6
    assert not api.repo_exists("lab/raced")
    api.create_repo("lab/raced")
    assert api.list_repo_files("lab/raced") == []
    assert not any(Path(hub.settings.root, "models", "lab").glob("raced/objects/*"))


@pytest.mark.parametrize(
    ("point", "call", "left"),
    [
        ("hub.delete.renamed", "store.delete('model', 'lab/crash')", []),
        ("hub.duplicate.staged", "store.duplicate('model', 'lab/crash', 'lab/copy')", ["lab/crash"]),
    ],
)
def test_a_killed_server_leaves_the_old_or_the_new_state(tmp_path: Path, point: str, call: str, left: list) -> None:
    store = RepoStore(tmp_path)
    store.create("model", "lab/crash", private=False, author="me").commit(
        "main", [], title="t", message="", author="me"
    )
    script = f"from adapterzoo.hub.store import RepoStore\nstore = RepoStore({str(tmp_path)!r})\n{call}"
    env = {**os.environ, faults.ENVIRONMENT_VARIABLE: f"kill@{point}"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=60)
    assert result.returncode == -9, result.stderr[-2000:]
    assert len(list((tmp_path / ".tmp").iterdir())) == 1  # what the killed process was deleting or assembling
    assert [repo.id for repo in RepoStore(tmp_path).all_repos()] == left
    assert list((tmp_path / ".tmp").iterdir()) == []
