"""New parameters follow the backbone: an adapter and a head live in the backbone's dtype and on its device.

Methods make their parameters as they see fit (PEFT's tuners on their base layer's device, a plugin's prompts on
the CPU in float32), and PEFT upcasts half-precision adapters to float32 by default (``autocast_adapter_dtype``).
A bfloat16 backbone would then meet float32 tensors in its first forward. `attach` makes every tensor that is not the
backbone's own follow it, so that any method, a third party's included, computes in the backbone's dtype.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from peft import PeftConfig, PeftModel, get_peft_model
from torch import nn


def placement_of(module: nn.Module) -> dict[str, Any]:
    """``{"device", "dtype"}`` of ``module``'s first floating-point tensor ({} when it has none)."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        if tensor.is_floating_point():
            return {"device": tensor.device, "dtype": tensor.dtype}
    return {}


def attach(task_model: nn.Module, backbone: nn.Module, config: PeftConfig, adapter_name: str) -> PeftModel:
    """``peft.get_peft_model`` of ``task_model``, whose new tensors (the adapter's, the head's) then `follow`
    ``backbone``."""
    peft_model = get_peft_model(task_model, config, adapter_name=adapter_name, autocast_adapter_dtype=False)
    follow(peft_model, backbone)
    return peft_model


def follow(model: nn.Module, backbone: nn.Module) -> None:
    """Put every floating-point tensor of ``model`` that is not ``backbone``'s own in the backbone's dtype, on the
    device of the backbone's part nearest to it (the part it wraps, else the one around it; the device of the
    backbone's first tensor for a head), where a model spread over devices by a ``device_map`` computes it.

    Parameters stay the same objects (their data changes), and a tensor shared by several modules stays shared.
    """
    reference = placement_of(backbone)
    if not reference:
        return
    own = {id(t) for t in itertools.chain(backbone.parameters(), backbone.buffers())}
    devices: dict[str, torch.device] = {}
    moved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id -> (the tensor, kept alive; what replaces it)
    for path, module in model.named_modules():
        parent = path.rpartition(".")[0] if path else None
        devices[path] = next(
            (t.device for t in itertools.chain(module.parameters(), module.buffers()) if id(t) in own),
            devices.get(parent, reference["device"]) if parent is not None else reference["device"],
        )
        target = {"device": devices[path], "dtype": reference["dtype"]}
        for parameter in module.parameters(recurse=False):
            if id(parameter) not in own and id(parameter) not in moved and parameter.is_floating_point():
                parameter.data = parameter.data.to(**target)
                moved[id(parameter)] = (parameter, parameter)
        for name, buffer in module.named_buffers(recurse=False):
            if id(buffer) in own or not buffer.is_floating_point():
                continue
            if id(buffer) not in moved:
                moved[id(buffer)] = (buffer, buffer.to(**target))
            module._buffers[name] = moved[id(buffer)][1]
