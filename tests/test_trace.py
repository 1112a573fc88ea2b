"""Traces on files the tests write: the reader's bad-input rules, the IVS Chat and Hotsock importers in
every shape they accept, `chatload trace import/summary/scale` through the real command line, the
replay plan, the report's replay section and capacity steps of a trace. No run here (see
test_trace_replay.py)."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.capacity.plan import CapacityError, load_plan
from harness.cli import main
from harness.scenario.reader import ScenarioError, load_scenario
from harness.services.hotsock.ulid import encode
from harness.trace.loading import TraceLoadError, import_trace
from harness.trace.model import JOIN, LEAVE, MESSAGE, TraceEvent
from harness.trace.plan import build_plan
from harness.trace.reader import TraceError, read_trace, write_trace
from harness.trace.replayreport import replay_section
from harness.trace.shape import scale, summary
from harness.trace.synthetic import generate
from tests.test_capacity import BASE, capacity_file

SECRET_USER = "alice@example.com"


def lines(path: Path, *rows) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def chatload(*argv: str) -> tuple[int, str, str]:
    """The real command line, in this process (a subprocess costs a second of start-up)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def message(t, room="r", sender="s1", size=10):
    return {"t": t, "room": room, "sender": sender, "kind": "message", "size": size}


# -- the reader -------------------------------------------------------------------------------------------


def test_malformed_lines_are_skipped_with_their_numbers_and_the_rest_sorted_and_counted(tmp_path):
    rows = [{"format": "chatload.trace/1", "source": "test"}]
    rows += [message(t) for t in (0.0, 2.0, 1.0, 3.0, 0.5)]  # two events come after a later time
    rows += [message(4.0 + i) for i in range(15)]
    rows[8] = "{not json"
    rows.append("")  # blank: ignored
    rows.append({"t": 30, "room": "r", "sender": "s2", "kind": "shout"})
    path = lines(tmp_path / "t.jsonl", *rows)
    trace = read_trace(path)
    assert trace.skipped == ["line 9: not JSON (Expecting property name enclosed in double quotes)",
                             "line 23: kind 'shout' is not one of message, join, leave, kick, presence"]
    assert trace.reordered == 2
    assert [e.t for e in trace.events] == sorted(e.t for e in trace.events)
    assert len(trace.events) == 19 and trace.header["source"] == "test"


def test_a_file_mostly_not_a_trace_is_refused_naming_the_lines(tmp_path):
    path = lines(tmp_path / "t.jsonl", message(0), message(1), {"t": -1, "room": "r", "sender": "s"},
                 {"t": 2, "room": "", "sender": "s", "size": 1}, message(3))
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    text = str(caught.value)
    assert str(path) in text and "2 of 5 lines are malformed" in text
    assert "line 3: t must be a number of seconds ≥ 0" in text and "line 4: room must be a non-empty string" in text


def test_a_trace_without_a_usable_message_is_an_error(tmp_path):
    path = lines(tmp_path / "t.jsonl", {"t": 0, "room": "r", "sender": "s", "kind": "join"})
    with pytest.raises(TraceError, match="no usable message"):
        read_trace(path)
    with pytest.raises(TraceError, match="format 'other/2'"):
        read_trace(lines(tmp_path / "h.jsonl", {"format": "other/2"}, message(0)))


def test_only_the_five_keys_are_read_so_content_never_enters_a_trace(tmp_path):
    path = lines(tmp_path / "t.jsonl", {**message(0.5), "content": "hello world", "user": SECRET_USER})
    out = write_trace(tmp_path / "copy.jsonl", read_trace(path).events)
    assert "hello" not in out.read_text() and SECRET_USER not in out.read_text()
    assert read_trace(out).events == [TraceEvent(0.5, "r", "s1", 10, MESSAGE)]


events_strategy = st.lists(st.tuples(st.floats(0, 1000, allow_nan=False), st.sampled_from(["a", "b"]),
                                     st.sampled_from(["s1", "s2", "s3"]), st.integers(0, 500)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(events_strategy)
def test_any_valid_trace_reads_back_sorted_with_its_inversions_counted(tmp_path_factory, rows):
    path = lines(tmp_path_factory.mktemp("p") / "t.jsonl", *(message(t, room, sender, size)
                                                              for t, room, sender, size in rows))
    trace = read_trace(path)
    assert sorted((e.t, e.room, e.sender, e.size) for e in trace.events) == sorted(rows)
    assert [e.t for e in trace.events] == sorted(t for t, *_ in rows)
    latest, behind = -1.0, 0
    for t, *_ in rows:
        behind += t < latest
        latest = max(latest, t)
    assert trace.reordered == behind and not trace.skipped


# -- importers --------------------------------------------------------------------------------------------


def ivs_record(at: str, content: str | None = None, user: str = SECRET_USER, event: str | None = None) -> dict:
    if event is None:
        payload = {"Type": "MESSAGE", "Id": "x", "Content": content, "Sender": {"UserId": user, "Attributes": {}},
                   "Attributes": {}, "SendTime": at}
        return {"event_timestamp": at, "type": "MESSAGE", "version": "1.0", "payload": payload}
    payload = {"Type": "EVENT", "Id": "y", "EventName": event, "Attributes": {"UserId": user}, "SendTime": at}
    return {"event_timestamp": at, "type": "EVENT", "version": "1.0", "payload": payload}


RECORDS = [ivs_record("2026-07-19T19:00:00.000000000Z", "héllo ✓"),  # 7 characters, nanoseconds
           ivs_record("2026-07-19T19:00:00.250Z", event="user_joined", user="bob"),
           ivs_record("2026-07-19T19:00:01.500Z", "x" * 40, user="bob"),
           ivs_record("2026-07-19T19:00:02Z", event="aws:DELETE_MESSAGE"),
           ivs_record("2026-07-19T19:00:03Z", event="user_left", user="bob")]


def check_ivs(trace, room: str) -> None:
    assert [(e.t, e.room, e.size, e.kind) for e in trace.events] == [
        (0.0, room, 7, MESSAGE), (0.25, room, 0, JOIN), (1.5, room, 40, MESSAGE), (3.0, room, 0, LEAVE)]
    assert trace.events[1].sender == trace.events[2].sender != trace.events[0].sender
    assert trace.header["ignored"] == {"event aws:DELETE_MESSAGE": 1}


def test_ivschat_s3_objects_as_json_lines_concatenated_or_gzipped(tmp_path):
    folder = tmp_path / "AWSLogs/123456789012/IVSChatLogs/1.0/us-east-1/room_AbCdEf123456/2026/07/19/19"
    folder.mkdir(parents=True)
    as_lines = folder / "a.log"
    as_lines.write_text("\n".join(json.dumps(r) for r in RECORDS))
    concatenated = folder / "b.log"
    concatenated.write_text("".join(json.dumps(r) for r in RECORDS))
    gzipped = folder / "c.log.gz"
    gzipped.write_bytes(gzip.compress(as_lines.read_bytes()))
    for path in (as_lines, concatenated, gzipped):
        check_ivs(import_trace([path], "ivschat-log", salt="k"), "AbCdEf123456")


def test_ivschat_cloudwatch_exports_and_subscription_payloads(tmp_path):
    stream = "aws/IVSChatLogs/1.0/room_AbCdEf123456"
    exported = tmp_path / "filter-log-events.json"
    exported.write_text(json.dumps({"events": [{"logStreamName": stream, "timestamp": 1, "message": json.dumps(r),
                                                "ingestionTime": 2, "eventId": str(i)}
                                               for i, r in enumerate(RECORDS)]}))
    check_ivs(import_trace([exported], "ivschat-log", salt="k"), "AbCdEf123456")
    payload = tmp_path / "subscription.json.gz"
    payload.write_bytes(gzip.compress(json.dumps({
        "messageType": "DATA_MESSAGE", "logGroup": "chat", "logStream": stream,
        "logEvents": [{"id": str(i), "timestamp": 1, "message": json.dumps(r)} for i, r in enumerate(RECORDS)]}).encode()))
    check_ivs(import_trace([payload], "ivschat-log", salt="k"), "AbCdEf123456")


def test_ivschat_bad_records_are_reported_where_they_are(tmp_path):
    path = tmp_path / "log.jsonl"
    good = [json.dumps(ivs_record(f"2026-07-19T19:00:{i:02d}Z", "hi")) for i in range(20)]
    path.write_text("\n".join([*good[:3], "{broken", json.dumps({"type": "MESSAGE"}), *good[3:]]) + "\n")
    trace = import_trace([path], "ivschat-log", salt="k", room="main")
    assert trace.skipped == [f"{path}: line 4: not JSON (Expecting property name enclosed in double quotes)",
                             f"{path}: record 5: not a logging record (no payload object)"]
    assert len(trace.messages) == 20 and {e.room for e in trace.events} == {"main"}


def test_hotsock_pages_overlapping_with_server_publishes(tmp_path):
    base = 1_784_487_600_000
    msgs = [{"id": encode(base + 10 * i, i), "event": "chat", "channel": "game", "data": {"n": i, "t": "ü"},
             "meta": {"uid": SECRET_USER, "umd": None}} for i in range(3)]
    msgs.append({"id": encode(base + 100, 9), "event": "score", "channel": "game", "data": "goal"})  # server
    msgs.append({"id": encode(base + 101, 10), "event": "hotsock.channelStorageUpdated", "channel": "game"})
    path = tmp_path / "pages.jsonl"
    path.write_text(json.dumps({"messages": msgs[:3]}) + "\n" + json.dumps({"messages": msgs[2:]}) + "\n")
    trace = import_trace([path], "hotsock-pages", salt="k")
    assert [(round(e.t, 3), e.room, e.size) for e in trace.events] == [
        (0.0, "game", len('{"n":0,"t":"ü"}')), (0.01, "game", 15), (0.02, "game", 15), (0.1, "game", 6)]
    assert len({e.sender for e in trace.events}) == 2 and trace.header["ignored"] == {"hotsock.* event": 1}


def test_an_import_of_nothing_usable_is_an_error_naming_the_file(tmp_path):
    path = lines(tmp_path / "empty.jsonl", ivs_record("2026-07-19T19:00:00Z", event="user_joined"))
    with pytest.raises(TraceLoadError, match="no usable message"):
        import_trace([path], "ivschat-log")
    with pytest.raises(TraceLoadError, match="cannot read"):
        import_trace([tmp_path / "missing.log"], "ivschat-log")


# -- chatload trace -----------------------------------------------------------------------------------------


def test_chatload_trace_import_summary_and_scale(tmp_path):
    log = tmp_path / "room_Main00000001.log"
    records = [ivs_record(f"2026-07-19T19:00:{s:02d}.{ms:03d}Z", "y" * (5 + ms % 7), user=f"fan-{ms % 3}")
               for s in range(10) for ms in range(0, 1000, 250 if s != 4 else 25)]  # a burst at 4 s
    log.write_text("".join(json.dumps(r) + "\n" for r in records) + "not json\n")
    out = tmp_path / "trace.jsonl"
    code, stdout, stderr = chatload("trace", "import", "--format", "ivschat-log", str(log), "-o", str(out))
    assert code == 0, stderr
    assert f"{out}: 76 events (76 message)" in stdout and f"skipped {log}: line 77: not JSON" in stderr
    assert SECRET_USER not in out.read_text() and "fan-" not in out.read_text() and "yyyy" not in out.read_text()

    code, stdout, _ = chatload("trace", "summary", str(out), "--json")
    facts = json.loads(stdout)
    assert facts["messages"] == 76 and facts["rate"]["per_bin"] == [4, 4, 4, 4, 40, 4, 4, 4, 4, 4]
    assert facts["bursts"]["count"] == 1 and facts["bursts"]["largest"][0]["at_s"] == 4
    assert facts["senders"]["count"] == 3 and facts["sizes"]["min"] == 5 and facts["sizes"]["max"] == 11
    code, stdout, _ = chatload("trace", "summary", str(out))
    assert code == 0 and "bursts (≥ 3× the mean): 1; at 4 s 40" in stdout

    big = tmp_path / "big.jsonl"
    code, stdout, _ = chatload("trace", "scale", str(out), "-o", str(big), "--repeat", "2", "--audience", "2")
    assert code == 0, stdout
    scaled = summary(read_trace(big))
    assert scaled["messages"] == 4 * 76 and scaled["senders"]["count"] == 6
    assert scaled["rate"]["per_bin"][4] >= 80 and scaled["bursts"]["count"] == 2  # both plays keep the burst


def test_chatload_trace_bad_input_is_exit_2_with_the_file_and_no_traceback(tmp_path):
    bad = lines(tmp_path / "bad.jsonl", "nope", "nope", message(1))
    code, _, stderr = chatload("trace", "summary", str(bad))
    assert code == 2 and str(bad) in stderr and "line 1: not JSON" in stderr and "Traceback" not in stderr
    code, _, stderr = chatload("trace", "summary", str(tmp_path / "absent.jsonl"))
    assert code == 2 and "cannot read" in stderr
    code, _, stderr = chatload("trace", "import", "--format", "ivschat-log", str(bad), "-o", str(tmp_path / "o"),
                               "--event", "cheer=shout")
    assert code == 2 and "--event 'cheer=shout'" in stderr
    # A line nested past the decoder's recursion limit is one more malformed line, in every reader.
    deep = "[" * 100_000 + "]" * 100_000
    nested = lines(tmp_path / "nested.jsonl", deep, *(message(t) for t in range(10)))
    assert read_trace(nested).skipped == ["line 1: not JSON (nested too deeply)"]
    log = tmp_path / "nested.log"
    log.write_text(deep + "\n" + json.dumps({"events": [{"message": deep}]}) + "\n"
                   + "".join(json.dumps(ivs_record(f"2026-07-19T19:00:{i:02d}Z", "hi")) + "\n" for i in range(20)))
    assert import_trace([log], "ivschat-log").skipped[:2] == [
        f"{log}: line 1: not JSON (nested too deeply)", f"{log}: value 2, log event 0: its message is not JSON (nested too deeply)"]
    # An output that cannot be written names its path.
    (tmp_path / "file").write_text("")
    code, _, stderr = chatload("trace", "scale", str(nested), "-o", str(tmp_path / "file" / "out.jsonl"))
    assert code == 2 and f"{tmp_path / 'file' / 'out.jsonl'}: cannot write" in stderr and "Traceback" not in stderr


def test_scale_by_a_fraction_adds_that_share_of_users_each_doing_what_its_original_did():
    trace = read_trace_from([TraceEvent(t / 10, "r", f"s{t % 10}", 5) for t in range(100)])
    events = scale(trace, audience=1.5, seed=3)
    assert len(events) == 150 and len({e.sender for e in events}) == 15
    originals: dict[str, list[float]] = {}
    for event in trace.events:
        originals.setdefault(event.sender, []).append(event.t)
    copies = {e.sender for e in events if "-" in e.sender}
    assert len(copies) == 5
    for sender in copies:
        times = sorted(e.t for e in events if e.sender == sender)
        assert all(abs(a - b) <= 0.005 + 1e-9 for a, b in zip(times, originals[sender.split("-")[0]], strict=True))


def read_trace_from(events):
    from harness.trace.model import Trace

    return Trace(sorted(events, key=lambda e: e.t))


# -- the replay plan and its report section ------------------------------------------------------------------


def test_plan_speed_rooms_ranks_and_presence():
    trace = read_trace_from([
        TraceEvent(0.0, "quiet", "q", 1), TraceEvent(1.0, "busy", "a", 2), TraceEvent(1.5, "busy", "b", 2),
        TraceEvent(2.0, "busy", "a", 2), TraceEvent(0.5, "busy", "v", 0, JOIN), TraceEvent(3.0, "busy", "v", 0, LEAVE),
        TraceEvent(4.0, "busy", "v", 0, JOIN), TraceEvent(2.5, "busy", "w", 0, LEAVE)])
    plan = build_plan(trace, speed=2.0, room_count=2)
    assert [(s.due_s, s.room, s.sender) for s in plan.sends] == [(0.0, 1, 0), (0.5, 0, 0), (0.75, 0, 1), (1.0, 0, 0)]
    assert plan.trace_per_second == [3, 1] and plan.senders_per_room == {0: 2, 1: 1}
    assert sorted(p.intervals for p in plan.presences) == [[(0.0, 1.25)], [(0.25, 1.5), (2.0, None)]]
    only_busy = build_plan(trace, mapping={"busy": 1}, room_count=2)
    assert only_busy.excluded == 1 and {s.room for s in only_busy.sends} == {1}
    assert len(build_plan(trace, audience=2.5, room_count=2).presences) == 5


def test_the_report_section_aligns_accepted_seconds_on_the_trace_and_flags_a_late_schedule():
    trace = read_trace_from([TraceEvent(t / 4, "r", "s", 5) for t in range(12)])  # 4 a second for 3 s
    plan = build_plan(trace, speed=1.0)
    start = 1_800_000_000
    results = {"counters": {"replay.start": 1, "replay.sent": 12, "replay.late": 3},
               "latency_us": {"replay_lag": {"count": 12, "max": 180_000, "percentiles": {"50": 1000, "99": 170_000}}},
               "rooms": {"room-0": {str(start): {"offered": 4, "accepted": 2}, str(start + 1): {"offered": 4, "accepted": 5},
                                    str(start + 2): {"offered": 4, "accepted": 4}, str(start + 3): {"offered": 0, "accepted": 1}}}}
    section = replay_section(trace, plan, results, trace_file="/x/t.jsonl")
    assert section["start_s"] == start and section["per_second"] == {"trace": [4, 4, 4], "replayed": [2, 5, 4, 1]}
    assert section["replayed_ratio"] == 1.0 and section["too_fast"] and "3 of 12 messages" in section["problems"][0]
    results["counters"]["replay.late"] = 0
    assert not replay_section(trace, plan, results, trace_file="t.jsonl")["too_fast"]


# -- capacity ---------------------------------------------------------------------------------------------------


def test_capacity_steps_a_trace_speed_and_audience_keeping_the_trace_path(tmp_path):
    (tmp_path / "traces").mkdir()
    write_trace(tmp_path / "traces" / "t.jsonl", [TraceEvent(t / 2, "r", f"s{t % 3}", 8) for t in range(20)])
    base = BASE + '\n[traffic]\ntrace = "traces/t.jsonl"\nspeed = 2.0\n'
    steps = 'steps = [1.0, 2.0, 4.0]\nhold = "12s"\nobjective = ["lost == 0"]\n'
    plan = load_plan(capacity_file(tmp_path, 'vary = "trace_speed"\n' + steps, base))
    assert [step.scenario.traffic.speed for step in plan.steps] == [1.0, 2.0, 4.0]
    assert plan.steps[0].scenario.traffic.trace == str((tmp_path / "traces" / "t.jsonl").resolve())
    assert [plan.load_of(step) for step in plan.steps] == [1.0, 2.0, 4.0]
    assert plan.steps[2].offered_messages_per_s == pytest.approx(20 * 4 / 9.5)
    plan = load_plan(capacity_file(tmp_path, 'vary = "trace_audience"\n' + steps, base))
    assert [(s.scenario.traffic.audience, s.scenario.populations[0].users) for s in plan.steps] == [
        (1.0, 10), (2.0, 20), (4.0, 40)]
    with pytest.raises(CapacityError, match="needs a \\[traffic\\] table"):
        load_plan(capacity_file(tmp_path, 'vary = "trace_speed"\n' + steps))


def test_a_scenario_traffic_table_is_checked_with_its_trace(tmp_path):
    write_trace(tmp_path / "t.jsonl", [TraceEvent(0.1, "r", "s", 8)])
    (tmp_path / "bad.jsonl").write_text("garbage\n")
    good = '\n[traffic]\ntrace = "t.jsonl"\nspeed = 3.0\nrooms = { "r" = 0 }\nsenders = [1]\nlisteners = [0]\n'
    path = tmp_path / "ok.toml"
    path.write_text(BASE + good)
    scenario = load_scenario(path)
    assert scenario.traffic.speed == 3.0 and scenario.traffic.trace == str(tmp_path / "t.jsonl")
    assert scenario.estimated_messages()[0] == 1  # what a real room would bill: the trace's, not the chatters' rate
    path.write_text(BASE.replace("processes = 1", "processes = 2") + '\n[traffic]\ntrace = "bad.jsonl"\n'
                    'senders = [0]\nlisteners = [1]\nrooms = { "r" = 3 }\nspeed = 0\n')
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    problems = "\n".join(caught.value.problems)
    for expected in ("traffic.speed: must be at least 0.01", "set [scenario] processes = 1",
                     "traffic.senders: population[0] (viewer) does not send",
                     "traffic.listeners: population[1] (chatter) sends", "r: 3 is not a room index (0 to 0)",
                     f"{tmp_path / 'bad.jsonl'}: 1 of 1 lines are malformed", "line 1: not JSON"):
        assert expected in problems, problems


def test_the_shipped_trace_is_what_the_project_generator_makes():
    shipped = Path(__file__).resolve().parents[1] / "scenarios" / "traces" / "ivschat-final.log.jsonl"
    made = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in generate())
    assert shipped.read_text() == made, "regenerate: python -m harness.trace.synthetic > " + str(shipped)
    users = {r["payload"].get("Sender", {}).get("UserId") or r["payload"]["Attributes"]["UserId"] for r in generate()}
    assert all(user.startswith(("fan-", "viewer-")) for user in users)  # made-up users only
