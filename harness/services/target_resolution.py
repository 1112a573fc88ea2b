"""Resolving a run's target, once, in the process that owns the run (`chatload run`'s runner, or a
plain Locust run's local runner or master): an emulator started for the run gives the endpoints,
region and CA; this process trusts the target's CA; the service makes the rooms the target does not
name. Every other process gets the resolved `Target` as JSON and only trusts it (`tls.trust_target`).

Here, below both of its callers, so that the runner need not import Locust (whose import patches the
standard library with gevent's) and the Locust plugin need not import the runner.
"""

from __future__ import annotations

from ..net.tls import ca_pem_of, trust_target
from .base import ChatService, RoomSettings, Target


def on_emulator(target: Target, emulator) -> Target:
    """`target` pointed at an emulator started for the run (an `EmulatorProcess`): its endpoints, its
    region and its CA, the PEM text too (a worker on another machine has no file at this path)."""
    return Target(**{**target.to_dict(), "endpoint": emulator.messaging_endpoint,
                     "control_endpoint": emulator.control_endpoint, "region": emulator.region,
                     "ca_file": emulator.ca_file, "ca_pem": ca_pem_of(emulator.ca_file)})


def resolve_target(service: ChatService, target: Target, rooms: RoomSettings | None, name: str, *,
                   emulator=None) -> Target:
    """The target the run's users connect to: on `emulator` when one was started for the run, trusted
    by this process (provisioning reaches an https:// control plane through the target's CA), with
    `rooms` provisioned under `name` (None: the rooms are used as the target names them). Raises
    `ServiceError` when the service cannot provision."""
    if emulator is not None:
        target = on_emulator(target, emulator)
    trust_target(target)
    return target if rooms is None else service.provision(target, rooms, name)
