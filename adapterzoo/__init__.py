"""adapterzoo: parameter-efficient adaptation methods for vision backbones, as PEFT tuners, shared on the Hub."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("adapterzoo")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

from adapterzoo.auto import AdapterModel, AutoAdapter
from adapterzoo.errors import (
    AdapterZooError,
    CheckpointError,
    MethodConflictError,
    MethodNotFoundError,
    PluginLoadError,
    PluginWarning,
    UnknownOptionError,
    UnsupportedBackboneError,
    UnsupportedTaskError,
)
from adapterzoo.image_classifier import ImageClassifier
from adapterzoo.method import PLUGIN_API_VERSION, Method
from adapterzoo.registry import MethodInfo, get_method, list_methods

__all__ = [
    "PLUGIN_API_VERSION",
    "AdapterModel",
    "AdapterZooError",
    "AutoAdapter",
    "CheckpointError",
    "ImageClassifier",
    "Method",
    "MethodConflictError",
    "MethodInfo",
    "MethodNotFoundError",
    "PluginLoadError",
    "PluginWarning",
    "UnknownOptionError",
    "UnsupportedBackboneError",
    "UnsupportedTaskError",
    "__version__",
    "get_method",
    "list_methods",
]
