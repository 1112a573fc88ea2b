"""Local addresses to connect from, in turn.

Each (local address, server address, server port) has its own range of ephemeral ports: ~28k on
Linux by default (`net.ipv4.ip_local_port_range`). A generator holding more connections than that
to one endpoint needs more local addresses; on loopback every 127.x.y.z is one (no set-up), and on a
real network a machine's extra addresses are. The run's sessions take the addresses in turn."""

from __future__ import annotations

import ipaddress


def parse_source_addresses(text: str | list | tuple | None) -> tuple[str, ...]:
    """`127.0.0.1,127.0.0.2` (or a list of them) → a tuple of IP address literals; ValueError naming the
    first that is not one. Empty or None: no rotation (the system chooses)."""
    if not text:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    addresses = []
    for item in items:
        item = str(item).strip()
        try:
            addresses.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address (a local address to connect from)") from None
    return tuple(addresses)
