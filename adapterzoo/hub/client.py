"""Downloading a saved adapter from a Hub repo: its files at one exact commit, from the cache when offline.

A repo without the zoo's record but with PEFT's config holds an adapter PEFT saved (`adapterzoo.peft_interop`): its
PEFT files are fetched, with transformers' ``config.json`` (the labels) and the image processor's config if present.
"""

from __future__ import annotations

import os
from contextlib import suppress
from functools import partial
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from huggingface_hub.utils import validate_repo_id

from adapterzoo import __version__
from adapterzoo.errors import CheckpointError
from adapterzoo.saving import (
    PEFT_CONFIG_NAME,
    PICKLE_SUFFIXES,
    PROCESSOR_CONFIG_NAME,
    TRANSFORMERS_CONFIG_NAME,
    WEIGHTS_NAME,
    ZOO_CONFIG_NAME,
)

ZOO_FILES = (PEFT_CONFIG_NAME, WEIGHTS_NAME, PROCESSOR_CONFIG_NAME)
"""What an adapterzoo adapter needs beside its record."""
PEFT_OPTIONAL_FILES = (TRANSFORMERS_CONFIG_NAME, PROCESSOR_CONFIG_NAME)
"""What an adapter PEFT saved may hold beside its config and weights, and is fetched when there."""


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
    commit = (
        HfApi(token=token)
        .resolve_revision(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        .resolved
    )
    download = partial(
        hf_hub_download,
        repo_id,
        subfolder=subfolder or None,
        revision=commit,
        token=token,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        force_download=force_download,
        library_name="adapterzoo",
        library_version=__version__,
    )
    in_repo = partial(_path_in_repo, subfolder)
    try:
        folder = Path(download(ZOO_CONFIG_NAME)).parent
        required, optional = ZOO_FILES, ()
    except EntryNotFoundError as exc:
        try:
            folder = Path(download(PEFT_CONFIG_NAME)).parent
        except EntryNotFoundError:
            raise CheckpointError(_missing_file_message(repo_id, commit, in_repo(ZOO_CONFIG_NAME), token)) from exc
        required, optional = (WEIGHTS_NAME,), PEFT_OPTIONAL_FILES
    for name in required:
        try:
            folder = Path(download(name)).parent
        except EntryNotFoundError as exc:
            raise CheckpointError(_missing_file_message(repo_id, commit, in_repo(name), token)) from exc
    for name in optional:
        with suppress(EntryNotFoundError):
            download(name)
    return folder


def _path_in_repo(subfolder: str, name: str) -> str:
    return f"{subfolder.strip('/')}/{name}" if subfolder else name


def _missing_file_message(repo_id: str, commit: str, name: str, token: str | bool | None) -> str:
    message = f"The Hub repo '{repo_id}' (commit {commit}) has no {name}"
    if name.endswith(ZOO_CONFIG_NAME):
        return message + " and no adapter_config.json: it holds neither an adapterzoo adapter nor a PEFT one."
    if name.endswith(WEIGHTS_NAME):
        files = HfApi(token=token).list_repo_files(repo_id, revision=commit)
        pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
        if pickles:
            return (
                f"The Hub repo '{repo_id}' holds only pickle weights ({', '.join(pickles)}); adapterzoo loads "
                "safetensors only and never unpickles."
            )
    return message + "."
