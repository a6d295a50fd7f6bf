"""Benchmarks: parameters, file size, speed, memory and accuracy of every method, side by side, on one machine.

`run_benchmarks` (``adapterzoo bench`` / ``python benchmarks/run.py``) measures and writes JSON, Markdown and PNG
plots; see README's Benchmarks section. Benchmarks are measurements, not tests: nothing here asserts a timing.
"""

from typing import TYPE_CHECKING

from adapterzoo.lazy import lazy_attributes

if TYPE_CHECKING:
    from adapterzoo.benchmarks.run import run_benchmarks

__getattr__, __dir__ = lazy_attributes(globals(), {"run_benchmarks": "adapterzoo.benchmarks.run"})

__all__ = ["run_benchmarks"]
