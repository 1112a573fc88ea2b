"""A small blocking client for the emulators' shared admin endpoints (`harness/emulation/admin.py`).

Plain `urllib`, so it works the same from tests, from scripts and from gevent-patched Locust code.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import orjson

from ..net.tls import http_context


class AdminError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class EmulatorAdmin:
    def __init__(self, control_endpoint: str, timeout: float = 10.0) -> None:
        self.base = control_endpoint.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> dict | str:
        data = orjson.dumps({k: v for k, v in (body or {}).items() if v is not None}) if method == "POST" else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=http_context(self.base)) as response:
                raw = response.read()
                if response.headers.get_content_type() == "application/json":
                    return orjson.loads(raw)
                return raw.decode()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = orjson.loads(raw).get("error", raw.decode(errors="replace"))
            except orjson.JSONDecodeError:
                message = raw.decode(errors="replace")
            raise AdminError(exc.code, message) from None

    def health(self) -> dict:
        return self._call("GET", "/_emulator/health")

    def connections(self, room: str | None = None) -> list[dict]:
        query = "?" + urllib.parse.urlencode({"room": room}) if room else ""
        return self._call("GET", "/_emulator/connections" + query)["connections"]

    def drop(self, *, room=None, users=None, connections=None, fraction=None, seed=None,
             mode: str = "abrupt", code: int | None = None, reason: str | None = None) -> list[dict]:
        body = dict(room=room, users=users, connections=connections, fraction=fraction, seed=seed,
                    mode=mode, code=code, reason=reason)
        return self._call("POST", "/_emulator/faults/drop", body)["dropped"]

    def expire(self, *, room=None, users=None, connections=None, fraction=None, seed=None) -> list[dict]:
        body = dict(room=room, users=users, connections=connections, fraction=fraction, seed=seed)
        return self._call("POST", "/_emulator/faults/expire", body)["expired"]

    def delay(self, delay_ms: float, jitter_ms: float = 0.0, room: str | None = None) -> dict:
        return self._call("POST", "/_emulator/faults/delay", dict(room=room, delay_ms=delay_ms, jitter_ms=jitter_ms))

    def pause(self, room: str, mode: str = "drop") -> dict:
        return self._call("POST", "/_emulator/faults/pause", dict(room=room, mode=mode))

    def resume(self, room: str) -> int:
        return self._call("POST", "/_emulator/faults/resume", dict(room=room))["released"]

    def restart(self, downtime_ms: float = 0.0, mode: str = "abrupt") -> int:
        return self._call("POST", "/_emulator/faults/restart", dict(downtime_ms=downtime_ms, mode=mode))["dropped"]

    def delivery_cost(self, per_delivery_us: float) -> dict:
        return self._call("POST", "/_emulator/faults/cost", dict(per_delivery_us=per_delivery_us))

    def set_rate_algorithm(self, algorithm: str) -> dict:
        """IVS Chat's emulator only: the room rate-limit algorithm (fixed-window, token-bucket, off)."""
        return self._call("POST", "/_emulator/limits", dict(algorithm=algorithm))

    def metrics_text(self) -> str:
        return self._call("GET", "/metrics")
