"""How every benchmark prints: cells of repeat statistics, one aligned table, the lines under it."""

from __future__ import annotations

# Under the title of each benchmark that shows CPU shares and the machine's other load.
CPU_NOTE = "CPU shares are of one core; 'other load' is cores used by processes outside this benchmark"


def cell(stats: dict, fmt) -> str:
    """A figure over repeats: the median alone for one repeat, else `median [min–max]`."""
    if stats["median"] is None:
        return "–"
    if stats["n"] == 1:
        return fmt(stats["median"])
    return f"{fmt(stats['median'])} [{fmt(stats['min'])}–{fmt(stats['max'])}]"


def si(value: float | None) -> str:
    if value is None:
        return "–"
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}" if abs(value) / limit < 100 else f"{value / limit:.0f}{suffix}"
    return f"{value:.3g}"


def two_places(value: float | None) -> str:
    """µs per frame, cores used: two decimals."""
    return "–" if value is None else f"{value:.2f}"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns; the first row is the header, underlined."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def frames_line(received: int, expected: int) -> str:
    return f"frames received/expected {received:,}/{expected:,}"


def warning_lines(warnings, label: str = "warning") -> list[str]:
    return [f"    {label}: {warning}" for warning in warnings]


def with_verdict(lines: list[str], verdict: str) -> str:
    """The finished table text: what is above, then the overall verdict on a line of its own."""
    return "\n".join([*lines, "", f"verdict: {verdict}"])
