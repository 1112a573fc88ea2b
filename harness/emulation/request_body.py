"""One request-body reader for every emulator's HTTP routes (control planes, publish, admin faults).

It refuses what it cannot read with `untrusted.Refused`: 413 over the app's body limit, 415 for any
Content-Encoding but identity (the emulators read plain JSON; aiohttp decompressing a body that is
not compressed failed mid-body, and logged the failure as unhandled), 400 for a body that is not a JSON object
or nests too deep, and 400 for a header value that is not printable ASCII. Each service turns the
refusal into its own error shape.
"""

from __future__ import annotations

from aiohttp import web

from ..services.untrusted import Refused, loads


async def read_json_object(request: web.Request, *, empty_is: dict | None = None) -> dict:
    """The request's body as a JSON object, or `Refused` with 413, 415 or 400.

    `empty_is` is what an empty body means (None: refused as not JSON). The app must not decompress
    (`TwoPortEmulator` runs aiohttp with `auto_decompress=False`): an encoded body is refused here,
    unread, and aiohttp's own drain of it then reads plain bytes that cannot fail."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise Refused(415, "Content-Encoding is not accepted: send the body uncompressed")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Refused(413, "request body too large") from None
    except web.RequestPayloadError:  # a malformed chunked body, say
        raise Refused(400, "request body cannot be read") from None
    if not raw.strip() and empty_is is not None:
        return dict(empty_is)
    try:
        body = loads(raw)
    except Refused as refused:
        raise Refused(400, f"request body must be a JSON object: {refused.reason}") from None
    if not isinstance(body, dict):
        raise Refused(400, "request body must be a JSON object")
    return body


def header_text(request: web.Request, name: str) -> str:
    """A header's value, which must be printable ASCII (aiohttp hands other bytes on as surrogates,
    which fail any later `.encode()`); `Refused(400)` otherwise. Missing: empty."""
    value = request.headers.get(name, "")
    if not value.isascii() or not value.isprintable():
        raise Refused(400, f"the {name} header must be printable ASCII")
    return value


