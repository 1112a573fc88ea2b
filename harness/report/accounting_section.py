"""The accounting section: every message sent, accepted, delivered, lost or duplicated, in numbers
that reconcile (delivered + lost + unconfirmed at disconnect = expected), and the worst pairs and
receivers."""

from __future__ import annotations

from .html_kit import Html, join, no_data, table, tag
from .numbers import format_value

ACCOUNTING_MEANING = {
    "sent": "messages the senders sent",
    "accepted": "acknowledged by the service (echo or receipt anywhere)",
    "rejected": "answered with an error (never counted as loss)",
    "unconfirmed_sends": "sent, neither accepted nor rejected",
    "presumed_accepted": "no answer while the connection stayed open: accepted, delivered to no one",
    "receivers": "receivers judged",
    "connections": "receiver connections judged",
    "expected": "accepted messages sent while a receiver was connected",
    "delivered": "expected messages that arrived",
    "lost": "expected and missing, though later messages arrived",
    "unconfirmed_at_disconnect": "accepted after the last frame a dropped connection got: fate unknown",
    "missed_while_away": "sent while a receiver was disconnected",
    "duplicates": "a message received again",
    "out_of_order": "first receipts behind a later message of the same sender",
    "unexpected": "received, not expected (accepted before its connection began, or while it was away)",
    "during_handshake": "received, accepted while its connection was opening (after the attempt began, before "
                        "the handshake ended): legitimate, not judged",
    "replay_expected": "owed as replays to a member joining late or coming back (services that replay)",
    "replayed": "replays that arrived",
    "replay_missed": "owed replays that never arrived",
}


PROBLEM_KEYS = ("lost", "duplicates", "out_of_order", "unconfirmed_at_disconnect")


BAD_TOTALS = ("lost", "duplicates", "out_of_order")  # shown in red when not 0


MESSAGE_KEYS = ("sent", "accepted", "rejected", "unconfirmed_sends", "presumed_accepted")


def accounting_section(report: dict) -> Html:
    accounting = report.get("accounting")
    if not accounting:
        return None
    totals = accounting.get("totals") or {}

    def rows(keys) -> list[list]:
        return [[tag("div", [tag("code", key), tag("div", ACCOUNTING_MEANING.get(key, ""), class_="muted small")]),
                 (format_value(totals[key]), "bad strong" if key in BAD_TOTALS and totals[key] else "")]
                for key in keys if key in totals]

    message_rows = rows(MESSAGE_KEYS)
    by_code = totals.get("rejected_by_code") or {}
    if by_code:
        message_rows.append([tag("div", [tag("code", "rejected_by_code"),
                                         tag("div", "rejections by the service's error code", class_="muted small")]),
                             ", ".join(f"{code}: {n:,}" for code, n in by_code.items())])
    receiver_keys = [k for k in ACCOUNTING_MEANING if k not in MESSAGE_KEYS] + sorted(
        k for k in totals if k not in ACCOUNTING_MEANING and k != "rejected_by_code")
    delivered, expected = totals.get("delivered"), totals.get("expected")
    parts = []
    if expected is not None:
        parts.append(tag("p", f"Per receiver, delivered + lost + unconfirmed at disconnect = expected; over all "
                              f"receivers: {format_value(delivered)} + {format_value(totals.get('lost'))} + "
                              f"{format_value(totals.get('unconfirmed_at_disconnect'))} = {format_value(expected)}.",
                         class_="muted"))
    parts.append(tag("div", [
        tag("div", [tag("h3", "Messages"), table(["", "count"], message_rows, numeric={1})]),
        tag("div", [tag("h3", "Receivers"), table(["", "count"], rows(receiver_keys), numeric={1})]),
    ], class_="grid2"))
    parts.append(tag("div", worst_tables(accounting), class_="grid2"))
    return join(parts)


def worst_tables(accounting: dict) -> list[Html]:
    pairs = accounting.get("worst_pairs") or []
    left = [tag("h3", "Worst receiver ← sender pairs (lost)")]
    if pairs:
        left.append(table(["receiver", "sender", "lost"],
                          [[tag("code", p.get("receiver")), tag("code", p.get("sender")),
                            (format_value(p.get("lost")), "bad")] for p in pairs[:20]], numeric={2}))
    else:
        left.append(no_data("No pair lost a message."))
    receivers = accounting.get("per_receiver") or {}
    troubled = sorted(((rid, c) for rid, c in receivers.items() if any(c.get(k) for k in PROBLEM_KEYS)),
                      key=lambda item: (-sum(item[1].get(k, 0) for k in PROBLEM_KEYS), item[0]))
    parts = [tag("h3", f"Receivers with problems ({len(troubled):,} of {len(receivers):,})")]
    if troubled:
        parts.append(table(["receiver", "expected", "delivered", "lost", "duplicates", "out of order", "unconfirmed"],
                           [[tag("code", rid), *(format_value(c.get(k)) for k in (
                               "expected", "delivered", "lost", "duplicates", "out_of_order",
                               "unconfirmed_at_disconnect"))] for rid, c in troubled[:20]],
                           numeric=set(range(1, 7))))
        if len(troubled) > 20:
            parts.append(tag("p", f"… and {len(troubled) - 20:,} more in report.json (accounting.per_receiver).",
                             class_="muted small"))
    else:
        parts.append(no_data("Every receiver got every message it expected, once and in order."
                             if receivers else "No receivers were judged."))
    return [tag("div", left), tag("div", parts)]
