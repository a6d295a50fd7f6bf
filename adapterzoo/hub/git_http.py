"""Read-only git smart HTTP for the embedded Hub: ``git clone`` / ``fetch`` / ``pull`` of its repositories.

git asks ``GET <repo>/info/refs?service=git-upload-pack`` for the refs, then ``POST <repo>/git-upload-pack`` with what
it wants and has, and receives a pack. Both are answered by dulwich's `UploadPackHandler` (stateless, as over HTTP),
over a `GitView` of the repository: its branches, tags and ``refs/pr/N``, ``HEAD`` -> ``main``, and the git objects of
`adapterzoo.hub.git_objects`. Pushing is refused: repositories are written through ``huggingface_hub``, whose
commits this server checks and records.
"""

from __future__ import annotations

import base64
import binascii
import sys
import traceback
import zlib
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler

from dulwich.errors import GitProtocolError
from dulwich.protocol import CAPABILITY_FILTER, Protocol
from dulwich.refs import DictRefsContainer
from dulwich.repo import BaseRepo
from dulwich.server import DictBackend, UploadPackHandler

from adapterzoo.hub.git_objects import StoreObjects
from adapterzoo.hub.names import HubError
from adapterzoo.hub.request_body import RequestBody
from adapterzoo.hub.store import DEFAULT_BRANCH, REF_KINDS, Repo

UPLOAD_PACK = "git-upload-pack"
RECEIVE_PACK = "git-receive-pack"
PUSH_REFUSED = (
    "This hub is read-only over git: write with huggingface_hub instead "
    "(HfApi.upload_folder / upload_file / create_commit, or `hf upload`)"
)
MAX_REQUEST_BYTES = 64 << 20
_CHUNK_BYTES = 1 << 16


def basic_password(header: str) -> str | None:
    """The password of a ``Basic`` Authorization header (git sends the token there, with any user name), or None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        credentials = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    _user, colon, password = credentials.partition(":")
    return password if colon else None


def check_service(service: str | None) -> str:
    """The one service served, git-upload-pack; pushes are refused with a message git shows its user."""
    if service == RECEIVE_PACK:
        raise HubError(403, PUSH_REFUSED)
    if service != UPLOAD_PACK:
        raise HubError(400, f"Unsupported git service {str(service)[:60]!r}: this hub serves {UPLOAD_PACK} only")
    return service


class GitView(BaseRepo):
    """A read-only git repository showing one store repository as it was when the view was made."""

    def __init__(self, repo: Repo):
        objects = StoreObjects(repo)
        refs = {
            f"refs/{kind}/{name}".encode(): objects.add_history(commit_id)
            for kind in REF_KINDS
            for name, commit_id in repo.refs(kind).items()
        }
        container = DictRefsContainer(refs)
        if f"refs/heads/{DEFAULT_BRANCH}".encode() in refs:
            container.set_symbolic_ref(b"HEAD", f"refs/heads/{DEFAULT_BRANCH}".encode())
        super().__init__(objects, container)


class _UploadPack(UploadPackHandler):
    """dulwich's upload-pack without partial clones (``filter``): git would later fetch each filtered-out blob by its
    id, which upload-pack refuses (it serves only what the refs reach from their tips). Not offered ``filter``, git
    warns and clones fully, though it still names ``filter`` among the capabilities it asks for: that is accepted."""

    def capabilities(self) -> list[bytes]:
        return [capability for capability in super().capabilities() if capability != CAPABILITY_FILTER]

    @classmethod
    def innocuous_capabilities(cls) -> list[bytes]:
        return [*super().innocuous_capabilities(), CAPABILITY_FILTER]


Write = Callable[[bytes], None]


def _handler(view: GitView, read: Callable[[int], bytes], write: Write, **kwargs: bool) -> UploadPackHandler:
    return _UploadPack(DictBackend({"/": view}), ["/"], Protocol(read, write), stateless_rpc=True, **kwargs)


def advertise_refs(view: GitView, write: Write) -> None:
    """The answer to ``info/refs?service=git-upload-pack``: the service line, then the refs and capabilities."""
    handler = _handler(view, lambda size: b"", write, advertise_refs=True)
    handler.proto.write_pkt_line(f"# service={UPLOAD_PACK}\n".encode())
    handler.proto.write_pkt_line(None)
    handler.handle()


def upload_pack(view: GitView, read: Callable[[int], bytes], write: Write) -> None:
    """Answer one stateless ``git-upload-pack`` request read from ``read``: acknowledgements, then the pack."""
    try:
        _handler(view, read, write).handle()
    except (GitProtocolError, ValueError, KeyError) as exc:
        raise HubError(400, f"Invalid {UPLOAD_PACK} request: {exc}") from None


def request_reader(headers: Mapping[str, str], body: RequestBody) -> Callable[[int], bytes]:
    """Reads the request body, inflated if git gzipped it (it does past 1 KiB), refused past 64 MiB inflated."""
    encoding = (headers.get("Content-Encoding") or "").strip().lower()
    if encoding in ("", "identity"):
        return body.read
    if encoding in ("gzip", "x-gzip"):
        return _Inflated(body).read
    raise HubError(415, f"Unsupported Content-Encoding {encoding[:40]!r}: send gzip or nothing")


class _Inflated:
    """A gzipped body, inflated as it is read, never more than MAX_REQUEST_BYTES of it."""

    def __init__(self, body: RequestBody):
        self._body = body
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self._offset = 0
        self._total = 0

    def read(self, size: int) -> bytes:
        while len(self._pending) - self._offset < size and not self._inflater.eof:
            compressed = self._inflater.unconsumed_tail or self._body.read(_CHUNK_BYTES)
            if not compressed:
                break
            try:
                inflated = self._inflater.decompress(compressed, _CHUNK_BYTES)
            except zlib.error as exc:
                raise HubError(400, f"Invalid gzip request body: {exc}") from None
            self._total += len(inflated)
            if self._total > MAX_REQUEST_BYTES:
                raise HubError(413, f"A {UPLOAD_PACK} request is limited to {MAX_REQUEST_BYTES} bytes")
            self._pending, self._offset = self._pending[self._offset :] + inflated, 0
        data = self._pending[self._offset : self._offset + size]
        self._offset += len(data)
        return data


class StreamedResponse:
    """A 200 response of unknown length, sent in chunks. Nothing goes out before 64 KiB are written or `finish` is
    called, so that a request found invalid while git's wants and haves are read can still be answered with a 4xx."""

    def __init__(self, handler: BaseHTTPRequestHandler, content_type: str):
        self._handler = handler
        self._content_type = content_type
        self._buffer = bytearray()
        self.started = False

    def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= _CHUNK_BYTES:
            self._flush()

    def finish(self) -> None:
        self._flush()
        self._handler.wfile.write(b"0\r\n\r\n")

    def _flush(self) -> None:
        if not self.started:
            self.started = True
            self._handler.send_response(200)
            self._handler.send_header("Content-Type", self._content_type)
            self._handler.send_header("Cache-Control", "no-cache, max-age=0, must-revalidate")
            self._handler.send_header("Transfer-Encoding", "chunked")
            self._handler.end_headers()
        if self._buffer:
            self._handler.wfile.write(b"%x\r\n%s\r\n" % (len(self._buffer), self._buffer))
            self._buffer.clear()


def respond(handler: BaseHTTPRequestHandler, content_type: str, produce: Callable[[Write], None]) -> None:
    """Send what ``produce`` writes as the response. An error before anything was sent propagates (the caller answers
    it); after, the response can only be cut short, which git reports as a broken stream."""
    response = StreamedResponse(handler, content_type)
    try:
        produce(response.write)
        response.finish()
    except Exception as exc:
        if not response.started:
            raise
        handler.close_connection = True
        if not isinstance(exc, (BrokenPipeError, ConnectionResetError, TimeoutError)):
            sys.stderr.write(f"adapterzoo hub: git response cut short\n{traceback.format_exc()}")
