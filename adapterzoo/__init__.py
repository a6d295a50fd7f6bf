"""adapterzoo: parameter-efficient adaptation methods for vision backbones, as PEFT tuners, shared on the Hub.

The public names below are imported on first use, so that ``import adapterzoo`` (and the command line, and the
embedded Hub server) start without loading torch and transformers.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from adapterzoo.errors import (
    AdapterMismatchError,
    AdapterZooError,
    CheckpointError,
    CompileError,
    ExportError,
    MethodConflictError,
    MethodNotFoundError,
    PluginLoadError,
    PluginWarning,
    UnknownAdapterError,
    UnknownOptionError,
    UnsupportedBackboneError,
    UnsupportedTaskError,
)
from adapterzoo.lazy import lazy_attributes

try:
    __version__ = version("adapterzoo")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

_LAZY = {
    "AdapterModel": "adapterzoo.auto",
    "AutoAdapter": "adapterzoo.auto",
    "ImageClassifier": "adapterzoo.image_classifier",
    "Method": "adapterzoo.method",
    "PLUGIN_API_VERSION": "adapterzoo.method",
    "MethodInfo": "adapterzoo.registry",
    "get_method": "adapterzoo.registry",
    "list_methods": "adapterzoo.registry",
    "BaseToNovelResult": "adapterzoo.training",
    "CLIPClassifier": "adapterzoo.clip_classifier",
    "TrainingConfig": "adapterzoo.training",
    "TrainingResult": "adapterzoo.training",
    "evaluate": "adapterzoo.training",
    "fit": "adapterzoo.training.fit",
    "train": "adapterzoo.training",
    "base_to_novel": "adapterzoo.training",
    "few_shot_curve": "adapterzoo.training",
}

if TYPE_CHECKING:
    from adapterzoo.auto import AdapterModel, AutoAdapter
    from adapterzoo.clip_classifier import CLIPClassifier
    from adapterzoo.image_classifier import ImageClassifier
    from adapterzoo.method import PLUGIN_API_VERSION, Method
    from adapterzoo.registry import MethodInfo, get_method, list_methods
    from adapterzoo.training import (
        BaseToNovelResult,
        TrainingConfig,
        TrainingResult,
        base_to_novel,
        evaluate,
        few_shot_curve,
        fit,
        train,
    )


__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)


__all__ = [
    "PLUGIN_API_VERSION",
    "AdapterMismatchError",
    "AdapterModel",
    "AdapterZooError",
    "AutoAdapter",
    "BaseToNovelResult",
    "CLIPClassifier",
    "CheckpointError",
    "CompileError",
    "ExportError",
    "ImageClassifier",
    "Method",
    "MethodConflictError",
    "MethodInfo",
    "MethodNotFoundError",
    "PluginLoadError",
    "PluginWarning",
    "TrainingConfig",
    "TrainingResult",
    "UnknownAdapterError",
    "UnknownOptionError",
    "UnsupportedBackboneError",
    "UnsupportedTaskError",
    "__version__",
    "base_to_novel",
    "evaluate",
    "few_shot_curve",
    "fit",
    "get_method",
    "list_methods",
    "train",
]
