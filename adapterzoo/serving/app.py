"""The HTTP API of ``adapterzoo serve`` (FastAPI), over an `AdapterPool`.

Routes (JSON in and out; images travel base64-encoded in JSON, optionally as ``data:`` URLs):

- ``GET /health``: ``{"status": "ok", "backbone", "adapters"}``.
- ``GET /adapters``: the loaded adapters, each ``{"adapter", "method", "labels", "backbone"}``.
- ``POST /adapters`` ``{"adapter": "user/repo"}``: load an adapter from the Hub now rather than on first use.
- ``POST /classify`` ``{"inputs": [{"image": "<base64>", "adapter": "user/repo"}, ...], "top_k": 1}``: each image
  through its own adapter (loaded on first use); ``{"predictions": [[{"label", "score"}, ...], ...]}`` in order.

Clients' mistakes are 4xx with a ``detail`` that says what was wrong: 404 an adapter that is not on the Hub, 409 an
adapter for another backbone or one past the server's caps, 413 a body over the size cap, 422 a body that is not
the schema, too many images, or an image that is not base64 or not an image.
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from huggingface_hub.errors import EntryNotFoundError, HFValidationError, RepositoryNotFoundError
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapterzoo.data.images import to_rgb
from adapterzoo.errors import AdapterLimitError, AdapterMismatchError, CheckpointError, MethodNotFoundError
from adapterzoo.serving.pool import AdapterPool

MAX_IMAGES = 64
MAX_BODY_BYTES = 32 * 2**20
MAX_TOP_K = 100

# What each failure of a client's request answers with (the handler of the most specific class answers).
STATUSES: tuple[tuple[type[Exception], int], ...] = (
    (RepositoryNotFoundError, 404),
    (EntryNotFoundError, 404),
    (HFValidationError, 422),
    (AdapterMismatchError, 409),
    (AdapterLimitError, 409),
    (MethodNotFoundError, 422),
    (CheckpointError, 422),
)


class InputError(ValueError):
    """A request's input that its schema lets through but the server cannot use (answered with 422)."""


class Example(BaseModel):
    image: str = Field(description="the image file's bytes, base64-encoded (a data: URL is accepted)")
    adapter: str = Field(description="the Hub repo id of the adapter that classifies it")


class ClassifyRequest(BaseModel):
    inputs: list[Example]
    top_k: int = Field(1, ge=1, le=MAX_TOP_K, description="labels per image, best first")


class LoadRequest(BaseModel):
    adapter: str = Field(description="the Hub repo id of an adapter")


def decode_image(text: str, where: str) -> Image.Image:
    """The RGB image that ``text`` (base64, or a base64 ``data:`` URL) encodes; `InputError` naming ``where`` if not."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InputError(f"{where} is not base64 ({error}): send the image file's bytes base64-encoded.") from error
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return to_rgb(image)
    except Image.DecompressionBombError as error:
        raise InputError(f"{where} has too many pixels for this server: {error}") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{where} is not an image file this server can read ({error}).") from error


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes (declared or streamed) is answered 413 unread."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._too_large(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"The request body is over this server's limit of {self.limit} bytes (adapterzoo serve --max-body-mb)."
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


def create_app(pool: AdapterPool, *, max_images: int = MAX_IMAGES, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The server's FastAPI application over ``pool``, refusing more than ``max_images`` images a request and bodies
    over ``max_body_bytes``."""
    app = FastAPI(title="adapterzoo serve", summary="Image classification through adapters on one backbone")
    app.add_middleware(BodyLimit, limit=max_body_bytes)

    @app.exception_handler(InputError)
    async def input_error(request: Request, error: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=422)

    for error_class, status in STATUSES:
        app.add_exception_handler(error_class, _answer_with(status))

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "backbone": pool.backbone, "adapters": len(pool.adapters())}

    @app.get("/adapters")
    def adapters() -> list[dict]:
        return [adapter.describe() for adapter in pool.adapters()]

    # Plain functions: FastAPI runs them on its thread pool, so decoding and inference do not block the event loop.
    @app.post("/adapters")
    def load(request: LoadRequest) -> dict:
        return pool.load(request.adapter).describe()

    @app.post("/classify")
    def classify(request: ClassifyRequest) -> dict:
        if not request.inputs:
            raise InputError("inputs is empty: send at least one {'image', 'adapter'}.")
        if len(request.inputs) > max_images:
            raise InputError(
                f"{len(request.inputs)} images in one request; this server takes at most {max_images} "
                "(adapterzoo serve --max-images): split them over several requests."
            )
        images = [decode_image(example.image, f"inputs[{i}].image") for i, example in enumerate(request.inputs)]
        refs = [example.adapter for example in request.inputs]
        return {"predictions": pool.classify(images, refs, top_k=request.top_k)}

    return app


def _answer_with(status: int):
    async def handler(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status)

    return handler


@contextmanager
def running(app: FastAPI, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a thread of this process for the duration of the block, yielding its URL
    (``port=0`` picks a free port)."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"The server did not start on {host}:{port} (see the log above).")
        threading.Event().wait(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join()
