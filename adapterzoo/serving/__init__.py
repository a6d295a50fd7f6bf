"""``adapterzoo serve``: image classification over HTTP through many adapters on one backbone (optional extra
``adapterzoo[serve]``: FastAPI and uvicorn). `AdapterPool` holds the adapters (it needs no web framework);
`adapterzoo.serving.app` is the HTTP API over it."""

from adapterzoo.serving.pool import AdapterPool, LoadedAdapter

__all__ = ["AdapterPool", "LoadedAdapter"]
