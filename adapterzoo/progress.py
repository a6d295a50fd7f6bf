"""Progress output of adapterzoo's commands: their own bars, without the one transformers draws per model load."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def transformers_bars_off() -> Iterator[None]:
    """Silence the bars transformers draws inside each load and save ("Loading weights", "Writing model shards")
    until the block ends: a benchmark loads a model a hundred times, and each load would leave a line. Downloads keep
    huggingface_hub's bars, and transformers' previous tqdm hook is restored afterwards."""
    from transformers.utils import logging

    previous = logging.set_tqdm_hook(_no_bar)
    try:
        yield
    finally:
        logging.set_tqdm_hook(previous)


def _no_bar(factory: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from transformers.utils.logging import EmptyTqdm

    return EmptyTqdm(*args, **kwargs)
