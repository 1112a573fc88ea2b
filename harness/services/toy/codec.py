"""The toy service's frames, sans-I/O, for both ends."""

from __future__ import annotations

import orjson

from .. import untrusted

MAX_BODY = 256  # characters; longer bodies are refused with status 413


class BadFrame(ValueError):
    pass


def encode_send(ref: str, body: str, meta: dict) -> bytes:
    return orjson.dumps({"op": "send", "ref": ref, "body": body, "meta": meta})


def encode_message(ref: str, sender: str, server_ns: int, body: str, meta: dict | None) -> bytes:
    return orjson.dumps({"op": "msg", "ref": ref, "from": sender, "ts": server_ns, "body": body, "meta": meta})


def encode_error(ref: str, status: int, reason: str) -> bytes:
    return orjson.dumps({"op": "error", "ref": ref, "status": status, "reason": reason})


def encode_notice(op: str) -> bytes:
    return orjson.dumps({"op": op})


def decode(data: str | bytes) -> dict:
    """A frame as a dict with a string `op`; BadFrame for anything else."""
    try:
        frame = untrusted.loads(data)
    except untrusted.Refused as refused:
        raise BadFrame(refused.reason) from None
    if not isinstance(frame, dict) or not isinstance(frame.get("op"), str):
        raise BadFrame("a frame is a JSON object with a string op")
    return frame
