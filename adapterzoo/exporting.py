"""`AdapterModel.export`: one entry point for every deployment format, each written by its own module."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapterzoo.auto import AdapterModel

FORMATS = ("transformers", "onnx")


def export(model: AdapterModel, path: str | Path, format: str, **options: Any) -> Path:
    """Write ``model`` to the folder ``path`` in ``format`` ("transformers" or "onnx"); return the folder."""
    if format == "transformers":
        from adapterzoo.export_transformers import export_transformers

        return export_transformers(model, path, **options)
    if format == "onnx":
        from adapterzoo.export_onnx import export_onnx

        return export_onnx(model, path, **options)
    raise ValueError(f"Unknown export format '{format}'; choose one of {', '.join(FORMATS)}.")
