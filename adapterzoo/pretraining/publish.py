"""Publishing the small backbones to a Hub and finding them there again, and the zoo's local Hub to publish them to."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from adapterzoo.hub import EmbeddedHub
from adapterzoo.pretraining.pretrain import PRETRAINING_FILE, pretrain
from adapterzoo.pretraining.recipes import PretrainingRecipe, recipe_for


def default_hub_root() -> Path:
    """Where the zoo's local Hub keeps its repositories: ``$ADAPTERZOO_HOME/hub``, else ``~/.cache/adapterzoo/hub``."""
    home = os.environ.get("ADAPTERZOO_HOME") or Path.home() / ".cache" / "adapterzoo"
    return Path(home) / "hub"


@contextmanager
def local_hub(root: str | Path | None = None) -> Iterator[EmbeddedHub]:
    """Run the embedded Hub over ``root`` (default: `default_hub_root`) and point this process at it.

    Repositories persist in ``root``, so backbones pretrained once and adapters pushed there are found by later runs.
    """
    with EmbeddedHub(root or default_hub_root()) as hub, hub.activate():
        yield hub


def pretrained_backbone(kind: str = "vit", *, quick: bool = False, progress: bool = True) -> str:
    """The Hub id of the zoo's pretrained ``kind`` backbone ("vit" or "clip") on the Hub this process points at.

    The first call pretrains it (``quick``: the seconds-long recipe) and publishes it; later calls find it there and
    return at once. A backbone published by an older recipe is made again.
    """
    recipe = recipe_for(kind, quick=quick)
    if _published_recipe(recipe.repo_id) == recipe.as_dict():
        return recipe.repo_id
    with tempfile.TemporaryDirectory() as folder:
        pretrain(recipe, folder, progress=progress)
        _publish(recipe, Path(folder))
    return recipe.repo_id


@contextmanager
def zoo_backbone(kind: str, backbone: str | None = None, *, quick: bool = False) -> Iterator[str]:
    """``backbone`` itself when given; else the zoo's pretrained ``kind`` backbone, with the local Hub running.

    >>> with zoo_backbone("vit", args.backbone) as backbone:    # what the examples do
    ...     model = AutoAdapter.from_backbone(backbone, method="vpt", labels=labels)
    """
    with nullcontext() if backbone else local_hub():
        yield backbone or pretrained_backbone(kind, quick=quick)


def _published_recipe(repo_id: str) -> dict | None:
    """The recipe published in ``repo_id`` now (asked of the Hub: a copy in the local cache is not enough)."""
    try:
        commit = HfApi().model_info(repo_id).sha
        path = hf_hub_download(repo_id, PRETRAINING_FILE, revision=commit)
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
        return None
    return json.loads(Path(path).read_text())["recipe"]


def _publish(recipe: PretrainingRecipe, folder: Path) -> None:
    api = HfApi()
    api.create_repo(recipe.repo_id, exist_ok=True)
    api.upload_folder(repo_id=recipe.repo_id, folder_path=folder, commit_message=f"Pretrain {recipe.name}")
