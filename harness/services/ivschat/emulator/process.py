"""The IVS Chat emulator as a child process, with a real boto3 client aimed at it."""

from __future__ import annotations

from ....emulation.process import EmulatorProcess as _EmulatorProcess


class EmulatorProcess(_EmulatorProcess):
    service = "ivschat"

    def boto3_client(self, **config):
        """A real boto3 `ivschat` client aimed at this emulator (credentials are not checked)."""
        from ..boto import ivschat_client

        return ivschat_client(self.region, self.control_endpoint, **config)
