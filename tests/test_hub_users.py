"""Users, organisations and read/write tokens on the embedded Hub (``--users FILE``), through HfApi and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from adapterzoo.hub import EmbeddedHub
from adapterzoo.hub.users import UsersFileError, load_accounts

USERS = {
    "users": {
        "ana": {"tokens": [{"token": "ana-write-token"}, {"token": "ana-read-token", "role": "read", "name": "ci"}]},
        "bo": {"tokens": [{"token": "bo-write-token", "role": "write"}]},
        "cy": {"tokens": [{"token": "cy-write-token"}]},
    },
    "organizations": {"lab": {"members": {"ana": "admin", "bo": "read"}}, "team": {"members": ["bo"]}},
}


@pytest.fixture(scope="module")
def users_hub(tmp_path_factory: pytest.TempPathFactory):
    with EmbeddedHub(tmp_path_factory.mktemp("users") / "hub", users=USERS) as hub:
        yield hub


def client(hub: EmbeddedHub, token: str | bool) -> HfApi:
    return HfApi(endpoint=hub.url, token=token)


def refused(call, status: int, message: str = "") -> None:
    with pytest.raises(HfHubHTTPError) as error:
        call()
    assert error.value.response.status_code == status, error.value
    assert message in str(error.value)


def test_whoami_names_the_user_their_organisations_and_the_token_role(users_hub: EmbeddedHub) -> None:
    ana = client(users_hub, "ana-write-token").whoami()
    assert ana["name"] == "ana" and ana["auth"]["accessToken"]["role"] == "write"
    assert [(org["name"], org["roleInOrg"]) for org in ana["orgs"]] == [("lab", "admin")]
    reader = client(users_hub, "ana-read-token").whoami()
    assert reader["auth"]["accessToken"] == {"displayName": "ci", "role": "read"}
    assert [org["name"] for org in client(users_hub, "bo-write-token").whoami()["orgs"]] == ["lab", "team"]
    refused(lambda: client(users_hub, "not-a-token").whoami(), 401)


def test_users_write_their_namespace_and_their_organisations_only(users_hub: EmbeddedHub) -> None:
    ana, ana_read, bo, anonymous = (
        client(users_hub, t) for t in ("ana-write-token", "ana-read-token", "bo-write-token", False)
    )
    ana.create_repo("ana/own")
    ana.create_repo("lab/shared")
    bo.create_repo("team/tools")
    ana.upload_file(path_or_fileobj=b"v1", path_in_repo="f", repo_id="lab/shared")
    refused(lambda: bo.create_repo("lab/by-a-reader"), 403, "You don't have the rights")
    refused(lambda: bo.create_repo("ana/not-bos"), 403, "namespace 'ana'")
    refused(lambda: bo.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="lab/shared"), 403)
    refused(lambda: bo.create_branch("ana/own", branch="dev"), 403)
    refused(lambda: ana_read.create_repo("ana/with-a-read-token"), 403, "write token")
    refused(lambda: ana_read.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="ana/own"), 403)
    refused(lambda: anonymous.create_repo("ana/anonymous"), 401)
    assert ana.list_repo_files("lab/shared") == ["f"] and ana.list_repo_files("ana/own") == []
    assert ana_read.model_info("lab/shared").id == "lab/shared"


def test_private_repos_are_seen_by_their_namespace_only(users_hub: EmbeddedHub) -> None:
    ana, ana_read, bo, cy, anonymous = (
        client(users_hub, t) for t in ("ana-write-token", "ana-read-token", "bo-write-token", "cy-write-token", False)
    )
    ana.create_repo("lab/secret", private=True)
    ana.create_repo("ana/diary", private=True)
    ana.upload_file(path_or_fileobj=b"s", path_in_repo="s", repo_id="lab/secret")
    assert bo.model_info("lab/secret").private and ana_read.list_repo_files("ana/diary") == []
    for outsider in (cy, anonymous):
        with pytest.raises(RepositoryNotFoundError):
            outsider.model_info("lab/secret")
    with pytest.raises(RepositoryNotFoundError):
        bo.model_info("ana/diary")
    with pytest.raises(RepositoryNotFoundError):
        cy.get_repo_discussions("lab/secret").__next__()
    refused(lambda: cy.create_commit("lab/secret", [], commit_message="x", create_pr=True), 404)


def test_outsiders_propose_pull_requests_and_members_merge_them(users_hub: EmbeddedHub) -> None:
    ana, bo, cy = (client(users_hub, t) for t in ("ana-write-token", "bo-write-token", "cy-write-token"))
    ana.create_repo("lab/open")
    ana.upload_file(path_or_fileobj=b"v1", path_in_repo="f", repo_id="lab/open")
    proposal = cy.upload_file(path_or_fileobj=b"v2", path_in_repo="f", repo_id="lab/open", create_pr=True)
    cy.upload_file(path_or_fileobj=b"more", path_in_repo="g", repo_id="lab/open", revision=proposal.pr_revision)
    refused(
        lambda: bo.upload_file(path_or_fileobj=b"b", path_in_repo="b", repo_id="lab/open", revision="refs/pr/1"), 403
    )
    remark = bo.comment_discussion("lab/open", 1, "Looks good to me.")
    refused(lambda: cy.edit_discussion_comment("lab/open", 1, remark.id, "Looks bad."), 403, "Only the author")
    refused(lambda: bo.rename_discussion("lab/open", 1, "Renamed by bo"), 403)
    refused(lambda: bo.merge_pull_request("lab/open", 1), 403)
    refused(lambda: cy.merge_pull_request("lab/open", 1), 403)
    cy.rename_discussion("lab/open", 1, "Update f, add g")
    question = bo.create_discussion("lab/open", "A question")
    refused(lambda: cy.change_discussion_status("lab/open", question.num, "closed"), 403)
    bo.change_discussion_status("lab/open", question.num, "closed")
    ana.merge_pull_request("lab/open", 1)
    assert sorted(ana.list_repo_files("lab/open")) == ["f", "g"]
    details = ana.get_discussion_details("lab/open", 1)
    assert (details.author, details.status, details.title) == ("cy", "merged", "Update f, add g")
    assert [e.author for e in details.events] == ["cy", "cy", "cy", "bo", "cy", "ana"]
    assert [d.author for d in ana.get_repo_discussions("lab/open", author="bo")] == ["bo"]


@pytest.mark.parametrize(
    "content, message",
    [
        ({"users": {}}, "must list at least one user"),
        ({"users": {"ana": {"tokens": [{"token": "short"}]}}}, "at least 8 printable"),
        ({"users": {"ana": {"tokens": [{"token": "t" * 8, "role": "admin"}]}}}, "'role' must be one of read, write"),
        ({"users": {"a": {"tokens": [{"token": "t" * 8}]}, "b": {"tokens": [{"token": "t" * 8}]}}}, "already given"),
        ({"users": {"../x": {}}}, "not a valid user or organization name"),
        ({"users": {"ana": {"token": "t" * 8}}}, "unknown key 'token'"),
        ({"users": {"ana": {}}, "organizations": {"lab": {"members": ["bo"]}}}, "'bo' is not a user"),
        ({"users": {"ana": {}}, "organizations": {"lab": {"members": {"ana": "owner"}}}}, "read, write, admin"),
        ({"users": {"ana": {}}, "organizations": {"ana": {"members": []}}}, "both a user and an organization"),
        ({"users": ["ana"]}, "must be a mapping"),
    ],
)
def test_a_bad_users_file_is_refused_with_the_reason(content: dict, message: str) -> None:
    with pytest.raises(UsersFileError, match=message):
        load_accounts(content)


def test_the_cli_serves_a_users_file_and_refuses_a_bad_one(tmp_path: Path) -> None:
    good, bad = tmp_path / "users.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(USERS))
    bad.write_text("users:\n  ana:\n    tokens: [{token: t, role: write}]\n")
    command = [sys.executable, "-m", "adapterzoo", "hub", "serve", "--root", str(tmp_path / "hub"), "--port", "0"]
    failed = subprocess.run([*command, "--users", str(bad)], capture_output=True, text=True, timeout=60)
    assert failed.returncode != 0 and failed.stdout == ""
    assert failed.stderr.strip().count("\n") == 0 and "at least 8 printable" in failed.stderr
    assert str(bad) in failed.stderr
    server = subprocess.Popen([*command, "--users", str(good)], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip().rsplit(" at ", 1)[1]
        assert HfApi(endpoint=url, token="bo-write-token").whoami()["name"] == "bo"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_users_file_replaces_the_single_token(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be combined with a token"):
        EmbeddedHub(tmp_path / "hub", token="secret", users=USERS)
