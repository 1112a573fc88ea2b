"""The published IVS Chat control-plane quotas (transactions per second, per account and region).

The control plane throttles with the shared `harness.emulation.throttle.OperationThrottle` (a token
bucket per operation holding one second's worth; see there) when the emulator runs with
`--throttle`; past a quota it answers 429 ThrottlingException.
"""

from __future__ import annotations

ROOM_OPERATIONS_TPS = 5
TAG_OPERATIONS_TPS = 10  # emulator choice: the service publishes no quota for the tag operations

DEFAULT_TPS: dict[str, float] = {
    "CreateChatToken": 200,
    "SendEvent": 100,
    "DeleteMessage": 100,
    "DisconnectUser": 100,
    **dict.fromkeys(["CreateRoom", "GetRoom", "UpdateRoom", "DeleteRoom", "ListRooms"], ROOM_OPERATIONS_TPS),
    **dict.fromkeys(["TagResource", "UntagResource", "ListTagsForResource"], TAG_OPERATIONS_TPS),
}
