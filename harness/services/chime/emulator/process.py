"""The Chime emulator as a child process, with a real boto3 client aimed at it."""

from __future__ import annotations

from ....emulation.process import EmulatorProcess as _EmulatorProcess


class EmulatorProcess(_EmulatorProcess):
    service = "chime"

    def boto3_client(self, **options):
        """A real boto3 `chime-sdk-meetings` client aimed at this emulator (credentials are not checked)."""
        from ..provision import meetings_client

        return meetings_client(self.region, self.control_endpoint, **options)
