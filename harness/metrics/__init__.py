"""Measurements: HDR latency histograms and counters (`Recorder`), exact delivery accounting
(`DeliveryLedger`), and their merge across processes and workers. Pure code: no sockets, threads or clocks."""

from harness.metrics.histograms import (
    ACK,
    CONNECT,
    DELIVERY,
    HISTOGRAM_NAMES,
    RECONNECT,
    TOKEN_FETCH,
    LatencyHistogram,
    Recorder,
)
from harness.metrics.ledger_judge import (
    AccountingResult,
    AccountingTotals,
    LostPair,
    ReceiverCounts,
    merge_exports,
)
from harness.metrics.ledger_record import DeliveryLedger

__all__ = [
    "ACK",
    "CONNECT",
    "DELIVERY",
    "HISTOGRAM_NAMES",
    "RECONNECT",
    "TOKEN_FETCH",
    "AccountingResult",
    "AccountingTotals",
    "DeliveryLedger",
    "LatencyHistogram",
    "LostPair",
    "ReceiverCounts",
    "Recorder",
    "merge_exports",
]
