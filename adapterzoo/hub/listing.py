"""Listing and searching repositories as the Hub's ``GET /api/models`` (``datasets``, ``spaces``) does.

Query parameters: ``search`` (case-insensitive substrings of the repo id, all of them), ``author`` (the namespace),
``filter`` (tags, all of them; see `adapterzoo.hub.descriptions.hub_tags`), ``pipeline_tag``, ``gated``, ``sort``
(``lastModified``, ``createdAt`` or ``id``) with ``direction`` (``-1`` descending, ``1`` ascending; dates sort newest
first and ids in order unless told), ``limit`` (the page size, at most `PAGE_SIZE`), and which fields to answer:
``full``, ``cardData`` and ``expand`` (a list of field names). Filters this hub cannot apply (``num_parameters``,
``apps``, ``inference``...) are refused with a 400, not ignored: ignoring one would answer repos it excludes.

Pages are chained as the Hub chains them: a ``Link: <url>; rel="next"`` header whose URL holds a ``cursor``: the
query itself and the sort key of the page's last repo, so the next page starts right after the repo the previous one
ended on. (The cursor is URL-safe base64: the link needs no percent-encoding, whatever the query holds.)
Each repo costs its metadata, its head commit's record and its card (parsed once per content); file lists
(``siblings``) are only built when asked for.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from adapterzoo.hub.descriptions import describe
from adapterzoo.hub.names import HubError
from adapterzoo.hub.store import DEFAULT_BRANCH, Repo

PAGE_SIZE = 1000
SORT_KEYS = ("lastModified", "createdAt", "id")
# What the Hub answers for each type when neither ``full`` nor ``expand`` asks for more.
DEFAULT_FIELDS = {
    "model": ("id", "modelId", "private", "tags", "pipeline_tag", "library_name", "createdAt"),
    "dataset": ("id", "author", "sha", "lastModified", "private", "gated", "disabled", "tags", "createdAt"),
    "space": ("id", "author", "sha", "lastModified", "private", "tags", "sdk", "createdAt"),
}
# The fields ``expand`` may name, by type: the Hub's own lists (those this hub does not track are left out).
EXPANDABLE = {
    "model": {
        "author", "baseModels", "cardData", "childrenModelCount", "config", "createdAt", "disabled", "downloads",
        "downloadsAllTime", "evalResults", "gated", "gguf", "inference", "inferenceProviderMapping", "lastModified",
        "library_name", "likes", "mask_token", "model-index", "pipeline_tag", "private", "resourceGroup",
        "safetensors", "sha", "siblings", "spaces", "tags", "transformersInfo", "trendingScore", "usedStorage",
        "widgetData",
    },
    "dataset": {
        "author", "cardData", "citation", "createdAt", "description", "disabled", "downloads", "downloadsAllTime",
        "gated", "lastModified", "likes", "mainSize", "paperswithcode_id", "private", "resourceGroup", "sha",
        "siblings", "tags", "trendingScore", "usedStorage",
    },
    "space": {
        "author", "cardData", "createdAt", "datasets", "disabled", "lastModified", "likes", "models", "private",
        "region", "resourceGroup", "runtime", "sdk", "sha", "siblings", "subdomain", "tags", "trendingScore",
        "usedStorage",
    },
}  # fmt: skip
_KNOWN = {"search", "author", "filter", "pipeline_tag", "gated", "sort", "direction", "limit", "cursor", "full"}
_KNOWN |= {"cardData", "config", "expand", "expand[]"}
_TRUE = ("1", "true")


@dataclass(frozen=True)
class ListQuery:
    """A checked listing request."""

    repo_type: str
    search: tuple[str, ...] = ()
    author: str | None = None
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    gated: bool | None = None
    sort: str = "id"
    descending: bool = False
    limit: int = PAGE_SIZE
    after: tuple[str, str] | None = None
    fields: frozenset[str] | None = None  # None: all
    params: tuple[tuple[str, tuple[str, ...]], ...] = ()  # the query as asked, carried by the next page's cursor


def parse_query(repo_type: str, query: dict[str, list[str]]) -> ListQuery:
    """The listing asked for by ``query`` (each parameter with all its values), or a 400 that says what is wrong.
    A ``cursor`` stands for the query of the listing it continues."""
    after = None
    if "cursor" in query:
        if len(query) > 1:
            raise HubError(400, "Invalid query: a 'cursor' carries its listing's query, pass it alone")
        query, after = _decode_cursor(query["cursor"][-1])
    if unknown := sorted(set(query) - _KNOWN):
        raise HubError(400, f"This hub cannot list by {unknown[0]!r}: it knows {', '.join(sorted(_KNOWN))}")

    def last(key: str) -> str | None:
        return query[key][-1] if key in query else None

    sort = last("sort") or "id"
    if sort not in SORT_KEYS:
        raise HubError(400, f"Invalid sort {sort!r}: this hub sorts by {', '.join(SORT_KEYS)}")
    direction = last("direction")
    if direction not in (None, "-1", "1"):
        raise HubError(400, f"Invalid direction {direction!r}: expected -1 (descending) or 1 (ascending)")
    gated = last("gated")
    if gated is not None and gated.lower() not in ("true", "false"):
        raise HubError(400, f"Invalid gated {gated!r}: expected true or false")
    return ListQuery(
        repo_type=repo_type,
        search=tuple(term.lower() for term in query.get("search", []) if term),
        author=last("author") or None,
        tags=tuple(query.get("filter", [])),
        pipeline_tag=last("pipeline_tag") or None,
        gated=None if gated is None else gated.lower() == "true",
        sort=sort,
        descending=direction == "-1" if direction else sort != "id",
        limit=_limit(last("limit")),
        after=after,
        fields=_fields(repo_type, query),
        params=tuple((key, tuple(values)) for key, values in sorted(query.items())),
    )


def _limit(value: str | None) -> int:
    if value is None:
        return PAGE_SIZE
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise HubError(400, f"Invalid limit {value[:40]!r}: expected a positive whole number")
    return min(int(value), PAGE_SIZE)


def _fields(repo_type: str, query: dict[str, list[str]]) -> frozenset[str] | None:
    expand = [name for key in ("expand", "expand[]") for value in query.get(key, []) for name in value.split(",")]
    full = query.get("full", ["false"])[-1].lower() in _TRUE
    if expand and (full or "cardData" in query or "config" in query):
        raise HubError(400, "'expand' cannot be combined with 'full', 'cardData' or 'config'")
    if unknown := sorted(set(expand) - EXPANDABLE[repo_type]):
        raise HubError(
            400, f"Invalid expand {unknown[0]!r}: a {repo_type} has {', '.join(sorted(EXPANDABLE[repo_type]))}"
        )
    if expand:
        return frozenset(["id", *expand])
    if full:
        return None
    fields = set(DEFAULT_FIELDS[repo_type])
    if query.get("cardData", ["false"])[-1].lower() in _TRUE:
        fields.add("cardData")
    return frozenset(fields)


def _decode_cursor(cursor: str) -> tuple[dict[str, list[str]], tuple[str, str]]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        query, after = value["query"], value["after"]
        if not isinstance(query, dict) or "cursor" in query:
            raise ValueError
        if not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in query.values()):
            raise ValueError
        if not (isinstance(after, list) and len(after) == 2 and all(isinstance(part, str) for part in after)):
            raise ValueError
    except (UnicodeEncodeError, binascii.Error, ValueError, TypeError, KeyError, RecursionError):
        raise HubError(400, f"Invalid cursor {cursor[:60]!r}: pass on the one a Link header gave") from None
    return query, (after[0], after[1])


def next_page_url(base: str, query: ListQuery, after: tuple[str, str]) -> str:
    """The URL of the page after the one that ended on the repo whose sort key is ``after``: what the ``Link``
    header's ``rel="next"`` points to."""
    state = {"query": {key: list(values) for key, values in query.params}, "after": list(after)}
    return f"{base}?cursor={base64.urlsafe_b64encode(json.dumps(state).encode()).decode('ascii')}"


def list_page(
    repos: Iterable[Repo], query: ListQuery, may_read: Callable[[Repo], bool]
) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
    """One page of the repos that match ``query`` and that the requester may read, each with the fields asked for,
    and the cursor of the next page (None on the last one)."""
    matches = []
    for repo in repos:
        if not _id_matches(repo.id, query):
            continue
        try:
            if not may_read(repo):
                continue
            commit = repo.read_commit(repo.resolve(DEFAULT_BRANCH))
            info = describe(repo, commit, siblings=_wants(query, "siblings"))
        except HubError as error:
            if error.status == 404:  # deleted while this listing ran, or without a main branch: nothing to show
                continue
            raise
        if all(tag in info["tags"] for tag in query.tags) and _info_matches(info, query):
            matches.append(((str(info[query.sort]), repo.id), info))
    matches.sort(key=lambda match: match[0], reverse=query.descending)
    if query.after is not None:
        after = query.after
        matches = [m for m in matches if (m[0] < after if query.descending else m[0] > after)]
    page = matches[: query.limit]
    items = [{k: v for k, v in info.items() if _wants(query, k)} for _, info in page]
    return items, (page[-1][0] if len(matches) > query.limit else None)


def _wants(query: ListQuery, field: str) -> bool:
    return query.fields is None or field in query.fields


def _id_matches(repo_id: str, query: ListQuery) -> bool:
    if query.author is not None and repo_id.split("/")[0] != query.author:
        return False
    return all(term in repo_id.lower() for term in query.search)


def _info_matches(info: dict[str, Any], query: ListQuery) -> bool:
    if query.pipeline_tag is not None and info.get("pipeline_tag") != query.pipeline_tag:
        return False
    return query.gated is None or query.gated == bool(info["gated"])
