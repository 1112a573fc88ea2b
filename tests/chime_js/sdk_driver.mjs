// Drives the official amazon-chime-sdk-js signaling client against the chatload Chime emulator.
//
// Reads one JSON config on stdin ({scenario, signalingUrl, controlEndpoint, meetingId, tokens, ...}),
// runs the scenario with the SDK's own DefaultSignalingClient (over DefaultWebSocketAdapter) and, for
// data messages, the SDK's own SendAndReceiveDataMessagesTask and DefaultRealtimeController, then
// prints ONE JSON line of what the SDK saw. Node has no browser: `ws` stands in for WebSocket, and
// CloseEvent (used by the client's close timeout) is provided when Node lacks it.
import { createRequire } from 'node:module';
import WebSocket from 'ws';

const require = createRequire(import.meta.url);
const build = (path) => require(`amazon-chime-sdk-js/build/${path}.js`);

globalThis.WebSocket = WebSocket;
if (typeof globalThis.CloseEvent === 'undefined') {
  globalThis.CloseEvent = class CloseEvent extends Event {
    constructor(type, init = {}) {
      super(type);
      this.code = init.code ?? 0;
      this.reason = init.reason ?? '';
      this.wasClean = init.wasClean ?? false;
    }
  };
}

const DefaultSignalingClient = build('signalingclient/DefaultSignalingClient').default;
const SignalingClientConnectionRequest = build('signalingclient/SignalingClientConnectionRequest').default;
const SignalingClientJoin = build('signalingclient/SignalingClientJoin').default;
const SignalingClientEventType = build('signalingclient/SignalingClientEventType').default;
const DefaultWebSocketAdapter = build('websocketadapter/DefaultWebSocketAdapter').default;
const DefaultRealtimeController = build('realtimecontroller/DefaultRealtimeController').default;
const SendAndReceiveDataMessagesTask = build('task/SendAndReceiveDataMessagesTask').default;
const { SdkSignalFrame, SdkPingPongFrame, SdkPingPongType } = build('signalingprotocol/SignalingProtocol');
const Versioning = build('versioning/Versioning').default;
const MeetingSessionStatus = build('meetingsession/MeetingSessionStatus').default;
const MeetingSessionStatusCode = build('meetingsession/MeetingSessionStatusCode').default;
const MonitorTask = build('task/MonitorTask').default;
const DefaultReconnectController = build('reconnectcontroller/DefaultReconnectController').default;
const FullJitterBackoff = build('backoff/FullJitterBackoff').default;

const TOPIC = 'chat';
// Conditions may span attendees (a burst is accounted for at alice AND bob): every event re-checks all.
let waiters = [];
const DEBUG = !!process.env.CHIME_DRIVER_DEBUG;

function makeLogger(name) {
  const log = (level) => (msg) => {
    if (DEBUG) process.stderr.write(`[${name}] ${level} ${typeof msg === 'function' ? msg() : msg}\n`);
  };
  return {
    debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'),
    setLogLevel() {}, getLogLevel() { return 0; },
  };
}

// What DefaultBrowserBehavior would report in a browser; Node has no navigator.
const browserBehavior = {
  name: () => 'node', version: () => process.versions.node, deviceName: () => undefined,
  osName: () => process.platform, osVersion: () => undefined,
};

const withTimeout = (promise, ms, what) => Promise.race([
  promise,
  new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)),
]);

/** One attendee: the SDK's signaling client, its data-message task, and everything it saw. */
class Attendee {
  constructor(role, token, config) {
    this.role = role;
    this.token = token;
    this.config = config;
    this.logger = makeLogger(role);
    this.client = new DefaultSignalingClient(new DefaultWebSocketAdapter(this.logger), this.logger);
    this.realtime = new DefaultRealtimeController();
    this.seen = { frames: [], errors: [], closes: [], decodeFailures: 0, opened: false, skipped: 0, dataMessages: [] };
    this.client.registerObserver(this);
    const context = {
      signalingClient: this.client, realtimeController: this.realtime, logger: this.logger, removableObservers: [],
    };
    this.dataTask = new SendAndReceiveDataMessagesTask(context);
    this.realtime.realtimeSubscribeToReceiveDataMessage(TOPIC, (message) => {
      this.seen.dataMessages.push({
        text: message.text(),
        topic: message.topic,
        timestampMs: message.timestampMs,
        senderAttendeeId: message.senderAttendeeId,
        senderExternalUserId: message.senderExternalUserId,
        throttled: message.throttled,
      });
      this.wake();
    });
  }

  handleSignalingClientEvent(event) {
    const type = SignalingClientEventType[event.type];
    if (event.type === SignalingClientEventType.WebSocketOpen) this.seen.opened = true;
    if (event.type === SignalingClientEventType.ProtocolDecodeFailure) this.seen.decodeFailures += 1;
    if (event.type === SignalingClientEventType.WebSocketSkippedMessage) this.seen.skipped += 1;
    if (event.type === SignalingClientEventType.WebSocketClosed) {
      this.seen.closes.push({ code: event.closeCode, reason: event.closeReason, wasClean: event.wasClean });
    }
    if (event.type === SignalingClientEventType.ReceivedSignalFrame) {
      const frame = event.message;
      const entry = { type: SdkSignalFrame.Type[frame.type] };
      if (frame.error) {
        entry.error = { status: frame.error.status, description: frame.error.description };
        this.seen.errors.push(entry.error);
      }
      if (frame.joinack) entry.turnUris = frame.joinack.turnCredentials ? frame.joinack.turnCredentials.uris : null;
      if (frame.index) entry.numParticipants = frame.index.numParticipants;
      if (frame.pingPong) entry.pingPong = { type: SdkPingPongType[frame.pingPong.type], pingId: frame.pingPong.pingId };
      if (frame.audioStatus) entry.audioStatus = frame.audioStatus.audioStatus;
      if (frame.dataMessage) entry.dataMessages = frame.dataMessage.messages.length;
      this.seen.frames.push(entry);
    }
    if (type) this.wake();
  }

  wake() {
    const pending = waiters;
    waiters = [];
    for (const check of pending) check();
  }

  /** Resolves once `predicate()` holds, re-checked after every event. */
  until(predicate, what, ms = 10000) {
    return withTimeout(new Promise((resolve) => {
      const check = () => (predicate() ? resolve() : waiters.push(check));
      check();
    }), ms, `${this.role}: ${what}`);
  }

  framesOf(type) {
    return this.seen.frames.filter((f) => f.type === type);
  }

  async connect() {
    await this.dataTask.run();
    this.client.openConnection(new SignalingClientConnectionRequest(this.config.signalingUrl, this.token));
    await this.until(() => this.seen.opened || this.seen.closes.length > 0, 'WebSocket open or closed');
  }

  async join() {
    const join = new SignalingClientJoin({ appName: 'chatload-conformance', appVersion: '1' });
    join.browserBehavior = browserBehavior;
    this.client.join(join);
    await this.until(() => this.framesOf('JOIN_ACK').length > 0 && this.framesOf('INDEX').length > 0,
      'JOIN_ACK and INDEX');
  }

  send(text, lifetimeMs) {
    this.realtime.realtimeSendDataMessage(TOPIC, text, lifetimeMs);
  }

  async ping(pingId) {
    const frame = SdkPingPongFrame.create();
    frame.type = SdkPingPongType.PING;
    frame.pingId = pingId;
    this.client.pingPong(frame);
    await this.until(() => this.framesOf('PING_PONG').some((f) => f.pingPong.pingId === pingId), 'PONG');
  }

  async leave() {
    this.client.leave();
    await this.until(() => this.framesOf('LEAVE_ACK').length > 0, 'LEAVE_ACK');
    this.client.closeConnection();
    await this.until(() => this.seen.closes.length > 0, 'close after leave');
  }

  summary() {
    return { ...this.seen, ready: this.client.ready() };
  }
}

async function readStdin() {
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return JSON.parse(text);
}

async function conversation(config) {
  const alice = new Attendee('alice', config.tokens.alice, config);
  const bob = new Attendee('bob', config.tokens.bob, config);
  for (const a of [alice, bob]) {
    await a.connect();
    await a.join();
  }
  // 1. Plain messages both ways (text and JSON data), no lifetime.
  alice.send('hello from alice');
  await bob.until(() => bob.seen.dataMessages.length >= 1, 'first message');
  bob.send({ reply: 'hi alice' });
  await alice.until(() => alice.seen.dataMessages.length >= 1, 'reply');
  // 2. A burst past the soft limit: some come back throttled to the sender, the rest reach bob.
  const burst = config.burst;
  for (let i = 0; i < burst; i += 1) alice.send(`burst-${i}`, config.lifetimeMs);
  const isBurst = (m) => m.text.startsWith('burst-');
  await alice.until(() => alice.seen.dataMessages.filter(isBurst).length
    + bob.seen.dataMessages.filter(isBurst).length >= burst, 'every burst message accounted for');
  // 3. A late joiner gets the burst messages that had a lifetime, replayed.
  const carol = new Attendee('carol', config.tokens.carol, config);
  await carol.connect();
  await carol.join();
  const delivered = bob.seen.dataMessages.filter(isBurst).length;
  await carol.until(() => carol.seen.dataMessages.filter(isBurst).length >= delivered, 'replay');
  // 4. PING → PONG, then a sentinel from bob proves nothing else reached alice or carol.
  await alice.ping(7);
  bob.send('sentinel');
  const hasSentinel = (a) => a.seen.dataMessages.some((m) => m.text === 'sentinel');
  await alice.until(() => hasSentinel(alice), 'sentinel at alice');
  await carol.until(() => hasSentinel(carol), 'sentinel at carol');
  // 5. alice leaves cleanly; then the meeting is deleted under bob and carol.
  await alice.leave();
  const response = await fetch(`${config.controlEndpoint}/meetings/${config.meetingId}`, { method: 'DELETE' });
  for (const a of [bob, carol]) await a.until(() => a.seen.closes.length > 0, 'close after DeleteMeeting');
  // 6. A forged join token.
  const mallory = new Attendee('mallory', config.forgedToken, config);
  await mallory.connect();
  await mallory.until(() => mallory.seen.closes.length > 0, 'close after a forged token');
  return {
    deleteStatus: response.status,
    sdkVersion: Versioning.sdkVersion,
    attendees: Object.fromEntries([alice, bob, carol, mallory].map((a) => [a.role, a.summary()])),
  };
}

// What the SDK makes of each ERROR status and close code, by its own code: the status an ERROR frame
// becomes (MeetingSessionStatus.fromSignalingStatus) and whether it is terminal, and whether
// MonitorTask reconnects after a close with that code (isUnexpectedsignalingCloseCode).
function sdkMeanings(statuses, closeCodes) {
  const monitor = MonitorTask.prototype;
  return {
    statuses: Object.fromEntries(statuses.map((status) => {
      const meaning = MeetingSessionStatus.fromSignalingStatus(status);
      return [status, { code: MeetingSessionStatusCode[meaning.statusCode()], terminal: meaning.isTerminal() }];
    })),
    reconnectsAfterClose: Object.fromEntries(closeCodes.map(
      (code) => [code, monitor.isUnexpectedsignalingCloseCode.call(monitor, code)])),
  };
}

// The emulator's session-expiry fault under the SDK: what arrives, and what the SDK makes of it.
async function expiry(config) {
  const alice = new Attendee('alice', config.tokens.alice, config);
  await alice.connect();
  await alice.join();
  const response = await fetch(`${config.controlEndpoint}/_emulator/faults/expire`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ room: config.meetingId, users: ['alice'] }),
  });
  await alice.until(() => alice.seen.closes.length > 0, 'close after the expiry fault');
  const errorFrame = SdkSignalFrame.create({ type: SdkSignalFrame.Type.ERROR, error: alice.seen.errors[0] });
  const meaning = MeetingSessionStatus.fromSignalFrame(errorFrame);
  return {
    expireStatus: response.status,
    attendee: alice.summary(),
    expiryMeaning: { code: MeetingSessionStatusCode[meaning.statusCode()], terminal: meaning.isTerminal() },
    ...sdkMeanings(config.statuses, config.closeCodes),
  };
}

// The SDK's own reconnect logic around its signaling client. The signaling client does not reconnect
// by itself; DefaultAudioVideoController does (it needs WebRTC, which Node lacks), with
// DefaultReconnectController and FullJitterBackoff as MeetingSessionConfiguration makes them
// (120 s, fixed 0, short 1 s, long 5 s), after a close MonitorTask finds unexpected (1006, 45xx), and
// again after each failed try. That glue is reproduced here; the decisions and waits are the SDK's.
async function reconnect(config) {
  const wall = () => performance.timeOrigin + performance.now();
  const controller = new DefaultReconnectController(120 * 1000, new FullJitterBackoff(0, 1000, 5000));
  const alice = new Attendee('alice', config.tokens.alice, config);
  await alice.connect();
  await alice.join();
  const fault = fetch(`${config.controlEndpoint}/_emulator/faults/${config.fault}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(config.faultBody),
  });
  await alice.until(() => alice.seen.closes.length > 0, 'a close after the fault');
  const closedAt = wall();
  const closeCode = alice.seen.closes[0].code;
  const unexpected = MonitorTask.prototype.isUnexpectedsignalingCloseCode.call(MonitorTask.prototype, closeCode);
  const attempts = [];
  let backAt = null;
  if (unexpected) {
    controller.reset();
    controller.startedConnectionAttempt(false);
    await withTimeout(new Promise((resolve, reject) => {
      const retry = async () => {
        attempts.push(wall());
        const again = new Attendee('alice', config.tokens.alice, config);
        await again.connect();
        if (!again.seen.opened) {
          if (!controller.retryWithBackoff(retry, () => {})) reject(new Error('the controller gave up'));
          return;
        }
        await again.join();
        backAt = wall();
        again.client.closeConnection();
        resolve();
      };
      controller.retryWithBackoff(retry, () => {});
    }), 20000, 'back after the fault');
  }
  return { faultStatus: (await fault).status, closeCode, unexpected, closedAt, attempts, backAt };
}

const scenarios = { conversation, expiry, reconnect };

async function main() {
  const config = await readStdin();
  const result = await scenarios[config.scenario](config);
  process.stdout.write(`${JSON.stringify({ ok: true, scenario: config.scenario, ...result })}\n`);
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
