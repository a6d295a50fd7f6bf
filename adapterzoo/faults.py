"""A test-only fault switch: named points where a test makes this process die, or receive Ctrl-C, on purpose.

Crash safety and exact resume are promised at every step of saving and training; tests prove it by faulting each
step in turn. ``ADAPTERZOO_FAULT="<action>@<point>[#<n>]"`` (or `set_fault`) makes the n-th arrival (default: the
first) at ``fault_point(point)`` perform the action:

- ``kill``: the process sends itself SIGKILL and dies on the spot, with no cleanup, as a killed process does;
- ``interrupt``: the process sends itself SIGINT, as a Ctrl-C at that moment;
- ``raise``: `SimulatedCrash` is raised there (for tests that must stay in one process).

Unset, which is always the case outside tests, a fault point costs one comparison.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

ENVIRONMENT_VARIABLE = "ADAPTERZOO_FAULT"
ACTIONS = ("kill", "interrupt", "raise")


class SimulatedCrash(BaseException):
    """Raised at a fault point by the ``raise`` action; a BaseException, so that no ``except Exception`` eats it."""


@dataclass(frozen=True)
class _Plan:
    action: str
    point: str
    occurrence: int


_plan: _Plan | None = None
_arrivals = 0


def set_fault(spec: str | None) -> None:
    """Arm ``"<action>@<point>[#<n>]"`` for this process (None disarms), restarting the count of arrivals."""
    global _plan, _arrivals
    _arrivals = 0
    if not spec:
        _plan = None
        return
    action, _, rest = spec.partition("@")
    point, _, occurrence = rest.partition("#")
    if action not in ACTIONS or not point:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={spec!r}: expected '<{'|'.join(ACTIONS)}>@<point>[#<n>]'")
    _plan = _Plan(action, point, int(occurrence or 1))


def fault_point(point: str) -> None:
    """Where a fault may be injected; does nothing unless a fault is armed for ``point``."""
    global _arrivals
    if _plan is None or _plan.point != point:
        return
    _arrivals += 1
    if _arrivals != _plan.occurrence:
        return
    if _plan.action == "raise":
        raise SimulatedCrash(f"simulated crash at {point}")
    os.kill(os.getpid(), signal.SIGKILL if _plan.action == "kill" else signal.SIGINT)


set_fault(os.environ.get(ENVIRONMENT_VARIABLE))
