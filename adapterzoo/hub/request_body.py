"""Reading a request body defensively: a strict Content-Length or chunked framing, a size limit, and JSON parsed into
checked shapes, so that a client's mistake is a 4xx that says what was wrong and never a 500."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import IO, Any

from adapterzoo.hub.names import HubError

MAX_JSON_BYTES = 16 << 20
_READ_SIZE = 1 << 20
_LENGTH = re.compile(r"[0-9]{1,19}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_MAX_TRAILER_LINES = 100


class RequestBody:
    """A request body, from a Content-Length or a chunked transfer, that refuses to grow past ``limit`` bytes."""

    def __init__(self, headers: Mapping[str, str], rfile: IO[bytes], limit: int):
        self.rfile = rfile
        self.limit = limit
        self.received = 0
        encoding = (headers.get("Transfer-Encoding") or "").strip().lower()
        if encoding not in ("", "chunked"):
            raise HubError(400, f"Unsupported Transfer-Encoding {encoding!r}: send a Content-Length or 'chunked'")
        self.chunked = encoding == "chunked"
        self._ended = False
        self.remaining = 0
        if not self.chunked:
            length = (headers.get("Content-Length") or "0").strip()
            if not _LENGTH.fullmatch(length):
                raise HubError(400, f"Invalid Content-Length {length[:40]!r}: expected a number of bytes")
            self.remaining = int(length)
            self._check_limit(self.remaining)
            self._ended = self.remaining == 0

    @property
    def ended(self) -> bool:
        return self._ended

    def _check_limit(self, size: int) -> None:
        if size > self.limit:
            raise HubError(413, f"The request body is larger than this hub's limit of {self.limit} bytes")

    def _line(self, what: str) -> bytes:
        line = self.rfile.readline(1024)
        if not line.endswith(b"\n"):
            raise HubError(400, f"Invalid chunked body: {what} is missing or too long")
        return line.rstrip(b"\r\n")

    def _start_chunk(self) -> None:
        size = self._line("a chunk size line").split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size):
            raise HubError(400, f"Invalid chunked body: chunk size {size[:20]!r} is not a hex number")
        self.remaining = int(size, 16)
        self._check_limit(self.received + self.remaining)
        if self.remaining == 0:
            for _ in range(_MAX_TRAILER_LINES):
                if not self._line("the end of the trailers"):
                    self._ended = True
                    return
            raise HubError(400, "Invalid chunked body: too many trailer lines")

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all that is left, when negative); fewer only at the end of the body."""
        wanted = self.limit + 1 if n < 0 else n
        parts, total = [], 0
        while total < wanted and not self._ended:
            if self.remaining == 0:
                self._start_chunk()
                continue
            piece = self.rfile.read(min(wanted - total, self.remaining, _READ_SIZE))
            if not piece:
                raise HubError(400, "The request body ended early")
            parts.append(piece)
            total += len(piece)
            self.received += len(piece)
            self.remaining -= len(piece)
            if self.remaining == 0:
                if self.chunked and self._line("the line end after a chunk"):
                    raise HubError(400, "Invalid chunked body: a chunk is longer than its size")
                self._ended = not self.chunked
        return b"".join(parts)

    def json(self) -> Any:
        """The body as JSON (``{}`` when empty), at most 16 MiB, with nesting, encoding and syntax errors as 400s."""
        data = self.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise HubError(413, f"A JSON request body is limited to {MAX_JSON_BYTES} bytes")
        try:
            return json.loads(data) if data.strip() else {}
        except RecursionError:
            raise HubError(400, "Invalid JSON body: nested too deeply") from None
        except ValueError as exc:
            raise HubError(400, f"Invalid JSON body: {exc}") from None


_REQUIRED = object()
_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "an object", list: "an array"}


def json_object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise HubError(400, f"{where} must be a JSON object, not {_json_kind(value)}")
    return value


def field(payload: dict, key: str, kind: type, default: Any = _REQUIRED, *, where: str = "The request body") -> Any:
    """``payload[key]`` if it is of ``kind`` (``None`` counts as absent); ``default`` when absent, else a 400."""
    value = payload.get(key)
    if value is None:
        if default is _REQUIRED:
            raise HubError(400, f"{where} lacks '{key}'")
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise HubError(400, f"'{key}' in {where.lower()} must be {_KIND_NAMES[kind]}, not {_json_kind(value)}")
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for kind, name in _KIND_NAMES.items() if type(value) is kind), type(value).__name__)
