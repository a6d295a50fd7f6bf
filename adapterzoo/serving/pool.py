"""The adapters a server holds, on one backbone: loaded on first use by Hub repo id, classifying mixed batches.

PEFT keeps adapters of one type in a model, so the pool holds one `AdapterModel` per method: its first adapter of a
method loads the backbone (`AutoAdapter.from_pretrained`), the next ones join it (`AdapterModel.load_adapter`) and
share that backbone. Every adapter must be for the pool's backbone (the one it was started with, else the first
adapter's); both the adapters and the models (each a copy of the backbone) are capped, which bounds the memory.
One lock serialises loading and classifying: a mixed batch switches the model's active adapter while it runs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub.utils import validate_repo_id

from adapterzoo.auto import AdapterModel, AutoAdapter
from adapterzoo.errors import AdapterLimitError, AdapterMismatchError, CheckpointError
from adapterzoo.hub.client import download_adapter
from adapterzoo.peft_interop import is_peft_adapter
from adapterzoo.saving import AdapterRecord


@dataclass(frozen=True)
class LoadedAdapter:
    """One adapter of the pool: what clients call it (its repo id or folder), its method, labels and home model."""

    ref: str
    method: str
    labels: list[str]
    model: AdapterModel
    name: str  # its adapter name inside ``model``

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.ref, "method": self.method, "labels": self.labels, "backbone": self.model.backbone_name}


class AdapterPool:
    """Adapters for one backbone (``backbone``, a Hub id; by default the first adapter's), at most ``max_adapters`` of
    them and ``max_models`` methods (each method's model holds a copy of the backbone), on ``device``."""

    def __init__(
        self, *, backbone: str | None = None, max_adapters: int = 16, max_models: int = 2, device: str = "cpu"
    ) -> None:
        if max_adapters < 1 or max_models < 1:
            raise ValueError(f"max_adapters and max_models must be at least 1, got {max_adapters} and {max_models}.")
        self.backbone, self.backbone_revision = backbone, None
        self.max_adapters, self.max_models, self.device = max_adapters, max_models, device
        self._adapters: dict[str, LoadedAdapter] = {}
        self._models: dict[str, AdapterModel] = {}
        self._lock = threading.RLock()

    def adapters(self) -> list[LoadedAdapter]:
        """The loaded adapters, in the order they were loaded (without waiting for a load or a batch under way)."""
        return list(self._adapters.values())

    def load(self, ref: str, *, local: bool = False) -> LoadedAdapter:
        """The adapter ``ref`` names (a Hub repo id; with ``local``, also a saved folder), loaded on first use."""
        with self._lock:
            if ref in self._adapters:
                return self._adapters[ref]
            if len(self._adapters) >= self.max_adapters:
                raise AdapterLimitError(
                    f"Cannot load '{ref}': the server holds its maximum of {self.max_adapters} adapters "
                    "(adapterzoo serve --max-adapters)."
                )
            if local and Path(ref).is_dir():
                folder = Path(ref)
            else:
                validate_repo_id(ref)
                folder = download_adapter(ref)
            if is_peft_adapter(folder):
                raise CheckpointError(
                    f"'{ref}' was saved by PEFT without adapterzoo's record, which names the backbone it adapts: "
                    "load it with AutoAdapter.from_pretrained(..., backbone=...) and push_to_hub it to serve it."
                )
            record = AdapterRecord.read(folder)
            self._check_backbone(ref, record)
            model = self._models.get(record.method)
            if model is None:
                model = self._new_model(ref, record, folder)
                name = model.adapter_name
            else:
                name = model.load_adapter(folder, adapter_name=f"adapter-{len(self._adapters)}")
            loaded = LoadedAdapter(ref, record.method, list(record.labels), model, name)
            self._adapters[ref] = loaded
            return loaded

    def _check_backbone(self, ref: str, record: AdapterRecord) -> None:
        revisions_differ = None not in (record.backbone_revision, self.backbone_revision) and (
            record.backbone_revision != self.backbone_revision
        )
        if self.backbone is not None and (record.backbone != self.backbone or revisions_differ):
            raise AdapterMismatchError(
                f"'{ref}' adapts the backbone '{record.backbone}' (revision {record.backbone_revision}); this server "
                f"serves adapters of '{self.backbone}' (revision {self.backbone_revision}) only. Serve it from a "
                "server of its own backbone."
            )

    def _new_model(self, ref: str, record: AdapterRecord, folder: Path) -> AdapterModel:
        if len(self._models) >= self.max_models:
            raise AdapterLimitError(
                f"Cannot load '{ref}': it is a '{record.method}' adapter, and the server holds its maximum of "
                f"{self.max_models} methods ({', '.join(self._models)}), each on a copy of the backbone "
                "(adapterzoo serve --max-models)."
            )
        model = AutoAdapter.from_pretrained(folder).to(self.device).eval()
        self.backbone, self.backbone_revision = model.backbone_name, model.backbone_revision
        self._models[record.method] = model
        return model

    def classify(self, images: Sequence[Any], refs: Sequence[str], *, top_k: int = 1) -> list[list[dict]]:
        """Each image's ``top_k`` labels with scores, through the adapter ``refs`` names for it (loaded on first use):
        the images of one method run as one mixed batch (`AdapterModel.predict` with ``adapter_names``)."""
        if len(images) != len(refs):
            raise ValueError(f"{len(images)} images and {len(refs)} adapter names: give one adapter per image.")
        with self._lock:
            loaded = [self.load(ref) for ref in refs]
            results: list[list[dict]] = [[] for _ in images]
            groups: dict[int, list[int]] = {}
            for index, adapter in enumerate(loaded):
                groups.setdefault(id(adapter.model), []).append(index)
            for indices in groups.values():
                model = loaded[indices[0]].model
                predictions = model.predict([images[i] for i in indices], top_k=top_k,
                                            adapter_names=[loaded[i].name for i in indices])  # fmt: skip
                for index, prediction in zip(indices, predictions, strict=True):
                    results[index] = prediction
            return results
