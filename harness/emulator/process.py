"""Run the emulator as a child process and learn its endpoints.

The child is `python -m harness.emulator --json …`: it binds (port 0 = free ports) and prints exactly
one JSON line with its endpoints; see `harness.childproc` for how children start, stop and never
outlive their parent.
"""

from __future__ import annotations

from ..childproc import ChildStartError, JsonChildProcess
from .client import EmulatorAdmin


class EmulatorStartError(ChildStartError):
    pass


class EmulatorProcess(JsonChildProcess):
    error = EmulatorStartError

    def __init__(self, *extra_args: str, host: str = "127.0.0.1", startup_timeout: float = 20.0) -> None:
        super().__init__("harness.emulator", "--json", "--host", host, "--port", "0", "--control-port", "0",
                         *extra_args, startup_timeout=startup_timeout, name="emulator")

    @property
    def messaging_endpoint(self) -> str:
        return self.info["messaging_endpoint"]

    @property
    def control_endpoint(self) -> str:
        return self.info["control_endpoint"]

    @property
    def region(self) -> str:
        return self.info["region"]

    @property
    def admin(self) -> EmulatorAdmin:
        return EmulatorAdmin(self.control_endpoint)

    def boto3_client(self, **config):
        """A real boto3 `ivschat` client aimed at this emulator (credentials are not checked)."""
        from ..ivschat_client import ivschat_client

        return ivschat_client(self.region, self.control_endpoint, **config)
