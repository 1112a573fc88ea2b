"""Hotsock: serverless WebSocket pub/sub deployed into the customer's own AWS account (API Gateway
WebSocket, Lambda, SQS FIFO, DynamoDB). Channels are the fan-out scope (the harness's "room").

Wire format (`codec.py`, spec `shared/spec/hotsock.md`): JSON text frames over
`wss://…/v1?token=<JWT>`. The customer's backend signs the JWTs (`tokens.py`); their `channels`
claim says who may subscribe, publish, broadcast and echo (`claims.py`). The server opens with
`hotsock.connected`; clients send `hotsock.subscribe` / `hotsock.unsubscribe`, messages
`{channel, event, data}`, `hotsock.ping` / `hotsock.heartbeat`; subscribers receive
`{id, event, channel, data[, meta]}` with a ULID id (monotonic per channel; `meta` {uid, umd} only
on client-originated messages), presence events on `presence.*` channels, and `hotsock.error`
frames `{channel, error: {code, message}}`. The backend publishes with `POST /publish` and a
40-character bearer key.

The official client, `@hotsock/hotsock-js`, is not served by the npm registry reachable here; a
copy of v1.4.0 beside the project (`../shared/vendor/hotsock-js`) judges the emulator and the
`hotsock-js` reconnect policy in `tests/test_hotsock_js.py`. Inferred behaviours — emulator choices, marked [unv] or absent in the spec — each named where it is
implemented:
- Handshake: a bad token gets HTTP 401 (never 403) with nothing else; a path other than `/v1` 404.
- Error codes beyond the six documented ones: INVALID_FRAME, INVALID_CHANNEL, INVALID_EVENT,
  DATA_TOO_LARGE, PUBLISH_PERMISSION_DENIED, UNSUPPORTED_EVENT, INVALID_UMD_TOKEN,
  UMD_UPDATE_PERMISSION_DENIED (`codec.py`); every error carries a `message` and a `channel`
  (null when the frame named none). Errors never close the connection; binary frames get
  INVALID_FRAME; a message over 128 KiB (API Gateway's limit) closes it 1009.
- `#regex:` keys use Python `re` for Go `regexp`, unanchored as Go's MatchString; `*` matches any
  run of characters; `store` resolves to the largest; `autoSubscribe` on patterns is ignored
  (`claims.py`).
- Subscribe and umd tokens are bound by `connectionId`, else by a `uid` equal to the connection's;
  their `uid`/`umd` become the subscription's. Publishing with `publish` but no subscription (and no
  `broadcast`) is PUBLISH_PERMISSION_DENIED; `echo` reaches the sender only if it is subscribed.
- Timers (`emulator/dataplane.py`): the 2 h maximum, the 10 min idle timeout (data frames either
  way reset it; WebSocket pings do not, and the emulator sends none) and a missed
  `heartbeatTimeout` all close 1001 "Going away"; `hotsock.keepAlive` every 9.5 min; one
  `--time-scale` factor scales them all, and the 5 min deduplication window.
- A second connection of a present uid with other `umd` sends `hotsock.memberUpdated`; the roster
  keeps the newest umd. A channel-level `hotsock.umdUpdate` always sends `hotsock.memberUpdated`
  on presence channels; elsewhere, and for connection-level updates, the answer is a
  `hotsock.umdUpdated` frame of the emulator's own.
- `POST /publish` always answers `id`; its errors, and listMessages', are JSON
  `{"error": {"code", "message"}}`; unknown body keys are 400. Lengths are counted in code points;
  `data` size is its JSON in UTF-8 bytes; presence capacity is 100,000 bytes of member JSON.
- Channel aliases (`emulator/dataplane.py`): an error frame names the alias when the client used it.
Not emulated: channel storage, reactions, scheduled messages, `getInfo`, `historyStart`,
subscriber counts, SNS/EventBridge events, the 500/s connect rate limit.
"""
