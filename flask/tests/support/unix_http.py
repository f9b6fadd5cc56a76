"""One HTTP GET over a unix socket: a role of the local stack reached without nginx."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self._path))


def get(path: Path, target: str, timeout: float = 40) -> tuple[int, bytes]:
    """GET ``target`` from the server on the unix socket ``path``: its status and body."""
    connection = _UnixConnection(path, timeout)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
