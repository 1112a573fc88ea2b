"""The benchmarks that run on an IVS Chat emulator room, with their rig and baselines.

Every figure here is chatload (or the IVS Chat emulator) against a bare client or server measured in
the same run. They are IVS Chat's, not every service's, because the baselines must speak the
service too: the bare clients authenticate with the chat token as the subprotocol and time a message
from `Attributes["cl.t"]` of IVS Chat's MESSAGE frame, the sender writes SEND_MESSAGE and matches
echoes by RequestId, and rooms and tokens come from CreateRoom / CreateChatToken. The service
contract (`harness/services/base.py`) gives chatload's side of any service, not a bare client's.
"""
