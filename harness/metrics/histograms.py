"""HDR latency histograms (integer microseconds) and the per-process `Recorder`.

A `LatencyHistogram` is an `hdrh` HdrHistogram covering 1 µs … 1 h at 3 significant digits. Merging is
exact: histograms are arrays of counts, so adding the arrays of two histograms gives the histogram that
recorded both streams, and percentiles are read from the merged histogram (never averaged).

A `Recorder` is what one process accumulates: five named latency histograms plus integer counters with
dotted names. It ships *interval* snapshots (everything since the previous snapshot, HdrHistogram's
compressed base64 encoding, JSON-serialisable) and keeps cumulative totals; a Locust master merges the
workers' snapshots with `merge_snapshot`.

No clocks are read here: callers pass integer microseconds.
"""

from __future__ import annotations

import ctypes
import sys
from collections import Counter
from collections.abc import Iterable, Mapping

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_FIGURES = 3
DEFAULT_PERCENTILES = (50, 90, 99, 99.9, 99.99, 100)

# Histogram names (see ARCHITECTURE.md, "Latency definitions").
DELIVERY = "delivery"  # intended send time -> arrival at each receiver
ACK = "ack"  # intended send time -> the service's word that it accepted the message
# What an ack is, said once for every service: IVS Chat echoes the send to its sender, Hotsock's
# publish API answers the POST (no frame comes back), Chime acknowledges nothing.
ACK_WORDS = "intended send → the service's acceptance (the sender's own echo, or the publish API's answer)"
CONNECT = "connect"
RECONNECT = "reconnect"  # drop -> usable again
TOKEN_FETCH = "token_fetch"
HISTOGRAM_NAMES = (DELIVERY, ACK, CONNECT, RECONNECT, TOKEN_FETCH)

# Counter names under which a Recorder ships values clamped into the histogram range.
CLAMPED_LOW = "histogram_clamped_low"
CLAMPED_HIGH = "histogram_clamped_high"


def _new_hdr() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


# `HdrHistogram.record_value` costs ~0.8 µs (it counts leading zeros through `bin()`); the receive path
# records one value per delivery, so `LatencyHistogram.record` computes the counts index itself. For
# lowest = 1 (unit magnitude 0) and 3 significant digits: 2048 sub-buckets, half of them (1024) per bucket
# after the first. The index formula is hdrh's `_counts_index_for` with `int.bit_length()`; a test checks
# the two agree over the whole range.
_probe = _new_hdr()
assert (_probe.unit_magnitude, _probe.sub_bucket_mask, _probe.sub_bucket_half_count_magnitude,
        _probe.sub_bucket_half_count) == (0, 2047, 10, 1024), "LatencyHistogram.record's literals"
assert (LOWEST_US, HIGHEST_US) == (1, 3_600_000_000), "LatencyHistogram.record's literals"
# `record` increments the counts through a memoryview of format "Q" (unsigned 64-bit): hdrh's element
# type must be exactly that, or a count would read back differently through hdrh.
assert ctypes.sizeof(_probe.counts._type_) == 8 and _probe.counts._type_(-1).value == 2**64 - 1, \
    "hdrh counts are not unsigned 64-bit"
_SUB_BUCKET_MASK = _probe.sub_bucket_mask  # 2047
_SHIFT = _probe.sub_bucket_half_count_magnitude + 1  # 11
_HALF_MAG = _probe.sub_bucket_half_count_magnitude  # 10
_HALF_COUNT = _probe.sub_bucket_half_count  # 1024
del _probe


def counts_index(us: int) -> int:
    """Index in the counts array for a value (same as hdrh's `_counts_index_for`, faster)."""
    bucket = (us | _SUB_BUCKET_MASK).bit_length() - _SHIFT
    return ((bucket + 1) << _HALF_MAG) + (us >> bucket) - _HALF_COUNT


class LatencyHistogram:
    """Integer microseconds, 1 µs … 1 h, 3 significant digits. `record` never raises on range."""

    __slots__ = ("_h", "_counts", "_tally", "clamped_low", "clamped_high")

    def __init__(self, _hdr: HdrHistogram | None = None) -> None:
        self._h = _hdr if _hdr is not None else _new_hdr()
        self._counts = self._h.counts
        # The same memory as a memoryview of unsigned 64-bit ints: `record` increments through it
        # (~35 % faster than indexing the ctypes array; profiled, the record was a quarter of the
        # receive path's Python), so the counts are hdrh's own and every reader sees them as before.
        self._tally = memoryview(self._counts).cast("B").cast("Q")
        self.clamped_low = 0
        self.clamped_high = 0

    # --- hot path ---------------------------------------------------------------------------------------
    def record(self, us: int) -> None:
        # Constants are literals (checked against hdrh at import): this runs twice per delivery.
        us = int(us)  # a float from a careless caller must not break the shifts below
        if not 0 < us <= 3_600_000_000:
            us = self._clamp(us)
        bucket = (us | 2047).bit_length() - 11
        self._tally[((bucket + 1) << 10) + (us >> bucket) - 1024] += 1
        h = self._h
        h.total_count += 1
        if us < h.min_value:
            h.min_value = us
        if us > h.max_value:
            h.max_value = us

    def _clamp(self, us: int) -> int:
        if us < 1:
            self.clamped_low += 1
            return 1
        self.clamped_high += 1
        return 3_600_000_000

    # --- reading ----------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return self._h.total_count

    @property
    def min(self) -> int:
        """Lowest recorded value (lowest equivalent value of its bucket); 0 when empty."""
        return self._h.get_min_value() if self._h.total_count else 0

    @property
    def max(self) -> int:
        """Highest recorded value (highest equivalent value of its bucket); 0 when empty."""
        return self._h.get_max_value() if self._h.total_count else 0

    @property
    def mean(self) -> float:
        """Mean of the bucket midpoints (hdrh's definition); 0.0 when empty."""
        h = self._h
        if not h.total_count:
            return 0.0
        total = 0
        for index, count in self._nonzero():
            total += count * h._hdr_median_equiv_value(h.get_value_from_index(index))
        return float(total) / h.total_count

    def percentile(self, p: float) -> int:
        """Value at percentile `p` (0…100); 0 when empty."""
        return self.percentiles((p,))[p]

    def percentiles(self, ps: Iterable[float] = DEFAULT_PERCENTILES) -> dict[float, int]:
        """Values at several percentiles, one pass. Same results as hdrh's `get_value_at_percentile`
        (highest equivalent value of the bucket reaching the target count; lowest for p = 0), but it
        walks only the non-zero counts: hdrh's own loops visit all ~23k counters in Python."""
        ps = tuple(ps)
        h = self._h
        total_count = h.total_count
        if not total_count:
            return dict.fromkeys(ps, 0)
        targets = sorted((max(int(min(p, 100.0) * total_count / 100 + 0.5), 1), p) for p in set(ps))
        result: dict[float, int] = {}
        cumulative = 0
        it = iter(targets)
        target, p = next(it)
        for index, count in self._nonzero():
            cumulative += count
            while cumulative >= target:
                value = h.get_value_from_index(index)
                result[p] = h.get_highest_equivalent_value(value) if p else h.get_lowest_equivalent_value(value)
                nxt = next(it, None)
                if nxt is None:
                    return {p: result[p] for p in ps}
                target, p = nxt
        raise AssertionError("counts do not add up to total_count")  # pragma: no cover

    def _nonzero(self) -> list[tuple[int, int]]:
        h = self._h
        top = counts_index(h.max_value) + 1  # hdrh's max_value is a raw value inside the top bucket
        return [(i, c) for i, c in enumerate(self._counts[:top]) if c]

    # --- transport and merging --------------------------------------------------------------------------
    def encode(self) -> str:
        """HdrHistogram V2 compressed, base64 (the format every HdrHistogram implementation reads)."""
        return self._h.encode().decode("ascii")

    @classmethod
    def decode(cls, encoded: str | bytes) -> LatencyHistogram:
        decoded = HdrHistogram.decode(encoded)
        if (
            decoded.lowest_trackable_value == LOWEST_US
            and decoded.highest_trackable_value == HIGHEST_US
            and decoded.significant_figures == SIGNIFICANT_FIGURES
        ):
            return cls(decoded)
        # Another layout (another tool's histogram): re-bucket into ours.
        hist = cls()
        hist._add_hdr(decoded)
        return hist

    def merge(self, other: LatencyHistogram) -> None:
        """Add `other`'s counts into this histogram (exact)."""
        self._add_hdr(other._h)
        self.clamped_low += other.clamped_low
        self.clamped_high += other.clamped_high

    def merge_encoded(self, encoded: str | bytes) -> None:
        self._add_hdr(HdrHistogram.decode(encoded))

    def _add_hdr(self, other: HdrHistogram) -> None:
        if not other.total_count:
            return
        h = self._h
        was_empty = h.total_count == 0
        mine_min = h.min_value
        # hdrh's `add` computes the new min from `get_min_value()`, which is 0 for an empty histogram,
        # so it would report min 0 after merging into an empty one: keep min ourselves.
        h.add(other)
        other_min = other.get_min_value()
        h.min_value = other_min if was_empty else min(mine_min, other_min)

    def reset(self) -> None:
        h = self._h
        # hdrh's reset() zeroes ~23k counters in a Python loop; memset does it at once.
        ctypes.memset(ctypes.addressof(self._counts), 0, ctypes.sizeof(self._counts))
        h.total_count = 0
        h.min_value = sys.maxsize  # hdrh's "empty" sentinel
        h.max_value = 0
        self.clamped_low = 0
        self.clamped_high = 0

    def copy(self) -> LatencyHistogram:
        clone = LatencyHistogram()
        clone.merge(self)
        return clone

    def summary(self, ps: Iterable[float] = DEFAULT_PERCENTILES) -> dict:
        return {
            "count": self.count,
            "min": self.min,
            "mean": self.mean,
            "max": self.max,
            "percentiles": {_pkey(p): v for p, v in self.percentiles(ps).items()},
        }

    def __repr__(self) -> str:
        return f"LatencyHistogram(count={self.count}, min={self.min}, max={self.max})"


def _pkey(p: float) -> str:
    """JSON key for a percentile: 50 -> "50", 99.9 -> "99.9"."""
    return f"{p:g}"


class Recorder:
    """What one process accumulates: named latency histograms and dotted integer counters.

    The hot path records into *interval* histograms through direct attributes
    (`recorder.delivery.record(us)`); `interval_snapshot()` ships and resets them and folds them into the
    cumulative totals. `totals()` and `summary()` cover everything: snapshotted, not yet snapshotted, and
    merged from other processes.
    """

    def __init__(self) -> None:
        self._interval: dict[str, LatencyHistogram] = {}
        self._cumulative: dict[str, LatencyHistogram] = {}
        self._interval_counters: Counter[str] = Counter()
        self._cumulative_counters: Counter[str] = Counter()
        for name in HISTOGRAM_NAMES:
            self.histogram(name)
        self.delivery = self._interval[DELIVERY]
        self.ack = self._interval[ACK]
        self.connect = self._interval[CONNECT]
        self.reconnect = self._interval[RECONNECT]
        self.token_fetch = self._interval[TOKEN_FETCH]
        # Direct reference for `count` on the hot path.
        self.counters = self._interval_counters

    def histogram(self, name: str) -> LatencyHistogram:
        """The interval histogram called `name` (created on first use: names beyond the five are allowed)."""
        hist = self._interval.get(name)
        if hist is None:
            hist = self._interval[name] = LatencyHistogram()
            self._cumulative[name] = LatencyHistogram()
        return hist

    def record(self, name: str, us: int) -> None:
        hist = self._interval.get(name)
        if hist is None:
            hist = self.histogram(name)
        hist.record(us)

    def count(self, name: str, n: int = 1) -> None:
        self._interval_counters[name] += n

    # --- shipping ---------------------------------------------------------------------------------------
    def interval_snapshot(self) -> dict:
        """Everything recorded since the previous snapshot, then reset the interval (JSON-serialisable)."""
        self._collect_clamps(self._interval_counters)
        snapshot = {
            "histograms": {name: hist.encode() for name, hist in self._interval.items()},
            "counters": dict(self._interval_counters),
        }
        for name, hist in self._interval.items():
            if hist.count:
                self._cumulative[name].merge(hist)
            hist.reset()
        self._cumulative_counters.update(self._interval_counters)
        self._interval_counters.clear()
        return snapshot

    def merge_snapshot(self, snapshot: Mapping) -> None:
        """Add a snapshot (or totals) shipped by another process into this recorder's cumulative totals."""
        for name, encoded in snapshot.get("histograms", {}).items():
            self.histogram(name)
            self._cumulative[name].merge_encoded(encoded)
        self._cumulative_counters.update(snapshot.get("counters", {}))

    def totals(self) -> dict:
        """Same shape as a snapshot, cumulative (includes the interval not yet snapshotted; resets nothing)."""
        hists, counters = self._combined()
        return {
            "histograms": {name: hist.encode() for name, hist in hists.items()},
            "counters": dict(counters),
        }

    def summary(self, ps: Iterable[float] = DEFAULT_PERCENTILES, names: Iterable[str] | None = None) -> dict:
        """Per histogram count/min/mean/max/percentiles in µs, and the counters; cumulative. `names`:
        only these histograms (each summary copies and walks a whole histogram: a once-a-second
        caller that needs one should not pay for all)."""
        ps = tuple(ps)
        hists, counters = self._combined(names)
        return {
            "histograms": {name: hist.summary(ps) for name, hist in hists.items()},
            "counters": dict(counters),
        }

    def cumulative(self) -> tuple[dict[str, LatencyHistogram], Counter[str]]:
        """Every histogram and counter so far, for reading only. A recorder fed by merged snapshots
        (the run owner's) has nothing pending: its cumulative histograms are handed over as they are,
        not copied (a copy of each, at every scrape, stalls the gevent hub)."""
        if any(hist.count for hist in self._interval.values()):
            return self._combined()
        return dict(self._cumulative), Counter(self._cumulative_counters) + self._interval_counters

    def reset(self) -> None:
        """Forget everything (interval and cumulative)."""
        for hist in (*self._interval.values(), *self._cumulative.values()):
            hist.reset()
        self._interval_counters.clear()
        self._cumulative_counters.clear()

    def _combined(self, names: Iterable[str] | None = None) -> tuple[dict[str, LatencyHistogram], Counter[str]]:
        hists = {}
        chosen = self._cumulative.items() if names is None else [
            (name, self._cumulative[name]) for name in names if name in self._cumulative]
        for name, cumulative in chosen:
            hist = cumulative.copy()
            hist.merge(self._interval[name])
            hists[name] = hist
        counters = Counter(self._cumulative_counters)
        counters.update(self._interval_counters)
        pending: Counter[str] = Counter()
        self._collect_clamps(pending, reset=False)
        counters.update(pending)
        return hists, counters

    def _collect_clamps(self, counters: Counter[str], reset: bool = True) -> None:
        # Clamp counts travel as counters (the encoded histogram cannot carry them).
        for name, hist in self._interval.items():
            if hist.clamped_low:
                counters[f"{CLAMPED_LOW}.{name}"] += hist.clamped_low
            if hist.clamped_high:
                counters[f"{CLAMPED_HIGH}.{name}"] += hist.clamped_high
            if reset:
                hist.clamped_low = hist.clamped_high = 0
