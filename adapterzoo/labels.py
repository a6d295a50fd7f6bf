"""Checking class labels: present and unique, in linear time (a downloaded adapter may list hundreds of thousands)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

SHOWN = 10
"""How many repeated labels an error lists."""


def checked_labels(labels: Iterable[Any], *, owner: str, kind: str = "label") -> list[str]:
    """``labels`` as strings; a ValueError if there are none or some repeat (``owner`` and ``kind`` word the error)."""
    names = [str(label) for label in labels]
    if not names:
        raise ValueError(f"{owner} needs at least one {kind}.")
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        more = f" and {len(repeated) - SHOWN} more" if len(repeated) > SHOWN else ""
        raise ValueError(f"{kind.capitalize()}s must be unique; repeated: {', '.join(repeated[:SHOWN])}{more}.")
    return names
