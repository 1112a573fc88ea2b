"""Local source addresses in turn (`--chat-source-addresses`, `[run] source_addresses`): what lets one
generator hold more connections to one endpoint than one address has ephemeral ports (~28k on Linux).

The end-to-end test shrinks the port range instead of opening 28k connections: inside a network
namespace of its own (the range is per namespace) it allows 100 ephemeral ports, then asks a listener
pool for 150 connections to the embedded emulator — from one address (some must fail: the ports run
out) and from two in turn (all must open)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness.net.source_addresses import parse_source_addresses
from harness.scenario.reader import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 150
PORTS = (40000, 40099)  # 100 ephemeral ports per (source, server address, server port)


def test_addresses_are_read_and_a_bad_one_is_named():
    assert parse_source_addresses("127.0.0.1, 127.0.0.2") == ("127.0.0.1", "127.0.0.2")
    assert parse_source_addresses(["::1"]) == ("::1",)
    assert parse_source_addresses("") == () == parse_source_addresses(None)
    with pytest.raises(ValueError, match="'localhost' is not an IP address"):
        parse_source_addresses("127.0.0.1,localhost")


def test_a_scenario_names_the_key_of_a_bad_address(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[scenario]\nduration = "10s"\nramp = "1s"\n[run]\nsource_addresses = ["127.0.0.2", "nope"]\n'
                    '[[population]]\nkind = "viewer"\nusers = 2\n')
    with pytest.raises(ScenarioError, match=r"source_addresses.*'nope' is not an IP address"):
        load_scenario(path)
    path.write_text('[scenario]\nduration = "10s"\nramp = "1s"\n[run]\nsource_addresses = ["127.0.0.2", "127.0.0.3"]\n'
                    '[[population]]\nkind = "viewer"\nusers = 2\n')
    assert load_scenario(path).source_addresses == ("127.0.0.2", "127.0.0.3")


class Namespace:
    """A network namespace with loopback up and a narrow ephemeral port range; removed on exit."""

    def __init__(self) -> None:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            pytest.skip("network namespaces need root and iproute2's `ip`")
        self.name = f"clsrc{uuid.uuid4().hex[:6]}"

    def run(self, *argv: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], **kwargs)

    def __enter__(self) -> Namespace:
        subprocess.run(["ip", "netns", "add", self.name], check=True, timeout=10)
        try:
            subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True, timeout=10)
            self.run("sysctl", "-qw", f"net.ipv4.ip_local_port_range={PORTS[0]} {PORTS[1]}", check=True, timeout=10)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["ip", "netns", "del", self.name], timeout=10)


def _pool_run(namespace: Namespace, report_dir: Path, *extra: str) -> dict:
    proc = namespace.run(
        sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "ivschat_pools.py"), "--headless",
        "--only-summary", "-u", "1", "-r", "1", "-t", "6s", "--chat-drain", "1",
        "--chat-connections-per-user", str(CONNECTIONS), "--chat-report-dir", str(report_dir), *extra,
        "ViewerPool", cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))})
    paths = sorted(report_dir.glob("*/*/results.json"))
    assert paths, proc.stderr[-3000:]
    return json.loads(paths[-1].read_text())


def _opened(results: dict) -> int:
    """Connections that opened: first connects (a pool's sessions each connect once when nothing drops)."""
    return results["latency_us"]["connect"]["count"]


def test_two_source_addresses_open_what_one_address_has_no_ports_for(tmp_path):
    with Namespace() as namespace:
        one = _pool_run(namespace, tmp_path / "one")
        two = _pool_run(namespace, tmp_path / "two", "--chat-source-addresses", "127.0.0.2,127.0.0.3")
    failures = {k: v for k, v in one["counters"].items() if k.startswith("connect_failures")}
    assert _opened(one) < CONNECTIONS and failures, (_opened(one), failures)
    assert _opened(two) == CONNECTIONS, (_opened(two), {k: v for k, v in two["counters"].items()
                                                         if k.startswith("connect_failures")})


def test_locust_stops_at_start_naming_a_bad_source_address(tmp_path):
    """A plain `locust -f` run: the option is checked in init, before an emulator starts or a user spawns."""
    proc = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "ivschat.py"),
                           "--headless", "-u", "1", "-r", "1", "-t", "2s", "--chat-report-dir", str(tmp_path),
                           "--chat-source-addresses", "127.0.0.2,bogus"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--chat-source-addresses: 'bogus' is not an IP address" in proc.stderr, proc.stderr[-2000:]
