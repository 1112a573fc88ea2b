"""Hotsock's claims engine: what a verified JWT's claims allow on which channel. Pure — no I/O, no clock.

The emulator asks it whether a connection may subscribe, publish, broadcast or echo; the load
harness uses the same rules (and `channel_rule`) to mint tokens that allow exactly what a scenario
asks. Signatures and `exp`/`nbf`/`aud`/`iss` are checked before this (PyJWT, in the emulator);
`Claims.from_payload` checks the shape of everything else and raises `ClaimsError`.

How a channel's permissions are found (spec §1.1):
- `channels` keys are exact names, patterns with `*` (any run of characters, the empty one included)
  or `#regex:<pattern>`. Hotsock's regexes are Go `regexp`, which is RE2: linear in the name's
  length whatever the pattern. So is this engine (google-re2, the same syntax; Python's `re`
  backtracks, and `^(a+)+$` against a name the client picks took time doubling per character), with
  Go's `MatchString` semantics: the pattern may match anywhere in the name unless it is anchored
  with `^…$`. `*` wildcards are matched by the same engine.
- Every key matching a channel contributes. For each boolean directive an explicit `false` from any
  matching key wins, whatever the order; otherwise any `true`; otherwise the default (false).
- `messages` keys are event patterns with the same syntax, resolved the same way among the message
  rules of all the matching channel keys. Publish permission is per event:
  `publish` needs an active subscription; `broadcast` allows sending without one unless `publish`
  is explicitly false; `echo` (default false) sends the sender's connection a copy.
- `autoSubscribe` counts only under exact channel names (patterns are ignored for it: emulator
  choice, the service says "exact names only"), only in connect tokens, and never where an
  explicit `subscribe: false` matches the channel.
- A subscribe token's claims are merged with the connect token's for that one channel
  (`ChannelGrant.merged`): their matching rules are pooled, so an explicit `false` in either wins.
- `store` among several matching message rules: the largest, with -1 (forever) largest of all
  (emulator choice).
- `alias` (Hotsock ≥ 1.10, the vendor's claims page): a friendly name under which a client may
  subscribe, unsubscribe and publish to an exact channel. Only on exact names; a valid channel name;
  unique among the token's aliases and never one of its channel keys — otherwise the token is
  refused. A name the client sends that is one of the token's channel keys is that channel (the
  real name wins); otherwise an alias resolves to its channel (`real_channel`). Which alias a
  subscription carries (connect or subscribe token) is the data plane's business.
Unknown claims and directives (`getInfo`, `historyStart`, `storage`, …) are accepted and ignored;
known ones of the wrong type make the token invalid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson
import re2

from .. import untrusted
from .codec import channel_problem

SCOPES = frozenset({"connect", "subscribe", "umd"})
REGEX_PREFIX = "#regex:"
UID_MAX_CHARS = 128
UMD_MAX_BYTES = 1024
HEARTBEAT_RANGE_S = (5, 600)
STORE_MAX_S = 3_155_695_200  # about 100 years; -1 keeps forever


def _re2_options(*, dot_nl: bool) -> re2.Options:
    options = re2.Options()
    options.dot_nl = dot_nl  # Go's `.` stops at newlines; a `*` wildcard spans any character
    options.never_capture = True  # only whether it matches is asked
    options.log_errors = False  # a pattern that does not compile is the token's problem, said in ClaimsError
    options.max_mem = 1 << 20  # per pattern: its automaton's memory stays bounded however a name looks
    return options


_REGEX_OPTIONS, _WILDCARD_OPTIONS = _re2_options(dot_nl=False), _re2_options(dot_nl=True)


class ClaimsError(ValueError):
    """Claims of the wrong shape: the token is refused. The message never repeats a claim's value."""


# -- patterns ------------------------------------------------------------------------------------------


class Pattern:
    """One `channels` or `messages` key: an exact name, a `*` wildcard or a `#regex:`."""

    __slots__ = ("key", "exact", "_regex", "_search")

    def __init__(self, key: str) -> None:
        self.key = key
        self.exact = not key.startswith(REGEX_PREFIX) and "*" not in key
        if key.startswith(REGEX_PREFIX):
            try:
                self._regex = re2.compile(key[len(REGEX_PREFIX):], _REGEX_OPTIONS)
            except re2.error:
                raise ClaimsError("a #regex: key does not compile (RE2 syntax, as Go's regexp)") from None
            self._search = True
        elif not self.exact:
            self._regex = re2.compile(".*".join(re2.escape(part) for part in key.split("*")), _WILDCARD_OPTIONS)
            self._search = False
        else:
            self._regex = None
            self._search = False

    def matches(self, name: str) -> bool:
        if self._regex is None:
            return name == self.key
        if self._search:
            return self._regex.search(name) is not None
        return self._regex.fullmatch(name) is not None

    def __repr__(self) -> str:
        return f"Pattern({self.key!r})"


def resolve(values: Iterable[bool | None]) -> bool | None:
    """False if any value is False (an explicit false always wins), else True if any is, else None."""
    seen_true = False
    for value in values:
        if value is False:
            return False
        if value is True:
            seen_true = True
    return True if seen_true else None


# -- rules as the token states them ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageRule:
    publish: bool | None = None
    broadcast: bool | None = None
    echo: bool | None = None
    store: int | None = None


@dataclass(frozen=True, slots=True)
class ChannelRule:
    pattern: Pattern
    subscribe: bool | None = None
    auto_subscribe: bool | None = None
    umd_update: bool | None = None
    messages: tuple[tuple[Pattern, MessageRule], ...] = ()
    alias: str | None = None  # exact names only


# -- rules resolved for one channel ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Permission:
    """What one connection may do with one event on one channel."""

    publish: bool | None
    broadcast: bool | None
    echo: bool
    store: int  # seconds to keep a sent message; 0 none, -1 forever

    def allows(self, subscribed: bool) -> bool:
        if self.publish is False:
            return False
        return bool(self.broadcast) or (subscribed and self.publish is True)


@dataclass(frozen=True, slots=True)
class ChannelGrant:
    """Every rule of a token (or of a connect and a subscribe token together) matching one channel."""

    channel: str
    rules: tuple[ChannelRule, ...]

    @property
    def subscribe(self) -> bool:
        return resolve(rule.subscribe for rule in self.rules) is True

    @property
    def umd_update(self) -> bool:
        return resolve(rule.umd_update for rule in self.rules) is True

    def message(self, event: str) -> Permission:
        matching = [rule for channel_rule in self.rules for pattern, rule in channel_rule.messages
                    if pattern.matches(event)]
        stores = [rule.store for rule in matching if rule.store is not None]
        store = -1 if -1 in stores else max(stores, default=0)
        return Permission(resolve(r.publish for r in matching), resolve(r.broadcast for r in matching),
                          resolve(r.echo for r in matching) is True, store)

    def merged(self, other: ChannelGrant) -> ChannelGrant:
        if other.channel != self.channel:
            raise ValueError("grants of different channels do not merge")
        return ChannelGrant(self.channel, self.rules + other.rules)


# -- the whole token ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claims:
    scopes: frozenset[str]
    exp: float
    rules: tuple[ChannelRule, ...] = ()
    uid: str | None = None
    umd: object = None  # any JSON value
    nbf: float | None = None
    keep_alive: bool = False
    heartbeat_timeout_s: int | None = None
    connection_id: str | None = None
    single_use: bool = False
    jti: str | None = None
    umd_update: bool = False  # connection-level `hotsock.umdUpdate` allowed (umd-scoped tokens)
    umd_propagate: bool = False  # a connection-level umd update reaches the presence channels too

    @classmethod
    def from_payload(cls, payload: Mapping) -> Claims:
        if not isinstance(payload, Mapping):
            raise ClaimsError("the claims are not a JSON object")
        exp = _number(payload, "exp", required=True)
        nbf = _number(payload, "nbf")
        scope = payload.get("scope")
        if not isinstance(scope, str):
            raise ClaimsError("scope is required: a space-separated string of connect, subscribe, umd")
        scopes = frozenset(scope.split())
        if not scopes or not scopes <= SCOPES:
            raise ClaimsError("scope must list only connect, subscribe and umd")
        uid = payload.get("uid")
        if uid is not None and (not isinstance(uid, str) or len(uid) > UID_MAX_CHARS):
            raise ClaimsError(f"uid must be a string of at most {UID_MAX_CHARS} characters")
        umd = payload.get("umd")
        if umd is not None and len(orjson.dumps(umd)) > UMD_MAX_BYTES:
            raise ClaimsError(f"umd must serialise to at most {UMD_MAX_BYTES} bytes of JSON")
        heartbeat = payload.get("heartbeatTimeout")
        if heartbeat is not None:
            low, high = HEARTBEAT_RANGE_S
            if isinstance(heartbeat, bool) or not isinstance(heartbeat, int) or not low <= heartbeat <= high:
                raise ClaimsError(f"heartbeatTimeout must be a whole number of seconds from {low} to {high}")
        channels = payload.get("channels")
        if channels is not None and not isinstance(channels, Mapping):
            raise ClaimsError("channels must be an object")
        jti = payload.get("jti")
        if jti is not None and not isinstance(jti, str):
            raise ClaimsError("jti must be a string")
        connection_id = payload.get("connectionId")
        if connection_id is not None and not isinstance(connection_id, str):
            raise ClaimsError("connectionId must be a string")
        single_use = _flag(payload, "singleUse") is True
        if single_use and not jti:
            raise ClaimsError("singleUse needs a jti")
        rules = tuple(_channel_rule(key, value) for key, value in (channels or {}).items())
        _check_aliases(rules)
        return cls(
            scopes=scopes, exp=exp, nbf=nbf, uid=uid or None, umd=umd, rules=rules,
            keep_alive=_flag(payload, "keepAlive") is True, heartbeat_timeout_s=heartbeat,
            connection_id=connection_id, single_use=single_use, jti=jti,
            umd_update=_flag(payload, "umdUpdate") is True, umd_propagate=_flag(payload, "umdPropagate") is True,
        )

    def channel(self, name: str) -> ChannelGrant:
        return ChannelGrant(name, tuple(rule for rule in self.rules if rule.pattern.matches(name)))

    def names_channel(self, name: str) -> bool:
        """Whether `name` is one of this token's exact channel keys (a real name: it beats an alias)."""
        return any(rule.pattern.exact and rule.pattern.key == name for rule in self.rules)

    def aliased(self, name: str) -> str | None:
        """The channel this token grants under the alias `name`, or None."""
        return next((rule.pattern.key for rule in self.rules if rule.alias == name), None)

    def alias_of(self, channel: str) -> str | None:
        """The alias this token gives `channel`, or None."""
        return next((rule.alias for rule in self.rules if rule.alias is not None and rule.pattern.key == channel),
                    None)

    def real_channel(self, name: str) -> str:
        """The channel a name the client sent means under this token: a channel key is itself, an
        alias its channel, anything else itself."""
        if self.names_channel(name):
            return name
        return self.aliased(name) or name

    def auto_subscribe_channels(self) -> list[str]:
        """Exact channel names to subscribe at connect, in claim order (connect tokens only)."""
        if "connect" not in self.scopes:
            return []
        names = dict.fromkeys(rule.pattern.key for rule in self.rules
                              if rule.pattern.exact and rule.auto_subscribe is True)
        return [name for name in names if resolve(rule.subscribe for rule in self.channel(name).rules) is not False]


def _number(payload: Mapping, name: str, *, required: bool = False) -> float | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise ClaimsError(f"{name} is required")
        return None
    try:  # finite and in range: PyJWT lets a huge int through, and `float()` of it overflows
        return untrusted.seconds(value, name)
    except untrusted.Refused:
        raise ClaimsError(f"{name} must be a NumericDate (finite seconds since the epoch)") from None


def _flag(mapping: Mapping, name: str, where: str = "") -> bool | None:
    value = mapping.get(name)
    if value is not None and not isinstance(value, bool):
        raise ClaimsError(f"{where}{name} must be true or false")
    return value


def _channel_rule(key: object, value: object) -> ChannelRule:
    if not isinstance(key, str) or not key:
        raise ClaimsError("channels keys must be non-empty strings")
    where = "a channels entry's "
    if not isinstance(value, Mapping):
        raise ClaimsError("each channels entry must be an object")
    messages = value.get("messages")
    if messages is not None and not isinstance(messages, Mapping):
        raise ClaimsError(f"{where}messages must be an object")
    pattern = Pattern(key)
    alias = value.get("alias")
    if alias is not None:
        if channel_problem(alias) is not None:
            raise ClaimsError(f"{where}alias must be a valid channel name")
        if not pattern.exact:
            raise ClaimsError("an alias is allowed only on an exact channel name, not a wildcard or #regex: key")
    return ChannelRule(
        pattern, subscribe=_flag(value, "subscribe", where), auto_subscribe=_flag(value, "autoSubscribe", where),
        umd_update=_flag(value, "umdUpdate", where),
        messages=tuple(_message_rule(event, rule) for event, rule in (messages or {}).items()), alias=alias,
    )


def _check_aliases(rules: tuple[ChannelRule, ...]) -> None:
    """An alias names one channel only, and never shadows a channel key of the same token."""
    aliases = [rule.alias for rule in rules if rule.alias is not None]
    if len(set(aliases)) != len(aliases):
        raise ClaimsError("two channels have the same alias")
    keys = {rule.pattern.key for rule in rules}
    if any(alias in keys for alias in aliases):
        raise ClaimsError("an alias is also a channel key of the token")


def _message_rule(key: object, value: object) -> tuple[Pattern, MessageRule]:
    if not isinstance(key, str) or not key:
        raise ClaimsError("messages keys must be non-empty strings")
    if not isinstance(value, Mapping):
        raise ClaimsError("each messages entry must be an object")
    where = "a messages entry's "
    store = value.get("store")
    if store is not None and (isinstance(store, bool) or not isinstance(store, int) or not -1 <= store <= STORE_MAX_S):
        raise ClaimsError(f"{where}store must be a whole number of seconds from -1 to {STORE_MAX_S}")
    _flag(value, "emitPubSubEvent", where)
    return Pattern(key), MessageRule(_flag(value, "publish", where), _flag(value, "broadcast", where),
                                     _flag(value, "echo", where), store)


# -- building claims (the load harness mints tokens from these) --------------------------------------------


def channel_rule(*, subscribe: bool | None = True, publish: Iterable[str] = (), broadcast: Iterable[str] = (),
                 echo: bool = False, auto_subscribe: bool = False, store: int | None = None,
                 alias: str | None = None) -> dict:
    """One `channels` entry: subscribe, and send these events (with echo to oneself if asked); under
    `alias` if given."""
    rule: dict = {}
    if subscribe is not None:
        rule["subscribe"] = subscribe
    if alias is not None:
        rule["alias"] = alias
    if auto_subscribe:
        rule["autoSubscribe"] = True
    messages: dict = {}
    for event in publish:
        messages.setdefault(event, {})["publish"] = True
    for event in broadcast:
        messages.setdefault(event, {})["broadcast"] = True
    for entry in messages.values():
        if echo:
            entry["echo"] = True
        if store is not None:
            entry["store"] = store
    if messages:
        rule["messages"] = messages
    return rule
