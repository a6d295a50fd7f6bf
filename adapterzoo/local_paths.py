"""Telling a local path from a Hub id, and naming the path a user probably meant when one does not exist.

A Hub id is ``name`` or ``namespace/name``. A string that cannot be one, or whose first part is a folder here, is a
local path: a typo in it should say "no such folder", not "Repo id must be in the form ..." or a failed download.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path


def looks_like_local_path(name: str) -> bool:
    """Whether ``name`` can only mean a local path: it starts with ``.``, ``/`` or ``~``, holds a backslash or more
    than one slash, or its first part is a folder here (``runs/fnal`` beside ``runs/``)."""
    if name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1:
        return True
    head, slash, _ = name.partition("/")
    return bool(slash) and os.path.isdir(head)


def nearest_existing(path: str | os.PathLike) -> str | None:
    """The existing path closest to a missing ``path``: its first missing part replaced by the most similar name in
    the folder above (``runs/vtp/final`` -> ``runs/vpt/final``); None when nothing there is similar."""
    parts = Path(os.path.expanduser(path)).parts
    for depth in range(len(parts)):
        folder = Path(*parts[:depth]) if depth else Path(".")
        if depth and not folder.is_dir():
            return None
        if not (folder / parts[depth]).exists():
            try:
                names = [entry.name for entry in folder.iterdir()]
            except OSError:
                return None
            close = difflib.get_close_matches(parts[depth], names, n=1, cutoff=0.6)
            if not close:
                return None
            nearest = str(Path(*parts[:depth], close[0], *parts[depth + 1 :]))
            return f"./{nearest}" if str(path).startswith("./") else nearest
    return None


def missing_path_message(path: str | os.PathLike, what: str) -> str:
    """'No adapter folder runs/vtp/final (did you mean runs/vpt/final?)': for errors about a path that is not there."""
    nearest = nearest_existing(path)
    return f"No {what} {path}" + (f" (did you mean {nearest}?)" if nearest else "")
