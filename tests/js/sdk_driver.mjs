#!/usr/bin/env node
/*
 * Drives the official Amazon IVS Chat JavaScript SDK (npm `amazon-ivs-chat-messaging`, pinned in
 * package.json) against a messaging endpoint, runs one scenario and prints one JSON line on stdout.
 *
 *   node sdk_driver.mjs '<json config>'        or        echo '<json config>' | node sdk_driver.mjs
 *   config: {"messagingEndpoint": "ws://127.0.0.1:PORT", "scenario": "echo|delete|kick|forbidden|ratelimit|drop",
 *            "tokens": {"<role>": [<token>, ...], ...}, "timeoutMs": 10000, "quietMs": 1500, ...}
 *   A token is a string or {"token", "tokenExpirationTime"?, "sessionExpirationTime"?} (ISO 8601 strings),
 *   i.e. the CreateChatToken answer. Each token is single use: supply one per expected connection. A
 *   tokenProvider call past the end of a role's list is recorded and rejects.
 *   Exit 0 + {"ok": true, ...} on success; exit 1 + a message, SDK log and socket trace on stderr otherwise.
 *
 * What SDK 1.1.1 does (read from node_modules/amazon-ivs-chat-messaging/dist/esm):
 * - Connects with the *global* `WebSocket`: `new WebSocket(url, token)`, so the token is the only
 *   subprotocol. Node 20 has no global WebSocket: this script installs the `ws` package's class there.
 *   `ws` refuses a token with non-RFC 7230 characters before connecting (the SDK then closes with
 *   reason `socketError` and does not retry) and fails the handshake when the server does not echo
 *   the subprotocol ("Server sent no subprotocol") or answers non-101 ("Unexpected server response: N").
 * - `regionOrUrl` starting with ws:// or wss:// is used verbatim; otherwise wss://edge.ivschat.<region>.amazonaws.com.
 * - tokenProvider() must resolve to {token, tokenExpirationTime?, sessionExpirationTime?} (Date or ISO string).
 *   With a tokenExpirationTime the room opens a replacement connection 60 s before it (30 s before when the
 *   token lives <= 60 s), fetching a new token; a timer that keeps Node alive until disconnect().
 * - ChatRoom events: `connecting`, `connect`, `disconnect`(reason), `message`(ChatMessage), `messageDelete`,
 *   `userDisconnect`, `event` (any other EventName). Frames are dispatched by `Type`; a frame whose `Id`
 *   was already seen is dropped silently (the id set is only cleared after a token-refresh switch).
 * - Requests are serialised by upper-casing the first letter of each field: {Action, RequestId (uuid4),
 *   Content, Attributes} / {Action, RequestId, Id, Reason} / {Action, RequestId, UserId, Reason};
 *   undefined fields are omitted. sendMessage() resolves on a MESSAGE whose RequestId matches;
 *   deleteMessage()/disconnectUser() resolve on the aws:DELETE_MESSAGE / aws:DISCONNECT_USER EVENT whose
 *   RequestId matches (so the server must echo the RequestId in those events, to the requester too);
 *   any ERROR with a matching RequestId rejects with {id, errorCode, errorMessage, requestId}. Promises
 *   never time out. `messageDelete.messageId` is read from Attributes.MessageID only (not MessageId).
 * - Close handling (ChatConnection): a close is "clean" if CloseEvent.wasClean (with `ws`: both close frames
 *   exchanged) or code === 1000. Clean close -> `disconnect` with reason `serverDisconnect`, no reconnect
 *   (if an earlier attempt of the same connection failed, the stale reason `socketError` is reported instead).
 *   Unclean close after open -> `socketConnectionBroken` -> the room reconnects at once with a fresh token,
 *   without any limit. So a server that closes with a code other than 1000 must complete the close
 *   handshake, or the SDK treats the kick as a dropped connection and rejoins.
 *   Handshake failure / error before open -> `socketError`: retry immediately (no backoff) up to
 *   maxReconnectAttempts (default 3, i.e. 4 tries), then `disconnect` with `socketError`.
 *   tokenProvider throwing -> `fetchTokenError`, retried the same way.
 * - ERROR 401 (any RequestId) -> the room drops the socket (client close 1000) and reconnects with a fresh token.
 * - The default ConsoleLogger writes debug/info to stdout; this script installs its own logger.
 */

import { WebSocket as WsWebSocket } from 'ws';
import {
    ChatRoom,
    DeleteMessageRequest,
    DisconnectUserRequest,
    SendMessageRequest,
} from 'amazon-ivs-chat-messaging';

const started = Date.now();
const logLines = [];
const sockets = [];
let verbose = false;

function now() {
    return Date.now() - started;
}

function safeJson(value) {
    try {
        return JSON.stringify(value, (key, v) => {
            if (v instanceof Error) return { name: v.name, message: v.message };
            if (key === 'target' || key === 'currentTarget') return undefined;
            return v;
        });
    } catch {
        return String(value);
    }
}

function log(source, level, message, ...args) {
    const line = `[${now()}ms] ${source} ${level}: ${message}${args.length ? ' ' + args.map(safeJson).join(' ') : ''}`;
    logLines.push(line);
    if (verbose) process.stderr.write(line + '\n');
}

// ---- WebSocket tracing: the SDK gets `ws`, wrapped to record handshake, frames and close ----

const roleByToken = new Map();
const allClients = [];

class TracingWebSocket extends WsWebSocket {
    constructor(url, protocols, options) {
        super(url, protocols, options);
        const token = Array.isArray(protocols) ? protocols[0] : protocols;
        const trace = {
            role: roleByToken.get(token) ?? '?',
            url: String(url),
            openedAt: null,
            upgradeStatus: null,
            selectedProtocolEchoed: null,
            responseHeaders: null,
            errors: [],
            close: null,
            framesIn: [],
            framesOut: [],
        };
        this._trace = trace;
        sockets.push(trace);
        this.on('upgrade', (res) => {
            trace.upgradeStatus = res.statusCode;
            const headers = { ...res.headers };
            const proto = headers['sec-websocket-protocol'];
            trace.selectedProtocolEchoed = proto === token;
            if (proto !== undefined) headers['sec-websocket-protocol'] = proto === token ? '<the token>' : proto;
            trace.responseHeaders = headers;
        });
        this.on('open', () => {
            trace.openedAt = now();
        });
        this.on('error', (err) => {
            trace.errors.push(err && err.message);
        });
        this.on('message', (data, isBinary) => {
            trace.framesIn.push({ t: now(), binary: isBinary, data: isBinary ? `<${data.length} bytes>` : data.toString() });
        });
        this.on('close', (code, reason) => {
            trace.close = {
                t: now(),
                code,
                reason: reason.toString(),
                wasClean: Boolean(this._closeFrameReceived && this._closeFrameSent),
                closeFrameReceived: Boolean(this._closeFrameReceived),
                closeFrameSent: Boolean(this._closeFrameSent),
            };
        });
    }

    send(data, ...rest) {
        this._trace.framesOut.push({ t: now(), data: String(data) });
        return super.send(data, ...rest);
    }
}

globalThis.WebSocket = TracingWebSocket;

// ---- helpers ----

class DriverError extends Error {}

function fail(message) {
    throw new DriverError(message);
}

let defaultTimeoutMs = 10000;

/** Resolve `promise` or fail after `ms` with a message naming what was awaited. */
function within(promise, what, ms = defaultTimeoutMs) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new DriverError(`timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

function summariseMessage(m) {
    return {
        id: m.id,
        requestId: m.requestId ?? null,
        content: m.content,
        attributes: m.attributes ?? null,
        sendTime: m.sendTime instanceof Date ? m.sendTime.toISOString() : String(m.sendTime),
        sender: { userId: m.sender.userId, attributes: m.sender.attributes ?? null },
    };
}

function summariseEvent(e) {
    const out = {};
    for (const [k, v] of Object.entries(e)) out[k] = v instanceof Date ? v.toISOString() : v ?? null;
    return out;
}

function summariseError(e) {
    if (e && typeof e === 'object' && 'errorCode' in e) {
        return { id: e.id, errorCode: e.errorCode, errorMessage: e.errorMessage, requestId: e.requestId ?? null };
    }
    return { thrown: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
}

// ---- one SDK client per role ----

class Client {
    constructor(role, endpoint, tokens) {
        this.role = role;
        this.tokens = [...(tokens ?? [])];
        for (const t of this.tokens) roleByToken.set(typeof t === 'string' ? t : t.token, role);
        this.tokenRequests = [];
        this.connects = [];
        this.connecting = [];
        this.disconnects = [];
        this.messages = [];
        this.messageDeletes = [];
        this.userDisconnects = [];
        this.events = [];
        this.waiters = [];
        allClients.push(this);
        this.room = new ChatRoom({
            regionOrUrl: endpoint,
            tokenProvider: () => this.provideToken(),
        });
        // Must be set before connect(): connections copy the room's logger when created.
        this.room.logger = {
            debug: (m, ...a) => log(role, 'debug', m, ...a),
            info: (m, ...a) => log(role, 'info', m, ...a),
            error: (m, ...a) => log(role, 'error', m, ...a),
        };
        this.room.logLevel = 'debug';
        const on = (name, list, map = (x) => x) =>
            this.room.addListener(name, (arg) => {
                list.push({ t: now(), value: map(arg) });
                this.poke();
            });
        on('connecting', this.connecting, () => null);
        on('connect', this.connects, () => null);
        on('disconnect', this.disconnects);
        on('message', this.messages, summariseMessage);
        on('messageDelete', this.messageDeletes, summariseEvent);
        on('userDisconnect', this.userDisconnects, summariseEvent);
        on('event', this.events, summariseEvent);
    }

    provideToken() {
        const t = this.tokens.shift();
        this.tokenRequests.push({ t: now(), supplied: t !== undefined });
        this.poke();
        if (t === undefined) {
            return Promise.reject(new Error(`driver: no token left for role ${this.role}`));
        }
        return Promise.resolve(typeof t === 'string' ? { token: t } : t);
    }

    poke() {
        for (const w of [...this.waiters]) w();
    }

    /** Wait until predicate() is truthy (re-checked on every SDK event of this client). */
    until(predicate, what, ms = defaultTimeoutMs) {
        let waiter;
        const p = new Promise((resolve, reject) => {
            waiter = () => {
                try {
                    const v = predicate();
                    if (v) resolve(v);
                } catch (e) {
                    reject(e);
                }
            };
            this.waiters.push(waiter);
            waiter();
        });
        return within(p, `${this.role}: ${what}`, ms).finally(() => {
            this.waiters = this.waiters.filter((w) => w !== waiter);
        });
    }

    async connect() {
        this.room.connect();
        await this.until(
            () => {
                if (this.disconnects.length) {
                    const errors = sockets.filter((s) => s.role === this.role).flatMap((s) => s.errors);
                    fail(
                        `${this.role}: SDK reported disconnect "${this.disconnects[0].value}" while connecting ` +
                            `(tokenProvider calls: ${this.tokenRequests.length}, socket errors: ${JSON.stringify(errors)})`,
                    );
                }
                return this.connects.length > 0;
            },
            'the SDK "connect" event',
        );
    }

    summary() {
        return {
            role: this.role,
            state: this.room.state,
            tokenRequests: this.tokenRequests.length,
            tokenRequestsUnsupplied: this.tokenRequests.filter((r) => !r.supplied).length,
            connects: this.connects.length,
            connecting: this.connecting.length,
            disconnects: this.disconnects.map((d) => d.value),
            messages: this.messages.map((m) => m.value),
            messageDeletes: this.messageDeletes.map((m) => m.value),
            userDisconnects: this.userDisconnects.map((m) => m.value),
            events: this.events.map((m) => m.value),
        };
    }
}

function makeClients(config, roles) {
    const clients = {};
    for (const role of roles) {
        if (!config.tokens || !Array.isArray(config.tokens[role]) || config.tokens[role].length === 0) {
            fail(`config.tokens.${role} must be a non-empty list of tokens`);
        }
        clients[role] = new Client(role, config.messagingEndpoint, config.tokens[role]);
    }
    return clients;
}

async function connectAll(clients) {
    // One at a time: keeps the order of events the server sees deterministic.
    for (const c of Object.values(clients)) await c.connect();
}

// ---- scenarios ----

const scenarios = {
    /**
     * The room's connections are dropped by the emulator's fault (config.mode "abrupt": no close frame;
     * "clean": close 1000) while the SDK is connected: when it closes, fetches tokens and is back (or,
     * after a clean close, that it stays away for quietMs). Times are ms since `started` (wall clock).
     */
    async drop(config) {
        const clients = makeClients(config, ['viewer']);
        await connectAll(clients);
        const c = clients.viewer;
        const response = await fetch(`${config.controlEndpoint}/_emulator/faults/drop`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ room: config.roomArn, mode: config.mode, ...(config.mode === 'clean' ? { code: 1000 } : {}) }),
        });
        if (config.mode === 'abrupt') {
            await c.until(() => c.connects.length >= 2, 'the SDK back after the drop');
        } else {
            await c.until(() => c.disconnects.length >= 1, 'the SDK "disconnect" after the clean close');
            await sleep(config.quietMs ?? 1500); // absence of a reconnect: one fixed window
        }
        return {
            clients,
            result: {
                started,
                dropStatus: response.status,
                closedAt: sockets.map((s) => s.close && s.close.t).filter((t) => t !== null && t !== undefined),
                tokenRequestsAt: c.tokenRequests.map((r) => r.t),
                connectsAt: c.connects.map((x) => x.t),
            },
        };
    },
    /** Sender sends content + attributes and resolves on its own echo. */
    async echo(config) {
        const clients = makeClients(config, ['sender']);
        await connectAll(clients);
        const { sender } = clients;
        const content = config.content ?? 'hello from the official JS SDK ✓';
        const attributes = config.attributes ?? { k: 'v', emoji: '🙂' };
        const request = new SendMessageRequest(content, attributes);
        const message = await within(sender.room.sendMessage(request), 'sender: sendMessage() to resolve on its own echo');
        return {
            clients,
            result: { requestId: request.requestId, message: summariseMessage(message) },
        };
    },

    /** Sender sends; moderator deletes it; the viewer (and everyone) sees messageDelete. */
    async delete(config) {
        const clients = makeClients(config, ['moderator', 'viewer', 'sender']);
        await connectAll(clients);
        const { moderator, viewer, sender } = clients;
        const reason = config.reason ?? 'Deleted by moderator';
        const sent = await within(
            sender.room.sendMessage(new SendMessageRequest(config.content ?? 'delete me')),
            'sender: sendMessage() to resolve on its own echo',
        );
        for (const c of [moderator, viewer]) {
            await c.until(() => c.messages.some((m) => m.value.id === sent.id), `the MESSAGE ${sent.id} to arrive`);
        }
        const request = new DeleteMessageRequest(sent.id, reason);
        const deleted = await within(
            moderator.room.deleteMessage(request),
            'moderator: deleteMessage() to resolve (aws:DELETE_MESSAGE event echoing its RequestId)',
        );
        const seen = {};
        for (const c of [viewer, sender, moderator]) {
            const ev = await c.until(
                () => c.messageDeletes.find((e) => e.value.messageId === sent.id),
                `a "messageDelete" event with messageId ${sent.id}`,
            );
            seen[c.role] = ev.value;
        }
        return {
            clients,
            result: {
                sentId: sent.id,
                deleteRequestId: request.requestId,
                resolved: summariseEvent(deleted),
                viewer: seen.viewer,
                sender: seen.sender,
                moderator: seen.moderator,
            },
        };
    },

    /** Moderator disconnects the target user (every role named target*); nobody of them comes back. */
    async kick(config) {
        const targetRoles = Object.keys(config.tokens ?? {}).filter((r) => r.startsWith('target'));
        if (!targetRoles.length) fail('kick needs config.tokens.target');
        if (typeof config.targetUserId !== 'string') fail('kick needs config.targetUserId');
        const clients = makeClients(config, ['moderator', 'viewer', ...targetRoles]);
        await connectAll(clients);
        const { moderator, viewer } = clients;
        const targets = targetRoles.map((r) => clients[r]);
        const reason = config.reason ?? 'Kicked by moderator';
        const request = new DisconnectUserRequest(config.targetUserId, reason);
        const resolved = await within(
            moderator.room.disconnectUser(request),
            'moderator: disconnectUser() to resolve (aws:DISCONNECT_USER event echoing its RequestId)',
        );
        const seen = {};
        for (const c of [viewer, moderator, ...targets]) {
            const ev = await c.until(
                () => c.userDisconnects.find((e) => e.value.userId === config.targetUserId),
                `a "userDisconnect" event for ${config.targetUserId}`,
            );
            seen[c.role] = ev.value;
        }
        for (const c of targets) {
            const tokenRequestsBefore = c.tokenRequests.length;
            await c.until(() => {
                if (c.tokenRequests.length > tokenRequestsBefore || c.connecting.length > 1) {
                    fail(
                        `${c.role}: the SDK started reconnecting after the kick instead of reporting "disconnect" ` +
                            '(it does that when the close is not clean: no close handshake and code != 1000; see the sockets trace)',
                    );
                }
                return c.disconnects[0];
            }, 'the SDK "disconnect" event after the kick');
        }
        // Absence of an event: watch one fixed window for a reconnect attempt.
        const quietMs = config.quietMs ?? 1500;
        const before = Object.fromEntries(
            targets.map((c) => [c.role, { tokenRequests: c.tokenRequests.length, connects: c.connects.length, connecting: c.connecting.length }]),
        );
        await sleep(quietMs);
        const after = {};
        for (const c of targets) {
            after[c.role] = {
                tokenRequestsAfterDisconnect: c.tokenRequests.length - before[c.role].tokenRequests,
                connectsAfterDisconnect: c.connects.length - before[c.role].connects,
                connectingAfterDisconnect: c.connecting.length - before[c.role].connecting,
                disconnectReasons: c.disconnects.map((d) => d.value),
                state: c.room.state,
            };
        }
        return {
            clients,
            result: {
                requestId: request.requestId,
                resolved: summariseEvent(resolved),
                userDisconnectSeenBy: seen,
                targets: after,
                quietMs,
                othersState: { moderator: moderator.room.state, viewer: viewer.room.state },
            },
        };
    },

    /** A token without capabilities: send (and delete, disconnect) reject with ERROR 403. */
    async forbidden(config) {
        const clients = makeClients(config, ['viewer']);
        await connectAll(clients);
        const { viewer } = clients;
        const attempts = [
            ['sendMessage', new SendMessageRequest('not allowed')],
            ['deleteMessage', new DeleteMessageRequest(config.messageId ?? 'AAAAAAAAAAAA', 'nope')],
            ['disconnectUser', new DisconnectUserRequest(config.otherUserId ?? 'someone-else', 'nope')],
        ];
        const out = {};
        for (const [method, request] of attempts) {
            const outcome = await within(
                viewer.room[method](request).then(
                    (v) => ({ fulfilled: true, value: safeJson(v) }),
                    (e) => ({ fulfilled: false, error: summariseError(e) }),
                ),
                `viewer: ${method}() to settle (expected ERROR 403)`,
            );
            out[method] = { requestId: request.requestId, ...outcome };
        }
        return { clients, result: out };
    },

    /** Room limit 1 msg/s: three back-to-back sends; some reject 429, the accepted ones echo and are delivered. */
    async ratelimit(config) {
        const roles = ['sender', ...(config.tokens && config.tokens.viewer ? ['viewer'] : [])];
        const clients = makeClients(config, roles);
        await connectAll(clients);
        const { sender, viewer } = clients;
        const count = config.count ?? 3;
        const requests = Array.from({ length: count }, (_, i) => new SendMessageRequest(`burst ${i}`, { seq: String(i) }));
        const settled = await within(
            Promise.allSettled(requests.map((r) => sender.room.sendMessage(r))),
            `sender: all ${count} sendMessage() promises to settle`,
        );
        const outcomes = settled.map((s, i) => ({
            requestId: requests[i].requestId,
            content: requests[i].content,
            ...(s.status === 'fulfilled'
                ? { fulfilled: true, message: summariseMessage(s.value) }
                : { fulfilled: false, error: summariseError(s.reason) }),
        }));
        const accepted = outcomes.filter((o) => o.fulfilled).map((o) => o.message.id);
        if (viewer) {
            await viewer.until(
                () => accepted.every((id) => viewer.messages.some((m) => m.value.id === id)),
                `the ${accepted.length} accepted messages to be delivered`,
            );
        }
        // Give a wrongly delivered rejected message a moment to show up (absence check, one short window).
        await sleep(config.settleMs ?? 300);
        return { clients, result: { outcomes, accepted } };
    },
};

// ---- main ----

async function readConfig() {
    if (process.argv[2]) return JSON.parse(process.argv[2]);
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString('utf8').trim();
    if (!text) throw new DriverError('no config: pass JSON as the first argument or on stdin');
    return JSON.parse(text);
}

function finish(code, stdoutLine, stderrText) {
    if (stderrText) process.stderr.write(stderrText);
    const exit = () => process.exit(code);
    if (stdoutLine) process.stdout.write(stdoutLine + '\n', exit);
    else exit();
}

async function main() {
    let config;
    try {
        config = await readConfig();
        verbose = Boolean(config.verbose);
        defaultTimeoutMs = config.timeoutMs ?? 10000;
        if (typeof config.messagingEndpoint !== 'string') fail('config.messagingEndpoint must be a string');
        const scenario = scenarios[config.scenario];
        if (!scenario) fail(`unknown scenario ${JSON.stringify(config.scenario)}; known: ${Object.keys(scenarios).join(', ')}`);
        // Overall guard in case something outside within() hangs.
        const overallMs = config.overallTimeoutMs ?? defaultTimeoutMs * 6;
        const guard = setTimeout(() => {
            finish(3, null, `sdk_driver: scenario ${config.scenario} exceeded the overall ${overallMs} ms\n` + diagnostics());
        }, overallMs);
        guard.unref();
        const out = await scenario(config);
        const line = JSON.stringify({
            ok: true,
            scenario: config.scenario,
            ...out.result,
            clients: Object.fromEntries(Object.values(out.clients).map((c) => [c.role, c.summary()])),
            sockets: sockets.map(({ framesIn, framesOut, ...rest }) => ({ ...rest, framesIn: framesIn.length, framesOut: framesOut.length })),
        });
        for (const c of Object.values(out.clients)) c.room.disconnect();
        finish(0, line, verbose ? diagnostics() : '');
    } catch (err) {
        const what = err instanceof DriverError ? err.message : (err && err.stack) || String(err);
        finish(1, null, `sdk_driver: scenario ${config && config.scenario} FAILED: ${what}\n` + diagnostics());
    }
}

function diagnostics() {
    return (
        '--- clients ---\n' +
        allClients.map((c) => JSON.stringify(c.summary())).join('\n') +
        '\n--- sockets (handshake, frames, close) ---\n' +
        sockets.map((s) => JSON.stringify(s)).join('\n') +
        '\n--- SDK log ---\n' +
        logLines.join('\n') +
        '\n'
    );
}

process.on('unhandledRejection', (reason) => {
    log('driver', 'error', 'unhandled rejection', reason);
});

main();
