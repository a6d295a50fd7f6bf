"""Mixed precision: which precisions a device can compute in, and the autocast that runs a float32 model in one.

``bf16`` works on every CPU (PyTorch's CPU autocast computes bfloat16 natively with AVX512-BF16 or AMX, by conversion
otherwise: slower, same numbers) and on GPUs that compute in it (compute capability 8.0 and later). ``fp16`` needs a
GPU: it trains with a loss scaler (Accelerate's GradScaler), which Accelerate makes only for accelerators; on the CPU
it would silently train in float32, so it is refused there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from adapterzoo.errors import PrecisionError
from adapterzoo.loading_options import check_runnable
from adapterzoo.training.config import PRECISIONS

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def training_device() -> torch.device:
    """The device `adapterzoo.train` computes on: the accelerator when there is one (as Accelerate picks), else the
    CPU."""
    if torch.accelerator.is_available():
        return torch.device(torch.accelerator.current_accelerator().type)
    return torch.device("cpu")


def check_mixed_precision(precision: str, device: torch.device) -> None:
    """Refuse a mixed precision that ``device`` cannot compute in, saying what to use instead."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"mixed_precision must be one of {', '.join(PRECISIONS)}, not '{precision}'.")
    if precision == "fp16" and device.type == "cpu":
        raise PrecisionError(
            "mixed_precision='fp16' needs a GPU, not the CPU: it trains with a loss scaler, which Accelerate makes "
            "only for accelerators (on the CPU it would silently compute in float32). Use mixed_precision='bf16' "
            "(any CPU, and GPUs from compute capability 8.0), or 'no'."
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise PrecisionError(
            f"mixed_precision='bf16' needs a GPU that computes in bfloat16 (compute capability 8.0 or later), and "
            f"{torch.cuda.get_device_name(device)} does not: use mixed_precision='fp16' (with loss scaling) or 'no'."
        )
    if precision == "bf16":
        check_runnable(torch.bfloat16, device)


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """Run what is inside in ``precision`` on ``device`` (PyTorch's autocast; "no": as it is), after checking it."""
    check_mixed_precision(precision, device)
    if precision == "no":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision]):
        yield
