// Runs the vendor's own hotsock-js client in Node for tests/test_hotsock_js.py, which drives it line by
// line: one JSON command per stdin line, one JSON event per stdout line, each stamped `t` with the wall
// clock in milliseconds (the test compares it with its own time.time()).
//
// Commands ({op, id, ...}):
//   client   {id, url, claims, secretFile, tokens?: "good"|"badSignature"|"expired", heartbeatIntervalSeconds?}
//            a HotsockClient whose connectTokenFn signs `claims` (exp: now + 10 min) with the
//            emulator's HS256 secret each time it is called, as an app's backend would
//   bind     {id, event, channel?}   bind a handler: each call is an event "message"
//   unbind   {id, event, channel}
//   send     {id, event, channel, data}   client.channels(channel).sendMessage
//   state    {id}   the connection's channels, aliases, members and connectionId
//   terminate {id}
// Events: "token" (connectTokenFn called), "tokenError" (connectTokenErrorFn), "connect", "disconnect"
// {code}, "frame" {data} (every frame received), "sent" {data} (every frame sent), "message",
// "state", "error" {message}.

import { createHmac } from "node:crypto"
import { readFileSync } from "node:fs"
import { createInterface } from "node:readline"
import { pathToFileURL } from "node:url"
import { WebSocket } from "ws"

globalThis.WebSocket = WebSocket
const { HotsockClient } = await import(pathToFileURL(process.env.HOTSOCK_JS).href)

const now = () => performance.timeOrigin + performance.now()
const emit = (event) => process.stdout.write(JSON.stringify({ t: now(), ...event }) + "\n")
const clients = new Map()

function sign(claims, secret) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url")
  const unsigned = `${encode({ alg: "HS256", typ: "JWT" })}.${encode(claims)}`
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`
}

function tokenFn({ id, claims, secretFile, tokens = "good" }) {
  const secret = readFileSync(secretFile).toString("latin1").replace(/[\r\n]+$/, "")
  return async () => {
    emit({ ev: "token", id })
    const seconds = Math.floor(Date.now() / 1000)
    const exp = tokens === "expired" ? seconds - 60 : seconds + 600
    return sign({ ...claims, exp }, tokens === "badSignature" ? `${secret}-not` : Buffer.from(secret, "latin1"))
  }
}

function makeClient(command) {
  const { id, url, heartbeatIntervalSeconds } = command
  const client = new HotsockClient(url, {
    connectTokenFn: tokenFn(command),
    connectTokenErrorFn: (error) => emit({ ev: "tokenError", id, message: String(error?.message ?? error) }),
    logLevel: "silent",
    ...(heartbeatIntervalSeconds ? { heartbeatIntervalSeconds } : {}),
  })
  client.bind("@@connect", () => emit({ ev: "connect", id }))
  client.bind("@@disconnect", (event) => emit({ ev: "disconnect", id, code: event?.code }))
  client.bind("@@message", (event) => emit({ ev: "frame", id, data: JSON.parse(event.data) }))
  client.bind("@@messageSent", (data) => emit({ ev: "sent", id, data: JSON.parse(data) }))
  clients.set(id, client)
}

function state(id) {
  const connection = clients.get(id).activeConnection
  const channels = Object.fromEntries(Object.entries(connection.channels).map(
    ([name, channel]) => [name, { state: channel.state, members: channel.members.map((m) => m.uid) }]))
  return { connectionId: connection.connectionId ?? null, channels, aliases: { ...connection.channelAliasToReal } }
}

function handle(command) {
  const { op, id } = command
  const client = clients.get(id)
  switch (op) {
    case "client":
      return makeClient(command)
    case "bind":
      return client.bind(command.event, (message) => emit({ ev: "message", id, binding: command.channel ?? null,
        message }), command.channel ? { channel: command.channel } : {})
    case "unbind":
      return client.unbind(command.event, { channel: command.channel })
    case "send":
      return client.channels(command.channel).sendMessage(command.event, { data: command.data })
    case "state":
      return emit({ ev: "state", id, ...state(id) })
    case "terminate":
      return client.terminate()
    default:
      throw new Error(`unknown op ${op}`)
  }
}

process.on("unhandledRejection", (error) => emit({ ev: "error", message: String(error?.message ?? error) }))
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue
  try {
    handle(JSON.parse(line))
  } catch (error) {
    emit({ ev: "error", message: String(error?.message ?? error) })
  }
}
process.exit(0)
