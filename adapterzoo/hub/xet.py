"""Just enough of the Xet protocol for ``hf_xet`` to upload to this hub: write tokens, the xorb and shard formats, and
the reconstruction of each uploaded file into an ordinary object, checked against its sha256.

``huggingface_hub`` sends every "lfs" file through Xet when ``hf_xet`` is installed. ``hf_xet`` cuts a file into chunks,
packs them into xorbs (``POST /v1/xorbs/default/<hash>``), then describes each file in a shard (``POST /v1/shards``):
which chunk ranges of which xorbs make it up, and its sha256. This hub rebuilds each file from those ranges as soon as
the shard arrives, so the commit's ``lfsFile`` line finds the object, and downloads stay plain HTTP.

Formats (https://huggingface.co/docs/xet), all integers little-endian:

- xorb: chunks back to back, each an 8-byte header (version 0, compressed length u24, scheme u8: 0 none, 1 LZ4
  frame, 2 LZ4 frame of the bytes grouped by position modulo 4, uncompressed length u24) and its bytes; a footer that
  starts with ``XETBLOB`` may follow.
- shard: a 48-byte header (32-byte tag, version 2, footer size), then 48-byte records: per file a header (file hash,
  flags, entry count), its entries (xorb hash, flags, unpacked bytes, first chunk, end chunk), as many verification
  records when flag bit 31 is set, a metadata record holding the sha256 when bit 30 is set; a bookend (hash all
  0xff) closes the files, then the xorbs' chunk lists, closed by another bookend, then the footer.

Every length is checked against the body before it is used: a hostile body is a 400, never a 500, a hang or a large
allocation. A hash travels as its four u64 words, each written as 16 hex digits (``hash_hex``).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO

import lz4.frame

from adapterzoo.hub.commit_body import MAX_LINES
from adapterzoo.hub.names import HubError
from adapterzoo.hub.store import Repo, RepoStore

TOKEN_SECONDS = 3600
MAX_XORB_BYTES = 64 << 20
MAX_SHARD_BYTES = 64 << 20
MAX_CHUNK_BYTES = 128 << 10
MAX_SHARD_FILES = MAX_LINES
SHARD_OUTPUT_FACTOR = 16
_CHUNK_HEADER = 8
_RECORD = 48
_SHARD_TAG = b"HFRepoMetaData\x00UigEj{\x81W\x83\xa5\xbd\xd9\\\xcd\xd1J\xa9"
_SHARD_VERSION = 2
_BOOKEND = b"\xff" * 32
_XORB_FOOTER = b"XETBLOB"
_WITH_VERIFICATION = 1 << 31
_WITH_SHA256 = 1 << 30


def hash_hex(raw: bytes) -> str:
    """A 32-byte Xet hash as ``hf_xet`` writes it in URLs: each of its four u64 words as 16 hex digits."""
    return "".join(f"{word:016x}" for word in struct.unpack("<4Q", raw))


def _bad(what: str, message: str) -> HubError:
    return HubError(400, f"Invalid {what}: {message}")


# tokens
def _token_signature(secret: bytes, repo_type: str, repo_id: str, expires: int) -> str:
    return hmac.new(secret, f"xet-write:{repo_type}:{repo_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def write_token(secret: bytes, repo_type: str, repo_id: str, expires: int) -> str:
    """A token for the CAS routes that lets its holder upload to one repo until ``expires`` (unix seconds)."""
    return f"{expires}:{repo_type}:{repo_id}:{_token_signature(secret, repo_type, repo_id, expires)}"


def check_token(secret: bytes, authorization: str) -> tuple[str, str]:
    """The (repo type, repo id) an ``Authorization: Bearer <write token>`` header grants; a 401 unless it is valid."""
    expires, _, rest = authorization.removeprefix("Bearer ").partition(":")
    scope, _, signature = rest.rpartition(":")
    repo_type, _, repo_id = scope.partition(":")
    if not expires.isdigit() or not hmac.compare_digest(
        signature.encode(), _token_signature(secret, repo_type, repo_id, int(expires)).encode()
    ):
        raise HubError(401, "Invalid or missing Xet write token: get one from /api/<type>s/<id>/xet-write-token/<rev>")
    if int(expires) < time.time():
        raise HubError(401, "The Xet write token has expired: get a new one")
    return repo_type, repo_id


# xorbs
def _chunk_header(handle: IO[bytes], what: str) -> tuple[int, int, int] | None:
    """The next chunk's (compressed length, scheme, uncompressed length); None at the end of the chunks."""
    header = handle.read(_CHUNK_HEADER)
    if not header or header.startswith(_XORB_FOOTER):
        return None
    if len(header) < _CHUNK_HEADER:
        raise _bad(what, "a chunk header is cut short")
    version, scheme = header[0], header[4]
    compressed, uncompressed = int.from_bytes(header[1:4], "little"), int.from_bytes(header[5:8], "little")
    if version != 0 or scheme not in (0, 1, 2):
        raise _bad(what, f"unknown chunk version {version} or compression scheme {scheme}")
    if uncompressed > MAX_CHUNK_BYTES or compressed > 2 * MAX_CHUNK_BYTES:
        raise _bad(what, f"a chunk of {uncompressed} bytes ({compressed} compressed) exceeds {MAX_CHUNK_BYTES}")
    return compressed, scheme, uncompressed


def _regroup(data: bytes) -> bytes:
    """Undo byte grouping: the input holds the bytes at positions 0, 4, 8..., then 1, 5, 9..., then 2..., then 3..."""
    out = bytearray(len(data))
    start = 0
    for offset in range(4):
        count = len(range(offset, len(data), 4))
        out[offset::4] = data[start : start + count]
        start += count
    return bytes(out)


def _decode(data: bytes, scheme: int, size: int, what: str) -> bytes:
    if scheme:
        decompressor = lz4.frame.LZ4FrameDecompressor()
        try:
            data = decompressor.decompress(data, max_length=size + 1)
        except RuntimeError as exc:
            raise _bad(what, f"a chunk is not valid LZ4 ({exc})") from None
        if not decompressor.eof or decompressor.unused_data:
            raise _bad(what, f"a chunk is not one LZ4 frame of {size} bytes")
    if len(data) != size:
        raise _bad(what, f"a chunk holds {len(data)} bytes, not the {size} its header says")
    return _regroup(data) if scheme == 2 else data


def _chunks(handle: IO[bytes], count: int | None = None, what: str = "xorb") -> Iterator[bytes]:
    """The next ``count`` uncompressed chunks of a xorb from the handle's position (all that are left, when None)."""
    index = 0
    while count is None or index < count:
        header = _chunk_header(handle, what)
        if header is None:
            if count is not None:
                raise _bad(what, "a file needs more chunks than it holds")
            return
        compressed, scheme, uncompressed = header
        data = handle.read(compressed)
        if len(data) < compressed:
            raise _bad(what, "a chunk is cut short")
        yield _decode(data, scheme, uncompressed, what)
        index += 1


def check_xorb(handle: IO[bytes]) -> None:
    """Refuse a xorb unless every chunk's header is sound and its data decompresses to the stated size."""
    if sum(1 for _ in _chunks(handle)) == 0:
        raise _bad("xorb", "it holds no chunks")


def chunk_offsets(path: Path) -> tuple[int, ...]:
    """Where each chunk of a stored (so already checked) xorb starts, read from the chunk headers alone."""
    offsets = []
    with open(path, "rb") as handle:
        while (header := _chunk_header(handle, "xorb")) is not None:
            offsets.append(handle.tell() - _CHUNK_HEADER)
            handle.seek(header[0], 1)
    return tuple(offsets)


# shards
@dataclass(frozen=True)
class Segment:
    """Chunks ``start`` to ``end`` (exclusive) of a xorb, ``size`` bytes once uncompressed."""

    xorb: str
    start: int
    end: int
    size: int


@dataclass(frozen=True)
class XetFile:
    """A file described by a shard: its sha256 and the xorb segments that make it up, in order."""

    sha256: str
    segments: tuple[Segment, ...]

    @property
    def size(self) -> int:
        return sum(segment.size for segment in self.segments)


class _Records:
    """The 48-byte records of a shard body, each checked to lie inside it."""

    def __init__(self, data: bytes, end: int):
        self.data, self.pos, self.end = data, _RECORD, end

    def take(self, count: int = 1) -> bytes:
        stop = self.pos + count * _RECORD
        if stop > self.end:
            raise _bad("shard", "it is cut short (a record runs past its end)")
        record, self.pos = self.data[self.pos : stop], stop
        return record


def parse_shard(data: bytes) -> list[XetFile]:
    """The files a shard describes. Each must carry its sha256 (``hf_xet`` writes it): this hub checks uploads by it."""
    if len(data) < _RECORD or data[:32] != _SHARD_TAG:
        raise _bad("shard", "it does not start with the shard tag")
    version, footer_size = struct.unpack_from("<QQ", data, 32)
    if version != _SHARD_VERSION or footer_size > len(data) - _RECORD:
        raise _bad("shard", f"unsupported version {version} or footer size {footer_size}")
    records = _Records(data, len(data) - footer_size)
    files = []
    while (header := records.take())[:32] != _BOOKEND:
        flags, count = struct.unpack_from("<II", header, 32)
        segments = []
        for _ in range(count):
            entry = records.take()
            _, size, start, end = struct.unpack_from("<4I", entry, 32)
            if not start < end:
                raise _bad("shard", f"a segment's chunk range [{start}, {end}) is empty")
            segments.append(Segment(hash_hex(entry[:32]), start, end, size))
        if flags & _WITH_VERIFICATION:
            records.take(count)
        if not flags & _WITH_SHA256:
            raise _bad("shard", f"file {hash_hex(header[:32])} carries no sha256")
        files.append(XetFile(hash_hex(records.take()[:32]), tuple(segments)))
    while (header := records.take())[:32] != _BOOKEND:
        records.take(struct.unpack_from("<I", header, 36)[0])
    if records.pos != records.end:
        raise _bad("shard", f"{records.end - records.pos} bytes follow its last section")
    return files


def store_shard(shard: bytes, repo: Repo, store: RepoStore, max_file_size: int) -> None:
    """Rebuild the files a shard describes from the stored xorbs into objects of ``repo``, all or none.

    A file may be at most ``max_file_size`` bytes (as a git-LFS upload), and a shard's files 16 times that together:
    a few bytes of shard can describe gigabytes of output, so the work a shard asks for is bounded up front.
    """
    files = [file for file in {f.sha256: f for f in parse_shard(shard)}.values() if not repo.has_object(file.sha256)]
    if len(files) > MAX_SHARD_FILES:
        raise HubError(413, f"A shard describes at most {MAX_SHARD_FILES} new files")
    if sum(file.size for file in files) > SHARD_OUTPUT_FACTOR * max_file_size:
        raise HubError(413, f"A shard's files exceed {SHARD_OUTPUT_FACTOR * max_file_size} bytes together")
    for file in files:
        if file.size > max_file_size:
            raise HubError(413, f"A file of {file.size} bytes exceeds this hub's limit of {max_file_size}")
        for segment in file.segments:
            if not store.xorb_path(segment.xorb).is_file():
                raise HubError(400, f"Xorb {segment.xorb} was never uploaded to this hub")
    offsets = lru_cache(maxsize=64)(lambda xorb: chunk_offsets(store.xorb_path(xorb)))
    repo.store_objects((file.sha256, file_contents(file, store.xorb_path, offsets)) for file in files)


def file_contents(
    file: XetFile, xorb_path: Callable[[str], Path], offsets: Callable[[str], tuple[int, ...]]
) -> Iterator[bytes]:
    """The bytes of ``file``, rebuilt chunk by chunk from its segments' xorbs (found by ``xorb_path``; ``offsets``
    gives where each of a xorb's chunks starts)."""
    for segment in file.segments:
        starts, what = offsets(segment.xorb), f"xorb {segment.xorb}"
        if segment.end > len(starts):
            raise _bad(what, f"it holds {len(starts)} chunks, not the {segment.end} a file needs")
        produced = 0
        with open(xorb_path(segment.xorb), "rb") as handle:
            handle.seek(starts[segment.start])
            for chunk in _chunks(handle, segment.end - segment.start, what):
                produced += len(chunk)
                yield chunk
        if produced != segment.size:
            raise _bad("shard", f"a segment of xorb {segment.xorb} is {produced} bytes, not {segment.size}")
