"""Sums over the recorder's counters, named `kind` or `kind.<detail>` (`rejected.429`,
`connect_failures.timeout`): the one definition of "errors (all kinds)" that the live progress, the
per-second results, the Prometheus export and the report all show."""

from __future__ import annotations

# A rejected send is an error answer too: "errors" counts it once.
ERROR_PREFIXES = ("errors", "connect_failures", "token_fetch_failures", "subscribe_token_fetch_failures", "timeouts",
                  "protocol_errors", "gave_up")


def counter_sum(counters: dict, prefix: str) -> int:
    """Sum of the counters called `prefix` or `prefix.<anything>`."""
    return sum(v for k, v in (counters or {}).items() if k == prefix or k.startswith(prefix + "."))


def error_total(counters) -> int:
    """"errors (all kinds)": the one definition the live progress and the report both show."""
    return sum(counter_sum(counters, prefix) for prefix in ERROR_PREFIXES)
