"""Time-scaled soaks: each emulator under room, token and connection churn keeps its memory flat.

Each emulator runs in this process, on a loop thread of its own, so the test can read its tables
and `tracemalloc` can see its allocations; clients drive it over loopback with the same helpers
as every other test (boto3, websockets). Times are scaled down (token lifetimes of a second or
less) and the sweeping floors of `harness.emulation.memory` lowered, so what a day of churn does to
the tables shows in a few hundred cycles:

- warm-up cycles first (imports, caches, the first sweeps), then a measured run of as many again;
- every table the emulator keeps about rooms, tokens and participants stays within a stated bound
  at every checkpoint (a leak of one entry per cycle would pass it within the run);
- the Python memory allocated by the emulator's code (`harness/`) and still held grows by less than
  `GROWTH_BOUND` across the measured run (a leaked room, channel, stage or meeting costs more than
  half a kibibyte, so a leak per cycle passes the bound within the run).

Bounds of the token tables (`Lived`): what lives `L` seconds, born `k` per cycle, is at most
`2 × k × (cycles within any L)` plus the floor; lifetimes are half a second and a cycle takes
tens of milliseconds, so the bounds sit well under the `k × 2 × CYCLES` entries a leak would leave.
Tokens are issued just before they are used, so a loaded machine does not let them expire first.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import tracemalloc
import urllib.parse
import uuid

import pytest
import uvloop
from websockets.asyncio.client import connect

from harness.emulation import memory
from harness.services.chime import codec as chime_codec
from harness.services.chime import provision
from harness.services.hotsock import codec as hotsock_codec
from harness.services.hotsock import tokens as hotsock_tokens
from harness.services.hotsock.claims import channel_rule
from harness.services.hotsock.emulator import dataplane as hotsock_dataplane
from harness.services.ivschat.boto import ivschat_client
from harness.services.ivsrealtime import codec as rt_codec
from harness.services.ivsrealtime.boto import ivsrealtime_client

from .chat import run

CYCLES = 60  # measured, after as many warm-up cycles
CHECKPOINTS = 4
GROWTH_BOUND = 32 * 1024  # bytes the emulator's code holds after the measured cycles, over what it held before
HARNESS_ONLY = [tracemalloc.Filter(True, "*/harness/*")]  # not boto3's and the test clients' own caches
LIFETIME_S = 0.5  # how long tokens and memories of the past live in these soaks
FLOOR = 16  # `memory.FLOOR` and Hotsock's channel floor, lowered so sweeps happen within the run


class OnItsOwnLoop:
    """An emulator object started on a uvloop thread of its own; `read(fn)` runs fn on that thread."""

    def __init__(self, emulator) -> None:
        self.emulator = emulator
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="soaked-emulator", daemon=True)

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.emulator.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.emulator.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def read(self, fn):
        async def call():
            return fn()
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)


class Lived:
    """The bound of a table of entries born `per_cycle` a cycle and kept `lifetime_s`: those born within
    any one lifetime (counted from the cycles' own end times, so a loaded machine's slower cycles
    tighten it), doubled before a sweep, plus the floor and the entry being added."""

    def __init__(self, per_cycle: int, lifetime_s: float) -> None:
        self.per_cycle, self.lifetime_s = per_cycle, lifetime_s

    def __call__(self, ends: list[float]) -> int:
        most = max(sum(1 for t in ends if start <= t < start + self.lifetime_s) for start in ends)
        return 2 * self.per_cycle * most + FLOOR + self.per_cycle


def soak(running: OnItsOwnLoop, cycle, tables, bounds: dict, sweep=lambda: None) -> dict:
    """Warm up, then run CYCLES more while checking every table against its bound (a number, or a
    `Lived`); return figures. Memory is compared once everything the cycles made has outlived its
    time and been swept (`sweep`, on the emulator's thread), so what is left over is what leaked."""
    ends = []
    for n in range(CYCLES):
        cycle(n)
        ends.append(time.monotonic())
    settle(running, sweep)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        sizes = []
        for n in range(CYCLES, 2 * CYCLES):
            cycle(n)
            ends.append(time.monotonic())
            if (n + 1 - CYCLES) % (CYCLES // CHECKPOINTS) == 0:
                sizes.append(running.read(tables))
                for name, size in sizes[-1].items():
                    bound = bounds[name](ends) if callable(bounds[name]) else bounds[name]
                    assert size <= bound, f"{name}: {size} entries after {n + 1} cycles (bound {bound})"
        settle(running, sweep)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    after, before = after.filter_traces(HARNESS_ONLY), before.filter_traces(HARNESS_ONLY)
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    top = [str(stat) for stat in after.compare_to(before, "lineno")[:5]]
    assert growth < GROWTH_BOUND, f"{growth} bytes more held after {CYCLES} cycles; most:\n" + "\n".join(top)
    return {"growth_bytes": growth, "tables": sizes}


def settle(running: OnItsOwnLoop, sweep) -> None:
    """Let every token and memory the cycles made outlive its time (LIFETIME_S), sweep them, collect
    garbage, and empty the standard library's bounded URL cache (128 entries: every URL here
    differs, so it would fill across the run whatever the emulator does)."""
    deadline = time.monotonic() + LIFETIME_S
    while time.monotonic() < deadline:  # a known lifetime, not a guess: nothing made before lives past it
        time.sleep(deadline - time.monotonic())
    running.read(sweep)
    urllib.parse.urlsplit.cache_clear()
    gc.collect()


@pytest.fixture
def low_floors(monkeypatch):
    monkeypatch.setattr(memory, "FLOOR", FLOOR)
    monkeypatch.setattr(hotsock_dataplane, "CHANNELS_FLOOR", FLOOR)


def test_ivschat_soak_under_room_token_and_connection_churn(low_floors):
    from harness.services.ivschat.emulator.server import Emulator

    with OnItsOwnLoop(Emulator(token_minutes=LIFETIME_S / 60)) as running:
        chat = ivschat_client("us-east-1", running.emulator.control_endpoint)
        endpoint = running.emulator.messaging_endpoint

        def cycle(n: int) -> None:
            room = chat.create_room(maximumMessageRatePerSecond=100)

            def token(i: int) -> str:
                return chat.create_chat_token(roomIdentifier=room["arn"], userId=f"u{n}-{i}",
                                              capabilities=["SEND_MESSAGE"])["token"]

            async def chatter():  # three tokens: two used at once, the third expires unused
                a = await connect(endpoint, subprotocols=[token(0)], open_timeout=5)
                b = await connect(endpoint, subprotocols=[token(1)], open_timeout=5)
                token(2)
                await a.send('{"Action":"SEND_MESSAGE","RequestId":"r","Content":"hello"}')
                await asyncio.wait_for(b.recv(), 5)
                await a.close()
                await b.close()

            run(chatter())
            chat.delete_room(identifier=room["arn"])

        state, plane = running.emulator.state, running.emulator.dataplane
        figures = soak(running, cycle, lambda: {"rooms": len(state.rooms), "runtimes": len(plane.rooms),
                                                "tags": len(state.tags), "tokens": state.token_bookkeeping()},
                       {"rooms": 0, "runtimes": 0, "tags": 0, "tokens": Lived(3, LIFETIME_S)},  # a leak: 3 × 120
                       sweep=lambda: [table.sweep() for table in (state._tokens, state._used_tokens)])
    print("ivschat soak:", figures)


def test_hotsock_soak_under_channel_token_and_connection_churn(low_floors):
    from harness.services.hotsock.emulator import EmulatorProcess
    from harness.services.hotsock.emulator.server import Emulator

    with OnItsOwnLoop(Emulator(time_scale=0.001)) as running:
        emulator = running.emulator
        shim = EmulatorProcess.__new__(EmulatorProcess)  # the child's helpers (mint, connect_url), no child
        shim.info = emulator.describe()

        def cycle(n: int) -> None:
            channel = f"soak.{n}-{uuid.uuid4().hex[:6]}"  # a new channel every cycle
            token = shim.mint(hotsock_tokens.connect_claims({channel: channel_rule(publish=["chat"], echo=True)},
                                                            uid=f"u{n}", ttl_s=30))

            async def chatter():
                ws = await connect(shim.connect_url(token), open_timeout=5)
                await asyncio.wait_for(ws.recv(), 5)  # hotsock.connected
                await ws.send(hotsock_codec.Subscribe(channel).encode().decode())
                await asyncio.wait_for(ws.recv(), 5)
                await ws.send(hotsock_codec.ClientMessage(channel, "chat", n).encode().decode())
                await asyncio.wait_for(ws.recv(), 5)
                await ws.send(hotsock_codec.Subscribe(f"refused.{n}").encode().decode())  # not allowed
                await asyncio.wait_for(ws.recv(), 5)
                await ws.close()

            run(chatter())

        plane = emulator.dataplane
        # A new channel a cycle, one refused a cycle: idle ones are swept when the table doubles.
        # (Single-use tokens live whole seconds of wall clock, PyJWT's: their table is the same
        # `Expiring` the other soaks exercise.)
        figures = soak(running, cycle, lambda: {"channels": len(plane.channels), "connections": len(plane.connections)},
                       {"channels": 2 * FLOOR, "connections": 1},  # a leak: 120 channels
                       sweep=plane._sweep_idle_channels)
    print("hotsock soak:", figures)


def test_ivsrealtime_soak_under_stage_token_and_join_churn(low_floors):
    from harness.services.ivsrealtime.emulator.server import Emulator

    # A minute lasts 25 µs: the longest token (14 days, asked for below) lives LIFETIME_S.
    with OnItsOwnLoop(Emulator(minute_s=LIFETIME_S / 20160)) as running:
        ivs = ivsrealtime_client("us-east-1", running.emulator.control_endpoint)
        endpoint = running.emulator.messaging_endpoint

        def cycle(n: int) -> None:
            stage = ivs.create_stage()["stage"]
            tokens = []
            topic = stage["arn"].rsplit("/", 1)[-1]

            async def join_and_leave():
                sockets = []
                for _ in range(2):  # each token issued just before it joins
                    token = ivs.create_participant_token(stageArn=stage["arn"], duration=20160)["participantToken"]
                    tokens.append(token)
                    query = rt_codec.join_query(topic, f"t{n}")
                    ws = await connect(f"{endpoint}/?{query}", subprotocols=[token["token"]], open_timeout=5)
                    assert isinstance(rt_codec.parse_server_frame(await asyncio.wait_for(ws.recv(), 5)),
                                      rt_codec.StageState)
                    sockets.append(ws)
                for ws in sockets:
                    await ws.close()

            run(join_and_leave())
            ivs.disconnect_participant(stageArn=stage["arn"], participantId=tokens[0]["participantId"])
            ivs.delete_stage(arn=stage["arn"])

        state, plane = running.emulator.state, running.emulator.dataplane
        figures = soak(running, cycle, lambda: {
            "stages": len(state.stages), "runtimes": len(plane.stages), "participants": len(state.participants),
            "events": len(state.events), "deleted_stages": len(state.deleted_stages), "issued": len(state.issued),
            "blocked": len(state.blocked), "used": len(state.used)},
            # Each lives half a second; a leak would leave 120 (stages, blocked) or 240 (tokens) entries.
            {"stages": 0, "runtimes": 0, "participants": 0, "events": 0, "deleted_stages": Lived(1, LIFETIME_S),
             "issued": Lived(2, LIFETIME_S), "blocked": Lived(1, LIFETIME_S), "used": Lived(2, LIFETIME_S)},
            sweep=lambda: [table.sweep() for table in (state.deleted_stages, state.issued, state.blocked, state.used)])
    print("ivsrealtime soak:", figures)


def test_chime_soak_under_meeting_attendee_and_connection_churn(low_floors, monkeypatch):
    from harness.services.chime.emulator import signaling
    from harness.services.chime.emulator.server import ChimeEmulator

    monkeypatch.setattr(signaling, "ENDED_KEPT", 10)
    with OnItsOwnLoop(ChimeEmulator()) as running:
        running.emulator.state.ended_remembered_s = LIFETIME_S  # an ended meeting's tokens: "ended" so long
        chime = provision.meetings_client("us-east-1", running.emulator.control_endpoint)

        def cycle(n: int) -> None:
            made = provision.create_meeting(chime, [f"a{n}", f"b{n}"])

            async def chatter():
                url = chime_codec.signaling_url(made.signaling_url)
                a, b = [await connect(url, subprotocols=chime_codec.subprotocols(attendee.join_token), open_timeout=5)
                        for attendee in made.attendees]
                for ws in (a, b):
                    await ws.send(chime_codec.encode(chime_codec.Join(), 1))
                    for _ in range(2):  # JOIN_ACK, INDEX
                        await asyncio.wait_for(ws.recv(), 5)
                await a.send(chime_codec.encode(chime_codec.DataMessages(
                    (chime_codec.DataMessage("chat", b"hello", 0),)), 1))
                assert isinstance(chime_codec.decode(await asyncio.wait_for(b.recv(), 5)), chime_codec.DataMessages)
                await a.close()
                await b.close()

            run(chatter())
            chime.delete_attendee(MeetingId=made.meeting_id, AttendeeId=made.attendees[0].attendee_id)
            chime.delete_meeting(MeetingId=made.meeting_id)

        state, plane = running.emulator.state, running.emulator.signaling
        figures = soak(running, cycle, lambda: {
            "meetings": len(state.meetings), "runtimes": len(plane.meetings), "tokens": len(state._tokens),
            "ended_tokens": len(state._ended_tokens), "ended_counters": len(plane.ended)},
            {"meetings": 0, "runtimes": 0, "tokens": 0, "ended_tokens": Lived(1, LIFETIME_S),
             "ended_counters": 10},  # a leak: 120
            sweep=state._ended_tokens.sweep)
    print("chime soak:", figures)


def test_expiring_keys_read_absent_at_their_time_and_are_swept_when_the_table_doubles():
    now = [0.0]
    keys = memory.Expiring(clock=lambda: now[0], floor=4)
    for n in range(4):
        keys.put(n, until=1.0)
    assert 3 in keys and len(keys) == 4
    now[0] = 1.0
    assert 3 not in keys and len(keys) == 3  # past its time: absent at once
    for n in range(4):
        keys.put(f"live{n}", until=10.0)
    assert len(keys) == 7  # below the next sweep mark (twice the 4 kept at the last sweep)
    keys.put("live4", until=10.0)  # the mark: the expired go
    assert len(keys) == 5 and 0 not in keys and "live4" in keys
    recent = memory.Recent(2)
    for n in range(5):
        recent[n] = n
    assert list(recent.items()) == [(3, 3), (4, 4)]
