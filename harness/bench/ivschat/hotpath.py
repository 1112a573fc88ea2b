"""The IVS Chat receive path's Python work per frame, stage by stage: where chatload's microseconds go.

    PYTHONPATH=. python -m harness.bench.ivschat.hotpath [--connections 1000] [--messages 200]

No sockets: real IVS Chat frames (encoded by the emulator's own codec, stamped as chatload's senders
stamp them) are handed to each stage as the transport would hand them over, every message to every
connection in turn as a room's fan-out delivers it, and each stage is timed alone:

    orjson.loads           what the bare clients do per frame (their whole Python work)
    codec                  `codec.parse_server_frame`
    protocol               `IvsChatProtocol.receive` (codec + identity → `Delivered`)
    ledger                 `DeliveryLedger.received` alone
    histogram              `LatencyHistogram.record` alone
    session                `ChatSession.on_frame`: protocol, ledger, histograms (what the transport calls)

The transport's own callback and the C parsing before it are not here: `py-spy` on a running
`chatload bench receive` child shows those (see README, "Benchmarks"). Figures are per frame, the
best of `--repeat` runs (the least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import time
from types import SimpleNamespace

import orjson

from ...metrics.histograms import LatencyHistogram, Recorder
from ...metrics.ledger_record import DeliveryLedger
from ...net.reconnect import SdkLike
from ...services import registry
from ...services.base import UserSpec
from ...services.ivschat import codec
from ...services.ivschat.client import identity_attributes
from ...session.chat_session import ChatSession

ROOM = "arn:aws:ivschat:us-east-1:000000000000:room/bench"
SENDER = "s1"


def frames(messages: int, start_ns: int) -> list[bytes]:
    """What the emulator sends for `messages` measured messages of one sender, 10 ms apart."""
    out = []
    for seq in range(1, messages + 1):
        sent_ns = start_ns + seq * 10_000_000
        attributes = identity_attributes(SENDER, seq, sent_ns // 1000 - 2000)
        out.append(codec.encode_message(f"m{seq}", f"{SENDER}.{seq}", "hello from chatload bench", attributes,
                                        sent_ns, "chatter-s1", None))
    return out


def sessions(n: int, recorder: Recorder, ledger: DeliveryLedger, now_ns: int) -> list[ChatSession]:
    service = registry.get("ivschat")
    ids = itertools.count(1)
    runtime = SimpleNamespace(recorder=recorder, ledger=ledger, service=service, clock_offset_ns=0, spread=None,
                              replay=None, next_membership_id=lambda: next(ids))
    out = []
    for i in range(n):
        user = UserSpec(sender_id=f"r{i:x}", user_id=f"viewer-r{i:x}", room=ROOM)
        session = ChatSession(runtime, None, user, SdkLike())
        session.protocol = service.client_protocol(user)
        session._joined(ROOM, now_ns - 10**12)  # a member of its room, as when its connection became ready
        out.append(session)
    return out


def timed(label: str, calls: int, fn, repeat: int, setup=lambda: None) -> tuple[str, float]:
    """Best time per call of `fn(setup())` over `repeat` runs (set-up untimed)."""
    best = float("inf")
    for _ in range(repeat):
        state = setup()
        gc.collect()
        started = time.perf_counter()
        fn(state)
        best = min(best, time.perf_counter() - started)
    return label, best / calls * 1e6


def measure(connections: int, messages: int, repeat: int) -> list[tuple[str, float]]:
    now_ns = time.time_ns()
    payloads = frames(messages, now_ns)
    arrival_ns = now_ns + messages * 10_000_000 + 5_000_000
    calls = connections * messages
    protocols = [registry.get("ivschat").client_protocol(
        UserSpec(sender_id=f"p{i:x}", user_id=f"p{i:x}", room=ROOM)) for i in range(connections)]
    parsed = [codec.parse_server_frame(p) for p in payloads]
    seqs = list(range(1, messages + 1))
    # Each connection gets its own copy of each frame, as from a transport: a new bytes object
    received = [[bytes(bytearray(payload)) for _ in range(connections)] for payload in payloads]

    def loads(_) -> None:
        for payload in payloads:
            for _ in range(connections):
                orjson.loads(payload)

    def parse(_) -> None:
        for payload in payloads:
            for _ in range(connections):
                codec.parse_server_frame(payload)

    def protocol(_) -> None:
        for copies in received:
            for p, payload in zip(protocols, copies, strict=True):
                p.receive(payload, True, arrival_ns)

    receivers = [(f"r{i:x}", i + 1) for i in range(connections)]

    def new_ledger() -> DeliveryLedger:
        book = DeliveryLedger()
        for receiver_id, membership_id in receivers:
            book.connected(receiver_id, membership_id, ROOM, now_ns - 10**12)
        return book

    def ledger(book: DeliveryLedger) -> None:
        received = book.received
        for seq, message in zip(seqs, parsed, strict=True):
            server_ns = codec.parse_send_time(message.send_time)
            for receiver_id, membership_id in receivers:
                received(receiver_id, membership_id, ROOM, SENDER, seq, server_ns)

    def histogram(_) -> None:
        record = LatencyHistogram().record
        for us in range(2000, 2000 + calls):
            record(us)

    def new_sessions() -> list[ChatSession]:
        recorder = Recorder()
        recorder.from_server = recorder.histogram("from_server")  # as ChatRuntime sets it up
        return sessions(connections, recorder, DeliveryLedger(), now_ns)

    def session(chat: list[ChatSession]) -> None:
        for copies in received:
            for s, payload in zip(chat, copies, strict=True):
                s.on_frame(payload, True, arrival_ns)

    results = [timed("orjson.loads (bare clients' work)", calls, loads, repeat),
               timed("codec.parse_server_frame", calls, parse, repeat),
               timed("IvsChatProtocol.receive", calls, protocol, repeat),
               timed("DeliveryLedger.received", calls, ledger, repeat, new_ledger),
               timed("LatencyHistogram.record", calls, histogram, repeat),
               timed("ChatSession.on_frame (all of it)", calls, session, repeat, new_sessions)]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    results = measure(args.connections, args.messages, args.repeat)
    print(f"IVS Chat receive path, Python work per frame ({args.connections:,} connections × {args.messages} messages, "
          f"best of {args.repeat}):")
    for label, us in results:
        print(f"  {label:<36} {us:6.2f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
