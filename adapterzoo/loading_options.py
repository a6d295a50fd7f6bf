"""transformers' loading options (``dtype``, ``device_map``, ``token``, ``revision``, ...), kept apart from a method's.

`AutoAdapter.from_backbone` and `AutoAdapter.from_pretrained` take the options a transformers user passes to
``from_pretrained``. `LoadingOptions` holds them, refuses bad ones before anything is downloaded (an unknown name, a
dtype the device cannot compute in, a device this machine lacks) and gives each loader the keyword arguments it
takes: transformers' model loaders (`model_kwargs`), its config, processor and tokenizer loaders (`config_kwargs`)
and huggingface_hub's downloads (`file_kwargs`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from adapterzoo.errors import LoadingOptionError, UnknownOptionError
from adapterzoo.method import unknown_option_message

ACCELERATE_DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
"""``device_map`` strategies that Accelerate computes from the devices' free memory."""

OLD_DTYPE_NAME = "torch_dtype"
"""The older name of ``dtype``, which transformers 5 still accepts."""


@dataclass(frozen=True)
class LoadingOptions:
    """How to load a backbone and an adapter, as transformers' ``from_pretrained`` takes it.

    ``dtype``: a floating-point ``torch.dtype`` or its name ("bfloat16"), or "auto": the checkpoint's own dtype (the
    backbone's in `AutoAdapter.from_backbone`, the saved adapter's in `AutoAdapter.from_pretrained`).
    ``device_map``: a device ("cpu", "cuda:0", a ``torch.device`` or an ordinal), a strategy that Accelerate computes
    from free memory ("auto", "balanced", "balanced_low_0", "sequential") or a dict of module paths to devices; None
    keeps the model on the CPU. The other fields are huggingface_hub's: which ``revision`` and ``subfolder`` of a
    repo, the ``token``, the ``cache_dir``, ``local_files_only`` (also implied by ``HF_HUB_OFFLINE=1``) and
    ``force_download``. ``trust_remote_code`` lets transformers run code that a checkpoint ships.
    """

    dtype: torch.dtype | str = "auto"
    device_map: str | int | torch.device | dict[str, Any] | None = None
    token: str | bool | None = None
    cache_dir: str | os.PathLike | None = None
    revision: str | None = None
    local_files_only: bool = False
    force_download: bool = False
    subfolder: str = ""
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", parse_dtype(self.dtype))
        _check_device_map(self.device_map)
        for name in ("local_files_only", "force_download", "trust_remote_code"):
            if not isinstance(getattr(self, name), bool):
                raise LoadingOptionError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if self.token is not None and not isinstance(self.token, (str, bool)):
            raise LoadingOptionError(f"token must be a string, True or False, got a {type(self.token).__name__}.")
        if self.dtype != "auto":
            check_runnable(self.dtype, probe_device(self.device_map))

    @classmethod
    def names(cls) -> list[str]:
        """Every loading option's name, the older ones included."""
        return sorted([field.name for field in dataclasses.fields(cls)] + [OLD_DTYPE_NAME])

    @classmethod
    def split(cls, options: Mapping[str, Any]) -> tuple[LoadingOptions, dict[str, Any]]:
        """The loading options among ``options``, and the rest (a method's options), as given."""
        names = cls.names()
        loading = {name: value for name, value in options.items() if name in names}
        return cls.of(loading), {name: value for name, value in options.items() if name not in names}

    @classmethod
    def of(cls, options: Mapping[str, Any], *, caller: str | None = None) -> LoadingOptions:
        """`LoadingOptions` from keyword arguments; an unknown name raises `UnknownOptionError` naming ``caller``."""
        options = dict(options)
        if OLD_DTYPE_NAME in options:
            dtype = options.pop(OLD_DTYPE_NAME)
            if "dtype" in options and parse_dtype(options["dtype"]) != parse_dtype(dtype):
                raise LoadingOptionError(f"Pass dtype only: {OLD_DTYPE_NAME} is its older name, and the two disagree.")
            options.setdefault("dtype", dtype)
        unknown = next((name for name in options if name not in cls.names()), None)
        if unknown is not None:
            lead = f"{caller or 'Loading'} has no option"
            raise UnknownOptionError(unknown_option_message(lead, unknown, [], loading_options=cls.names()))
        return cls(**options)

    def file_kwargs(self) -> dict[str, Any]:
        """What huggingface_hub's downloads take: which files, from where."""
        return {
            "revision": self.revision,
            "subfolder": self.subfolder,
            "token": self.token,
            "cache_dir": self.cache_dir,
            "local_files_only": self.local_files_only,
            "force_download": self.force_download,
        }

    def config_kwargs(self) -> dict[str, Any]:
        """What transformers' config, processor and tokenizer loaders take: `file_kwargs` and ``trust_remote_code``."""
        return {**self.file_kwargs(), "trust_remote_code": self.trust_remote_code}

    def model_kwargs(self) -> dict[str, Any]:
        """What transformers' model loaders take: `config_kwargs`, the dtype and the device map."""
        placement = {"device_map": self.device_map} if self.device_map is not None else {}
        return {**self.config_kwargs(), "dtype": self.dtype, **placement}

    def for_recorded_backbone(
        self, revision: str | None, *, subfolder: str, saved_dtype: torch.dtype | None
    ) -> LoadingOptions:
        """The options for the backbone a saved adapter records: at its recorded ``revision`` and ``subfolder``,
        downloaded again only if missing, in the adapter's ``saved_dtype`` when ``dtype`` is "auto" (the dtype the
        saved model computed in); the token, cache, offline mode and device map stay."""
        dtype = saved_dtype if self.dtype == "auto" and saved_dtype is not None else self.dtype
        return dataclasses.replace(self, revision=revision, subfolder=subfolder, force_download=False, dtype=dtype)

    def check_loaded(self, model: Any) -> None:
        """Refuse ``dtype`` and ``device_map`` for a backbone given as a loaded model: they say how to load one."""
        if self.dtype != "auto" or self.device_map is not None:
            raise LoadingOptionError(
                f"dtype= and device_map= load a backbone given by name, but a loaded {type(model).__name__} was "
                "given: pass its Hub id or folder instead, or place the model yourself (model.to(torch.bfloat16))."
            )


def parse_dtype(dtype: torch.dtype | str) -> torch.dtype | str:
    """``dtype`` as a ``torch.dtype`` (from one or its name), or "auto"; anything else raises `LoadingOptionError`."""
    if dtype == "auto":
        return dtype
    if isinstance(dtype, str):
        parsed = getattr(torch, dtype, None)
        if not isinstance(parsed, torch.dtype):
            known = [name for name in dir(torch) if isinstance(getattr(torch, name), torch.dtype)]
            close = difflib.get_close_matches(dtype, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise LoadingOptionError(
                f"Unknown dtype '{dtype}'.{hint} Pass a torch.dtype (torch.bfloat16), its name ('bfloat16') or 'auto'."
            )
        dtype = parsed
    if not isinstance(dtype, torch.dtype):
        raise LoadingOptionError(f"dtype must be a torch.dtype, its name or 'auto', got a {type(dtype).__name__}.")
    if not dtype.is_floating_point:
        raise LoadingOptionError(
            f"dtype {dtype} is not a floating-point type: a backbone computes in float32, bfloat16 or float16."
        )
    return dtype


def _check_device_map(device_map: Any) -> None:
    if device_map is None or isinstance(device_map, dict) or device_map in ACCELERATE_DEVICE_MAPS:
        return
    device = as_device(device_map)
    try:
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as exc:
        available = _available_devices()
        instead = f"one of {', '.join(available)}, or 'cpu'" if available else "'cpu' (this machine has no accelerator)"
        raise LoadingOptionError(
            f"device_map={device_map!r}: this machine cannot place tensors on {device} ({exc}). Use device_map="
            f"{instead}, or device_map='auto' to let Accelerate choose."
        ) from exc


def as_device(device_map: Any) -> torch.device:
    """The one device that ``device_map`` names ("cpu", "cuda:1", 0, a ``torch.device``)."""
    try:
        return torch.device(device_map)
    except (RuntimeError, TypeError) as exc:
        raise LoadingOptionError(
            f"device_map={device_map!r} is neither a device ('cpu', 'cuda:0', 0, a torch.device), nor one of "
            f"{', '.join(ACCELERATE_DEVICE_MAPS)}, nor a dict of module paths to devices."
        ) from exc


def _available_devices() -> list[str]:
    """The accelerator devices of this machine, by name ("cuda:0", ...)."""
    if not torch.accelerator.is_available():
        return []
    kind = torch.accelerator.current_accelerator().type
    return [f"{kind}:{index}" for index in range(torch.accelerator.device_count())]


def probe_device(device_map: Any) -> torch.device:
    """The device a model loaded with ``device_map`` computes on first: the named one, else the accelerator that
    Accelerate fills first, else the CPU."""
    if device_map is None:
        return torch.device("cpu")
    if isinstance(device_map, dict):
        placed = [value for value in device_map.values() if value != "disk"]
        return as_device(placed[0]) if placed else torch.device("cpu")
    if device_map in ACCELERATE_DEVICE_MAPS:
        return torch.accelerator.current_accelerator() if torch.accelerator.is_available() else torch.device("cpu")
    return as_device(device_map)


@functools.cache
def check_runnable(dtype: torch.dtype, device: torch.device) -> None:
    """Refuse a dtype that ``device`` cannot run a transformer in: a tiny patch embedding, attention, norm, MLP and
    their backward pass are tried first (once per dtype and device: a success is cached), which spares loading a
    model that would fail."""
    try:
        with torch.inference_mode(False), torch.enable_grad():  # the backward pass, also when called under no_grad
            x = torch.ones(1, 1, 4, 4, dtype=dtype, device=device, requires_grad=True)
            weight = torch.ones(4, 1, 2, 2, dtype=dtype, device=device)
            tokens = F.conv2d(x, weight, stride=2).flatten(2).transpose(1, 2)
            attended = F.scaled_dot_product_attention(tokens, tokens, tokens)
            out = F.linear(F.gelu(F.layer_norm(attended, (4,))), torch.ones(4, 4, dtype=dtype, device=device))
            out.softmax(-1).sum().backward()
    except (RuntimeError, NotImplementedError, TypeError) as exc:
        raise LoadingOptionError(
            f"dtype {dtype} cannot run on {device}: {exc}. Use dtype=torch.float32, or torch.bfloat16 where the "
            "device supports it, or 'auto' for the checkpoint's own."
        ) from exc
