"""Tokens from the application's own endpoint (issue 23), against a real local HTTP app
(tests/token_app.py) that itself gets each token from the emulator's control plane, through the
runtime's real fetch path, connecting to real emulators (tests/token_endpoint_run.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.emulation.childproc import JsonChildProcess
from harness.emulation.process import EmulatorProcess
from harness.services.token_endpoint import BadAnswer, TokenEndpoint, check, lookup, read_answer, request_of

BODY = ('{"user_id": "{user_id}", "room": "{room}", "capabilities": "{capabilities}", "who": "{population}", '
        '"purpose": "{purpose}", "channel": "{channel}", "connection_id": "{connection_id}", "session": "{session}"}')


def token_app(emulator: EmulatorProcess, service: str, *extra: str) -> JsonChildProcess:
    extra = [*extra, "--secret-file", emulator.info["hs256_secret_file"]] if service == "hotsock" else list(extra)
    return JsonChildProcess("tests.token_app", "--service", service, "--control", emulator.control_endpoint, *extra,
                            name="token app").start()


def calls(app: JsonChildProcess, what: str = "calls") -> list[tuple]:
    """Every call the app answered, (time, user, status, purpose); or what = "sessions": (user,
    the {session} the request carried)."""
    with urllib.request.urlopen(app.info["url"].replace("/token", "/_calls"), timeout=5) as answer:
        return [tuple(call) for call in json.loads(answer.read())[what]]


def run(emulator: EmulatorProcess, app: JsonChildProcess, service: str, endpoint: dict, groups, **spec) -> dict:
    spec = {"service": service, "endpoint": emulator.messaging_endpoint, "control": emulator.control_endpoint,
            "token_endpoint": {"url": app.info["url"], "body": BODY, **endpoint}, "groups": groups, **spec}
    done = subprocess.run([sys.executable, "-m", "tests.token_endpoint_run", json.dumps(spec)], capture_output=True,
                          text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- every service: the app's token is the one the connection uses, one call per token -------------------------

SERVICES = {
    # service: (token path, fields, capabilities of a receiving user)
    "ivschat": ({"token": "token", "expiry": "tokenExpirationTime", "session": "sessionId"}, []),
    "hotsock": ({"token": "token"}, ["subscribe"]),
    "chime": ({"token": "Attendee.JoinToken", "fields": {"signaling_url": "Meeting.MediaPlacement.SignalingUrl"}}, []),
    "ivsrealtime": ({"token": "participantToken.token"}, ["SUBSCRIBE"]),
}


class Apps:
    """One emulator and one token app per service for the module, started when first asked for."""

    def __init__(self) -> None:
        self.started: dict[str, tuple[EmulatorProcess, JsonChildProcess]] = {}

    def get(self, service: str) -> tuple[EmulatorProcess, JsonChildProcess]:
        if service not in self.started:
            emulator = EmulatorProcess(service=service).start()
            try:
                self.started[service] = (emulator, token_app(emulator, service))
            except Exception:
                emulator.stop()
                raise
        return self.started[service]

    def stop(self) -> None:
        for emulator, app in self.started.values():
            app.stop()
            emulator.stop()


@pytest.fixture(scope="module")
def apps():
    started = Apps()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def ivschat_app(apps):
    return apps.get("ivschat")


def settings_for(emulator: EmulatorProcess, service: str) -> dict:
    return {"signing_key": emulator.info["hs256_secret_file"]} if service == "hotsock" else {}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_service_connects_with_the_apps_tokens_one_call_per_token(apps, service):
    paths, capabilities = SERVICES[service]
    emulator, app = apps.get(service)
    result = run(emulator, app, service, paths, [["ok", 4, "sdk", capabilities]],
                 settings=settings_for(emulator, service), drop="ok", wait_s=20)
    users = set(result["states"])
    made = [call for call in calls(app) if call[1] in users]
    sessions = [call for call in calls(app, "sessions") if call[0] in users]
    counters = result["counters"]
    assert result["settled"] and set(result["states"].values()) == {"open"}, result
    if "session" in paths:  # the reconnect sends back the session id its user's last answer gave
        assert sorted(sessions) == sorted([(u, "") for u in users] + [(u, f"{u}#1") for u in users])
    # Every user connected, was dropped and came back: two tokens each, each fetched once.
    assert counters["connects"] == 8 and counters["token_fetches"] == 8, counters
    per_user = Counter(user for _t, user, _status, _purpose in made)
    assert per_user == {user: 2 for user in users}, per_user
    assert not any(name.startswith("token_fetch_failures.") for name in counters), counters


def test_hotsock_subscribe_tokens_come_from_the_app_for_each_connection(apps):
    """The connect token grants no subscribe; the app's subscribe token (for the channel and the
    connection hotsock.connected named) is what lets each user in, on every connection."""
    emulator, app = apps.get("hotsock")
    settings = settings_for(emulator, "hotsock")
    result = run(emulator, app, "hotsock", {"token": "token", "subscribe_tokens": True}, [["sub", 3, "sdk", []]],
                 settings=settings, drop="sub", per_connect=["subscribe_token_fetches"], wait_s=20)
    without = run(emulator, app, "hotsock", {"token": "token"}, [["nosub", 1, "sdk", []]], settings=settings,
                  wait_s=20)
    made = calls(app)
    counters = result["counters"]
    assert counters["connects"] == counters["token_fetches"] == counters["subscribe_token_fetches"] == 6, counters
    assert not any(name.startswith(("subscribe_token_fetch_failures.", "errors.", "events.subscribe_rejected"))
                   for name in counters), counters
    per_purpose = Counter(purpose for _t, user, _s, purpose in made if user.startswith("sub-"))
    assert per_purpose == {"connect": 6, "subscribe": 6}, per_purpose
    # Without the subscribe token the same connect token is refused the channel: the token mattered.
    assert without["counters"].get("errors.SUBSCRIBE_PERMISSION_DENIED") == 1, without["counters"]


# -- what the endpoint answers: refused, retried, timed out, unreadable -------------------------------------------

def test_answers_by_status_refusals_retries_timeouts_and_bad_answers(ivschat_app):
    emulator, app = ivschat_app
    groups = [["s401", 1, "sdk", []], ["s403", 1, "sdk", []], ["s429n2", 1, "sdk", []], ["s503n1", 1, "sdk", []],
              ["slow", 1, "sdk", []], ["hang", 1, "sdk", []], ["badjson", 1, "sdk", []], ["nopath", 1, "sdk", []]]
    result = run(emulator, app, "ivschat", {"token": "token", "timeout_s": 0.5}, groups)
    counters, states = result["counters"], result["states"]
    state = {user.split("-")[0]: s for user, s in states.items()}
    made = Counter(user.split("-")[0] for _t, user, _status, _purpose in calls(app))
    # 401 and 403: refused at the first answer, never asked again.
    assert counters["token_fetch_failures.401"] == counters["token_fetch_failures.403"] == 1, counters
    assert made["s401"] == made["s403"] == 1 and state["s401"] == state["s403"] == "stopped"
    assert counters["gave_up.refused"] == 2
    # 429 twice, then a 503 once: retried by the SDK's policy, counted, and then connected.
    assert counters["token_fetch_failures.429"] == 2 and counters["token_fetch_failures.503"] == 1
    assert made["s429n2"] == 3 and made["s503n1"] == 2 and state["s429n2"] == state["s503n1"] == "open"
    # A slow answer (0.3 s) inside the timeout connects; a hang ends in a timeout every try: the SDK's
    # 1 + 3 tries, then it gives up.
    assert state["slow"] == "open"
    assert counters["token_fetch_failures.timeout"] == 4 and made["hang"] == 4 and state["hang"] == "stopped"
    # Unreadable answers: retried as the policy says, each error naming the path that was looked up.
    assert counters["token_fetch_failures.bad_json"] == 4 and counters["token_fetch_failures.no_token"] == 4
    assert any("not JSON" in f and "'token'" in f for f in result["failures"]), result["failures"]
    assert any("no token at 'token'" in f for f in result["failures"]), result["failures"]
    assert counters["token_fetches"] == 3 and counters["gave_up.token"] == 3, counters


def test_a_reconnect_storm_reaches_the_endpoint_as_the_policy_spreads_it(ivschat_app):
    """24 users dropped at once: the SDK's clients all ask again at once; backoff spreads the first
    try over its 3 s drop spread. Calls per second, as the app saw them, match each policy."""
    emulator, app = ivschat_app
    peaks = {}
    for policy in ("sdk", "backoff"):
        result = run(emulator, app, "ivschat", {"token": "token"}, [[policy, 24, policy, []]], drop=policy, wait_s=20)
        assert len(result["dropped"]) == 24 and result["counters"]["token_fetches"] == 48, result["counters"]
        storm = [t for t, user, _s, _p in calls(app) if user.startswith(policy + "-")][24:]  # the reconnects' calls
        assert len(storm) == 24
        peaks[policy] = max(Counter(int(t) for t in storm).values())
    assert peaks["sdk"] >= 20, peaks  # all within about one second (a second boundary may split them)
    # Uniform over 3 s: about 8 a second; 16 or more in one second has a probability below 1e-3.
    assert peaks["backoff"] < 16, peaks


def test_no_fetch_holds_a_user_forever_whatever_its_source(ivschat_app):
    """A greenlet provider that never answers (before, its user waited for the rest of the run): each
    try ends at the provider's timeout plus the runtime's grace, counted, and the SDK's policy retries
    then gives up. A fetch still in flight when the run ends is counted as cut short."""
    emulator, app = ivschat_app
    result = run(emulator, app, "ivschat", {}, [["never", 1, "sdk", []]], hang_in_greenlet=0.2, grace_s=0.1, wait_s=10)
    assert result["settled"] and result["states"] == {next(iter(result["states"])): "stopped"}, result
    assert result["counters"]["token_fetch_failures.timeout"] == 4 and result["counters"]["gave_up.token"] == 1
    result = run(emulator, app, "ivschat", {"token": "token", "timeout_s": 30}, [["hang", 2, "sdk", []]], wait_s=0.5)
    assert not result["settled"] and result["final_counters"]["token_fetch_cut_short"] == 2, result


# -- the declaration: templates, paths, what a scenario may not say -------------------------------------------

def test_templates_escape_for_json_and_urls_and_paths_name_what_is_missing():
    endpoint = TokenEndpoint(url="http://a/t?u={user_id}", body='{"u": "{user_id}", "n": {"x": 1}}')
    url, body, content_type = request_of(endpoint, {"user_id": 'a"b &c'})
    assert url == "http://a/t?u=a%22b%20%26c" and content_type == "application/json"
    assert json.loads(body) == {"u": 'a"b &c', "n": {"x": 1}}
    # A form whose first value renders as "{…" is still a form: the type comes from the template.
    _, body, content_type = request_of(TokenEndpoint(url="http://a/t", body="{user_id}&r=1"), {"user_id": "{x"})
    assert (body, content_type) == ("%7Bx&r=1", "application/x-www-form-urlencoded")
    assert lookup({"a": [{"b": "t"}]}, "a[0].b") == "t"
    with pytest.raises(KeyError, match="a.c"):
        lookup({"a": {"b": 1}}, "a.c")
    with pytest.raises(BadAnswer, match="Attendee.JoinToken"):
        read_answer(TokenEndpoint(url="http://a", token="Attendee.JoinToken"), b'{"Attendee": {}}')
    with pytest.raises(BadAnswer) as expired:
        read_answer(TokenEndpoint(url="http://a", expiry="exp"), b'{"token": "t", "exp": 100}', now=200)
    assert expired.value.cause == "expired"
    problems = dict(check(TokenEndpoint(url="ftp://x", method="GET", body="{user}", headers={"Authorization": "abc"},
                                        fields={"signaling_url": "a"})))
    assert set(problems) == {"url", "body", "headers.Authorization", "fields.signaling_url"}, problems
    assert "env:NAME" in problems["headers.Authorization"]
    leaky = TokenEndpoint(url="https://app:pw@a.example/t?api_key=abc&user={user_id}&sig={session}",
                          headers={name: "literal" for name in ("X-Password", "X-Signature", "X-Credential",
                                                                "X-JWT", "Bearer-Value", "Accept")},
                          subscribe_tokens=True, subscribe_url="https://a.example/s?access_token=xyz")
    problems = check(leaky, (), ("subscribe",))
    assert sorted(key for key, _ in problems) == ["headers.Bearer-Value", "headers.X-Credential", "headers.X-JWT",
                                                 "headers.X-Password", "headers.X-Signature", "subscribe_url",
                                                 "url", "url"], problems
    said = " ".join(why for _, why in problems)
    assert "user:password@" in said and "api_key" in said and "access_token" in said and "pw" not in said.split()


# -- done when: a scenario with [target.token_endpoint] against a running IVS Chat emulator -------------------

SCENARIO = """
[scenario]
name = "app-tokens"
duration = "6s"
ramp = "1s"
drain = "2s"
processes = 1

[target]
kind = "running-emulator"
endpoint = "{endpoint}"
control_endpoint = "{control}"

[target.token_endpoint]
url = "{url}"
method = "POST"
body = '{{"user_id": "{{user_id}}", "room": "{{room}}", "capabilities": "{{capabilities}}"}}'
token = "token"
headers = {{ X-Tenant = "chatload-test", Authorization = "env:TOKENEP_APP_SECRET" }}

[[population]]
kind = "viewer"
users = 8

[[population]]
kind = "chatter"
users = 2
message_rate = 2.0

[expectations]
rules = ["lost == 0", "duplicates == 0"]
"""


def test_a_scenario_gets_every_token_from_the_app_once_and_loses_nothing(ivschat_app, tmp_path, monkeypatch):
    """Done when (issue 23). The app answers 401 without the credential, which the scenario names as
    env:NAME: every fetch carried it, and it appears nowhere in what the run wrote or printed."""
    emulator, _ = ivschat_app
    secret = "tokenep-" + uuid.uuid4().hex
    monkeypatch.setenv("TOKENEP_APP_SECRET", secret)
    app = token_app(emulator, "ivschat", "--auth-from-env", "TOKENEP_APP_SECRET")
    try:
        scenario = tmp_path / "app-tokens.toml"
        scenario.write_text(SCENARIO.format(endpoint=emulator.messaging_endpoint, control=emulator.control_endpoint,
                                            url=app.info["url"]))
        proc = subprocess.run([sys.executable, "-m", "harness", "run", str(scenario), "--report-dir",
                               str(tmp_path / "reports")], capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        made = calls(app)
    finally:
        app.stop()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(next(tmp_path.glob("reports/app-tokens/*/report.json")).read_text())
    counters, accounting = report["counters"], report["accounting"]["totals"]
    assert counters["token_fetches"] == len(made) == counters["connects"] == 10, (counters, len(made))
    assert all(status == 200 for _t, _u, status, _p in made)
    assert accounting["accepted"] > 0 and accounting["delivered"] == accounting["expected"] > 0, accounting
    assert accounting["lost"] == accounting["unconfirmed_sends"] == 0, accounting
    assert report["scenario"]["as_run"]["token_endpoint"]["headers"]["Authorization"] == "env:TOKENEP_APP_SECRET"
    written = [path for path in (tmp_path / "reports").rglob("*") if path.is_file()]
    assert written and not [path for path in written if secret in path.read_text(errors="replace")]
    assert secret not in proc.stdout + proc.stderr


@settings(max_examples=150, deadline=None)
@given(values=st.fixed_dictionaries({name: st.text() for name in ("user_id", "room", "capabilities", "session")}))
def test_any_values_render_into_valid_json_and_urls_that_give_them_back(values):
    endpoint = TokenEndpoint(url="http://a/t?u={user_id}&r={room}",
                             body='{"u": "{user_id}", "r": "{room}", "c": "{capabilities}", "s": ["{session}"]}')
    url, body, _ = request_of(endpoint, values)
    query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    assert {key: unquote(value) for key, value in query.items()} == {"u": values["user_id"], "r": values["room"]}
    assert json.loads(body) == {"u": values["user_id"], "r": values["room"], "c": values["capabilities"],
                                "s": [values["session"]]}


_NAMES = st.text(st.characters(blacklist_characters=".[]", blacklist_categories=("Cs",)), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(first=_NAMES, rest=st.lists(st.one_of(_NAMES, st.integers(0, 3)), max_size=5), token=st.text(min_size=1))
def test_a_token_is_found_at_any_path_and_a_missing_step_is_named(first, rest, token):
    steps = [first, *rest]
    document = token
    for step in reversed(steps):  # build the document the path walks
        document = {step: document} if isinstance(step, str) else [None] * step + [document]
    path = "".join(f"[{step}]" if isinstance(step, int) else (f".{step}" if i else step) for i, step in enumerate(steps))
    assert read_answer(TokenEndpoint(url="http://a", token=path), json.dumps(document).encode()).token == token
    with pytest.raises(BadAnswer, match=re.escape(f"no token at {path + '.missing'!r}")):
        read_answer(TokenEndpoint(url="http://a", token=path + ".missing"), json.dumps(document).encode())


# -- bad declarations stop before anything starts, naming the key (and never a credential) --------------------

BAD = """
[target.token_endpoint]
method = "GET"
body = '{{"user": "{{user}}"}}'
headers = {{ Authorization = "Bearer {secret}" }}
signaling_url = "Meeting.MediaPlacement.SignalingUrl"
subscribe_tokens = true

[[population]]
kind = "viewer"
users = 1
"""


def test_a_bad_token_endpoint_lists_every_problem_with_its_key_and_line(tmp_path):
    secret = uuid.uuid4().hex
    path = tmp_path / "bad.toml"
    path.write_text(BAD.format(secret=secret))
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--check", str(path)], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in out, out
    for key, line in (("url", 2), ("body", 4), ("headers.Authorization", 5), ("signaling_url", 6),
                      ("subscribe_tokens", 7)):
        assert any(f"target.token_endpoint.{key}" in row and f"(line {line})" in row for row in out.splitlines()), \
            (key, out)
    assert secret not in out


def test_locust_f_takes_the_same_declaration_and_names_an_unset_variable():
    proc = subprocess.run([sys.executable, "-m", "locust", "-f", "locustfiles/ivschat.py", "--headless", "-u", "1",
                           "-t", "1s", "--chat-token-url", "http://127.0.0.1:9/token",
                           "--chat-token-header", "Authorization: env:TOKENEP_NOT_SET_ANYWHERE"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          cwd=Path(__file__).resolve().parents[1])
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "TOKENEP_NOT_SET_ANYWHERE is not set" in out and "Traceback" not in out, out


def test_a_worker_without_a_header_variable_exits_2_naming_it(tmp_path, monkeypatch):
    """The master checks its own environment; each worker checks its own before any user starts."""
    from harness.scenario.reader import load_scenario

    path = tmp_path / "s.toml"
    path.write_text('[target.token_endpoint]\nurl = "http://127.0.0.1:9/token"\n'
                    'headers = { Authorization = "env:TOKENEP_ON_THE_MASTER_ONLY" }\n'
                    '[[population]]\nkind = "viewer"\nusers = 1\n')
    monkeypatch.setenv("TOKENEP_ON_THE_MASTER_ONLY", "on-the-master")
    as_run = tmp_path / "as_run.json"
    as_run.write_text(json.dumps(load_scenario(path).as_run()))
    env = {k: v for k, v in os.environ.items() if k != "TOKENEP_ON_THE_MASTER_ONLY"}
    proc = subprocess.run([sys.executable, "-c", "import harness.run.locustfile"], capture_output=True, text=True,
                          timeout=60, env={**env, "CHATLOAD_SCENARIO": str(as_run)}, cwd=Path(__file__).parents[1])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "TOKENEP_ON_THE_MASTER_ONLY is not set" in proc.stderr and "on-the-master" not in proc.stderr


ROUND_TRIP = """
import argparse, json, sys
from harness.locust.options import _add_token_endpoint_options, token_endpoint_from_options
from harness.services.token_endpoint import TokenEndpoint, token_endpoint_args

class Parser(argparse.ArgumentParser):  # Locust's own parser takes include_in_web_ui
    def add_argument(self, *args, include_in_web_ui=True, **kwargs):
        return super().add_argument(*args, **kwargs)

parser = Parser()
_add_token_endpoint_options(parser)
for declared in json.loads(sys.argv[1]):
    endpoint = TokenEndpoint.from_dict(declared)
    back = token_endpoint_from_options(parser.parse_args(token_endpoint_args(endpoint)))
    assert back == endpoint, (back, endpoint)
print("same")
"""


def test_chatload_run_hands_locust_the_declaration_it_read():
    """A scenario's table becomes --chat-token-* options for Locust, read back the same: every key."""
    declared = [{"url": "http://a/t?u={user_id}", "method": "GET", "token": "a[0].b", "timeout_s": 2.5},
                {"url": "https://app/x", "body": '{"u": "{user_id}"}', "headers": {"X-A": "v:w", "Auth": "env:A"},
                 "expiry": "exp", "session": "s.id", "fields": {"signaling_url": "M.S"}, "subscribe_tokens": True,
                 "subscribe_url": "https://app/sub", "subscribe_body": "", "subscribe_token": "t"}]
    done = subprocess.run([sys.executable, "-c", ROUND_TRIP, json.dumps(declared)], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "same", done.stderr[-2000:]


def test_an_https_token_app_behind_the_targets_ca_is_trusted_and_a_bad_certificate_is_final(tmp_path):
    """The app sits behind an emulator-style CA: trusted through the target's CA (its PEM, as a remote
    worker gets it); without it the fetch fails for good, named as a connect's certificate failure.
    Two users' fetches are two connections."""
    import asyncio

    import uvloop
    from aiohttp import web

    from harness.emulation.tls import make_certificates
    from harness.net.tls import ca_pem_of
    from harness.services.base import Target, UserSpec
    from harness.services.tokens import TokenFetchFailed
    from harness.session.token_fetch import EndpointTokens

    certificates = make_certificates(tmp_path, hosts=("localhost",))
    target = Target("ivschat", "running-emulator", "wss://localhost:1", "https://localhost:2",
                    ca_file=str(tmp_path / "on-the-master.pem"), ca_pem=ca_pem_of(str(certificates.ca_file)))

    peers = []

    async def answer(request):
        peers.append(request.transport.get_extra_info("peername")[1])
        return web.json_response({"token": "t-1"})

    async def main():
        app = web.Application()
        app.router.add_post("/token", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=certificates.server_context())
        await site.start()
        url = f"https://localhost:{site._server.sockets[0].getsockname()[1]}/token"
        user = UserSpec("s1", "u1", "room")
        trusting, public = (EndpointTokens(TokenEndpoint(url=url), "ivschat", t) for t in (target, None))
        try:
            token = await trusting.fetch_async(user)
            await trusting.fetch_async(UserSpec("s2", "u2", "room"))
            with pytest.raises(TokenFetchFailed) as refused:
                await public.fetch_async(user)
            return token, refused.value
        finally:
            await trusting.aclose()
            await public.aclose()
            await runner.cleanup()
            await asyncio.sleep(0)

    token, refused = uvloop.run(main())
    assert token == "t-1"
    assert len(set(peers)) == 2, "each fetch its own connection, as each browser of a fleet: no shared pool"
    assert (refused.cause, refused.final) == ("TLS unknown CA", True), "a retry cannot mend a certificate"
