"""Calling transformers' Auto loaders so that files never run, import or prompt for code unless the user opted in.

transformers runs a checkpoint's own code when its config, preprocessor or tokenizer config names it in an
``auto_map`` and ``trust_remote_code`` allows it; left unset, it asks on stdin. Here the argument is always explicit,
and a checkpoint that declares custom code is refused unless the caller passed ``trust_remote_code=True``.
"""

from __future__ import annotations

import os
from typing import Any

import transformers

from adapterzoo.errors import RemoteCodeError

CONFIG_FILES = {
    "AutoConfig": "config.json",
    "AutoImageProcessor": "preprocessor_config.json",
    "AutoTokenizer": "tokenizer_config.json",
}
"""The file each Auto loader reads its ``auto_map`` from, named in refusals."""


def load_auto(loader: str, name_or_path: str | os.PathLike, *, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """``transformers.<loader>.from_pretrained(name_or_path, **kwargs)`` with ``trust_remote_code`` explicit.

    ``loader`` is one of `CONFIG_FILES`. Without ``trust_remote_code``, a checkpoint whose file declares custom code
    raises `RemoteCodeError`, both when transformers cannot load it without that code and when it would fall back on
    its built-in class; nothing of the checkpoint's code is imported either way.
    """
    try:
        loaded = getattr(transformers, loader).from_pretrained(
            name_or_path, trust_remote_code=trust_remote_code, **kwargs
        )
    except ValueError as exc:
        if trust_remote_code or "trust_remote_code" not in str(exc):
            raise
        raise _refusal(loader, name_or_path) from exc
    if not trust_remote_code and _auto_map(loaded):
        raise _refusal(loader, name_or_path)
    return loaded


def _auto_map(loaded: Any) -> Any:
    """The ``auto_map`` a loaded config or image processor (attribute) or tokenizer (init kwarg) was read with."""
    return getattr(loaded, "auto_map", None) or getattr(loaded, "init_kwargs", {}).get("auto_map")


def _refusal(loader: str, name_or_path: str | os.PathLike) -> RemoteCodeError:
    return RemoteCodeError(
        f"'{name_or_path}' ships custom code: its {CONFIG_FILES[loader]} names classes in an auto_map. adapterzoo "
        "never runs code from a downloaded file; if you trust its author, pass trust_remote_code=True."
    )
