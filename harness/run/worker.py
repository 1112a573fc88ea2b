"""Workers on other machines: `chatload worker --master HOST:PORT`, and what `chatload run --workers N`
needs to wait for them.

A worker machine needs nothing but the package: the scenario and its target come from the master
(`harness.locust.admission`), its Locust is the package's own `harness/run/locustfile.py`, and
its admission is the shared secret in CHATLOAD_WORKER_SECRET (or `--secret-file`).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from pathlib import Path

from ..distributed.environment import MASTER_ENV, SECRET_ENV

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
DEFAULT_MASTER_PORT = 5557  # Locust's

DESCRIPTION = f"""\
Start a Locust worker for a `chatload run SCENARIO --workers N` on another machine. The scenario and
its target come from the master; this machine needs only the chatload package. The master admits
the worker when both have the same secret ({SECRET_ENV}, or --secret-file); without one the master
admits any worker that reaches its port. Exit codes: Locust's; 2 when the master refuses this worker
or never answers."""


class SecretError(Exception):
    pass


def read_secret(path: str | None) -> str:
    """The shared secret: the file's first line, else CHATLOAD_WORKER_SECRET, else '' (none)."""
    if not path:
        return os.environ.get(SECRET_ENV, "")
    try:
        secret = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretError(f"{path}: cannot read the worker secret: {exc.strerror}") from None
    if not secret:
        raise SecretError(f"{path}: the worker secret file is empty")
    return secret


def split_master(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--master {text!r}: give HOST:PORT, e.g. 10.0.0.5:{DEFAULT_MASTER_PORT}")
    return host.strip("[]"), int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", required=True, metavar="HOST:PORT",
                        help="the master of `chatload run --workers N --master-bind-host HOST --master-bind-port PORT`")
    parser.add_argument("--secret-file", metavar="FILE",
                        help=f"file holding the shared worker secret (default: ${SECRET_ENV})")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="worker processes on this machine, each one of the master's --workers (-1: one per "
                             "core; default %(default)s): one Python process drives about one core")
    parser.add_argument("--wait", type=float, default=300.0, metavar="S",
                        help="seconds to wait for the master to answer (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    try:
        host, port = split_master(args.master)
        secret = read_secret(args.secret_file)
        if args.processes == 0 or args.processes < -1:
            raise ValueError(f"--processes {args.processes}: give 1 or more, or -1 for one per core")
    except (ValueError, SecretError) as exc:
        print(f"chatload worker: {exc}", file=sys.stderr)
        return 2
    env = dict(os.environ, **{MASTER_ENV: f"{host}:{port}", SECRET_ENV: secret,
                              "CHATLOAD_MASTER_WAIT": str(args.wait)})
    env.pop("CHATLOAD_SCENARIO", None)  # never a local scenario: the master's
    print(f"chatload worker: joining the master at {host}:{port}"
          + ("" if secret else f" (no {SECRET_ENV}: only a master without a secret admits this worker)"),
          file=sys.stderr)
    # Locust itself, in place of this process: its pid, its signals, its exit code. With --processes it
    # forks its workers after importing the locustfile: the scenario is asked for once per machine.
    os.execve(sys.executable, [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
                               "--master-host", host, "--master-port", str(port),
                               *(["--processes", str(args.processes)] if args.processes != 1 else [])], env)
    return 2  # not reached


# -- the master's side, for `chatload run` -------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def worker_command(bind_host: str, port: int) -> str:
    shown = socket.gethostname() if bind_host in ("0.0.0.0", "*", "::", "") else bind_host
    return f"chatload worker --master {shown}:{port}"


class WorkerRoll:
    """The workers a waiting master has admitted and refused, from its progress lines."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.admitted: list[dict] = []
        self.refused: list[dict] = []

    def note(self, record: dict) -> str:
        """Take one `worker` progress line; returns the line to show."""
        if record.get("admitted"):
            self.admitted.append(record)
            return (f"  worker {len(self.admitted)}/{self.expected} joined: {record.get('host')} "
                    f"({record.get('cpus')} CPUs)")
        self.refused.append(record)
        return f"  REFUSED a worker from {record.get('host') or 'an unknown host'}: {record.get('reason')}"

    def missing(self, waited_s: float, command: str) -> str:
        """Why the run never started: who came, who was refused, how many are missing."""
        came = ", ".join(f"{w.get('host')} ({w.get('cpus')} CPUs)" for w in self.admitted) or "none"
        text = (f"waited {waited_s:g} s for {self.expected} worker(s); {len(self.admitted)} joined ({came}), "
                f"{self.expected - len(self.admitted)} missing")
        if self.refused:
            text += "; refused: " + ", ".join(f"{w.get('host') or w.get('id')} ({w.get('reason')})"
                                              for w in self.refused)
        return f"{text}. Start each worker with `{command}` (same {SECRET_ENV}), or lower --workers"
