"""Discussions and pull requests of one repository, kept on disk and shown as the Hub shows them to the client.

Discussions and pull requests share one numbering. Each has a record in ``discussions/<n>.json``::

    {"title", "description", "author", "date", "base",      # all a record of the first version of this server holds
     "isPullRequest", "status", "from", "mergeCommitId", "events"}

``base`` is the ref a pull request merges into and ``from`` the commit it branched from; ``events`` are the comments
(the first is the opening one), status changes and renames, in order. A pull request's commits are not recorded: they
are its ``refs/pr/<n>`` history back to ``from``. Records are rewritten whole under the repository's lock; a record
that lacks the later keys loads as an open pull request whose opening comment is its description.
"""

from __future__ import annotations

import hashlib
import html
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from adapterzoo.hub.names import HubError
from adapterzoo.hub.store import DEFAULT_BRANCH, Commit, Repo, _now, changed_paths

PAGE_SIZE = 50
STATUS_FILTERS = {"all": ("open", "closed", "merged"), "open": ("open",), "closed": ("closed", "merged")}
TYPE_FILTERS = {"all": (False, True), "discussion": (False,), "pull_request": (True,)}
MAX_TITLE = 200
MAX_COMMENT = 65536
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _title(title: str) -> str:
    """A discussion title: stripped, 1 to 200 characters, on one line."""
    title = title.strip()
    if not title or len(title) > MAX_TITLE or _CONTROL.search(title):
        raise HubError(400, f"A discussion title is 1 to {MAX_TITLE} characters on one line")
    return title


def _comment_text(content: str) -> str:
    """A comment's markdown: not blank, at most 64 KiB characters."""
    if not content.strip() or len(content) > MAX_COMMENT:
        raise HubError(400, f"A comment is 1 to {MAX_COMMENT} characters, not blank")
    return content


class Discussions:
    """The discussions and pull requests of ``repo``."""

    def __init__(self, repo: Repo):
        self.repo = repo

    # reading
    def get(self, number: int) -> dict:
        """Discussion ``number``'s record, with every key (records of older servers are completed); 404 if none."""
        record = self._load(number)
        if record is None:
            raise HubError(404, f"Discussion {number} does not exist in {self.repo.id}")
        return record

    def _load(self, number: int) -> dict | None:
        """None for a number without a record (a pull-request ref whose server stopped before writing it)."""
        record = self.repo.read_discussion(number)
        if record is None:
            return None
        if "events" not in record:
            opening = hashlib.sha1(f"{number}:{record['date']}".encode()).hexdigest()[:24]
            record["events"] = [_comment(record["author"], record["description"], record["date"], opening)]
        record.setdefault("isPullRequest", True)
        record.setdefault("status", "open")
        if record["isPullRequest"] and not record.get("from"):
            record["from"] = self._branch_point(number, record["base"])
        return record

    def listing(self, *, kind: str, status: str, author: str | None, page: int) -> dict[str, Any]:
        """One page of the discussions that pass the filters, newest first, as ``GET .../discussions`` answers."""
        if kind not in TYPE_FILTERS or status not in STATUS_FILTERS:
            raise HubError(400, f"Filter by type {'/'.join(TYPE_FILTERS)} and status {'/'.join(STATUS_FILTERS)}")
        loaded = {n: self._load(n) for n in reversed(self.repo.discussion_numbers())}
        records = {n: record for n, record in loaded.items() if record is not None}
        chosen = [
            self._summary(n, record)
            for n, record in records.items()
            if record["isPullRequest"] in TYPE_FILTERS[kind]
            and record["status"] in STATUS_FILTERS[status]
            and author in (None, record["author"])
        ]
        start = page * PAGE_SIZE
        return {
            "discussions": chosen[start : start + PAGE_SIZE],
            "count": len(chosen),
            "start": start,
            "numClosedDiscussions": sum(record["status"] != "open" for record in records.values()),
        }

    def details(self, number: int, *, diff: bool) -> dict[str, Any]:
        """Discussion ``number`` with its events, as ``GET .../discussions/<n>`` answers."""
        record = self.get(number)
        answer = self._summary(number, record)
        answer["events"] = [_event_json(event) for event in record["events"]]
        if record["isPullRequest"]:
            answer["events"] = self._with_commits(number, record)
            answer["changes"] = {"base": record["base"]}
            if record.get("mergeCommitId"):
                answer["changes"]["mergeCommitId"] = record["mergeCommitId"]
            answer["filesWithConflicts"] = self._conflicts(number, record)
            if diff:
                answer["diff"] = self._diff(number, record)
        return answer

    # changing
    @contextmanager
    def _changing(self, number: int) -> Iterator[dict]:
        """Record ``number``, written back whole when the block ends without an error, all under the repo lock.
        The events added in the block are stamped with the pull request's head."""
        with self.repo.locked():
            record = self.get(number)
            known = len(record["events"])
            yield record
            if record["isPullRequest"]:
                head = self.repo.read_ref(f"refs/pr/{number}")
                for event in record["events"][known:]:
                    event["head"] = head
            self.repo.write_discussion(number, record)

    def open(self, title: str, description: str, author: str, *, pull_request: bool) -> int:
        """Open a discussion, or a pull request into main; returns its number."""
        title = _title(title)
        with self.repo.locked():
            return self.add(title, description, author, base=f"refs/heads/{DEFAULT_BRANCH}" if pull_request else None)

    def add(self, title: str, description: str, author: str, *, base: str | None) -> int:
        """Open a discussion, or with ``base`` a pull request into that ref (the caller holds the repo lock)."""
        number = 1 + max(self.repo.discussion_numbers(), default=0)
        date = _now()
        record = {
            "title": title,
            "description": description,
            "author": author,
            "date": date,
            "isPullRequest": base is not None,
            "status": "open",
            "events": [_comment(author, description, date)],
        }
        if base is not None:
            record.update(base=base, **{"from": self.repo.start_pull_request(number, base)})
        self.repo.write_discussion(number, record)
        return number

    def comment(self, number: int, author: str, content: str) -> dict[str, Any]:
        with self._changing(number) as record:
            event = _comment(author, _comment_text(content))
            record["events"].append(event)
        return _event_json(event)

    def edit_comment(self, number: int, comment_id: str, author: str, content: str) -> dict[str, Any]:
        """Replace a comment's content, keeping its history; only its author may."""
        with self._changing(number) as record:
            event = next((e for e in record["events"] if e["type"] == "comment" and e["id"] == comment_id), None)
            if event is None:
                raise HubError(404, f"Comment {comment_id[:40]!r} does not exist in discussion {number}")
            if event["author"] != author:
                raise HubError(403, "Only the author of a comment can edit it")
            event["history"].append({"content": _comment_text(content), "author": author, "date": _now()})
            if event is record["events"][0]:
                record["description"] = content
        return _event_json(event)

    def rename(self, number: int, author: str, title: str) -> dict[str, Any]:
        with self._changing(number) as record:
            event = _event("title-change", author, **{"from": record["title"], "to": _title(title)})
            record["title"] = event["to"]
            record["events"].append(event)
        return _event_json(event)

    def set_status(self, number: int, author: str, status: str, comment: str | None) -> dict[str, Any]:
        """Close or reopen a discussion (a merged pull request stays merged), with an optional comment first."""
        if status not in ("open", "closed"):
            raise HubError(400, f"A discussion's status can be set to 'open' or 'closed', not {status[:20]!r}")
        with self._changing(number) as record:
            if record["status"] == "merged":
                raise HubError(409, f"Pull request {number} is merged: its status cannot change")
            if record["status"] == status:
                raise HubError(409, f"Discussion {number} is already {status}")
            if comment:
                record["events"].append(_comment(author, _comment_text(comment)))
            event = _event("status-change", author, status=status)
            record["status"] = status
            record["events"].append(event)
        return _event_json(event)

    def merge(self, number: int, author: str, comment: str | None) -> str:
        """Merge open pull request ``number`` into its base (see `Repo.merge`); returns the merge commit."""
        with self._changing(number) as record:
            if not record["isPullRequest"]:
                raise HubError(400, f"Discussion {number} is not a pull request: there is nothing to merge")
            if record["status"] != "open":
                raise HubError(409, f"Pull request {number} is {record['status']}: only an open one can be merged")
            if not record["from"]:
                raise HubError(409, f"Pull request {number} shares no commit with {record['base']}: nothing to merge")
            head = self._head(number)
            title = f"Merge pull request #{number}: {record['title']}"
            commit_id = self.repo.merge(head, record["from"], record["base"], title=title, message="", author=author)
            if comment:
                record["events"].append(_comment(author, _comment_text(comment)))
            record["events"].append(_event("status-change", author, status="merged"))
            record.update(status="merged", mergeCommitId=commit_id)
        return commit_id

    # pull requests' commits
    def _head(self, number: int) -> str:
        head = self.repo.read_ref(f"refs/pr/{number}")
        if head is None:
            raise HubError(404, f"Pull request {number} has no ref refs/pr/{number} in {self.repo.id}")
        return head

    def _branch_point(self, number: int, base: str) -> str | None:
        """For a record that does not say: the newest commit of the pull request that is also in its base."""
        base_head, head = self.repo.read_ref(base), self.repo.read_ref(f"refs/pr/{number}")
        known = {commit.id for commit in self.repo.history(base_head)} if base_head else set()
        return next((c.id for c in self.repo.history(head) if c.id in known), None) if head else None

    def _commits(self, number: int, record: dict) -> list[Commit]:
        head = self.repo.read_ref(f"refs/pr/{number}")
        commits = []
        for commit in self.repo.history(head) if head else ():
            if commit.id == record["from"]:
                break
            commits.append(commit)
        return commits[::-1]

    def _with_commits(self, number: int, record: dict) -> list[dict[str, Any]]:
        """The events of a pull request with its commits among them: each event after the commits its ``head`` (the
        pull request's head when it happened) holds; by date for events recorded without one."""
        pending = self._commits(number, record)
        order = {commit.id: i for i, commit in enumerate(pending)}
        events = [_event_json(record["events"][0])]
        for event in record["events"][1:]:
            seen = order.get(event.get("head"), -1)
            while pending and (
                order[pending[0].id] <= seen or ("head" not in event and pending[0].date <= event["date"])
            ):
                events.append(_commit_json(pending.pop(0)))
            events.append(_event_json(event))
        return events + [_commit_json(commit) for commit in pending]

    def _conflicts(self, number: int, record: dict) -> list[str]:
        base_head, head = self.repo.read_ref(record["base"]), self.repo.read_ref(f"refs/pr/{number}")
        if record["status"] != "open" or not (base_head and head and record["from"]):
            return []
        return self.repo.merged_tree(head, record["from"], base_head)[1]

    def _diff(self, number: int, record: dict) -> str:
        """Which files the pull request adds, deletes or modifies, as the headers of a git diff (no hunks)."""
        head = self.repo.read_ref(f"refs/pr/{number}")
        if not (head and record["from"]):
            return ""
        old, new = self.repo.read_commit(record["from"]).tree, self.repo.read_commit(head).tree
        lines = []
        for path in sorted(changed_paths(old, new)):
            before, after = old.get(path), new.get(path)
            lines.append(f"diff --git a/{path} b/{path}")
            if before is None:
                lines.append("new file mode 100644")
            elif after is None:
                lines.append("deleted file mode 100644")
            lines.append(f"index {before.oid[:7] if before else '0000000'}..{after.oid[:7] if after else '0000000'}")
            lines += [f"--- {'a/' + path if before else '/dev/null'}", f"+++ {'b/' + path if after else '/dev/null'}"]
        return "".join(line + "\n" for line in lines)

    def _summary(self, number: int, record: dict) -> dict[str, Any]:
        return {
            "num": number,
            "title": record["title"],
            "status": record["status"],
            "author": {"name": record["author"]},
            "createdAt": record["date"],
            "isPullRequest": record["isPullRequest"],
            "repo": {"name": self.repo.id, "type": self.repo.type},
            "numComments": sum(event["type"] == "comment" for event in record["events"]),
            "pinned": False,
        }


def _event(kind: str, author: str, **data: Any) -> dict[str, Any]:
    return {"id": secrets.token_hex(12), "type": kind, "author": author, "date": _now(), **data}


def _comment(author: str, content: str, date: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    """A comment event (made now, with a new id, unless given); ``history`` holds its versions, oldest first."""
    date = date or _now()
    version = {"content": content, "author": author, "date": date}
    return {
        "id": event_id or secrets.token_hex(12),
        "type": "comment",
        "author": author,
        "date": date,
        "history": [version],
    }


def _event_json(event: dict) -> dict[str, Any]:
    """A stored event as the Hub sends it (a comment's ``history`` is its earlier versions, newest first)."""
    answer = {"id": event["id"], "type": event["type"], "createdAt": event["date"], "author": {"name": event["author"]}}
    if event["type"] == "comment":
        history = [
            {"raw": v["content"], "html": _html(v["content"]), "updatedAt": v["date"], "author": {"name": v["author"]}}
            for v in reversed(event["history"])
        ]
        answer["data"] = {
            "edited": len(history) > 1,
            "hidden": False,
            "latest": history[0],
            "numEdits": len(history) - 1,
            "editors": sorted({v["author"] for v in event["history"]}),
            "history": history[1:],
        }
    elif event["type"] == "status-change":
        answer["data"] = {"status": event["status"]}
    else:
        answer["data"] = {"from": event["from"], "to": event["to"]}
    return answer


def _commit_json(commit: Commit) -> dict[str, Any]:
    return {
        "id": commit.id,
        "type": "commit",
        "createdAt": commit.date,
        "author": {"name": commit.author},
        "data": {"subject": commit.title, "oid": commit.id},
    }


def _html(markdown: str) -> str:
    """Comments are shown as escaped text: the server renders no markdown."""
    return f"<p>{html.escape(markdown)}</p>"
