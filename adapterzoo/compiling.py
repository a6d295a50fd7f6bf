"""Compiling an `AdapterModel` with `torch.compile` (TorchDynamo), for training and for prediction.

Training compiles a wrapper around the prepared model, so the user's model, its saved adapters and its checkpoints
keep their parameter names (no ``_orig_mod.`` prefix); prediction compiles the model in place (`nn.Module.compile`),
which keeps them too. Methods whose training cannot be traced declare why (`Method.compile_blocker`) and are refused
rather than silently run eager; their inference still compiles, since the untraceable code runs only in training.
"""

from __future__ import annotations

import torch
from torch import nn

from adapterzoo.errors import CompileError

DEFAULT_BACKEND = "inductor"


def check_backend(backend: str) -> None:
    """Refuse a backend name that TorchDynamo does not know, listing those it does."""
    known = torch._dynamo.list_backends(exclude_tags=())
    if backend not in known:
        raise CompileError(f"Unknown torch.compile backend '{backend}'; choose one of {', '.join(known)}.")


def check_training_compile(model: nn.Module, backend: str) -> None:
    """Refuse an unknown backend, or a method that declares its training untraceable (`Method.compile_blocker`)."""
    check_backend(backend)
    blocker = model.method.compile_blocker
    if blocker is not None:
        raise CompileError(
            f"Method '{model.method.name}' cannot train compiled: {blocker}. Train without compile; "
            "model.compile() still compiles its inference."
        )


def prepare_to_compile(model: nn.Module) -> None:
    """Do, eagerly, what a task model cannot do inside a graph (a CLIP classifier tokenizes its prompts)."""
    prepare = getattr(model.task_model, "prepare_to_compile", None)
    if prepare is not None:
        prepare()


def compiled_for_training(model: nn.Module, module: nn.Module, backend: str = DEFAULT_BACKEND) -> nn.Module:
    """``module`` (``model`` as Accelerate prepared it) compiled for training (`check_training_compile` first): a
    wrapper that shares its parameters, leaving ``model`` itself, what is saved and checkpointed, as it was."""
    prepare_to_compile(model)
    return torch.compile(module, backend=backend)
