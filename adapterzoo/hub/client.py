"""Downloading a saved adapter from a Hub repo: its files at one exact commit, from the cache when offline."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from huggingface_hub.utils import validate_repo_id

from adapterzoo import __version__
from adapterzoo.errors import CheckpointError
from adapterzoo.saving import PEFT_CONFIG_NAME, PICKLE_SUFFIXES, WEIGHTS_NAME, ZOO_CONFIG_NAME

PROCESSOR_CONFIG_NAME = "preprocessor_config.json"
ADAPTER_FILES = (ZOO_CONFIG_NAME, PEFT_CONFIG_NAME, WEIGHTS_NAME, PROCESSOR_CONFIG_NAME)


def is_hub_id(name: str | os.PathLike) -> bool:
    """Whether ``name`` means a Hub repo rather than a local folder (a Path, or a string naming a folder here)."""
    return isinstance(name, str) and not os.path.exists(name) and not name.startswith((".", "/", "~"))


def download_adapter(
    repo_id: str,
    *,
    revision: str | None = None,
    subfolder: str = "",
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
) -> Path:
    """Download the files an adapter needs from ``repo_id`` at ``revision`` (in its ``subfolder``); returns the folder
    holding them.

    All files come from the same commit, the one ``revision`` (default: main) points to now. With
    ``local_files_only=True`` or ``HF_HUB_OFFLINE=1`` they come from the cache, as left by an earlier download;
    ``force_download=True`` downloads them again even when cached. The arguments are huggingface_hub's.
    """
    validate_repo_id(repo_id)
    api = HfApi(token=token)
    commit = api.resolve_revision(
        repo_id, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
    ).resolved
    folder = None
    for name in ADAPTER_FILES:
        try:
            path = hf_hub_download(
                repo_id,
                name,
                subfolder=subfolder or None,
                revision=commit,
                token=token,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                force_download=force_download,
                library_name="adapterzoo",
                library_version=__version__,
            )
        except EntryNotFoundError as exc:
            path_in_repo = f"{subfolder.strip('/')}/{name}" if subfolder else name
            raise CheckpointError(_missing_file_message(repo_id, commit, path_in_repo, token)) from exc
        folder = Path(path).parent
    return folder


def _missing_file_message(repo_id: str, commit: str, name: str, token: str | bool | None) -> str:
    message = f"The Hub repo '{repo_id}' (commit {commit}) has no {name}"
    if name.endswith(ZOO_CONFIG_NAME):
        return message + ": it does not hold an adapterzoo adapter."
    if name.endswith(WEIGHTS_NAME):
        files = HfApi(token=token).list_repo_files(repo_id, revision=commit)
        pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
        if pickles:
            return (
                f"The Hub repo '{repo_id}' holds only pickle weights ({', '.join(pickles)}); adapterzoo loads "
                "safetensors only and never unpickles."
            )
    return message + "."
