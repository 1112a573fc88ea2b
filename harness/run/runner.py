"""`chatload run [SCENARIO]`: one scenario, end to end, ending in a report and an exit code.

The runner is the orchestra's conductor and nothing more: it starts the service's emulator when the
target is the embedded one, has the service make the rooms, runs Locust headless in a child process (its own process group,
so a Ctrl-C in the terminal reaches only us and we stop things in the right order), plays the
scenario's fault timeline against the emulator, shows progress, and turns Locust's results into
the report. Exit codes: 0 expectations met, 1 not met, 2 the run itself failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ..emulation.childproc import ChildStartError
from ..gate.outcome import decide
from ..net.transport import TRANSPORTS
from ..report.console import (
    accounting_lines,
    check_line,
    health_warning,
    latency_table,
    verdict_line,
    worker_lines,
)
from ..results import measured
from ..results.verdicts import derive
from ..scenario.reader import WILDCARDS, Scenario, ScenarioError, expectations_for, load_scenario
from ..services.base import KIND_EMULATOR, ServiceError, Target
from ..services.billing import ask_before_billing
from ..services.target_resolution import resolve_target
from ..services.token_endpoint import token_endpoint_args
from ..trace.replayreport import replay_lines
from .worker import SECRET_ENV, SecretError, WorkerRoll, is_loopback, read_secret, worker_command

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
REPO_ROOT = Path(__file__).resolve().parents[2]  # harness/run/ is two below the project

DESCRIPTION = """\
Run a scenario (scenarios/*.toml) headless: users, target, faults and expectations come from the
file. Live progress goes to stderr; the report goes to reports/<scenario>/<timestamp>/report.json and
report.html. Exit code 0: expectations met, 1: not met, 2: the run itself failed. Ctrl-C stops the
load, drains, and still writes a report marked incomplete."""


class RunError(Exception):
    """The run itself failed (exit code 2)."""


def default_scenario() -> Path:
    here = Path("scenarios/default.toml")
    return here if here.exists() else REPO_ROOT / "scenarios" / "default.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", help="scenario file (default: scenarios/default.toml, the "
                        "default load against the embedded emulator)")
    parser.add_argument("--processes", type=int, default=None,
                        help="Locust worker processes (default: the scenario's, else one per core; 1: no workers)")
    parser.add_argument("--report-dir", default="reports", help="where reports go (default %(default)s)")
    parser.add_argument("--yes", action="store_true",
                        help="against a real service that bills per message (IVS Chat bills messages sent and "
                             "delivered), do not ask before sending")
    parser.add_argument("--quiet", action="store_true", help="no live progress, only the summary")
    parser.add_argument("--reconnect", choices=("sdk", "backoff"),
                        help="reconnect policy for every population (overrides the scenario)")
    parser.add_argument("--transport", choices=sorted(TRANSPORTS),
                        help="WebSocket client implementation (overrides the scenario's [run] transport)")
    parser.add_argument("--tls", action="store_true",
                        help="run the embedded emulator over TLS (wss://, https://) with a CA made for the run, "
                             "which the clients alone trust; as [target] tls = true")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve live Prometheus /metrics on PORT while the run goes (0: a free port); "
                             "overrides [run] metrics_port (docs/live-metrics.md)")
    parser.add_argument("--metrics-linger", type=float, default=15.0, metavar="S",
                        help="seconds /metrics stays up after the run, for the last scrape (default %(default)s)")
    parser.add_argument("--otlp-endpoint", metavar="URL",
                        help="also push the live metrics to an OpenTelemetry collector (OTLP/HTTP), e.g. "
                             "http://collector:4318/v1/metrics (needs chatload[otel])")
    remote = parser.add_argument_group("workers on other machines (docs/distributed.md)")
    remote.add_argument("--workers", type=int, metavar="N",
                        help="wait for N workers started elsewhere with `chatload worker --master HOST:PORT`, "
                             "then run (overrides [run] workers; the scenario and target travel to them)")
    remote.add_argument("--master-bind-host", default="0.0.0.0", metavar="HOST",
                        help="address the master listens on for workers (default %(default)s)")
    remote.add_argument("--master-bind-port", type=int, default=5557, metavar="PORT",
                        help="port the master listens on for workers (default %(default)s)")
    remote.add_argument("--workers-wait", type=float, default=120.0, metavar="S",
                        help="seconds to wait for every worker before giving up with exit 2 (default %(default)s)")
    remote.add_argument("--secret-file", metavar="FILE",
                        help=f"shared worker secret, the same as each worker's (default: ${SECRET_ENV}); "
                             "a worker without it is refused")
    remote.add_argument("--emulator-bind", metavar="ADDRESS",
                        help="the embedded emulator listens on ADDRESS, reachable by the workers "
                             "(overrides [target] bind)")
    parser.add_argument("--check", action="store_true",
                        help="only validate the scenario: list every error with its line, run nothing "
                             "(exit 0 valid, 2 invalid); the keys are in docs/scenarios.md")


def run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario or default_scenario())
    except ScenarioError as exc:
        for problem in exc.problems:
            print(f"chatload run: {problem}", file=sys.stderr)
        if len(exc.problems) > 1:
            print(f"chatload run: {len(exc.problems)} errors; the keys are described in docs/scenarios.md",
                  file=sys.stderr)
        return EXIT_ERROR
    if getattr(args, "check", False):
        print(f"{scenario.file}: valid — {scenario.service.title}, target {scenario.target.kind}, "
              f"{scenario.users} users ({', '.join(f'{p.users} {p.kind}' for p in scenario.populations)}), "
              f"{scenario.duration_s:g} s, {len(expectations_for(scenario))} rules")
        return EXIT_PASS
    if getattr(args, "reconnect", None):
        for population in scenario.populations:
            population.reconnect = args.reconnect
    if getattr(args, "transport", None):
        scenario.transport = args.transport
    if getattr(args, "metrics_port", None) is not None:
        scenario.metrics_port = args.metrics_port
    if getattr(args, "tls", False):
        if scenario.target.kind != KIND_EMULATOR:
            print(f"chatload run: --tls starts the embedded emulator over TLS, but {scenario.file} targets kind "
                  f"\"{scenario.target.kind}\": give its wss:// endpoint (and [target] ca_file for a private CA)",
                  file=sys.stderr)
            return EXIT_ERROR
        scenario.tls = True
    if getattr(args, "workers", None) is not None:
        scenario.workers = args.workers
    if getattr(args, "emulator_bind", None):
        if scenario.target.kind != KIND_EMULATOR:  # as [target] bind: only an emulator started for the run
            print(f"chatload run: --emulator-bind is for the embedded emulator, but {scenario.file} targets kind "
                  f"\"{scenario.target.kind}\"", file=sys.stderr)
            return EXIT_ERROR
        scenario.emulator_bind = args.emulator_bind
    if scenario.workers < 0 or scenario.emulator_bind in WILDCARDS:
        print("chatload run: " + ("--workers must be 0 or more" if scenario.workers < 0 else
                                  f"--emulator-bind {scenario.emulator_bind}: name an address of this machine that "
                                  "workers can reach, not a wildcard"), file=sys.stderr)
        return EXIT_ERROR
    if scenario.traffic is not None and scenario.workers > 1:
        print(f"chatload run: --workers {scenario.workers}: {scenario.file} replays a trace ([traffic]), which one "
              "process replays; use --workers 1 or none", file=sys.stderr)
        return EXIT_ERROR
    try:
        return Run(scenario, args).execute()
    except RunError as exc:
        print(f"chatload run: {exc}", file=sys.stderr)
        return EXIT_ERROR


class Run:
    def __init__(self, scenario: Scenario, args: argparse.Namespace) -> None:
        self.scenario = scenario
        self.args = args
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.folder = Path(args.report_dir) / scenario.name / stamp
        self.raw = self.folder / "raw"
        self.emulator = None
        self.locust: subprocess.Popen | None = None
        self.interrupted = False
        self.faults_applied: list[dict] = []
        self.target: Target = scenario.target
        self.roll: WorkerRoll | None = None  # with workers on other machines: who joined, who was refused
        self.show = (lambda line: None) if args.quiet else self._show

    # -- the steps ---------------------------------------------------------------------------------

    def execute(self) -> int:
        self.raw.mkdir(parents=True, exist_ok=True)
        previous = signal.signal(signal.SIGINT, self._on_interrupt)
        try:
            self.target = self._prepare_target()
            self._run_locust()
            return self._report()
        except RunError:
            if self.locust is None:  # failed before anything ran: leave no empty run folder behind
                shutil.rmtree(self.folder, ignore_errors=True)
                with contextlib.suppress(OSError):
                    self.folder.parent.rmdir()  # the scenario's folder, if this was its only run
            raise
        finally:
            signal.signal(signal.SIGINT, previous)
            if self.locust is not None and self.locust.poll() is None:
                self.locust.kill()
            if self.emulator is not None:
                self.emulator.stop()

    def _on_interrupt(self, signum, frame) -> None:
        if self.interrupted or self.locust is None or self.locust.poll() is not None:
            raise KeyboardInterrupt  # second Ctrl-C, or nothing to stop gracefully: stop now
        self.interrupted = True
        print("\nchatload run: stopping — draining in-flight messages, then writing the report "
              "(Ctrl-C again to abort)", file=sys.stderr)
        self.locust.send_signal(signal.SIGINT)

    def _prepare_target(self) -> Target:
        scenario = self.scenario
        service, target = scenario.service, scenario.target
        if not target.emulated:
            self._confirm_billing()
            if not service.provisions_real_rooms:
                return target
        elif target.kind == KIND_EMULATOR:
            tls = ["--tls"] if scenario.tls else []
            bind = ("--host", scenario.emulator_bind) if scenario.emulator_bind else ()
            try:
                self.emulator = service.start_emulator(*tls, *service.emulator_args(scenario.users), *bind)
            except ChildStartError as exc:
                if not bind:
                    raise
                last = str(exc).strip().splitlines()[-1]
                raise RunError(f"{scenario.file}: target.bind / --emulator-bind {scenario.emulator_bind}: {last}") from None
            if bind:
                print(f"chatload run: NOTE the embedded emulator listens on {scenario.emulator_bind}, not loopback: "
                      f"data plane {self.emulator.messaging_endpoint}, control plane {self.emulator.control_endpoint} "
                      f"(faults included) — anyone who reaches that address can use them", file=sys.stderr)
            elif scenario.workers:
                print("chatload run: WARNING the embedded emulator listens on 127.0.0.1 only: workers on other "
                      "machines cannot reach it (set [target] bind or --emulator-bind)", file=sys.stderr)
        else:
            from ..emulation.client import AdminError, EmulatorAdmin

            try:
                EmulatorAdmin(target.control_endpoint, timeout=5).health()
            except (OSError, AdminError) as exc:
                raise RunError(f"{scenario.file}: target.control_endpoint {target.control_endpoint} does not "
                               f"answer: {exc}") from None
        try:
            return resolve_target(service, target, scenario.rooms, scenario.name, emulator=self.emulator)
        except ServiceError as exc:
            raise RunError(f"{scenario.file}: {exc}") from None

    def _confirm_billing(self) -> None:
        service = self.scenario.service
        note = service.billing_note(*self.scenario.estimated_messages()) if service.bills_messages else None
        if note is None:
            return
        refusal = ask_before_billing(f"chatload run: {self.scenario.name} targets the REAL {service.title} "
                                     f"({', '.join(self.target.rooms)}).", note, self.args.yes)
        if refusal:
            raise RunError(refusal)

    def _room_limits(self) -> dict[str, int]:
        """Each room's rate limit as the service says (GetRoom for IVS Chat), so the rate-limit
        verdicts judge a real room by its own settings."""
        try:
            return self.scenario.service.room_limits(self.target)
        except ServiceError as exc:
            print(f"chatload run: {exc}; rate-limit verdicts are skipped", file=sys.stderr)
            return {}

    def _processes(self) -> int:
        if self.scenario.traffic is not None:
            return 1  # a trace is replayed by one process (harness/locust/replay.py)
        chosen = self.args.processes if self.args.processes is not None else self.scenario.processes
        return chosen or os.cpu_count() or 1

    def _run_locust(self) -> None:
        scenario, target = self.scenario, self.target
        progress = self.raw / "progress.jsonl"
        users = scenario.locust_users  # a listener pool is one Locust user holding many connections
        spawn_rate = users / scenario.ramp_s if scenario.ramp_s > 0 else users
        argv = [sys.executable, "-m", "locust", "-f", str(Path(__file__).with_name("locustfile.py")),
                "--headless", "--only-summary", "-u", str(users), "-r", f"{spawn_rate:.3f}",
                "-t", f"{max(1, round(scenario.duration_s))}s", "--stop-timeout", "0",
                "--chat-target", json.dumps(target.to_dict()), "--chat-transport", scenario.transport,
                "--chat-scenario", scenario.name,
                "--chat-drain", str(scenario.drain_s), "--chat-report-dir", str(self.raw), "--chat-run-name", "locust",
                # A replay's users gauge moves with every trace join and rejoin: no steady part to judge.
                "--chat-health-window", "ramp" if scenario.measures_ramp or scenario.traffic is not None else "steady",
                "--chat-progress-file", str(progress), "--chat-command-file", str(self.raw / "commands.jsonl")]
        if scenario.token_endpoint is not None:
            argv += token_endpoint_args(scenario.token_endpoint)
        if scenario.source_addresses:
            argv += ["--chat-source-addresses", ",".join(scenario.source_addresses)]
        if scenario.metrics_port is not None:
            argv += ["--chat-metrics-port", str(scenario.metrics_port),
                     "--chat-metrics-linger", str(getattr(self.args, "metrics_linger", 15.0))]
        if getattr(self.args, "otlp_endpoint", None):
            argv += ["--chat-otlp-endpoint", self.args.otlp_endpoint]
        argv += self._traffic_arguments()
        processes = self._processes()
        env = dict(os.environ)
        if scenario.workers:
            processes = scenario.workers
            argv += self._master_argv(env)
        elif processes > 1:
            # A port of this run's own for the master and its workers: with Locust's default (5557)
            # two runs on one machine share it, and one master collects the other run's workers.
            port = str(free_tcp_port())
            argv += ["--processes", str(processes), "--master-bind-port", port, "--master-port", port]
        # Locust builds its users from the scenario *as run* (with command-line overrides applied),
        # never from the file again: what the report says ran is what ran.
        as_run = self.raw / "scenario-as-run.json"
        as_run.write_text(json.dumps(scenario.as_run(), indent=1))
        env["CHATLOAD_SCENARIO"] = str(as_run.resolve())
        log = open(self.raw / "locust.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
        print(f"chatload run: {scenario.name}: {users} users ({self._mix()}), {scenario.duration_s:g} s, "
              f"{f'{processes} remote worker(s)' if scenario.workers else f'{processes} process(es)'}, target {target.service} "
              f"{target.kind} {target.endpoint}", file=sys.stderr)
        if not target.tls_verify:
            print(f"chatload run: TLS certificate verification is OFF for the emulator at {target.endpoint} "
                  "([target] tls_verify = false)", file=sys.stderr)
        self.locust = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)  # our Ctrl-C handling decides what it gets
        try:
            self._follow(progress)
        finally:
            log.close()

    def _master_argv(self, env: dict) -> list[str]:
        """Locust's master options for workers on other machines, and the admission secret (in the
        child's environment, never on a command line)."""
        args, workers = self.args, self.scenario.workers
        host, port = getattr(args, "master_bind_host", "0.0.0.0"), getattr(args, "master_bind_port", 5557)
        try:
            env[SECRET_ENV] = read_secret(getattr(args, "secret_file", None))
        except SecretError as exc:
            raise RunError(str(exc)) from None
        if not env[SECRET_ENV] and not is_loopback(host):
            print(f"chatload run: WARNING the master listens on {host}:{port} with no worker secret: ANY process "
                  f"that reaches this port is admitted as a worker and receives the scenario and target. Set "
                  f"{SECRET_ENV} (or --secret-file) here and on every worker.", file=sys.stderr)
        self.roll = WorkerRoll(workers)
        self.command = worker_command(host, port)
        self.workers_wait = getattr(args, "workers_wait", 120.0)
        print(f"chatload run: waiting up to {self.workers_wait:g} s for {workers} worker(s) on {host}:{port}; start "
              f"each with: {self.command}", file=sys.stderr)
        return ["--master", "--master-bind-host", host, "--master-bind-port", str(port),
                "--expect-workers", str(workers), "--expect-workers-max-wait", f"{self.workers_wait:g}"]

    def _traffic_arguments(self) -> list[str]:
        """`[traffic]` as Locust's --chat-trace options; the trace goes to Locust as a chatload trace
        (imported here when the scenario names service records), kept in raw/ beside the results."""
        from ..trace.loading import load_traffic_trace
        from ..trace.reader import write_trace

        scenario, traffic = self.scenario, self.scenario.traffic
        if traffic is None:
            return []
        self.trace = load_traffic_trace(traffic)
        path = write_trace(self.raw / "trace.jsonl", self.trace.events, {"source": traffic.format})
        names = scenario.population_names()
        limit = scenario.service.message_size_limit(scenario.rooms)
        room_limit = scenario.rooms.settings.get("maximum_message_length")
        argv = ["--chat-trace", str(path), "--chat-trace-speed", str(traffic.speed),
                "--chat-trace-audience", str(traffic.audience),
                "--chat-trace-delay", str(scenario.ramp_s if traffic.delay_s is None else traffic.delay_s),
                "--chat-trace-max-size", str(min(x for x in (limit, room_limit) if x) if limit or room_limit else 0)]
        if traffic.rooms:
            argv += ["--chat-trace-rooms", ",".join(f"{room}={index}" for room, index in traffic.rooms.items())]
        for key in ("senders", "listeners"):
            if getattr(traffic, key) is not None:
                argv += [f"--chat-trace-{key}", ",".join(names[i] for i in getattr(traffic, key))]
        return argv

    def _replay_section(self, results: dict) -> dict | None:
        from ..trace.plan import build_plan
        from ..trace.replayreport import replay_section

        traffic = self.scenario.traffic
        if traffic is None or getattr(self, "trace", None) is None:
            return None
        plan = build_plan(self.trace, speed=traffic.speed, room_count=len(self.target.rooms), mapping=traffic.rooms,
                          audience=traffic.audience)
        return replay_section(self.trace, plan, results, trace_file=traffic.trace, audience=traffic.audience)

    def _mix(self) -> str:
        return ", ".join(f"{p.users} {p.kind}{'s' if p.users > 1 else ''}" for p in self.scenario.populations)

    def _follow(self, progress: Path) -> None:
        """Tail Locust's progress lines, play the fault timeline, until Locust exits."""
        pending = list(self.scenario.faults)
        started_at: float | None = None
        offset = 0
        deadline_after_end = self.scenario.duration_s + self.scenario.drain_s + 120 + getattr(self, "workers_wait", 0)
        begun = time.monotonic()
        while True:
            running = self.locust.poll() is None
            lines, offset = _read_new_lines(progress, offset)
            for record in lines:
                if record.get("event") == "start" and started_at is None:
                    started_at = time.monotonic()
                elif record.get("event") == "progress":
                    self.show(self._progress_text(record))
                    self._show_new_failures(record.get("failures") or {})
                elif record.get("event") == "results":
                    self.results_path = Path(record["path"])
                elif record.get("event") == "metrics":
                    self.show(f"  live metrics: http://127.0.0.1:{record['port']}/metrics")
                elif record.get("event") == "worker" and self.roll is not None:
                    print(self.roll.note(record), file=sys.stderr)
            if started_at is not None and not self.interrupted:
                while pending and time.monotonic() - started_at >= pending[0].at_s:
                    self._apply_fault(pending.pop(0), time.monotonic() - started_at)
            if not running:
                if started_at is None and self.roll is not None and len(self.roll.admitted) < self.roll.expected:
                    if self.interrupted:
                        raise RunError(f"interrupted while waiting for workers: {len(self.roll.admitted)} of "
                                       f"{self.roll.expected} had joined")
                    raise RunError(self.roll.missing(self.workers_wait, self.command))
                break
            if time.monotonic() - begun > deadline_after_end + (self.scenario.ramp_s or 0):
                self.locust.kill()
                raise RunError(f"Locust did not finish within {deadline_after_end:.0f} s of its run time; "
                               f"log: {self.raw / 'locust.log'}")
            time.sleep(0.2)
        if not self.args.quiet and sys.stderr.isatty():
            sys.stderr.write("\n")

    def _progress_text(self, p: dict) -> str:
        # A run that sends no message (a join storm, a control-plane churn) has no deliveries/s to show.
        messages = (f"deliveries/s {p['deliveries_per_s']:>8,}  p99 {p['delivery_p99_ms']:8.2f} ms  "
                    if self.scenario.population_names(sending=True) else "")
        # The service's own measures (join, ping, subscribe…) so far, at most three.
        own = "".join(f"  {name} p99 {m['p99_ms']:.2f} ms" for name, m in list((p.get("measures") or {}).items())[:3])
        return (f"  {p['elapsed_s']:6.1f}s  users {p['users']:>6}  connections {p['connections']:>6}  "
                f"{messages}errors {p['errors']:>5}  rejected {p['rejected']:>5}{own}")

    def _show_new_failures(self, failures: dict[str, int]) -> None:
        """Connect and token failures since the last progress line, grouped by cause: a run that
        cannot reach its target says so as it happens, not only in the end."""
        seen = getattr(self, "_failures_seen", {})
        new = {cause: n - seen.get(cause, 0) for cause, n in failures.items() if n > seen.get(cause, 0)}
        self._failures_seen = dict(failures)
        if new:
            causes = ", ".join(f"{cause} ×{n:,}" for cause, n in sorted(new.items(), key=lambda item: -item[1]))
            self.show(f"  failing to connect to {self.target.endpoint}: {causes}")

    def _show(self, line: str) -> None:
        if sys.stderr.isatty():
            sys.stderr.write("\r" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def _apply_fault(self, fault, elapsed_s: float) -> None:
        from ..emulation.client import AdminError, EmulatorAdmin

        admin = EmulatorAdmin(self.target.control_endpoint)
        rooms = list(self.target.rooms)
        params = dict(fault.params)
        if "room" in params:
            params["room"] = rooms[params["room"]]
        record = {"at_s": fault.at_s, "applied_at_s": round(elapsed_s, 3), "applied_at_ns": time.time_ns(),
                  "action": fault.action, **fault.params}
        try:
            if fault.action == "kick":
                # Locust's own processes pick from their connected users and kick them through the
                # control plane, so a kick works against a real room too.
                with open(self.raw / "commands.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps({"action": "kick", **fault.params}) + "\n")
                record["result"] = "requested"
            elif fault.action in _FAULTS:
                record["result"] = _FAULTS[fault.action](admin, params, rooms)
            else:
                record["result"] = self.scenario.service.apply_fault(admin, fault.action, params, rooms)
        except (OSError, AdminError) as exc:
            record["error"] = str(exc)
        self.faults_applied.append(record)
        self.show(f"  fault at {elapsed_s:.1f}s: {fault.action} {fault.params} → {record.get('result', record.get('error'))}")

    def _report(self) -> int:
        from ..gate.rules import evaluate, parse_rule
        from ..report.document import build_report
        from ..report.writing import write_report

        results_path = getattr(self, "results_path", None) or next(iter(sorted(self.raw.glob("*/*/results.json"))), None)
        if results_path is None or not Path(results_path).exists():
            tail = (self.raw / "locust.log").read_text(errors="replace")[-3000:]
            raise RunError(f"Locust ended (exit code {self.locust.returncode}) without results; "
                           f"last lines of {self.raw / 'locust.log'}:\n{tail}")
        results = json.loads(Path(results_path).read_text())
        replay = self._replay_section(results)
        if replay is not None:
            results["replay"] = replay
        results["verdicts"] = derive(results, self._room_limits(), self.faults_applied,
                                     limit_words=self.scenario.service.limit_words(self.target))
        own = self.scenario.service.verdicts(results, self.scenario)
        if own:
            results["verdicts"][self.scenario.service.name] = own
        complete = results.get("complete", False) and not self.interrupted
        reason = "interrupted (Ctrl-C)" if self.interrupted else (
            None if complete else results.get("incomplete_reason") or "a worker did not report")
        thresholds = [parse_rule(rule) for rule in expectations_for(self.scenario)]
        checks = [check.to_dict() if hasattr(check, "to_dict") else dict(check)
                  for check in evaluate(results, thresholds)]
        problems = measured.problems({**results, "complete": complete}, min_connected=self.scenario.min_connected,
                                     min_spawned=self.scenario.min_spawned,
                                     sending_populations=self.scenario.population_names(sending=True))
        report = build_report(results, scenario={"name": self.scenario.name, "file": self.scenario.file,
                                                 "as_run": self.scenario.as_run()},
                              checks=checks, complete=complete, incomplete_reason=reason, faults=self.faults_applied,
                              measured=problems, min_connected=self.scenario.min_connected,
                              min_spawned=self.scenario.min_spawned)
        json_path, html_path = write_report(self.folder, report)
        self._summary(report, json_path, html_path)
        # The gate's decision on this very report: `chatload gate REPORT` exits with the same code.
        return decide(report).exit_code

    def _summary(self, report: dict, json_path: Path, html_path: Path) -> None:
        print(f"\n{self.scenario.name}: {verdict_line(report)}  ({self.target.service} at {self.target.endpoint})")
        for problem in (report.get("measured") or {}).get("problems") or ():
            print(f"  measured nothing: {problem}")
        for line in [*accounting_lines(report), *replay_lines(report), *latency_table(report), *worker_lines(report)]:
            print(f"  {line}")
        for check in report.get("checks", []):
            print(f"  {check_line(check)}")
        if (warning := health_warning(report.get("health") or {})) is not None:
            print(f"  WARNING: {warning}")
        print(f"  report: {html_path}\n          {json_path}")


def free_tcp_port() -> int:
    """A TCP port nothing listens on now (the kernel's choice), for a child to bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _read_new_lines(path: Path, offset: int) -> tuple[list[dict], int]:
    try:
        with open(path, encoding="utf-8") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    complete, _, _partial = data.rpartition("\n")
    if not complete:
        return [], offset
    records = []
    for line in complete.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records, offset + len(complete.encode()) + 1


def _selection(params: dict, room_ids: list[str]) -> dict:
    return {k: params[k] for k in ("room", "users", "fraction", "seed") if k in params}


_FAULTS = {
    "drop": lambda a, p, rooms: len(a.drop(mode=p.get("mode", "abrupt"), code=p.get("code"), **_selection(p, rooms))),
    "expire": lambda a, p, rooms: len(a.expire(**_selection(p, rooms))),
    "delay": lambda a, p, rooms: a.delay(p["delay_ms"], p.get("jitter_ms", 0), room=p.get("room")),
    "pause": lambda a, p, rooms: [a.pause(room, p.get("mode", "drop")) for room in ([p["room"]] if "room" in p else rooms)],
    "resume": lambda a, p, rooms: sum(a.resume(room) for room in ([p["room"]] if "room" in p else rooms)),
    "restart": lambda a, p, rooms: a.restart(p.get("downtime_ms", 0), p.get("mode", "abrupt")),
}
