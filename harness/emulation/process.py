"""Run a service's emulator as a child process and learn its endpoints.

The child is `python -m harness.emulation --service NAME --json …`: it binds (port 0 = free ports)
and prints exactly one JSON line with its endpoints (and `ca_file` with `--tls`); see `harness.emulation.childproc` for how children start,
stop and never outlive their parent. Every emulator has a data plane (`messaging_endpoint`) and an
HTTP control plane that also serves the shared fault routes and `/metrics` (`control_endpoint`).
"""

from __future__ import annotations

from .childproc import ChildStartError, JsonChildProcess
from .client import EmulatorAdmin


class EmulatorStartError(ChildStartError):
    pass


class EmulatorProcess(JsonChildProcess):
    error = EmulatorStartError
    service = "ivschat"  # subclasses name theirs

    def __init__(self, *extra_args: str, host: str = "127.0.0.1", startup_timeout: float = 20.0,
                 service: str | None = None) -> None:
        self.service = service or self.service
        super().__init__("harness.emulation", "--service", self.service, "--json", "--host", host, "--port", "0",
                         "--control-port", "0", *extra_args, startup_timeout=startup_timeout,
                         name=f"{self.service} emulator")

    def start(self):
        super().start()
        if self.ca_file:  # --tls: this process's control-plane clients trust the run's CA
            from ..net.tls import trust

            trust(self.ca_file, self.control_endpoint)
        return self

    @property
    def ca_file(self) -> str:
        """The CA file of an emulator started with --tls ("" without)."""
        return self.info.get("ca_file", "")

    @property
    def messaging_endpoint(self) -> str:
        return self.info["messaging_endpoint"]

    @property
    def control_endpoint(self) -> str:
        return self.info["control_endpoint"]

    @property
    def region(self) -> str:
        return self.info.get("region", "us-east-1")

    @property
    def admin(self) -> EmulatorAdmin:
        return EmulatorAdmin(self.control_endpoint)
