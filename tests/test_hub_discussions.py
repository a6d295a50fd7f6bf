"""Discussions and pull requests on the embedded Hub, driven through huggingface_hub's HfApi (raw HTTP for refusals)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.community import DiscussionComment, DiscussionCommit, DiscussionStatusChange
from huggingface_hub.errors import HfHubHTTPError

from adapterzoo.hub import EmbeddedHub, discussions


def files(api: HfApi, repo_id: str, cache: Path) -> dict[str, bytes]:
    """Every file on main with its content."""
    paths = api.list_repo_files(repo_id)
    return {path: Path(api.hf_hub_download(repo_id, path, cache_dir=cache)).read_bytes() for path in paths}


def status_of(error: pytest.ExceptionInfo) -> int:
    return error.value.response.status_code


def test_a_discussion_is_opened_commented_renamed_closed_and_reopened(api: HfApi) -> None:
    api.create_repo("lab/talk")
    opened = api.create_discussion("lab/talk", "  Which backbone?  ", description="ViT or CLIP?")
    assert (opened.num, opened.title, opened.is_pull_request, opened.status) == (1, "Which backbone?", False, "open")
    assert [(e.type, e.content) for e in opened.events] == [("comment", "ViT or CLIP?")]
    assert opened.target_branch is None and opened.diff is None

    comment = api.comment_discussion("lab/talk", 1, "CLIP, for zero-shot.")
    assert isinstance(comment, DiscussionComment) and comment.content == "CLIP, for zero-shot."
    edited = api.edit_discussion_comment("lab/talk", 1, comment.id, "CLIP, for zero-shot labels.")
    assert edited.edited and edited.content == "CLIP, for zero-shot labels." and edited.number_of_edits == 1
    renamed = api.rename_discussion("lab/talk", 1, "Backbone choice")
    assert (renamed.old_title, renamed.new_title) == ("Which backbone?", "Backbone choice")
    closed = api.change_discussion_status("lab/talk", 1, "closed", comment="Settled.")
    assert isinstance(closed, DiscussionStatusChange) and closed.new_status == "closed"
    with pytest.raises(HfHubHTTPError) as error:
        api.change_discussion_status("lab/talk", 1, "closed")
    assert status_of(error) == 409 and "already closed" in str(error.value)
    api.change_discussion_status("lab/talk", 1, "open")

    details = api.get_discussion_details("lab/talk", 1)
    assert (details.title, details.status) == ("Backbone choice", "open")
    assert [e.type for e in details.events] == [
        "comment",
        "comment",
        "title-change",
        "comment",
        "status-change",
        "status-change",
    ]
    assert [e.content for e in details.events if e.type == "comment"] == [
        "ViT or CLIP?",
        "CLIP, for zero-shot labels.",
        "Settled.",
    ]
    with pytest.raises(HfHubHTTPError) as error:
        api.merge_pull_request("lab/talk", 1)
    assert status_of(error) == 400 and "not a pull request" in str(error.value)


def test_discussions_are_listed_newest_first_filtered_and_paged(
    api: HfApi, monkeypatch: pytest.MonkeyPatch, raw_request, hub: EmbeddedHub
) -> None:
    monkeypatch.setattr(discussions, "PAGE_SIZE", 2)
    api.create_repo("lab/list")
    api.create_discussion("lab/list", "first question")
    api.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="lab/list", create_pr=True)
    api.create_pull_request("lab/list", "empty proposal")
    api.create_discussion("lab/list", "second question")
    api.create_discussion("lab/list", "third question")
    api.change_discussion_status("lab/list", 4, "closed")

    assert [d.num for d in api.get_repo_discussions("lab/list")] == [5, 4, 3, 2, 1]
    assert [d.num for d in api.get_repo_discussions("lab/list", discussion_type="pull_request")] == [3, 2]
    assert [d.num for d in api.get_repo_discussions("lab/list", discussion_type="discussion")] == [5, 4, 1]
    assert [d.num for d in api.get_repo_discussions("lab/list", discussion_status="closed")] == [4]
    assert [d.num for d in api.get_repo_discussions("lab/list", discussion_status="open")] == [5, 3, 2, 1]
    assert [d.num for d in api.get_repo_discussions("lab/list", author="nobody")] == []
    listed = {d.num: d for d in api.get_repo_discussions("lab/list", author="local")}
    assert listed[2].title == "Upload x with huggingface_hub" and listed[2].git_reference == "refs/pr/2"
    assert listed[1].repo_id == "lab/list" and listed[1].author == "local" and not listed[1].is_pull_request

    for query, message in [("?type=issues", "Filter by type"), ("?p=-1", "Invalid page")]:
        status, body, _ = raw_request(hub, "GET", f"/api/models/lab/list/discussions{query}")
        assert status == 400 and message in json.loads(body)["error"]


def test_a_pull_request_shows_its_commits_and_diff_and_merges_its_tree(api: HfApi, tmp_path: Path) -> None:
    api.create_repo("lab/pr")
    api.create_commit(
        "lab/pr",
        [CommitOperationAdd("a.txt", b"a"), CommitOperationAdd("b.txt", b"b")],
        commit_message="start",
    )
    first = api.create_commit(
        "lab/pr",
        [CommitOperationDelete("a.txt"), CommitOperationAdd("b.txt", b"b2"), CommitOperationAdd("c/d.txt", b"d")],
        commit_message="rework",
        commit_description="Reworks the files.",
        create_pr=True,
    )
    second = api.upload_file(path_or_fileobj=b"e", path_in_repo="e.txt", repo_id="lab/pr", revision=first.pr_revision)

    details = api.get_discussion_details("lab/pr", first.pr_num)
    assert details.is_pull_request and details.target_branch == "refs/heads/main"
    assert details.conflicting_files == [] and details.merge_commit_oid is None
    assert [type(e) for e in details.events] == [DiscussionComment, DiscussionCommit, DiscussionCommit]
    assert details.events[0].content == "Reworks the files."
    assert [(e.summary, e.oid) for e in details.events[1:]] == [
        ("rework", first.oid),
        ("Upload e.txt with huggingface_hub", second.oid),
    ]
    assert "deleted file mode" in details.diff and "+++ /dev/null" in details.diff
    assert [line for line in details.diff.splitlines() if line.startswith("diff --git")] == [
        f"diff --git a/{p} b/{p}" for p in ("a.txt", "b.txt", "c/d.txt", "e.txt")
    ]

    api.merge_pull_request("lab/pr", first.pr_num, comment="Thanks!")
    assert files(api, "lab/pr", tmp_path) == {"b.txt": b"b2", "c/d.txt": b"d", "e.txt": b"e"}
    merged = api.get_discussion_details("lab/pr", first.pr_num)
    head = api.list_repo_commits("lab/pr")[0]
    assert merged.status == "merged" and merged.merge_commit_oid == head.commit_id
    assert head.title == "Merge pull request #1: rework"
    assert (merged.events[-2].content, merged.events[-1].new_status) == ("Thanks!", "merged")
    assert [d.status for d in api.get_repo_discussions("lab/pr", discussion_status="closed")] == ["merged"]

    for refused, message in [
        (lambda: api.merge_pull_request("lab/pr", 1), "is merged: only an open one"),
        (lambda: api.change_discussion_status("lab/pr", 1, "open"), "cannot change"),
        (
            lambda: api.upload_file(path_or_fileobj=b"f", path_in_repo="f", repo_id="lab/pr", revision="refs/pr/1"),
            "not open",
        ),
    ]:
        with pytest.raises(HfHubHTTPError) as error:
            refused()
        assert status_of(error) == 409 and message in str(error.value)
    assert api.list_repo_commits("lab/pr")[0].commit_id == head.commit_id


def test_a_pull_request_applies_onto_a_moved_base_unless_a_path_changed_on_both_sides(
    api: HfApi, tmp_path: Path
) -> None:
    api.create_repo("lab/moved")
    api.create_commit("lab/moved", [CommitOperationAdd(p, p.encode()) for p in ("x", "y", "z")], commit_message="s")
    clean = api.upload_file(path_or_fileobj=b"x from the pr", path_in_repo="x", repo_id="lab/moved", create_pr=True)
    clash = api.create_commit(
        "lab/moved",
        [CommitOperationAdd("y", b"y from the pr"), CommitOperationDelete("z")],
        commit_message="clash",
        create_pr=True,
    )
    api.upload_file(path_or_fileobj=b"y on main", path_in_repo="y", repo_id="lab/moved")
    api.upload_file(path_or_fileobj=b"new on main", path_in_repo="w", repo_id="lab/moved")

    assert api.get_discussion_details("lab/moved", clash.pr_num).conflicting_files == ["y"]
    api.merge_pull_request("lab/moved", clean.pr_num)
    assert files(api, "lab/moved", tmp_path) == {
        "w": b"new on main",
        "x": b"x from the pr",
        "y": b"y on main",
        "z": b"z",
    }

    head = api.list_repo_commits("lab/moved")[0].commit_id
    with pytest.raises(HfHubHTTPError) as error:
        api.merge_pull_request("lab/moved", clash.pr_num)
    assert status_of(error) == 409 and "Merge conflict: y changed on both sides" in str(error.value)
    assert api.list_repo_commits("lab/moved")[0].commit_id == head
    assert api.get_discussion_details("lab/moved", clash.pr_num).status == "open"

    api.upload_file(path_or_fileobj=b"y on main", path_in_repo="y", repo_id="lab/moved", revision="refs/pr/2")
    api.merge_pull_request("lab/moved", clash.pr_num)
    assert files(api, "lab/moved", tmp_path) == {"w": b"new on main", "x": b"x from the pr", "y": b"y on main"}

    api.create_branch("lab/moved", branch="dev")
    on_dev = api.upload_file(
        path_or_fileobj=b"v", path_in_repo="v", repo_id="lab/moved", revision="dev", create_pr=True
    )
    assert api.get_discussion_details("lab/moved", on_dev.pr_num).target_branch == "refs/heads/dev"
    api.merge_pull_request("lab/moved", on_dev.pr_num)
    assert "v" in api.list_repo_files("lab/moved", revision="dev") and "v" not in api.list_repo_files("lab/moved")


def test_records_of_the_previous_server_keep_loading(api: HfApi, hub: EmbeddedHub, tmp_path: Path) -> None:
    api.create_repo("lab/old")
    pr = api.upload_file(path_or_fileobj=b"v1", path_in_repo="f", repo_id="lab/old", create_pr=True)
    record = hub.settings.root / "models" / "lab" / "old" / "discussions" / "1.json"
    legacy = {"title": "Old PR", "description": "From before.", "author": "ana", "base": "refs/heads/main"}
    record.write_text(json.dumps({**legacy, "date": "2026-01-02T03:04:05Z"}))

    details = api.get_discussion_details("lab/old", 1)
    assert (details.title, details.author, details.status, details.is_pull_request) == ("Old PR", "ana", "open", True)
    assert [e.type for e in details.events] == ["comment", "commit"] and details.events[1].oid == pr.oid
    assert details.events[0].content == "From before."
    assert [d.title for d in api.get_repo_discussions("lab/old")] == ["Old PR"]
    api.comment_discussion("lab/old", 1, "Still here.")
    api.merge_pull_request("lab/old", 1)
    assert files(api, "lab/old", tmp_path) == {"f": b"v1"}
    assert [e.type for e in api.get_discussion_details("lab/old", 1).events] == [
        "comment",
        "commit",
        "comment",
        "status-change",
    ]


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        ("/api/models/lab/bad/discussions", {"title": " "}, 400, "A discussion title is 1 to 200"),
        ("/api/models/lab/bad/discussions", {"title": "x" * 201}, 400, "A discussion title is 1 to 200"),
        ("/api/models/lab/bad/discussions/1/comment", {"comment": "  "}, 400, "not blank"),
        ("/api/models/lab/bad/discussions/1/comment", {}, 400, "lacks 'comment'"),
        ("/api/models/lab/bad/discussions/1/status", {"status": "merged"}, 400, "'open' or 'closed'"),
        ("/api/models/lab/bad/discussions/1/title", {"title": "a\nb"}, 400, "on one line"),
        ("/api/models/lab/bad/discussions/1/comment/abc/edit", {"content": "x"}, 404, "'abc' does not exist"),
        ("/api/models/lab/bad/discussions/9/comment", {"comment": "x"}, 404, "Discussion 9 does not exist"),
    ],
)
def test_bad_discussion_requests_are_refused_and_change_nothing(
    api: HfApi, hub: EmbeddedHub, raw_request, path: str, body: dict, status: int, message: str
) -> None:
    api.create_repo("lab/bad")
    api.create_discussion("lab/bad", "topic")
    before = api.get_discussion_details("lab/bad", 1)
    answer_status, answer, headers = raw_request(hub, "POST", path, json.dumps(body).encode())
    assert answer_status == status and message in json.loads(answer)["error"] and message in headers["X-Error-Message"]
    after = api.get_discussion_details("lab/bad", 1)
    assert (after.title, after.status, len(after.events)) == (before.title, before.status, len(before.events))
