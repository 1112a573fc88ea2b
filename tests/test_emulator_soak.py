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

Bounds of the token tables: what lives `L` seconds, born `k` per cycle, is at most about
`2 × k × (cycles in L)` plus the floor; lifetimes are 0.3 s or less and a cycle takes 10 ms or more
here, so the bounds below sit well under the `k × 2 × CYCLES` entries a leak would leave.
"""

from __future__ import annotations

import asyncio
import gc
import threading
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


def soak(running: OnItsOwnLoop, cycle, tables, bounds: dict[str, int]) -> dict:
    """Warm up, then run CYCLES more while checking every table against its bound; return figures."""
    for n in range(CYCLES):
        cycle(n)
    settle()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        sizes = []
        for n in range(CYCLES, 2 * CYCLES):
            cycle(n)
            if (n + 1 - CYCLES) % (CYCLES // CHECKPOINTS) == 0:
                sizes.append(running.read(tables))
                for name, size in sizes[-1].items():
                    assert size <= bounds[name], f"{name}: {size} entries after {n + 1} cycles (bound {bounds[name]})"
        settle()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    after, before = after.filter_traces(HARNESS_ONLY), before.filter_traces(HARNESS_ONLY)
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    top = [str(stat) for stat in after.compare_to(before, "lineno")[:5]]
    assert growth < GROWTH_BOUND, f"{growth} bytes more held after {CYCLES} cycles; most:\n" + "\n".join(top)
    return {"growth_bytes": growth, "tables": sizes}


def settle() -> None:
    """Collect cycles and empty the standard library's bounded URL cache (128 entries: every URL here
    differs, so it would fill across the run whatever the emulator does)."""
    urllib.parse.urlsplit.cache_clear()
    gc.collect()


@pytest.fixture
def low_floors(monkeypatch):
    monkeypatch.setattr(memory, "FLOOR", FLOOR)
    monkeypatch.setattr(hotsock_dataplane, "CHANNELS_FLOOR", FLOOR)


def test_ivschat_soak_under_room_token_and_connection_churn(low_floors):
    from harness.services.ivschat.emulator.server import Emulator

    with OnItsOwnLoop(Emulator(token_minutes=0.3 / 60)) as running:  # tokens live 0.3 s
        chat = ivschat_client("us-east-1", running.emulator.control_endpoint)
        endpoint = running.emulator.messaging_endpoint

        def cycle(n: int) -> None:
            room = chat.create_room(maximumMessageRatePerSecond=100)
            tokens = [chat.create_chat_token(roomIdentifier=room["arn"], userId=f"u{n}-{i}",
                                             capabilities=["SEND_MESSAGE"])["token"] for i in range(3)]

            async def chatter():  # two of the three tokens used; the third expires unused
                a = await connect(endpoint, subprotocols=[tokens[0]], open_timeout=5)
                b = await connect(endpoint, subprotocols=[tokens[1]], open_timeout=5)
                await a.send('{"Action":"SEND_MESSAGE","RequestId":"r","Content":"hello"}')
                await asyncio.wait_for(b.recv(), 5)
                await a.close()
                await b.close()

            run(chatter())
            chat.delete_room(identifier=room["arn"])

        state, plane = running.emulator.state, running.emulator.dataplane
        figures = soak(running, cycle, lambda: {"rooms": len(state.rooms), "runtimes": len(plane.rooms),
                                                "tags": len(state.tags), "tokens": state.token_bookkeeping()},
                       {"rooms": 0, "runtimes": 0, "tags": 0, "tokens": 200})  # a leak: 3 × 120
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
                       {"channels": 2 * FLOOR, "connections": 1})  # a leak: 120 channels
    print("hotsock soak:", figures)


def test_ivsrealtime_soak_under_stage_token_and_join_churn(low_floors):
    from harness.services.ivsrealtime.emulator.server import Emulator

    # A minute lasts 10 µs: the longest token (14 days, asked for below) lives 0.2 s.
    with OnItsOwnLoop(Emulator(minute_s=1e-5)) as running:
        ivs = ivsrealtime_client("us-east-1", running.emulator.control_endpoint)
        endpoint = running.emulator.messaging_endpoint

        def cycle(n: int) -> None:
            stage = ivs.create_stage()["stage"]
            tokens = [ivs.create_participant_token(stageArn=stage["arn"], duration=20160)["participantToken"]
                      for _ in range(2)]
            topic = stage["arn"].rsplit("/", 1)[-1]

            async def join_and_leave():
                sockets = []
                for token in tokens:
                    query = rt_codec.join_query(topic, f"t{n}", publish=True)
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
            # Each lives 0.2 s; a leak would leave 120 (stages, blocked) or 240 (tokens) entries.
            {"stages": 0, "runtimes": 0, "participants": 0, "events": 0, "deleted_stages": 70,
             "issued": 130, "blocked": 70, "used": 130})
    print("ivsrealtime soak:", figures)


def test_chime_soak_under_meeting_attendee_and_connection_churn(low_floors, monkeypatch):
    from harness.services.chime.emulator import signaling
    from harness.services.chime.emulator.server import ChimeEmulator

    monkeypatch.setattr(signaling, "ENDED_KEPT", 10)
    with OnItsOwnLoop(ChimeEmulator()) as running:
        running.emulator.state.ended_remembered_s = 0.2  # an ended meeting's tokens: "ended" for 0.2 s
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
            {"meetings": 0, "runtimes": 0, "tokens": 0, "ended_tokens": 70, "ended_counters": 10})  # a leak: 120
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
