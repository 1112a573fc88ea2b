"""The contracts between the harness and a chat service. Everything service-specific sits behind them.

Three pieces, each small:

- **Neutral events** (h11-style: a few small types, not dicts and strings). A client protocol turns
  the service's frames into these; the session (`harness/session/chat_session.py`) turns them into
  measurements without knowing the service:

      Ready                         the service confirmed the session (connect latency ends here)
      Delivered(sender, seq, intended_us, server_ns | None)
                                    a measured message arrived (identity read from the service's frame)
      Replayed(sender, seq, intended_us, server_ns | None)
                                    a measured message the service sent again because this member
                                    joined late or came back (messages it keeps for late joiners):
                                    accounted like a delivery, timed apart (`replay`: its age on arrival)
      Acked(request, server_ns, echo)
                                    the service confirmed one of our requests; `echo` is the
                                    Delivered when the confirmation is our own message coming back
      Rejected(request | None, category, code, message)
                                    an error answer (request None: it matched no request)
      Kicked(reason)                a moderator removed us: do not come back
      Refused(category, code, message, final)
                                    the service refused the session itself (a join error), by
                                    neutral category; `final`: the vendor's client does not retry
      MustReconnect(reason)         the service wants a fresh session (e.g. an expired one); from
                                    `receive`, or from `closed` when the close itself says so
      ServiceEvent(name)            anything else worth counting, as `events.<name>`
      Measured(histogram, us)       a service's own latency sample (subscribe, join, …)
      Joined(room) / Left(room)     membership of a room began / ended (protocols with joins_rooms)
      Origin(stream, subject, at_ns) / Observed(stream, subject)
                                    something happened to `subject` (a user joined a presence channel)
                                    and another user saw it: matched across processes at the end,
                                    into a latency histogram named `stream` with exact counts of
                                    what each member present should have seen
      FOREIGN / ProtocolError(message)

  `receive` returns one event, a tuple of events, or None. Delivered is the hot path: one
  allocation per delivery, no other work.

- **`ClientProtocol`** — one connection, sans-I/O: frames in, events out; requests in, frames out.
  It owns the pending-request table (what acks what) and decides where the message identity
  (sender id, sequence number, intended send time in µs) travels in this service's frames.

- **`ChatService`** — the adapter: reads its part of a scenario, starts its emulator, provisions
  rooms, gives tokens and connect parameters, kicks users, knows its rooms' limits.

**Threads.** Each process runs two: the loop thread (uvloop: sockets, sessions, every
`ClientProtocol` method, and `ChatService.connect_params` / `client_protocol`, called for each
connect) and the gevent hub's thread (Locust users' greenlets: `ChatService.token_provider`,
`sdk_policy`, `kick`, `publish`, which may block their greenlet but never the loop). Each hook
says which with `@runs_on_loop` / `@runs_in_greenlet` (`harness/threads/marks.py`); a service's
overrides inherit the mark, and `CHATLOAD_CHECK_THREADS=1` asserts it on every call. The scenario
and provisioning hooks run before and after the run, in no thread of the runtime: unmarked.

"Room" is the harness's word for one fan-out scope, whatever the service calls it (IVS Chat room,
Hotsock channel, Chime meeting, IVS Real-Time stage): `ChatService.room_noun` says which.

Rejections are reported by neutral `Category` so gate rules, verdicts and reports work for every
service (`rejected.rate_limited.ratio`), with the service's own code kept beside it (`errors.429`).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, ClassVar

from ..threads.marks import inherit_marks, runs_in_greenlet, runs_on_loop
from .user_spec import UserSpec  # its own module: the token providers take it, and this contract names them

if TYPE_CHECKING:  # pragma: no cover
    from ..net.reconnect import ReconnectPolicy
    from ..net.transport import ConnectParams
    from .tokens import TokenProvider


class Category(enum.StrEnum):
    """Why the service refused something, in words every service shares."""

    RATE_LIMITED = "rate_limited"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    TOO_LARGE = "too_large"
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    SERVER_ERROR = "server_error"


CATEGORIES = tuple(c.value for c in Category)


def category_of_http_status(status: int) -> Category:
    """The category an HTTP-like status falls in (IVS Chat's error codes, handshake refusals, REST)."""
    if status == 429:
        return Category.RATE_LIMITED
    if status == 401:
        return Category.UNAUTHORIZED
    if status in (403, 406):
        return Category.FORBIDDEN
    if status == 404:
        return Category.NOT_FOUND
    if status == 413:
        return Category.TOO_LARGE
    if status >= 500:
        return Category.SERVER_ERROR
    return Category.INVALID


# -- requests and events ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    """One request this connection made and may hear back about. `waiter` belongs to the harness
    (a gevent AsyncResult on the other side of the boundary); protocols only keep and return it."""

    kind: str  # "send" for measured messages; otherwise the service's request name ("delete", "subscribe")
    seq: int  # the sender's sequence number for sends, 0 otherwise
    intended_ns: int  # intended send time, corrected clock
    sent_ns: int  # when it was written (local clock): unanswered requests expire by this
    waiter: object | None = None


class Event:
    __slots__ = ()


# Not frozen: a frozen dataclass's __init__ costs 0.8 µs, this one 0.15, once per delivery.
@dataclass(slots=True)
class Delivered(Event):
    sender: str
    seq: int
    intended_us: int  # µs since the epoch, the sender's corrected clock
    server_ns: int | None  # when the service accepted it (its clock), if the frame says


@dataclass(slots=True)
class Replayed(Delivered):
    """A replay of an earlier message (the service keeps recent messages for members who join late or
    come back): the ledger judges it like any arrival (a replay when it was accepted within the
    service's `replay_window` before the membership began); its age on arrival goes to the
    `replay` histogram, never into delivery latency."""


@dataclass(slots=True)
class Acked(Event):
    request: Request
    server_ns: int | None = None
    echo: Delivered | None = None  # the confirmation was our own message, delivered to us too


def accepted_after(server_ns: int, sent_ns: int) -> int:
    """When a message was accepted, as far as the harness can tell: the service's time, but never
    before the message left. A server time that is only a lower bound (Hotsock's ULID names the
    millisecond, raised to the intended time) would otherwise put acceptance at or before the
    intended send time, a `to_server` of 0 the histogram clamps."""
    return server_ns if server_ns > sent_ns else sent_ns


@dataclass(slots=True)
class Rejected(Event):
    request: Request | None
    category: Category
    code: str  # the service's own code, as text ("429", "SUBSCRIBE_PERMISSION_DENIED")
    message: str = ""


@dataclass(slots=True)
class Kicked(Event):
    reason: str = ""


@dataclass(slots=True)
class Refused(Event):
    """The service refused the session itself (a join, not a request on it): counted as
    `refused.<category>` and `errors.<code>`. With `final` the vendor's client gives up, and so does
    the session (no retry, `gave_up.refused`); otherwise its reconnect policy decides."""

    category: Category
    code: str  # the service's own code ("STAGE_AT_CAPACITY")
    message: str = ""
    final: bool = True


@dataclass(slots=True)
class MustReconnect(Event):
    reason: str


@dataclass(slots=True)
class ServiceEvent(Event):
    name: str


@dataclass(slots=True)
class Measured(Event):
    histogram: str  # a latency histogram of the service's own (declared in ChatService.histograms)
    us: int


@dataclass(slots=True)
class ProtocolError(Event):
    message: str


@dataclass(slots=True)
class Joined(Event):
    room: str


@dataclass(slots=True)
class Left(Event):
    room: str


@dataclass(slots=True)
class Origin(Event):
    stream: str  # a propagation the service declares (ChatService.propagations)
    subject: str  # whom it is about, as other users will see it (a user id)
    at_ns: int  # when it began (corrected clock): a time the protocol was given
    room: str | None = None  # None: the connection's room


@dataclass(slots=True)
class Observed(Event):
    stream: str
    subject: str  # seen at the frame's arrival
    room: str | None = None


@dataclass(slots=True)
class _Flag(Event):
    name: str


@dataclass(slots=True)
class TokenWanted(Event):
    """The protocol needs a token beyond the connect's (Hotsock's subscribe token: `purpose`
    "subscribe", `scope` the channel, for `connection_id`). The session asks the run's token source
    when it offers that purpose (`ClientProtocol.token_purposes`) and hands the answer, or None, to
    `ClientProtocol.token_arrived` on the loop."""

    purpose: str
    scope: str
    connection_id: str


READY = _Flag("ready")  # the service confirmed the session
FOREIGN = _Flag("foreign")  # a message without chatload's identity: someone else's traffic


# -- where to connect --------------------------------------------------------------------------------------

KIND_EMULATOR = "emulator"  # started by chatload for the run
KIND_RUNNING_EMULATOR = "running-emulator"  # an emulator someone else started


@dataclass(frozen=True)
class Target:
    """Where a run's users connect and which rooms they use. JSON-serialisable and free of secrets:
    it travels to Locust workers and into reports. (Secrets are named by file or environment
    variable in `settings`, never held.)"""

    service: str
    kind: str  # KIND_EMULATOR, KIND_RUNNING_EMULATOR, or the service's `real_kind`
    endpoint: str = ""  # data plane
    control_endpoint: str = ""  # "" against the real service: its SDK finds it
    region: str = "us-east-1"
    rooms: tuple[str, ...] = ()
    settings: Mapping = field(default_factory=dict)  # the service's own keys
    ca_file: str = ""  # wss:// and https:// trust only this CA (PEM); "": the system trust store
    # The CA file's PEM text: a worker on another machine has no file at the master's path (tls.local_ca_file).
    ca_pem: str = ""
    tls_verify: bool = True  # False only for an emulator target (the scenario refuses it otherwise)

    @property
    def emulated(self) -> bool:
        return self.kind in (KIND_EMULATOR, KIND_RUNNING_EMULATOR)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rooms"] = list(self.rooms)
        data["settings"] = dict(self.settings)
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> Target:
        return cls(**{**data, "rooms": tuple(data.get("rooms", ())), "settings": dict(data.get("settings") or {})})


def check_emulator_kinds(table, target: Target) -> None:
    """What `[target]` must say for the two emulator kinds, the same for every service that has one:
    kind "emulator" starts its own (so it names no endpoints or rooms), "running-emulator" names both
    endpoints. `table` is the `[target]` TableReader; problems are reported through it."""
    if target.kind == KIND_EMULATOR and (target.endpoint or target.control_endpoint or target.rooms):
        table.fail("", "kind \"emulator\" starts its own emulator; for one that is already running use "
                       "kind = \"running-emulator\" with endpoint and control_endpoint")
    if target.kind == KIND_RUNNING_EMULATOR:
        for key in ("endpoint", "control_endpoint"):
            if not getattr(target, key):
                table.fail(key, "is required for kind \"running-emulator\"")


@dataclass(frozen=True)
class PopulationKind:
    """A scenario population kind the service offers, and the Locust user class that plays it."""

    user_class: str  # "module:Class"
    sends: bool = False  # sends measured messages (its rate counts in estimates and verdicts)
    description: str = ""


# -- the client protocol -----------------------------------------------------------------------------------


class ClientProtocol(ABC):
    """One connection's conversation with the service, sans-I/O: no sockets, no clocks, no Locust.

    The session calls `receive` for every frame and sends what `send_message` / `encode_request`
    return; frames the protocol needs to send on its own (a join, a reply to a server ping, a
    resubscribe) go to `outbox`, which the session flushes after each call.
    """

    text_frames: ClassVar[bool] = True  # the frames this protocol writes are text (False: binary)
    ready_on_open: ClassVar[bool] = True  # usable once the WebSocket opens; else wait for READY
    joins_rooms: ClassVar[bool] = False  # membership begins with Joined (a subscribe), not with READY
    ready_timeout_s: ClassVar[float] = 5.0  # no READY within this after opening: give up on the connection
    acks_sends: ClassVar[bool] = True  # every send is answered (ack, echo or error); silence is news
    keepalive_s: ClassVar[float | None] = None  # send `keepalive()` this often while open

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        inherit_marks(cls)  # a service's protocol runs on the loop thread, as this contract says

    def __init__(self, user: UserSpec) -> None:
        self.user = user
        self.outbox: list[bytes] = []
        self.pending: dict[object, Request] = {}
        # Purposes beyond the connect the run's token source serves (e.g. {"subscribe"}): the session
        # sets it before the connection opens; a protocol asks with `TokenWanted` only for these.
        self.token_purposes: frozenset[str] = frozenset()

    @runs_on_loop  # noqa: B027 - optional hook
    def token_arrived(self, wanted: TokenWanted, token: str | None) -> None:
        """The answer to a `TokenWanted` (None: the fetch failed, counted already); frames to `outbox`."""

    @runs_on_loop
    @abstractmethod
    def receive(self, payload: bytes, is_text: bool, at_ns: int) -> Event | tuple[Event, ...] | None:
        """One frame from the server, read at `at_ns` (corrected clock: the protocol reads no clock).
        Never raises on what a server sends: ProtocolError instead."""

    @runs_on_loop
    @abstractmethod
    def send_message(self, request: Request, content: str, extra: Mapping[str, str] | None) -> bytes:
        """The frame for a measured message carrying (user.sender_id, request.seq, request.intended_ns)."""

    @runs_on_loop  # noqa: B027 - optional hook, nothing to do by default
    def connecting(self, at_ns: int) -> None:
        """The connection attempt begins at `at_ns` (corrected clock), before the TCP connect and the
        opening handshake: where a service's join travels in the handshake itself (a token as the
        subprotocol), this is when the join began, earlier than anything another member can see."""

    @runs_on_loop  # noqa: B027 - optional hook, nothing to do by default
    def opened(self, at_ns: int) -> None:
        """The WebSocket opened at `at_ns`: put any opening frames (a join, a subscribe) in the outbox."""

    @runs_on_loop
    def encode_request(self, name: str, request: Request, *args) -> bytes | TokenWanted:
        """A service-specific request (`ChatClient.request(name, …)`); tracked in `pending` if answered.
        A `TokenWanted` instead of a frame: the request goes out from `token_arrived` once the token
        came (the session fetches it as for the event of that name)."""
        raise ValueError(f"{type(self).__name__} has no request {name!r}")

    @runs_on_loop
    def keepalive(self) -> bytes | None:
        return None

    @runs_on_loop
    def closed(self, code: int, reason: str, clean: bool) -> Event | tuple[Event, ...] | None:
        """The connection ended with `code` (1006 when it dropped without a close frame): what that
        close means in this service, when it means something, e.g. `MustReconnect` for a close the
        vendor's client answers with a fresh session. Default: nothing (the reconnect policy decides)."""
        return None

    # -- the pending-request table ----------------------------------------------------------------------

    @runs_on_loop
    def expire(self, older_than_ns: int) -> list[Request]:
        """Requests sent before `older_than_ns` and still unanswered; they leave the table."""
        stale = [key for key, request in self.pending.items() if request.sent_ns < older_than_ns]
        return [self.pending.pop(key) for key in stale]

    @runs_on_loop
    def unanswered(self) -> list[Request]:
        """Every request still pending (the connection is gone: none can be answered now)."""
        requests, self.pending = list(self.pending.values()), {}
        return requests

    @runs_on_loop
    def awaiting_send_answers(self) -> bool:
        return any(request.kind == "send" for request in self.pending.values())


# -- the service adapter -----------------------------------------------------------------------------------


class ChatService(ABC):
    """One service: what a scenario may say about it, how to reach it, how to talk to it."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        inherit_marks(cls)  # each hook runs where this contract says, whoever overrides it

    name: ClassVar[str]  # registry key and `[target] service`
    title: ClassVar[str]  # "Amazon IVS Chat"
    room_noun: ClassVar[str] = "room"  # what the service calls a fan-out scope
    rooms_table: ClassVar[str] = "rooms"  # the scenario table holding room settings
    real_kind: ClassVar[str]  # `[target] kind` for the real service
    populations: ClassVar[dict[str, PopulationKind]] = {}
    histograms: ClassVar[dict[str, str]] = {}  # the service's own latency histograms → what they measure
    propagations: ClassVar[dict[str, str]] = {}  # Origin/Observed streams → what they measure
    measures_spread: ClassVar[bool] = False  # fan-out spread per message (last recipient − first)
    # `provision` runs against the real service too, not only on emulators: the service's rooms are
    # made for each run (they are short-lived, or connecting needs what making them returns).
    provisions_real_rooms: ClassVar[bool] = False
    bills_messages: ClassVar[bool] = False  # the real service bills per message: ask before a run

    # -- scenario ----------------------------------------------------------------------------------------
    # Keys are declared once (harness.files.toml_tables.Key): the declarations validate scenario files and
    # generate their reference (docs/scenarios.md).

    target_keys: ClassVar[tuple] = ()  # `[target]` keys beyond `service` and `kind`
    room_keys: ClassVar[tuple] = ()  # keys of `rooms_table`
    fault_parameters: ClassVar[dict] = {}  # parameters of the service's own `fault_actions`, by name

    @abstractmethod
    def read_target(self, table, kind: str) -> Target:
        """The `[target]` table (a `harness.files.toml_tables.TableReader`; its keys already checked against
        `target_keys`): read each with `table.read(key)`, report problems with `table.fail(key, why)`."""

    @abstractmethod
    def read_rooms(self, table) -> RoomSettings:
        """The `rooms_table` (a TableReader over `{}` when the scenario has none; keys checked)."""

    def message_size_limit(self, rooms: RoomSettings) -> int | None:
        """The largest message content the rooms accept (scenario sizes are checked against it)."""
        return None

    fault_actions: ClassVar[dict[str, tuple[set[str], set[str]]]] = {}  # action → (allowed, required) keys

    def apply_fault(self, admin, action: str, params: dict, rooms: list[str]):
        """Play a service-specific fault (one of `fault_actions`) through the emulator's admin API."""
        raise ValueError(f"{self.name} has no fault {action!r}")

    def billing_note(self, sent: int, delivered: int) -> str | None:
        """What a run against the real service will cost, in the service's own terms, or None."""
        return None

    # -- Locust's own command line (`locust -f …`; a scenario run passes the same options) ---------------

    def add_locust_options(self, parser) -> None:  # noqa: B027 - optional hook
        """The service's own `--chat-…` options (added to Locust's parser with every service's)."""

    def rooms_from_options(self, options) -> RoomSettings:
        """The rooms to provision on an emulator for a plain `locust -f` run."""
        return RoomSettings(count=max(1, options.chat_rooms))

    # -- the run's owner: emulator and rooms -------------------------------------------------------------

    def start_emulator(self, *args: str):
        """Start this service's emulator as a child process (a started `EmulatorProcess`)."""
        from ..emulation.process import EmulatorProcess

        return EmulatorProcess(*args, service=self.name).start()

    def emulator_args(self, users: int) -> list[str]:
        """Options the embedded emulator of a scenario with `users` users needs."""
        return []

    @abstractmethod
    def provision(self, target: Target, rooms: RoomSettings, name: str) -> Target:
        """Make `rooms.count` rooms (named after `name`) on an emulator, and on the real service too
        when `provisions_real_rooms` is set; a target that names its rooms is returned as it is (or
        completed with what connecting needs). Raises `ServiceError` when the target cannot be reached."""

    def room_limits(self, target: Target) -> dict[str, int]:
        """Each room's accepted-message rate limit per second, as the service says; {} if none."""
        return {}

    def limit_words(self, target: Target) -> str | None:
        """How the service limits messages when no room has a limit of its own (Chime: per sender),
        for the report's rate-limit table instead of "unknown"; None if it says nothing."""
        return None

    def replay_window(self, target: Target) -> tuple[int, int] | None:
        """(window ns, max messages) when the service replays recent messages to members who join
        late or come back: the ledger then counts replays exactly instead of as unexpected."""
        return None

    # -- after the run: the service's own verdicts --------------------------------------------------------

    # name → (path under report["verdicts"][service name], kind, direction, words): gate metrics
    verdict_metrics: ClassVar[dict[str, tuple[tuple[str, ...], str, str, str]]] = {}

    def unmeasured(self, measure: str, rooms: RoomSettings) -> str | None:
        """Why one of this service's own measures (a histogram or propagation stream it declares) is
        never taken with these room settings, or None: `--check` refuses a rule on it before the run."""
        return None

    def verdicts(self, results: dict, scenario) -> dict:
        """Facts derived after a run (e.g. where throttling began), as report["verdicts"][name]."""
        return {}

    # -- every process -----------------------------------------------------------------------------------

    # What a connect needs from the application's token endpoint beside the token (answer JSON paths
    # in `[target.token_endpoint]`): name → (what it is, an example path). See harness/services/token_endpoint.py.
    token_endpoint_fields: ClassVar[dict[str, tuple[str, str]]] = {}
    token_purposes: ClassVar[tuple[str, ...]] = ()  # tokens beyond the connect's its protocol asks for

    @runs_in_greenlet
    @abstractmethod
    def token_provider(self, target: Target) -> TokenProvider:
        """Where tokens come from unless the user gives a file or a command."""

    @runs_on_loop
    @abstractmethod
    def connect_params(self, target: Target, token: str, user: UserSpec) -> ConnectParams:
        """URL, subprotocols and headers for one connection with this token."""

    @runs_on_loop
    @abstractmethod
    def client_protocol(self, user: UserSpec) -> ClientProtocol:
        """A fresh protocol for one connection."""

    @runs_in_greenlet
    def sdk_policy(self) -> ReconnectPolicy:
        """How the vendor's own client reconnects (`reconnect = "sdk"` in a scenario)."""
        from ..net.reconnect import SdkLike

        return SdkLike()

    @runs_in_greenlet
    def kick(self, provider: TokenProvider, target: Target, user: UserSpec) -> None:
        """Remove a user through the control plane (a moderator's kick); blocking, gevent-friendly."""
        raise ServiceError(f"{self.title}: kicking users is not supported")

    @runs_in_greenlet
    def publish(self, target: Target, user: UserSpec, seq: int, intended_ns: int, content: str) -> int | None:
        """Publish one measured message without a socket (a server-side publish API), carrying
        (user.sender_id, seq, intended_ns) like `ClientProtocol.send_message` does; blocking and
        gevent-friendly. Returns when the service accepted it (its clock, ns) if it says, else None;
        raises `PublishRejected` when refused, any other exception when the call itself failed."""
        raise ServiceError(f"{self.title}: publishing without a connection is not supported")


@dataclass
class RoomSettings:
    """How many rooms a scenario uses and the service's own settings for them."""

    count: int = 1
    settings: dict = field(default_factory=dict)


class ServiceError(RuntimeError):
    """The service (or its control plane) could not do what a run needs; the message says why."""


class PublishRejected(Exception):
    """The service refused a published message."""

    def __init__(self, category: Category, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.category, self.code, self.message = category, code, message
