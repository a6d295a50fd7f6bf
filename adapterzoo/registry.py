"""The method registry: installed methods, found through the ``adapterzoo.methods`` entry-point group.

The core's own methods are registered the same way, through the core's pyproject, so there is one path for all.
Loading resolves methods only through installed entry points: nothing read from a saved adapter is ever imported.
Listing imports only the declaration modules (standard library only, see `adapterzoo.method`); PEFT is imported when a
method is first used.
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from adapterzoo.errors import MethodConflictError, MethodNotFoundError, PluginLoadError, PluginWarning
from adapterzoo.method import PLUGIN_API_VERSION, Method

ENTRY_POINT_GROUP = "adapterzoo.methods"

# Where the first-party methods come from, so that a missing one asked for by name gets its pip package (a saved
# adapter names its own distribution instead).
KNOWN_DISTRIBUTIONS = {
    "vpt": "adapterzoo-vpt",
    "maple": "adapterzoo-maple",
    "coop": "adapterzoo-maple",
    "cocoop": "adapterzoo-maple",
    "dvpt": "adapterzoo-dvpt",
    "moment-probing": "adapterzoo-moment-probing",
    "ssf": "adapterzoo-ssf",
    "adaptformer": "adapterzoo-adaptformer",
    "gda": "adapterzoo-training-free",
    "tip-adapter": "adapterzoo-training-free",
    "tip-adapter-f": "adapterzoo-training-free",
}


# What a pip requirement may hold (PEP 508 names; versions in PEP 440's characters, no epoch): a distribution recorded
# in a downloaded file is quoted in a command the user may paste into a shell, so nothing else is.
_DISTRIBUTION_NAME = re.compile(r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?", re.IGNORECASE)
_VERSION = re.compile(r"[0-9]+(\.[0-9]+)*[a-z0-9.+_-]*", re.IGNORECASE)


@dataclass(frozen=True)
class MethodInfo:
    """One installed method, as `list_methods` reports it."""

    name: str
    distribution: str
    version: str
    summary: str


def _distribution(ep: EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    return (dist.name, dist.version) if dist is not None else ("<unknown>", "")


def _entry_points() -> dict[str, list[EntryPoint]]:
    by_name: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        by_name.setdefault(ep.name, []).append(ep)
    return by_name


def _conflict(name: str, eps: list[EntryPoint]) -> MethodConflictError:
    claims = ", ".join(f"{d} {v}" for d, v in (_distribution(ep) for ep in eps))
    return MethodConflictError(
        f"Method '{name}' is provided by more than one installed distribution ({claims}); uninstall all but one."
    )


_loaded: dict[tuple[str, str, str], Method] = {}


def _load(ep: EntryPoint) -> Method:
    """Import the entry point's declaration module and check the `Method` it names."""
    dist, version = _distribution(ep)
    key = (dist, ep.name, ep.value)
    if key not in _loaded:
        try:
            method = ep.load()
        except Exception as exc:  # a plugin's import can fail in any way; it must not break the others
            raise PluginLoadError(f"Method '{ep.name}' from {dist} {version} failed to import: {exc!r}") from exc
        if not isinstance(method, Method):
            raise PluginLoadError(
                f"Entry point '{ep.name}' of {dist} names {ep.value}, which is a {type(method).__name__}, "
                "not an adapterzoo.Method."
            )
        if method.name != ep.name:
            raise PluginLoadError(f"Entry point '{ep.name}' of {dist} declares a method named '{method.name}'.")
        if method.api_version != PLUGIN_API_VERSION:
            raise PluginLoadError(
                f"Method '{ep.name}' from {dist} {version} was written for plugin API {method.api_version}; "
                f"this adapterzoo implements plugin API {PLUGIN_API_VERSION}. Install a matching version of {dist}."
            )
        _loaded[key] = method
    return _loaded[key]


def list_methods() -> list[MethodInfo]:
    """The installed methods, sorted by name. Broken or conflicting plugins are skipped with a `PluginWarning`."""
    infos = []
    for name, eps in sorted(_entry_points().items()):
        if len(eps) > 1:
            warnings.warn(str(_conflict(name, eps)), PluginWarning, stacklevel=2)
            continue
        try:
            method = _load(eps[0])
        except PluginLoadError as exc:
            warnings.warn(f"Skipping a broken plugin: {exc}", PluginWarning, stacklevel=2)
            continue
        infos.append(MethodInfo(name, *_distribution(eps[0]), method.summary))
    return infos


def _entry_point(name: str, distribution: str | None = None, distribution_version: str | None = None) -> EntryPoint:
    by_name = _entry_points()
    eps = by_name.get(name)
    if not eps:
        raise MethodNotFoundError(_missing_message(name, distribution, distribution_version, sorted(by_name)))
    if len(eps) > 1:
        raise _conflict(name, eps)
    return eps[0]


def get_method(name: str, *, distribution: str | None = None, distribution_version: str | None = None) -> Method:
    """The installed method called ``name``, ready for PEFT (its config and tuner imported and registered).

    ``distribution`` and ``distribution_version`` (as recorded in a saved adapter) name the pip package to suggest when
    the method is missing. A declaration whose defaults name options its config lacks is a `PluginLoadError`.
    """
    from adapterzoo import peft_bridge

    method = _load(_entry_point(name, distribution, distribution_version))
    method.check_defaults()
    peft_bridge.register(method)
    return method


def method_recipe(name: str) -> dict[str, Any]:
    """The training options the installed method ``name`` sets over `TrainingConfig`'s defaults (its paper's), read
    from its declaration alone: without PEFT or torch, for ``adapterzoo train --method NAME --help``."""
    return dict(_load(_entry_point(name)).recipe)


def provenance(name: str) -> tuple[str, str]:
    """The distribution (name, version) that provides the installed method ``name``."""
    return _distribution(_entry_point(name))


def _provider(name: str, distribution: str | None, distribution_version: str | None) -> tuple[str, str] | None:
    """The distribution that provides method ``name`` and the pip requirement that installs it: the recorded
    distribution, at least at the recorded version (newer releases still load its adapters; an exact pin could be a
    release built for another plugin API), else the first-party plugin that provides ``name``; None if unknown."""
    if distribution and _DISTRIBUTION_NAME.fullmatch(distribution):
        if distribution_version and _VERSION.fullmatch(distribution_version):
            return distribution, f'"{distribution}>={distribution_version}"'
        return distribution, distribution
    known = KNOWN_DISTRIBUTIONS.get(name)
    return (known, known) if known else None


def _missing_message(
    name: str, distribution: str | None, distribution_version: str | None, installed: list[str]
) -> str:
    message = f"No method named '{name}' is installed."
    provider = _provider(name, distribution, distribution_version)
    if provider:
        message += f" It is provided by {provider[0]} (`pip install {provider[1]}`)."
    else:
        close = difflib.get_close_matches(name, installed, n=1)
        if close:
            message += f" Did you mean '{close[0]}'?"
    return message + f" Installed methods: {', '.join(installed) or 'none'}."
