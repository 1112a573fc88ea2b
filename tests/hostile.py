"""Test helpers for hostile input: raw HTTP requests no polite client would send, and the emulator's
log checked for tracebacks."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

from hypothesis import strategies as st


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


# -- hostile steps every emulator's property test draws from ----------------------------------------------

def _dumps(value) -> bytes:
    return json.dumps(value).encode()  # stdlib: integers beyond 64 bits too


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=8)
DEEP_JSON = st.integers(min_value=129, max_value=1100).map(lambda depth: "[" * depth + "]" * depth)
ADMIN_KEYS = st.sampled_from(["room", "users", "connections", "fraction", "seed", "mode", "code", "reason",
                              "delay_ms", "jitter_ms", "downtime_ms", "per_delivery_us", "other"])
# Any body, aimed at no one: `connections: [-1]` selects nothing where it is allowed and is an unknown
# key (400) everywhere else, so a valid call can never disturb the bystanders.
ADMIN_BODIES = st.one_of(
    st.dictionaries(ADMIN_KEYS, JSON_VALUES, max_size=4).map(lambda body: _dumps({**body, "connections": [-1]})),
    st.binary(max_size=40).map(lambda junk: b"\xff" + junk),  # never JSON (an empty body would select everyone)
    DEEP_JSON.map(str.encode),
)
ADMIN_CALLS = st.tuples(st.sampled_from(["drop", "expire", "delay", "pause", "resume", "restart", "cost"]),
                        ADMIN_BODIES)


def admin_call(process, route: str, body: bytes) -> None:
    """A hostile fault-route call: answered 200 (selecting no one), 400 or 404, never a 500."""
    status, answer = raw_request(process.control_endpoint, f"/_emulator/faults/{route}", body=body)
    assert status in (200, 400, 404), (route, body[:60], status, answer[:200])


def control_call(process, path: str, body: bytes, *, headers: bytes = b"") -> int:
    """A hostile control-plane call: any 4xx with a body, never a 5xx."""
    status, answer = raw_request(process.control_endpoint, path, body=body, headers=headers)
    assert 200 <= status < 500 and answer, (path, body[:60], status, answer[:200])
    return status


BODIES = st.one_of(st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=4).map(_dumps),
                   JSON_VALUES.map(_dumps), st.binary(max_size=60), DEEP_JSON.map(str.encode))
ODD_HEADERS = st.sampled_from([b"", b"Content-Encoding: gzip\r\n", b"Content-Encoding: br\r\n",
                               b"Authorization: \xff\xfe\r\n", b"Authorization: Bearer \xc3\xa9\r\n"])
