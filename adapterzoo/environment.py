"""What is installed: the versions ``adapterzoo --version`` reports, and the optional extras a feature needs.

Both read package metadata and module specs only, so that they answer without importing torch or transformers.
"""

from __future__ import annotations

import importlib.util
import platform
from importlib.metadata import PackageNotFoundError, version

# The distributions ``adapterzoo --version`` reports beside adapterzoo's own: what a bug report needs.
REPORTED = ("torch", "transformers", "peft", "huggingface_hub", "datasets", "accelerate")

# Each extra of pyproject.toml, by the modules it provides (what `importlib.util.find_spec` looks for).
EXTRAS = {
    "bench": ("matplotlib",),
    "tensorboard": ("tensorboard",),
    "onnx": ("onnx", "onnxruntime", "onnxscript"),
    "serve": ("fastapi", "uvicorn"),
}


class MissingExtraError(ImportError):
    """An optional dependency a feature needs is not installed; the message gives the pip command."""


def version_report() -> str:
    """adapterzoo's version and Python's on one line, the libraries it runs on on the next (as ``pip --version``)."""
    from adapterzoo import __version__

    libraries = ", ".join(f"{name} {_version_of(name)}" for name in REPORTED)
    return f"adapterzoo {__version__} (Python {platform.python_version()})\n{libraries}"


def _version_of(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that are not installed."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def install_hint(extra: str) -> str:
    return f'pip install "adapterzoo[{extra}]"'


def require_extra(extra: str, purpose: str) -> None:
    """Refuse ``purpose`` (what needs the extra, e.g. "Plotting the benchmarks") before any work when ``extra`` is
    missing, with the pip command that installs it."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(f"{purpose} needs {', '.join(missing)} (not installed): {install_hint(extra)}")
