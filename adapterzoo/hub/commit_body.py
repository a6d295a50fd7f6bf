"""A commit's NDJSON body, read one line at a time from the request stream, with file contents decoded to disk as
they arrive: the server's memory does not grow with the size of the files in a commit.

huggingface_hub sends one JSON object a line, ``{"key": ..., "value": {...}}``, where ``value`` is a flat object of
strings and numbers (``_commit_api._payload_as_ndjson``). That shape is all this reader accepts; anything else is a
400 that says what was expected. The base64 ``content`` of a file is never held whole: it is decoded chunk by chunk
into the store by ``store_content``, which returns the object's sha256.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from adapterzoo.hub.names import HubError

MAX_FIELD_BYTES = 1 << 20
MAX_LINES = 100_000
_READ_SIZE = 1 << 20
_SPACE = b" \t\r\n"
_STRING_STOP = re.compile(rb'["\\]')
_NUMBER = b"-+.eE0123456789"
_LITERALS = {b"t": (b"true", True), b"f": (b"false", False), b"n": (b"null", None)}


@dataclass
class CommitLine:
    """One line of a commit body: its ``key``, its ``value``'s scalar fields (None when the line has no ``value``),
    and the sha256 of the ``content`` it carried, decoded and stored."""

    key: Any = None
    value: dict[str, Any] | None = None
    content_sha256: str | None = None


def _bad(message: str) -> HubError:
    return HubError(400, f"Invalid commit body: {message}")


class _Scanner:
    """Just enough of a JSON reader for commit lines, over a stream read in bounded pieces."""

    def __init__(self, stream: IO[bytes]):
        self.stream = stream
        self.buffer = b""
        self.pos = 0

    def _fill(self) -> bool:
        if self.pos < len(self.buffer):
            return True
        self.buffer, self.pos = self.stream.read(_READ_SIZE), 0
        return bool(self.buffer)

    def peek(self) -> bytes:
        return self.buffer[self.pos : self.pos + 1] if self._fill() else b""

    def take(self) -> bytes:
        byte = self.peek()
        self.pos += len(byte)
        return byte

    def skip_space(self) -> bytes:
        while (byte := self.peek()) and byte in _SPACE:
            self.pos += 1
        return byte

    def expect(self, wanted: bytes, what: str) -> None:
        if self.skip_space() != wanted:
            found = self.peek()
            raise _bad(f"expected {what}, found {found.decode('latin-1')!r}" if found else f"expected {what}")
        self.pos += 1

    def raw_string(self) -> Iterator[bytes]:
        """The raw bytes of a JSON string (escapes left as written), in pieces; the opening quote is consumed."""
        escaped = False
        while self._fill():
            start = self.pos
            if escaped:
                self.pos, escaped = self.pos + 1, False
            while match := _STRING_STOP.search(self.buffer, self.pos):
                if match.group() == b'"':
                    self.pos = match.end()
                    yield self.buffer[start : match.start()]
                    return
                self.pos = match.end() + 1
                if self.pos > len(self.buffer):
                    escaped = True
                    break
            self.pos = len(self.buffer)
            yield self.buffer[start:]
        raise _bad("a string is not closed")

    def string(self) -> str:
        raw = b""
        for piece in self.raw_string():
            raw += piece
            if len(raw) > MAX_FIELD_BYTES:
                raise _bad(f"a field is longer than {MAX_FIELD_BYTES} bytes")
        try:
            return json.loads(b'"' + raw + b'"')
        except ValueError as exc:
            raise _bad(f"a string is not valid JSON text in UTF-8 ({exc})") from None

    def scalar(self) -> Any:
        """A string, number, true, false or null; the kinds a commit line's fields hold."""
        byte = self.skip_space()
        if byte == b'"':
            self.pos += 1
            return self.string()
        if byte in _LITERALS:
            word, value = _LITERALS[byte]
            for expected in word:
                if self.take() != bytes([expected]):
                    raise _bad(f"expected {word.decode()}")
            return value
        if byte and byte in _NUMBER:
            text = b""
            while (byte := self.peek()) and byte in _NUMBER and len(text) <= 40:
                text += self.take()
            try:
                return json.loads(text)
            except ValueError:
                raise _bad(f"{text.decode()!r} is not a number") from None
        raise _bad("a commit line's value holds only strings, numbers, true, false and null")


def _base64_chunks(raw: Iterable[bytes]) -> Iterator[bytes]:
    """Decode base64 text arriving in pieces, refusing anything that is not one valid base64 string."""
    pending, ended = b"", False
    for piece in raw:
        pending += piece
        cut = len(pending) - len(pending) % 4
        if not cut:
            continue
        if ended:
            raise _bad("file content is not valid base64 (text after the padding)")
        block, pending = pending[:cut], pending[cut:]
        try:
            yield base64.b64decode(block, validate=True)
        except binascii.Error as exc:
            raise _bad(f"file content is not valid base64 ({exc})") from None
        ended = block.endswith(b"=")
    if pending:
        raise _bad("file content is not valid base64 (its length is not a multiple of 4)")


def _value_object(scanner: _Scanner, line: CommitLine, store_content: Callable[[Iterator[bytes]], str]) -> None:
    scanner.expect(b"{", "'{' opening the line's value")
    line.value = {}
    if scanner.skip_space() == b"}":
        scanner.pos += 1
        return
    while True:
        scanner.expect(b'"', "a field name in the line's value")
        name = scanner.string()
        scanner.expect(b":", "':'")
        if name == "content" and scanner.skip_space() == b'"':
            scanner.pos += 1
            line.content_sha256 = store_content(_base64_chunks(scanner.raw_string()))
        else:
            line.value[name] = scanner.scalar()
        if scanner.skip_space() == b",":
            scanner.pos += 1
            continue
        scanner.expect(b"}", "',' or '}' in the line's value")
        return


def _line(scanner: _Scanner, store_content: Callable[[Iterator[bytes]], str]) -> CommitLine:
    line = CommitLine()
    scanner.expect(b"{", "a JSON object on each line")
    while True:
        scanner.expect(b'"', "a field name")
        name = scanner.string()
        scanner.expect(b":", "':'")
        if name == "value":
            _value_object(scanner, line, store_content)
        elif name == "key":
            line.key = scanner.scalar()
        else:
            raise _bad(f"unexpected field {name!r}: a line holds 'key' and 'value'")
        if scanner.skip_space() == b",":
            scanner.pos += 1
            continue
        scanner.expect(b"}", "',' or '}'")
        return line


def read_commit_lines(stream: IO[bytes], store_content: Callable[[Iterator[bytes]], str]) -> Iterator[CommitLine]:
    """The lines of a commit body, in order; file contents go to ``store_content`` as they are read."""
    scanner = _Scanner(stream)
    for _ in range(MAX_LINES):
        if not scanner.skip_space():
            return
        yield _line(scanner, store_content)
    raise HubError(413, f"A commit holds at most {MAX_LINES} operations")
