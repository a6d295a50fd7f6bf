"""The exceptions and warnings adapterzoo raises, so callers can catch each failure by what went wrong."""

from __future__ import annotations


class AdapterZooError(Exception):
    """Base class of every adapterzoo error."""


class MethodNotFoundError(AdapterZooError, LookupError):
    """No installed plugin provides the requested method."""


class MethodConflictError(AdapterZooError):
    """Two installed distributions claim the same method name."""


class PluginLoadError(AdapterZooError):
    """An installed plugin failed to load (import error, wrong object, incompatible plugin API)."""


class UnsupportedBackboneError(AdapterZooError, ValueError):
    """The backbone's architecture is not supported, or the method cannot serve it.

    ``reason`` is the why alone, without the method and backbone the message names (the support matrix lists it).
    """

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


class UnsupportedTaskError(AdapterZooError, ValueError):
    """The method does not serve the requested task."""


class UnknownOptionError(AdapterZooError, TypeError):
    """A method option that the method's config does not define."""


class LoadingOptionError(AdapterZooError, ValueError):
    """A loading option that cannot be served: a dtype the device cannot compute in, a device this machine lacks, a
    ``device_map`` that Accelerate can only serve by offloading to disk."""


class PrecisionError(AdapterZooError, ValueError):
    """A mixed precision the device cannot compute in: fp16 without a CUDA GPU, bf16 on a GPU without bfloat16."""


class UnsupportedProcessorError(AdapterZooError, ValueError):
    """An image processor whose steps device-side preprocessing (``preprocess_on="device"``) cannot reproduce."""


class CheckpointError(AdapterZooError, ValueError):
    """A saved adapter is missing, corrupt, pickled, or does not match the model it is loaded into."""


class AdapterMismatchError(AdapterZooError, ValueError):
    """An adapter cannot join a model's other adapters: another method, task, backbone or head."""


class UnknownAdapterError(AdapterZooError, ValueError):
    """An adapter name that the model has not loaded."""


class AdapterLimitError(AdapterZooError, RuntimeError):
    """A server holds its maximum of adapters (or of methods, each on a copy of the backbone) and loads no more."""


class NonFiniteError(AdapterZooError, FloatingPointError):
    """A loss, gradient or weight is NaN or infinite: training stops, and such weights are never saved."""


class DiskFullError(AdapterZooError, OSError):
    """The disk filled up during a save; the previous save of that folder is kept."""


class RemoteCodeError(AdapterZooError):
    """A backbone, processor or tokenizer ships its own code (an ``auto_map``), which runs only with
    ``trust_remote_code=True``.

    Not a ValueError: loaders that fall back to defaults on transformers' ValueErrors must not swallow it.
    """


class ExportError(AdapterZooError, ValueError):
    """An adapter cannot be exported in the requested format (a method that cannot be merged into a plain model,
    a head that the target class cannot express); the message says why and which format to use instead."""


class CompileError(AdapterZooError, ValueError):
    """A model cannot be compiled as asked (a method whose training TorchDynamo cannot trace, an unknown backend); the
    message says why and what to do instead."""


class PluginWarning(UserWarning):
    """A plugin was skipped because it is broken or conflicts with another."""
