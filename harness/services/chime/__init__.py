"""Amazon Chime SDK meetings: real-time data messages over the meeting's signaling WebSocket.

A meeting (the fan-out scope, a "room" to the harness) is made through the `chime-sdk-meetings`
control plane (boto3; `provision.py`), which returns each attendee's JoinToken and the meeting's
`MediaPlacement.SignalingUrl`. A client opens that URL (plus the SDK's query parameters) with the
subprotocols `_aws_wt_session` and the join token, sends JOIN, gets JOIN_ACK and INDEX, and then
sends and receives DATA_MESSAGE frames: binary WebSocket frames of one type byte `0x05` and a
protobuf `SdkSignalFrame` (`signaling.proto`, `codec.py`). The server stamps each accepted message
with its ingest time (ns) and the sender's AttendeeId and ExternalUserId and sends it to every
other attendee; the sender gets nothing back unless the message was throttled (then it comes
back with ingest_time_ns = 0). Messages sent with a lifetime are replayed to attendees who join
later. Spec: shared/spec/chime.md.

Judged by the official client: the emulator's wire format is tested against amazon-chime-sdk-js
3.32.0's `DefaultSignalingClient` running in Node (tests/test_chime_sdk.py).

Inferred, not confirmed against the real service (emulator choices; each is documented where it
is made):
- the sender does not receive its own accepted messages;
- the soft and hard per-attendee limits are token buckets, counted per attendee across its
  connections; a throttled message comes back with the sender's ids set;
- close codes 4400 (unreadable frame, when the client asked X-Amzn-Chime-Send-Close-On-Error=1),
  4403 (join token rejected, after ERROR 403), 4429 (hard limit, after ERROR 429), 4401 (the
  emulator's session expiry fault, after ERROR 401: terminal to the SDK, a SignalingBadRequest),
  following the service's 4000 + HTTP status
  pattern of 4410 and 45xx;
- error frames travel in an SdkSignalFrame of type AUDIO_STATUS; DeleteMeeting sends AUDIO_STATUS
  410, DeleteAttendee AUDIO_STATUS 411 to that attendee, both then close 4410;
- invalid data messages (topic, size) and frames out of turn get ERROR 400 and the connection stays;
  frames the SDK may send but a data-only emulator does not serve (SUBSCRIBE, CLIENT_METRIC, …) are
  ignored;
- replay goes to an attendee's first join and, on a comeback, covers only what it was not sent;
- LimitExceededException past 250 attendees (or MeetingFeatures.Attendee.MaxCount), per attendee
  in batch operations; the control-plane throttle is one bucket per operation;
- the X-Chime-Control-Protocol-Version=3 query parameter and the two subprotocols are required
  (HTTP 400 otherwise), the path must be /control/<MeetingId> of the token's meeting.
"""
