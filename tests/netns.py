"""Test hosts in network namespaces: each "host" is a namespace of its own with one veth into a
bridge that lives in a hub namespace, on a /24 this module picks. Nothing crosses the root
namespace or loopback between hosts; everything is removed on exit (processes first, then the
namespaces, which takes their veths with them)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import uuid


class NamespaceUnavailable(RuntimeError):
    pass


def _ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        raise NamespaceUnavailable(f"`{' '.join(argv)}` failed: {proc.stderr.strip()}")


class Hosts:
    """`with Hosts("emu", "master", "w1", "w2") as hosts:` then `hosts.address("emu")` and
    `hosts.popen("w1", argv, ...)`."""

    def __init__(self, *names: str) -> None:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise NamespaceUnavailable("network namespaces need root and iproute2's `ip`")
        tag = uuid.uuid4().hex[:6]
        self.tag = tag
        self.hub = f"clhub{tag}"
        self.namespaces = {name: f"cl{name}{tag}" for name in names}
        subnet = 100 + int(tag[:2], 16) % 100  # 10.<subnet>.0.0/24, different for concurrent runs
        self.addresses = {name: f"10.{subnet}.0.{index + 1}" for index, name in enumerate(names)}
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> Hosts:
        try:
            _ip("netns", "add", self.hub)
            _ip("link", "add", "br0", "type", "bridge", netns=self.hub)
            _ip("link", "set", "br0", "up", netns=self.hub)
            for index, (name, ns) in enumerate(self.namespaces.items()):
                _ip("netns", "add", ns)
                _ip("link", "set", "lo", "up", netns=ns)
                host_end, hub_end = f"v{index}{self.tag}h", f"v{index}{self.tag}b"
                _ip("link", "add", host_end, "netns", ns, "type", "veth", "peer", "name", hub_end,
                    "netns", self.hub)
                _ip("link", "set", hub_end, "master", "br0", netns=self.hub)
                _ip("link", "set", hub_end, "up", netns=self.hub)
                _ip("addr", "add", f"{self.addresses[name]}/24", "dev", host_end, netns=ns)
                _ip("link", "set", host_end, "up", netns=ns)
        except NamespaceUnavailable:
            self.__exit__(None, None, None)
            raise
        return self

    def address(self, name: str) -> str:
        return self.addresses[name]

    def popen(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
        """Run `argv` inside host `name` (`ip netns exec` execs it: the Popen's pid is the program's)."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.namespaces[name], *argv], start_new_session=True,
                                **kwargs)
        self.processes.append(proc)
        return proc

    def __exit__(self, *exc) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGCONT)  # a paused one must be able to die
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        for ns in [*self.namespaces.values(), self.hub]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
