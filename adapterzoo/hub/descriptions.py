"""What the embedded Hub says of a repository: its card's metadata, its tags, and the fields of ``ModelInfo``,
``DatasetInfo`` and ``SpaceInfo``.

A repo's card metadata is its README's YAML front matter. Its tags are those the Hub derives from that metadata:
the card's own ``tags``, then for models ``library_name``, ``pipeline_tag``, the languages and ``license:…``,
``dataset:…``, ``base_model:…``; for datasets ``language:…``, ``license:…``, ``task_categories:…`` and the like.
Cards are parsed once per content (their objects never change), so describing many repos stays cheap.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from adapterzoo.hub.store import Commit, FileEntry, Repo

MAX_CARD_BYTES = 1 << 20
_MODEL_PREFIXED = {"license": "license", "datasets": "dataset", "base_model": "base_model"}
_DATASET_PREFIXED = (
    "language",
    "license",
    "task_categories",
    "task_ids",
    "size_categories",
    "multilinguality",
    "language_creators",
    "annotations_creators",
)


def safe_yaml(text: str) -> Any:
    """YAML front matter, refusing aliases: a few nested aliases expand to gigabytes once the data is serialised."""
    if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
        raise yaml.YAMLError("aliases (*name) are not allowed in model card metadata")
    return yaml.safe_load(text)


def card_metadata(repo: Repo, readme: FileEntry | None) -> dict:
    """The README's YAML front matter as JSON-ready data; {} when there is none or it cannot be read safely."""
    if readme is None or readme.size > MAX_CARD_BYTES:
        return {}
    return json.loads(_parsed_card(readme.sha256, repo.object_path(readme.sha256)))


@lru_cache(maxsize=4096)
def _parsed_card(sha256: str, path: Path) -> str:
    """The front matter of the README stored as ``sha256``, as JSON text (a fresh dict for every caller)."""
    text = path.read_text(errors="replace")
    if not text.startswith("---"):
        return "{}"
    try:
        data = json.loads(json.dumps(safe_yaml(text.split("---", 2)[1]), default=str))
    except (yaml.YAMLError, IndexError, TypeError, ValueError, RecursionError):
        return "{}"
    return json.dumps(data if isinstance(data, dict) else {})


def hub_tags(repo_type: str, card: dict) -> list[str]:
    """The tags the Hub lists a repo under (and ``filter`` matches), in order and without repeats."""
    tags = _strings(card.get("tags"))
    if repo_type == "model":
        tags += _strings(card.get("library_name")) + _strings(card.get("pipeline_tag"))
        tags += _strings(card.get("language"))
        for key, prefix in _MODEL_PREFIXED.items():
            tags += [f"{prefix}:{value}" for value in _strings(card.get(key))]
    elif repo_type == "dataset":
        for key in _DATASET_PREFIXED:
            tags += [f"{key}:{value}" for value in _strings(card.get(key))]
    return list(dict.fromkeys(tags))


def _strings(value: Any) -> list[str]:
    """A card field that is a string or a list, as a list of strings (numbers, like years, as text)."""
    values = value if isinstance(value, list) else [value]
    return [str(item) for item in values if isinstance(item, (str, int, float)) and not isinstance(item, bool)]


def describe(repo: Repo, commit: Commit, *, siblings: bool = True) -> dict[str, Any]:
    """Every field this hub knows of a repo at ``commit``, named as the Hub's API names them.

    ``siblings`` (the file list) is the only part that grows with the repo: leave it out when it is not wanted.
    """
    card = card_metadata(repo, commit.tree.get("README.md"))
    info: dict[str, Any] = {
        "id": repo.id,
        "author": repo.id.split("/")[0],
        "sha": commit.id,
        "private": repo.private,
        "disabled": False,
        "gated": False,
        "lastModified": commit.date,
        "createdAt": repo.created,
        "tags": hub_tags(repo.type, card),
        "cardData": card,
    }
    if repo.type == "model":
        info["modelId"] = repo.id
        for key in ("library_name", "pipeline_tag"):
            if isinstance(card.get(key), str):
                info[key] = card[key]
    if repo.type == "space" and isinstance(card.get("sdk"), str):
        info["sdk"] = card["sdk"]
    if siblings:
        info["siblings"] = [_sibling(path, entry) for path, entry in sorted(commit.tree.items())]
    return info


def _sibling(path: str, entry: FileEntry) -> dict[str, Any]:
    sibling: dict[str, Any] = {"rfilename": path, "size": entry.size, "blobId": entry.oid}
    if entry.lfs:
        sibling["lfs"] = {"size": entry.size, "sha256": entry.sha256, "pointerSize": len(entry.pointer)}
    return sibling
