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

from . import measured
from .gate.rules import format_value
from .net.transport import TRANSPORTS
from .report.console import accounting_lines, latency_table, verdict_line
from .scenario import Scenario, ScenarioError, expectations_for, load_scenario
from .services.base import KIND_EMULATOR, ServiceError, Target
from .verdicts import derive

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
REPO_ROOT = Path(__file__).resolve().parent.parent

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
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve live Prometheus /metrics on PORT while the run goes (0: a free port); "
                             "overrides [run] metrics_port (docs/live-metrics.md)")
    parser.add_argument("--metrics-linger", type=float, default=15.0, metavar="S",
                        help="seconds /metrics stays up after the run, for the last scrape (default %(default)s)")
    parser.add_argument("--otlp-endpoint", metavar="URL",
                        help="also push the live metrics to an OpenTelemetry collector (OTLP/HTTP), e.g. "
                             "http://collector:4318/v1/metrics (needs chatload[otel])")
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
            self.emulator = service.start_emulator(*service.emulator_args(scenario.users))
            target = Target(**{**target.to_dict(), "endpoint": self.emulator.messaging_endpoint,
                               "control_endpoint": self.emulator.control_endpoint, "region": self.emulator.region})
        else:
            from .emulation.client import AdminError, EmulatorAdmin

            try:
                EmulatorAdmin(target.control_endpoint, timeout=5).health()
            except (OSError, AdminError) as exc:
                raise RunError(f"{scenario.file}: target.control_endpoint {target.control_endpoint} does not "
                               f"answer: {exc}") from None
        try:
            return service.provision(target, scenario.rooms, scenario.name)
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
        chosen = self.args.processes if self.args.processes is not None else self.scenario.processes
        return chosen or os.cpu_count() or 1

    def _run_locust(self) -> None:
        scenario, target = self.scenario, self.target
        progress = self.raw / "progress.jsonl"
        users = scenario.locust_users  # a listener pool is one Locust user holding many connections
        spawn_rate = users / scenario.ramp_s if scenario.ramp_s > 0 else users
        argv = [sys.executable, "-m", "locust", "-f", str(Path(__file__).with_name("scenario_locustfile.py")),
                "--headless", "--only-summary", "-u", str(users), "-r", f"{spawn_rate:.3f}",
                "-t", f"{max(1, round(scenario.duration_s))}s", "--stop-timeout", "0",
                "--chat-target", json.dumps(target.to_dict()), "--chat-transport", scenario.transport,
                "--chat-scenario", scenario.name,
                "--chat-drain", str(scenario.drain_s), "--chat-report-dir", str(self.raw), "--chat-run-name", "locust",
                "--chat-progress-file", str(progress), "--chat-command-file", str(self.raw / "commands.jsonl")]
        if scenario.metrics_port is not None:
            argv += ["--chat-metrics-port", str(scenario.metrics_port),
                     "--chat-metrics-linger", str(getattr(self.args, "metrics_linger", 15.0))]
        if getattr(self.args, "otlp_endpoint", None):
            argv += ["--chat-otlp-endpoint", self.args.otlp_endpoint]
        processes = self._processes()
        if processes > 1:
            # A port of this run's own for the master and its workers: with Locust's default (5557)
            # two runs on one machine share it, and one master collects the other run's workers.
            port = str(free_tcp_port())
            argv += ["--processes", str(processes), "--master-bind-port", port, "--master-port", port]
        # Locust builds its users from the scenario *as run* (with command-line overrides applied),
        # never from the file again: what the report says ran is what ran.
        as_run = self.raw / "scenario-as-run.json"
        as_run.write_text(json.dumps(scenario.as_run(), indent=1))
        env = dict(os.environ, CHATLOAD_SCENARIO=str(as_run.resolve()))
        log = open(self.raw / "locust.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
        print(f"chatload run: {scenario.name}: {users} users ({self._mix()}), {scenario.duration_s:g} s, "
              f"{processes} process(es), target {target.service} {target.kind} {target.endpoint}", file=sys.stderr)
        self.locust = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)  # our Ctrl-C handling decides what it gets
        try:
            self._follow(progress)
        finally:
            log.close()

    def _mix(self) -> str:
        return ", ".join(f"{p.users} {p.kind}{'s' if p.users > 1 else ''}" for p in self.scenario.populations)

    def _follow(self, progress: Path) -> None:
        """Tail Locust's progress lines, play the fault timeline, until Locust exits."""
        pending = list(self.scenario.faults)
        started_at: float | None = None
        offset = 0
        deadline_after_end = self.scenario.duration_s + self.scenario.drain_s + 120
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
            if started_at is not None and not self.interrupted:
                while pending and time.monotonic() - started_at >= pending[0].at_s:
                    self._apply_fault(pending.pop(0), time.monotonic() - started_at)
            if not running:
                break
            if time.monotonic() - begun > deadline_after_end + (self.scenario.ramp_s or 0):
                self.locust.kill()
                raise RunError(f"Locust did not finish within {deadline_after_end:.0f} s of its run time; "
                               f"log: {self.raw / 'locust.log'}")
            time.sleep(0.2)
        if not self.args.quiet and sys.stderr.isatty():
            sys.stderr.write("\n")

    def _progress_text(self, p: dict) -> str:
        return (f"  {p['elapsed_s']:6.1f}s  users {p['users']:>6}  connections {p['connections']:>6}  "
                f"deliveries/s {p['deliveries_per_s']:>8,}  p99 {p['delivery_p99_ms']:8.2f} ms  "
                f"errors {p['errors']:>5}  rejected {p['rejected']:>5}")

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
        from .emulation.client import AdminError, EmulatorAdmin

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
        from .gate.rules import evaluate, parse_rule
        from .report.document import build_report, write_report

        results_path = getattr(self, "results_path", None) or next(iter(sorted(self.raw.glob("*/*/results.json"))), None)
        if results_path is None or not Path(results_path).exists():
            tail = (self.raw / "locust.log").read_text(errors="replace")[-3000:]
            raise RunError(f"Locust ended (exit code {self.locust.returncode}) without results; "
                           f"last lines of {self.raw / 'locust.log'}:\n{tail}")
        results = json.loads(Path(results_path).read_text())
        results["verdicts"] = derive(results, self._room_limits(), self.faults_applied)
        own = self.scenario.service.verdicts(results, self.scenario)
        if own:
            results["verdicts"][self.scenario.service.name] = own
        complete = results.get("complete", False) and not self.interrupted
        reason = "interrupted (Ctrl-C)" if self.interrupted else (
            None if complete else results.get("incomplete_reason") or "a worker did not report")
        thresholds = [parse_rule(rule) for rule in expectations_for(self.scenario)]
        checks = [check.to_dict() if hasattr(check, "to_dict") else dict(check)
                  for check in evaluate(results, thresholds)]
        problems = measured.problems(results, min_connected=self.scenario.min_connected,
                                     sending_populations=self.scenario.population_names(sending=True))
        report = build_report(results, scenario={"name": self.scenario.name, "file": self.scenario.file,
                                                 "as_run": self.scenario.as_run()},
                              checks=checks, complete=complete, incomplete_reason=reason, faults=self.faults_applied,
                              measured=problems, min_connected=self.scenario.min_connected)
        json_path, html_path = write_report(self.folder, report)
        self._summary(report, json_path, html_path)
        if report["verdict"] == "error":
            return EXIT_ERROR
        if report["verdict"] == "fail" or not complete:
            return EXIT_FAIL
        return EXIT_PASS

    def _summary(self, report: dict, json_path: Path, html_path: Path) -> None:
        print(f"\n{self.scenario.name}: {verdict_line(report)}")
        for problem in (report.get("measured") or {}).get("problems") or ():
            print(f"  measured nothing: {problem}")
        for line in [*accounting_lines(report), *latency_table(report)]:
            print(f"  {line}")
        for check in report.get("checks", []):
            observed = format_value(check.get("observed"), check.get("unit") or "")
            print(f"  [{check['verdict'].upper():5}] {check['rule']}  (observed {observed})")
        if report.get("health", {}).get("saturated"):
            print("  WARNING: the harness itself saturated; latency includes harness queueing: "
                  + "; ".join(report["health"]["reasons"]))
        print(f"  report: {html_path}\n          {json_path}")


def ask_before_billing(subject: str, note: str, yes: bool) -> str | None:
    """Say what a real service will bill (`note`, the service's own words) and ask, unless `yes`.
    Returns why not to go ahead, or None to go ahead."""
    print(f"{subject}\n  {note}", file=sys.stderr)
    if yes:
        return None
    if not sys.stdin.isatty():
        return "refusing to send to a real service without confirmation: pass --yes"
    if input("  Go ahead? [y/N] ").strip().lower() not in ("y", "yes"):
        return "cancelled; nothing was sent"
    return None


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
