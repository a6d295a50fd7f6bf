"""The files of a saved adapter: the zoo's record, atomic folder writes, and checked safetensors reads.

A saved adapter is a folder holding ``adapterzoo_config.json`` (`AdapterRecord`), PEFT's ``adapter_config.json`` and
``adapter_model.safetensors``, a ``README.md`` model card and the image processor's config; in the PEFT-native layout
also transformers' ``config.json`` of the classification class, holding the labels. Weights are read from
safetensors only: pickle files are never opened.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError, safe_open

from adapterzoo.atomic_folder import recover
from adapterzoo.errors import CheckpointError, NonFiniteError
from adapterzoo.labels import checked_labels

FORMAT_VERSION = 2
"""Bumped whenever `AdapterRecord` changes in a way older readers would misread. Version 2: an image classifier's
head records where the final norm applies (``final_norm``), and may pool "cls+mean"; a record may name the
transformers class its PEFT files are rooted at (``transformers_class``), a ``license`` and ``datasets``."""

ZOO_CONFIG_NAME = "adapterzoo_config.json"
PEFT_CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
MODEL_CARD_NAME = "README.md"
TRANSFORMERS_CONFIG_NAME = "config.json"
"""transformers' config of the classification class beside a PEFT-loadable adapter, for its labels."""
PROCESSOR_CONFIG_NAME = "preprocessor_config.json"
LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.\-]*")
"""The form of the Hub's license ids (``apache-2.0``, ``cc-by-4.0``, ``other``)."""
SAVED_ADAPTER_NAME = "default"
"""The adapter name in saved weight keys: PEFT strips an adapter's name from the keys of parameters it holds directly
(``lora_A.<name>.weight``) but leaves it in those of per-adapter submodules (``dvpt_modules.<name>.0.down.weight``),
which the zoo saves under this name whatever the adapter's, so that a file loads under any name (`saved_key`)."""

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@dataclass
class AdapterRecord:
    """The zoo's own record of a saved adapter (``adapterzoo_config.json``)."""

    method: str
    distribution: str
    distribution_version: str
    task: str
    backbone: str | None
    backbone_revision: str | None
    labels: list[str]
    head: dict
    trainable_parameters: int
    adapterzoo_version: str
    metrics: dict = field(default_factory=dict)
    backbone_subfolder: str = ""
    """The folder of the backbone's repo that holds it ("" at the root), as ``subfolder=`` named it."""
    format_version: int = FORMAT_VERSION
    # transformers' classification class the PEFT files are rooted at (the PEFT-native layout, see
    # `adapterzoo.transformers_layout`); None where they are rooted at the zoo's task model.
    transformers_class: str | None = None
    # The card's metadata: the adapter's license (a Hub license id) and the Hub datasets it was trained on.
    license: str | None = None
    datasets: list[str] = field(default_factory=list)

    def write(self, folder: Path) -> None:
        (folder / ZOO_CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, folder: Path) -> AdapterRecord:
        path = folder / ZOO_CONFIG_NAME
        if not path.is_file():
            raise CheckpointError(
                f"{folder} is not an adapterzoo adapter: {ZOO_CONFIG_NAME} is missing, and so is PEFT's "
                f"{PEFT_CONFIG_NAME} (an adapter PEFT saved, which adapterzoo imports)."
            )
        data = read_json_object(path)
        version = data.get("format_version")
        if not isinstance(version, int):
            raise CheckpointError(f"{path} has no integer format_version.")
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path} was written by adapterzoo {data.get('adapterzoo_version', '?')} in format version {version}; "
                f"this adapterzoo reads format versions up to {FORMAT_VERSION}. Upgrade: pip install -U adapterzoo"
            )
        known = {f.name for f in fields(cls)}
        optional = {f.name for f in fields(cls) if f.default is not MISSING or f.default_factory is not MISSING}
        missing = sorted(name for name in known - optional if name not in data)
        if missing:
            raise CheckpointError(f"{path} lacks required field(s): {', '.join(missing)}.")
        if data.get("transformers_class") is not None and not isinstance(data["transformers_class"], str):
            raise CheckpointError(f"{path}: transformers_class must be a string or null.")
        try:
            check_card_metadata(data.get("license"), data.get("datasets", []))
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc
        labels = data["labels"]
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise CheckpointError(f"{path}: labels must be a list of strings.")
        try:
            checked_labels(labels, owner="An adapter")
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc
        return cls(**{k: v for k, v in data.items() if k in known})


def check_card_metadata(license: Any, datasets: Any) -> None:
    """Refuse a license that is not a Hub license id (``apache-2.0``, ``mit``, ...) or datasets that are not a list
    of Hub dataset ids (``user/name``): the card's metadata, which the Hub indexes."""
    if license is not None and not (isinstance(license, str) and LICENSE_ID.fullmatch(license)):
        raise ValueError(f"license {license!r} is not a Hub license id such as 'apache-2.0' or 'mit'.")
    if not isinstance(datasets, (list, tuple)) or not all(isinstance(name, str) for name in datasets):
        raise ValueError(f"datasets {datasets!r} is not a list of Hub dataset ids such as ['user/name'].")
    for name in datasets:
        try:
            validate_repo_id(name)
        except HFValidationError as exc:
            raise ValueError(f"datasets: {name!r} is not a Hub dataset id such as 'user/name' ({exc}).") from exc


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; a CheckpointError when it is not valid JSON or not an object."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON (truncated or corrupt): {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object.")
    return data


def recover_interrupted_save(target: Path) -> None:
    """Make ``target`` the newest complete save of an adapter again after crashed saves, and clean up after them."""
    recover(target, marker=ZOO_CONFIG_NAME)


def check_finite(state_dict: dict[str, torch.Tensor], name: str) -> None:
    """Refuse to save ``name`` when a tensor holds NaN or infinite values: a diverged run must not look saved."""
    broken = [key for key, tensor in state_dict.items() if tensor.is_floating_point() and not tensor.isfinite().all()]
    if broken:
        more = " and more" if len(broken) > 3 else ""
        raise NonFiniteError(f"Refusing to save {name}: {', '.join(broken[:3])}{more} hold NaN or infinite values.")


def write_weights(path: Path, state_dict: dict[str, torch.Tensor]) -> None:
    """Write ``state_dict`` as safetensors, refusing NaN or infinite values (`check_finite`).

    The bytes are written by Python, so a full disk is an ``OSError`` (ENOSPC) like any other write's.
    """
    check_finite(state_dict, path.name)
    tensors = {key: tensor.detach().contiguous() for key, tensor in state_dict.items()}
    path.write_bytes(safetensors.torch.save(tensors, metadata={"format": "pt"}))


def check_no_pickle_only(folder: Path) -> None:
    """Refuse a folder whose weights exist only as pickle files, which could run code when opened."""
    if (folder / WEIGHTS_NAME).is_file():
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(
            f"{folder} holds only pickle weights ({', '.join(pickles)}); adapterzoo loads safetensors only and never "
            f"unpickles. Convert the file to {WEIGHTS_NAME} with a trusted tool before loading it."
        )


@contextmanager
def opened_weights(path: Path) -> Iterator[Any]:
    """The safetensors file at ``path``, open; a CheckpointError when it is missing, truncated or corrupt."""
    if not path.is_file():
        raise CheckpointError(f"The adapter weights are missing: {path} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            yield handle
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt): {exc}") from exc


def check_head_size(path: Path, head_module: str, *, rows: int, width: int) -> None:
    """Refuse a weights file whose head holds no ``rows`` x ``width`` matrix, reading only the file's header.

    Run before the task model is built, with ``rows`` the number of labels the record lists: a record listing more
    labels than the head has would otherwise first build, and allocate, a head that large.
    """
    prefix = f"base_model.model.{head_module}."
    with opened_weights(path) as handle:
        shapes = {tuple(handle.get_slice(key).get_shape()) for key in handle.keys() if key.startswith(prefix)}
    if (rows, width) not in shapes:
        matrices = sorted(shape for shape in shapes if len(shape) == 2)
        raise CheckpointError(
            f"{path}: the head ('{head_module}') holds no {rows} x {width} weight for the {rows} labels listed in "
            f"{ZOO_CONFIG_NAME}; its matrices are {matrices[:5]}."
        )


SAFETENSORS_FLOAT_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def weights_dtype(path: Path) -> torch.dtype | None:
    """The dtype of the first floating-point tensor of a weights file, read from its header only (None: it holds
    none). An adapter and its head are in the dtype of the backbone they were saved with, so this is that dtype."""
    with opened_weights(path) as handle:
        for key in handle.keys():
            dtype = SAFETENSORS_FLOAT_DTYPES.get(handle.get_slice(key).get_dtype())
            if dtype is not None:
                return dtype
    return None


def saved_key(key: str, adapter_name: str) -> str:
    """``key`` of a weight of adapter ``adapter_name`` as saved: each path segment naming the adapter made
    `SAVED_ADAPTER_NAME`."""
    return ".".join(SAVED_ADAPTER_NAME if part == adapter_name else part for part in key.split("."))


def read_weights(path: Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Read a safetensors file and check that it holds exactly the ``expected`` keys with the expected shapes."""
    with opened_weights(path) as handle:
        loaded = {key: handle.get_tensor(key) for key in handle.keys()}
    missing = sorted(expected.keys() - loaded.keys())
    unexpected = sorted(loaded.keys() - expected.keys())
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match this adapter: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}."
        )
    for key, tensor in loaded.items():
        if tensor.shape != expected[key].shape:
            raise CheckpointError(
                f"{path}: '{key}' has shape {tuple(tensor.shape)}, the model expects {tuple(expected[key].shape)}."
            )
    return loaded
