"""Amazon IVS Real-Time stages (`shared/spec/ivs-realtime.md`): phase 1, the emulator side.

A stage is the harness's "room". Participants get ES384 JWT participant tokens from the
`ivs-realtime` control plane (CreateParticipantToken) or sign their own (a public key imported into
the service), then join over the events WebSocket: `events_url?error_over_ws=1&topic=<stage
id>/publishers&traceid=<id>` with the raw token as the only subprotocol. The server answers with
`STAGE_STATE` frames (`{type, payload}` JSON) carrying the roster and a rising `sequenceNumber` on
every change, `PONG` to `PING`, `aws:ivs:JOIN_ERROR` when a join is refused and
`aws:ivs:DISCONNECT` when a participant is removed; both are followed by a close. Media (WHIP,
WebRTC) is out of scope: the emulator's WHIP endpoint decides only who publishes (a publish takes one
of the 12 slots or is refused 403 with the service's code 2005, as SDK 1.41.0 reads it) and answers
501 to everything else.

Modules: `codec` (frames, both ends), `tokens` (claims, signing, verifying), `boto` (boto3 clients,
CreateParticipantToken without retries), `emulator/`.

Inferred, not confirmed against the real service (each is an emulator choice, documented where it
is made): the events socket's frame shapes come from the minified web broadcast SDK 1.41.0, not a
published contract; the JOIN_ERROR codes STAGE_AT_CAPACITY (the subscriber cap) and TOKEN_REUSED
(the non-default reuse modes), which SDK 1.41.0 does not read; a held publisher slot for a publish
answered 501 (no media); that a socket without media
counts toward the 12-publisher and 10,000-subscriber caps; the roster listing subscribers too; the
`serverTimeNs` timestamp in STAGE_STATE (an emulator extension); HTTP statuses for refused joins
without `error_over_ws`; the 429 ThrottlingException shape (the model has none); one session per
stage for its life; token expiry checked at join only.
"""
