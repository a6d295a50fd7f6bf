"""FLOPs of a training step and the model FLOPs utilisation (MFU) they imply on a device.

The FLOPs are counted, not estimated: `torch.utils.flop_counter.FlopCounterMode` adds up the matrix products,
convolutions and attention (fused kernels too, on CUDA and the CPU) that one step dispatches, forward and backward:
a frozen layer's backward computes no weight gradient, so a parameter-efficient step counts less than full
fine-tuning's. MFU is that count per second against the device's dense bf16 peak, which comes from a small table of
known devices (or is given).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, from the vendors' data sheets, by a name fragment of
# `torch.cuda.get_device_name`; the first fragment that the name contains wins, so the specific ones come first.
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200 NVL", 835.5),
    ("H200", 989.5),  # and the GH200's
    ("H100 NVL", 835.5),
    ("H100 PCIe", 756.5),
    ("H100", 989.5),  # SXM ("NVIDIA H100 80GB HBM3")
    ("A100", 312.0),
)


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of the device called ``device_name``, or None for a device not in the table."""
    return next((peak for fragment, peak in BF16_PEAK_TFLOPS if fragment in device_name), None)


def _cpu_attention(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_attention_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# PyTorch counts the CUDA attention kernels but not the CPU's fused one: the same formulas, for the CPU's ops.
CPU_ATTENTION = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward,
}


def count_flops(step: Callable[[], object]) -> int:
    """The floating-point operations one call of ``step`` dispatches (a multiply-add counts two)."""
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
        step()
    return counter.get_total_flops()


def mfu(flops: float, seconds: float, peak: float) -> float:
    """The share of the device's ``peak`` (TFLOP/s) that ``flops`` in ``seconds`` reach."""
    return flops / seconds / (peak * 1e12)
