"""A threading HTTP server whose connections are bounded, so that idle, slow or numerous clients cannot starve others.

Each connection has a thread (as in `ThreadingHTTPServer`) and a read timeout (the handler's ``timeout``). The number
of connections is capped by ``max_connections`` and by the file descriptors the process may still open. At the cap, a
new connection displaces the one that has been idle longest (waiting between requests); when none is idle, it is
answered 503 at once. A client holding hundreds of idle connections therefore cannot lock out a new one.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

_FDS_PER_CONNECTION = 2
_FD_RESERVE = 16
_BUSY_MESSAGE = "The hub is busy: every connection is serving a request"
_BUSY_BODY = json.dumps({"error": _BUSY_MESSAGE}).encode()
_BUSY_RESPONSE = (
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    f"X-Error-Message: {_BUSY_MESSAGE}\r\nConnection: close\r\nContent-Length: {len(_BUSY_BODY)}\r\n\r\n"
).encode() + _BUSY_BODY


def connection_budget(max_connections: int) -> int:
    """How many connections this process can hold: ``max_connections``, or fewer when file descriptors are short."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 64
    return max(1, min(max_connections, (soft - in_use - _FD_RESERVE) // _FDS_PER_CONNECTION))


def _hang_up(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class BoundedHTTPServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` with a cap on connections that displaces idle ones first (see the module's text)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, *, max_connections: int):
        self.max_connections = connection_budget(max_connections)
        self._idle: dict[socket.socket, bool] = {}  # every open connection; longest idle first
        self._room = threading.Condition()
        super().__init__(address, handler)

    def mark(self, connection: socket.socket, *, idle: bool) -> None:
        """Called by the handler: waiting for a request (idle) or serving one."""
        with self._room:
            if connection in self._idle:
                del self._idle[connection]
                self._idle[connection] = idle

    def _displace_idle(self) -> None:
        longest_idle = next((c for c, idle in self._idle.items() if idle), None)
        if longest_idle is not None:
            self._idle[longest_idle] = False
            _hang_up(longest_idle)
            self._room.wait_for(lambda: len(self._idle) < self.max_connections, timeout=1.0)

    def get_request(self) -> tuple[socket.socket, Any]:
        with self._room:
            if len(self._idle) >= self.max_connections:
                self._displace_idle()
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                with self._room:
                    self._displace_idle()
                time.sleep(0.01)
            raise

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        with self._room:
            full = len(self._idle) >= self.max_connections
            if not full:
                self._idle[request] = True
        if full:
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY_RESPONSE)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        super().shutdown_request(request)
        with self._room:
            self._idle.pop(request, None)
            self._room.notify_all()
