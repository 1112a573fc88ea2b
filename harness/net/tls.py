"""TLS for wss:// clients: one context per process and target, and what a certificate failure means.

TLS is a property of the target, not of a transport. Building a context loads a trust store (the
system bundle: ~20-30 ms on this machine), so it is built once per (CA file, verification) in each
process, on the thread that resolves the target, before any user connects: never per connect and
never on the loop thread, where a 1,000-user ramp would otherwise stall every receive for half a
minute. Both transports take the same context.

The context asks for TLS 1.2 or later, sends SNI (asyncio passes the URL's host as
`server_hostname`) and checks the certificate and the host name. Turning verification off is
allowed only for an emulator target (`verify=False`), and the runtime says so on the console.

A certificate the client rejects (unknown CA, another host, expired, not yet valid) is not a
transient failure: `certificate_failure` names the cause, and the session stops trying (a refused
connect, counted as `connect_failures.<cause>` and `refused.tls`).

Timing and resumption: asyncio's and uvloop's TLS transports call `context.wrap_bio(...)` (without
a session) the moment TCP is up, within the connecting task's context. The connect's `TlsPhase` is
that task's own, so `ResumingContext.wrap_bio` stamps the TLS start and offers the session the phase
carries: the one the user's last connection got (`Transport.tls_session`, read only when it
reconnects). A reconnect storm against a real endpoint is then a storm of resumed handshakes, as the
vendors' clients (browsers, OkHttp) make it; `chatload bench connect --tls` measures what it saves.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import hashlib
import logging
import os
import ssl
import tempfile
import threading
import time
import weakref
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger("chatload")

# OpenSSL's X509_V_ERR_* codes (ssl.SSLCertVerificationError.verify_code) → the cause a person reads.
_CAUSES = {
    9: "TLS certificate not yet valid",
    10: "TLS certificate expired",
    18: "TLS self-signed certificate",
    19: "TLS unknown CA",  # the chain ends at a root the client does not trust
    20: "TLS unknown CA",
    21: "TLS unknown CA",
    62: "TLS hostname mismatch",
    64: "TLS hostname mismatch",  # an IP address the certificate does not name
}


def certificate_failure(exc: BaseException) -> str | None:
    """The cause of a rejected server certificate ("TLS certificate expired", …), or None if `exc`
    is not one (a reset during the handshake is a transient failure, not a refusal)."""
    if not isinstance(exc, ssl.SSLCertVerificationError):
        return None
    return _CAUSES.get(exc.verify_code, f"TLS certificate rejected ({exc.verify_message or exc.verify_code})")


# TLS handshakes in progress at once on one loop. Each costs the loop ~1-2 ms of CPU (measured: 1.5-1.9 ms
# per wss:// connect on 2 loaded cores), and the handshakes that complete together are handled in one
# loop iteration: with 16 in flight the loop stalled 10-32 ms again and again during a ramp, with 200
# (`chatload bench connect`'s default concurrency) over 60 ms; every receive due meanwhile waits. At 8
# a ramp's connects queue here instead, before their TCP connect and before their timeout and clock
# start: the wait is `connect.tls_wait`, in neither `connect` nor `connect.tls`. Against an endpoint 50 ms away that still allows ~80 connects/s per process.
TLS_IN_FLIGHT = 8

_phase: contextvars.ContextVar = contextvars.ContextVar("chatload_tls_phase", default=None)


class TlsPhase:
    """One wss:// connect's TLS phase. `begin` takes a place among the loop's `TLS_IN_FLIGHT` and makes
    the phase the connecting task's own; asyncio's and uvloop's TLS transports call the context's
    `wrap_bio` the moment TCP is up, within that task's context, where `ResumingContext` stamps the
    start and offers `offer` (the user's previous TLS session); the transport calls `done` once TLS is
    established, which stamps the end and gives the place back. Loop thread only."""

    _gates: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop → its semaphore

    def __init__(self, offer=None) -> None:
        self.offer = offer
        self.started_ns = self.done_ns = 0
        self._gate: asyncio.Semaphore | None = None
        self._token: contextvars.Token | None = None

    async def begin(self) -> int:
        """Wait for a place; how long that took (ns). Call it before the connect's clock and timeout
        start: a connect queued here has not been tried yet (`connect.tls_wait`, not `connect`)."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(TLS_IN_FLIGHT)
        queued_ns = time.time_ns()
        await gate.acquire()
        self._gate = gate
        self._token = _phase.set(self)
        return time.time_ns() - queued_ns

    def done(self) -> None:
        """TLS is established (or the attempt ended): stamp once, and free the place."""
        if not self.done_ns and self.started_ns:
            self.done_ns = time.time_ns()
        if self._gate is not None:
            self._gate.release()
            self._gate = None

    def end(self) -> None:
        """In the connecting task, after the connect: done, and no longer the task's phase (reset, not
        set to None: the task's context then holds nothing of it, 4 fewer objects per connection)."""
        self.done()
        if self._token is not None:
            _phase.reset(self._token)
            self._token = None

    @property
    def elapsed_ns(self) -> int:
        return self.done_ns - self.started_ns if self.done_ns else 0


class ResumingContext(ssl.SSLContext):
    """chatload's client context: times each connect's TLS phase and offers a user's own previous
    TLS session again.

    Resumption is per user, never shared between users: 1,000 users are 1,000 clients, each making
    its full handshake once, as real devices do (a session shared across users would show the
    server a load it never sees)."""

    def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None, session=None):
        phase = _phase.get()
        if phase is not None and not server_side:
            phase.started_ns = time.time_ns()  # TCP is up: the TLS handshake starts now
            if session is None:
                session = phase.offer
        return super().wrap_bio(incoming, outgoing, server_side=server_side, server_hostname=server_hostname,
                                session=session)


def resumable_session(ssl_object):
    """The TLS session to offer when this user connects again, or None. Read only when needed: CPython
    copies the session on every read (~200 µs of CPU, measured), so a connection that never drops
    never pays for it. TLS 1.3 tickets come after the handshake and before the server's 101, so by
    the time the WebSocket was open they had been read."""
    session = ssl_object.session if ssl_object is not None else None
    return session if session is not None and (session.has_ticket or bool(session.id)) else None


def ca_file_problem(path: str) -> str | None:
    """Why `path` is not a CA file a TLS client can trust (missing, unreadable, not PEM), or None."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if b"-----BEGIN CERTIFICATE-----" not in text:
        return f"{path} is not a PEM certificate file (no -----BEGIN CERTIFICATE----- block)"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except (ssl.SSLError, ValueError) as exc:
        return f"{path} holds no certificate a TLS client can load ({exc})"
    return None


def build_context(ca_file: str = "", *, verify: bool = True) -> ResumingContext:
    """A fresh client context: TLS 1.2+, the system trust store or only `ca_file`, host names checked
    unless `verify` is False. Slow (it reads the trust store): call `client_context` instead."""
    context = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)  # checks the chain and the host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:  # nothing to trust: no CA file is read (it may not exist on this machine)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file:
        context.load_verify_locations(cafile=ca_file)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    return context


_contexts: dict[tuple[str, bool], ResumingContext] = {}
_lock = threading.Lock()


def client_context(ca_file: str = "", *, verify: bool = True) -> ResumingContext:
    """This process's context for a target's (CA file, verification): built on first use, then shared."""
    key = (ca_file, verify)
    context = _contexts.get(key)
    if context is None:
        with _lock:
            context = _contexts.get(key)
            if context is None:
                context = _contexts[key] = build_context(ca_file, verify=verify)
    return context


def ca_pem_of(ca_file: str) -> str:
    """The PEM text of a CA file the master read or made, to travel in the target ("" for none)."""
    return Path(ca_file).read_text() if ca_file else ""


_pem_files: dict[str, str] = {}  # sha256 of a target's CA PEM → this process's private copy


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def local_ca_file(target) -> str:
    """The target's CA as a file on this machine. `ca_file` is a path on the machine that resolved
    the target (the master's temp folder for `--tls`): a worker elsewhere has no such file, or
    another one. Then the PEM the target carries (`ca_pem`) is written once per process to a private
    temp file, since boto3's `verify=` and urllib need a file, and that file is used."""
    pem = getattr(target, "ca_pem", "")
    if not pem:
        return target.ca_file
    try:
        if target.ca_file and Path(target.ca_file).read_text() == pem:
            return target.ca_file
    except OSError:
        pass  # absent here: a remote worker
    key = hashlib.sha256(pem.encode()).hexdigest()
    with _lock:
        path = _pem_files.get(key)
        if path is None:
            fd, path = tempfile.mkstemp(prefix="chatload-ca-", suffix=".pem")  # mode 0600
            with os.fdopen(fd, "w") as out:
                out.write(pem)
            atexit.register(_remove, path)
            _pem_files[key] = path
    return path


def target_context(target) -> ssl.SSLContext | None:
    """The process's context for a `Target` (None when its data plane is ws://). Call it where the
    target is resolved, off the loop; an unverified context is said on the console."""
    trust_target(target)
    if not target.endpoint.startswith("wss://"):
        return None
    if not target.tls_verify:
        if not target.emulated:
            raise ValueError(f"TLS verification can be turned off only for an emulator, not for {target.endpoint}")
        log.warning("chatload: TLS certificate verification is OFF for the emulator at %s", target.endpoint)
    return client_context(local_ca_file(target) if target.tls_verify else "", verify=target.tls_verify)


# https:// origins (scheme://host:port) whose CA is not in the system store → the CA file (or False:
# verification off, emulators only). Filled where a target is resolved or an emulator started in this
# process; read by every HTTP client of a control plane (boto3's `verify=`, urllib's `context=`).
_http_trust: dict[str, str | bool] = {}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def trust(ca_file: str | bool, *urls: str) -> None:
    """HTTP clients in this process reach these URLs' origins trusting `ca_file` (False: unverified)."""
    for url in urls:
        if url.startswith("https://"):
            _http_trust[_origin(url)] = ca_file


def trust_target(target) -> None:
    """Register a target's CA for its own https:// endpoints (control plane, publish API)."""
    if target.ca_file or not target.tls_verify:
        trust(local_ca_file(target) if target.tls_verify else False, target.control_endpoint,
              *(value for value in target.settings.values() if isinstance(value, str) and "://" in value))


def http_verify(url: str) -> str | bool:
    """boto3's `verify=` for a control-plane URL: its CA file, False, or True (the system store)."""
    return _http_trust.get(_origin(url), True) if url.startswith("https://") else True


def http_context(url: str) -> ssl.SSLContext | None:
    """urllib's `context=` for a URL: None (urllib's default) unless its origin has a CA of its own."""
    verify = http_verify(url)
    if verify is True:
        return None
    return client_context(verify or "", verify=verify is not False)


def app_context(url: str, target=None) -> ssl.SSLContext | bool:
    """aiohttp's `ssl=` for an application's own https:// URL (a token endpoint): the CA registered for
    its origin; else, when the target trusts a CA of its own, the system store plus that CA (the app
    may sit behind the same private CA as the target, or be public); else True (the system store).
    Builds a context (slow): call it off the loop, once."""
    if not url.startswith("https://"):
        return True
    context = http_context(url)
    if context is not None:
        return context
    ca_file = local_ca_file(target) if target is not None and target.ca_file and target.tls_verify else ""
    if not ca_file:
        return True
    key = (f"system+{ca_file}", True)
    with _lock:
        context = _contexts.get(key)
        if context is None:
            context = _contexts[key] = build_context()
            context.load_verify_locations(cafile=ca_file)
    return context


def context_for(url: str, ssl_context: ssl.SSLContext | None) -> ssl.SSLContext | None:
    """The context a connect to `url` uses: None for ws://, the given one or the process default."""
    if not url.startswith("wss://"):
        return None
    if ssl_context is not None:
        return ssl_context
    return client_context()
