"""A synthetic event's chat, made up by the project (no real user's data), as IVS Chat logging
records: what `scenarios/traces/ivschat-final.log.jsonl` is generated from.

    python -m harness.trace.synthetic --seconds 12 --seed 7 > scenarios/traces/ivschat-final.log.jsonl

Its shape is what real event chat looks like: a low background rate, bursts at moments of the
show (a goal), a few senders writing most messages (Zipf weights), viewers joining in a wave at the
start and some leaving after the second burst. Content is filler of the drawn length.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import UTC, datetime, timedelta

START = datetime(2026, 7, 19, 19, 0, 0, tzinfo=UTC)


def _record(at: datetime, kind: str, payload: dict) -> dict:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    return {"event_timestamp": stamp, "type": kind, "version": "1.0", "payload": {**payload, "SendTime": stamp}}


def generate(seconds: float = 12.0, seed: int = 7, senders: int = 30, viewers: int = 30, base_rate: float = 6.0,
             bursts: tuple[tuple[float, float, float], ...] = ((4.0, 1.5, 40.0), (9.0, 1.0, 30.0))) -> list[dict]:
    """Records in time order. `bursts`: (at s, lasting s, extra messages per second)."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) ** 1.2 for rank in range(senders)]
    records: list[tuple[float, dict]] = []
    t = 0.0
    while True:
        rate = base_rate + sum(extra for at, lasting, extra in bursts if at <= t < at + lasting)
        t += rng.expovariate(rate)
        if t >= seconds:
            break
        sender = rng.choices(range(senders), weights)[0]
        size = max(1, min(500, int(rng.lognormvariate(3.0, 0.8))))
        records.append((t, _record(START + timedelta(seconds=t), "MESSAGE", {
            "Type": "MESSAGE", "Id": f"m{len(records):011d}", "RequestId": "", "Attributes": {},
            "Content": "x" * size, "Sender": {"UserId": f"fan-{sender}", "Attributes": {}}})))
    for viewer in range(viewers):
        joined = rng.uniform(0.0, 2.0)
        records.append((joined, _event(joined, "user_joined", viewer)))
        if viewer % 3 == 0:  # a third leave after the second burst
            left = rng.uniform(10.0, seconds - 0.5)
            records.append((left, _event(left, "user_left", viewer)))
    records.sort(key=lambda item: item[0])
    return [record for _, record in records]


def _event(t: float, name: str, viewer: int) -> dict:
    return _record(START + timedelta(seconds=t), "EVENT", {
        "Type": "EVENT", "Id": f"{name}-{viewer:03d}", "RequestId": "", "EventName": name,
        "Attributes": {"UserId": f"viewer-{viewer}"}})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    for record in generate(args.seconds, args.seed):
        sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
