"""The IVS Real-Time emulator as a child process, with real boto3 clients aimed at it."""

from __future__ import annotations

from ....emulation.process import EmulatorProcess as _EmulatorProcess


class EmulatorProcess(_EmulatorProcess):
    service = "ivsrealtime"

    def boto3_client(self, **options):
        """A real boto3 `ivs-realtime` client aimed at this emulator (credentials are not checked)."""
        from ..boto import ivsrealtime_client

        return ivsrealtime_client(self.region, self.control_endpoint, **options)

    def no_retry_client(self, **options):
        """The same, with botocore retries off: every 429 is raised, none retried away."""
        from ..boto import no_retry_client

        return no_retry_client(self.region, self.control_endpoint, **options)
