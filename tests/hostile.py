"""Test helpers for hostile input: raw HTTP requests no polite client would send, and the emulator's
log checked for tracebacks."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


def raw_request(endpoint: str, path: str, *, headers: bytes = b"", body: bytes = b"{}",
                method: str = "POST", timeout: float = 5.0) -> tuple[int, bytes]:
    """Send one HTTP/1.1 request byte for byte (any header bytes, any body); (status, body)."""
    url = urlsplit(endpoint)
    head = (f"{method} {path} HTTP/1.1\r\nHost: {url.hostname}\r\nContent-Length: {len(body)}\r\n"
            "Content-Type: application/json\r\nConnection: close\r\n").encode() + headers + b"\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def assert_no_traceback(process) -> None:
    """The emulator child logged no traceback: nothing a client sent raised inside it."""
    log = process.log_text()
    assert "Traceback" not in log, log[-3000:]
