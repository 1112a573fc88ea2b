"""The application's own token endpoint: what to ask it and how to read its answer (sans-I/O).

In production no chat client calls CreateChatToken, CreateAttendee or CreateParticipantToken, and
no browser holds a Hotsock signing key: the IVS Chat SDK's `tokenProvider`, hotsock-js's
`connectTokenFn` and a Chime or IVS Real-Time app's join handler all ask the application's backend.
`[target.token_endpoint]` (or the `--chat-token-*` options) describes that endpoint for any
service; `harness/session/token_fetch.py` calls it on the loop, once per connect or reconnect.

This module holds no I/O: the declaration (`TokenEndpoint`, JSON-able and free of secrets — a
header that carries one names an environment variable, `env:NAME`, whose value is read only by
the process that sends it), the request template and the reading of an answer by JSON paths.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qsl, quote, urlsplit

from ..files.toml_tables import NUMBER, Key

PLACEHOLDERS = ("user_id", "room", "capabilities", "session", "session_minutes", "population", "purpose",
                "channel", "connection_id")  # the last two: subscribe tokens only (empty for a connect)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PATH_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
# Header (and URL query parameter) names whose value is a credential: written in a scenario they would
# reach reports and argv.
_SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|key|auth|pass|signature|credential|jwt|bearer",
                            re.IGNORECASE)
METHODS = ("GET", "POST")


class TokenEndpointError(ValueError):
    """An endpoint declaration that cannot work; the message names the key."""


class BadAnswer(ValueError):
    """The endpoint answered 2xx with something the declaration cannot read; `cause` is the counter's."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


KEYS = (
    Key("url", str, None, "the application's token URL; may hold placeholders (URL-encoded), e.g. "
        "`?user={user_id}`", '"http://127.0.0.1:8080/chat/token"', required=True),
    Key("method", str, "POST", "HTTP method", '"POST"', choices=METHODS),
    Key("headers", dict, {}, "request headers; a value `env:NAME` is read from the environment and never "
        "printed (credentials must be given this way)", '{ Authorization = "env:APP_TOKEN" }'),
    Key("body", str, "", "request body template (POST): placeholders " + ", ".join(f"`{{{p}}}`" for p in PLACEHOLDERS)
        + "; JSON-escaped when the body is JSON", '\'{"user": "{user_id}", "room": "{room}"}\''),
    Key("token", str, "token", "JSON path of the token in the answer (`a.b`, `a[0].b`)", '"Attendee.JoinToken"'),
    Key("expiry", str, None, "JSON path of the token's expiry (ISO 8601 or epoch seconds); a token already "
        "expired when it arrives is a failed fetch (`expired`)", '"expiresAt"'),
    Key("session", str, None, "JSON path of a session id the next fetch of the same user sends back as "
        "`{session}` (a reconnect rejoins its session)", '"sessionId"'),
    Key("subscribe_tokens", bool, False, "also fetch a token for each subscribe (Hotsock's subscribeTokenFn): "
        "`{purpose}` is then \"subscribe\", `{channel}` and `{connection_id}` say for what", "true"),
    Key("subscribe_url", str, None, "where subscribe tokens come from (default: `url`)",
        '"http://127.0.0.1:8080/hotsock/subscribe-token"'),
    Key("subscribe_body", str, None, "the subscribe request's body template (default: `body`)",
        '\'{"channel": "{channel}", "connectionId": "{connection_id}"}\''),
    Key("subscribe_token", str, None, "JSON path of the subscribe token (default: `token`)", '"token"'),
    Key("timeout", NUMBER, 10, "seconds a fetch may take, answer included: then it fails (`timeout`)", "5",
        minimum=0.05, maximum=120),
)


@dataclass(frozen=True)
class TokenEndpoint:
    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)  # values as written: literal or env:NAME
    body: str = ""
    token: str = "token"
    expiry: str | None = None
    session: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)  # the service's own answer paths, by name
    timeout_s: float = 10.0
    subscribe_tokens: bool = False
    subscribe_url: str | None = None
    subscribe_body: str | None = None
    subscribe_token: str | None = None

    def for_purpose(self, purpose: str | None) -> TokenEndpoint:
        """The declaration a fetch for `purpose` uses: a subscribe token's url, body and path."""
        if purpose != "subscribe":
            return self
        return TokenEndpoint(url=self.subscribe_url or self.url, method=self.method, headers=self.headers,
                             body=self.body if self.subscribe_body is None else self.subscribe_body,
                             token=self.subscribe_token or self.token, timeout_s=self.timeout_s)

    def to_dict(self) -> dict:
        return {"url": self.url, "method": self.method, "headers": dict(self.headers), "body": self.body,
                "token": self.token, "expiry": self.expiry, "session": self.session, "fields": dict(self.fields),
                "timeout_s": self.timeout_s, "subscribe_tokens": self.subscribe_tokens,
                "subscribe_url": self.subscribe_url, "subscribe_body": self.subscribe_body,
                "subscribe_token": self.subscribe_token}

    @classmethod
    def from_dict(cls, data: Mapping) -> TokenEndpoint:
        return cls(**{**data, "headers": dict(data.get("headers") or {}), "fields": dict(data.get("fields") or {})})


def token_endpoint_args(endpoint: TokenEndpoint) -> list[str]:
    """The same declaration as `--chat-token-*` options (what `chatload run` hands Locust; the options
    are declared and read back in harness/locust/options.py — this module imports no Locust)."""
    args = ["--chat-token-url", endpoint.url, "--chat-token-method", endpoint.method, "--chat-token-path", endpoint.token,
            "--chat-token-timeout", f"{endpoint.timeout_s:g}"]
    if endpoint.body:
        args += ["--chat-token-body", endpoint.body]
    if endpoint.expiry:
        args += ["--chat-token-expiry-path", endpoint.expiry]
    if endpoint.session:
        args += ["--chat-token-session-path", endpoint.session]
    for name, value in endpoint.headers.items():
        args += ["--chat-token-header", f"{name}: {value}"]
    for name, path in endpoint.fields.items():
        args += ["--chat-token-field", f"{name}={path}"]
    if endpoint.subscribe_tokens:
        args += ["--chat-token-subscribe"]
    for option, value in (("--chat-token-subscribe-url", endpoint.subscribe_url),
                          ("--chat-token-subscribe-body", endpoint.subscribe_body),
                          ("--chat-token-subscribe-path", endpoint.subscribe_token)):
        if value is not None:
            args += [option, value]
    return args


def check(endpoint: TokenEndpoint, field_names=(), purposes=()) -> list[tuple[str, str]]:
    """Every problem of a declaration, as (key, reason); [] when it can work. `field_names` and
    `purposes`: what the service reads from an answer, and the tokens beyond the connect's it asks for."""
    problems = []
    if endpoint.subscribe_tokens and "subscribe" not in purposes:
        problems.append(("subscribe_tokens", "this service asks for no subscribe tokens"))
    if not endpoint.subscribe_tokens:
        problems += [(key, "only with subscribe_tokens = true") for key, value in
                     (("subscribe_url", endpoint.subscribe_url), ("subscribe_body", endpoint.subscribe_body),
                      ("subscribe_token", endpoint.subscribe_token)) if value is not None]
    elif endpoint.subscribe_url is not None and not re.match(r"https?://[^/]", endpoint.subscribe_url):
        problems.append(("subscribe_url", f"must be an http:// or https:// URL, not {endpoint.subscribe_url!r}"))
    if not re.match(r"https?://[^/]", endpoint.url or ""):
        problems.append(("url", f"must be an http:// or https:// URL, not {endpoint.url!r}"))
    for key in ("url", "subscribe_url"):
        problems += [(key, why) for why in _url_credentials(getattr(endpoint, key) or "")]
    if endpoint.method not in METHODS:
        problems.append(("method", f"must be one of {', '.join(METHODS)}"))
    for key, text in (("url", endpoint.url), ("body", endpoint.body), ("subscribe_url", endpoint.subscribe_url),
                      ("subscribe_body", endpoint.subscribe_body)):
        unknown = sorted({name for name in _PLACEHOLDER.findall(text or "") if name not in PLACEHOLDERS})
        if unknown:
            problems.append((key, f"unknown placeholder {', '.join('{' + n + '}' for n in unknown)}; "
                                  f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"))
    if endpoint.body and endpoint.method == "GET":
        problems.append(("body", "a GET has no body: put the placeholders in the url"))
    for name, value in endpoint.headers.items():
        if not isinstance(value, str):
            problems.append((f"headers.{name}", "must be a string"))
        elif _SECRET_HEADER.search(name) and not value.startswith("env:"):
            problems.append((f"headers.{name}", "looks like a credential: give it as env:NAME (a literal value "
                                                "would be written to reports and command lines)"))
    for key, path in (("token", endpoint.token), ("expiry", endpoint.expiry), ("session", endpoint.session),
                      ("subscribe_token", endpoint.subscribe_token),
                      *((f"fields.{n}", p) for n, p in endpoint.fields.items())):
        if path is not None and not _valid_path(path):
            problems.append((key, f"{path!r} is not a JSON path (write a.b or a[0].b)"))
    for name in endpoint.fields:
        if name not in field_names:
            problems.append((f"fields.{name}", f"this service reads no {name!r} from the answer"
                                               + (f"; it reads {', '.join(field_names)}" if field_names else "")))
    return problems


def _url_credentials(url: str) -> list[str]:
    """Why a URL holds a literal credential (user:password@, or ?api_key=… not from a placeholder)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []  # not a URL at all: said by the scheme check
    problems = []
    if "@" in parts.netloc:
        problems.append("holds a user name or password (user:password@host): it would be written to reports "
                        "and command lines; send it as a header given as env:NAME")
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_HEADER.search(name) and value and not _PLACEHOLDER.fullmatch(value):
            problems.append(f"query parameter {name} looks like a credential: a literal value would be written to "
                            "reports and command lines; send it as a header given as env:NAME")
    return problems


def field_keys(fields: Mapping[str, str]) -> tuple[Key, ...]:
    """A service's answer fields (`ChatService.token_endpoint_fields`) as keys of the same table."""
    return tuple(Key(name, str, None, f"JSON path of {meaning} in the answer", f'"{example}"')
                 for name, (meaning, example) in fields.items())


def read_table(table, fields: Mapping[str, tuple[str, str]], purposes=()) -> TokenEndpoint:
    """`[target.token_endpoint]` through a `harness.files.toml_tables.TableReader` (every problem reported on it)."""
    own = field_keys(fields)
    values = table.read_all((*KEYS, *own))
    headers = values["headers"] if isinstance(values["headers"], dict) else {}
    endpoint = TokenEndpoint(url=values["url"] or "", method=values["method"], headers=headers, body=values["body"],
                             token=values["token"], expiry=values["expiry"], session=values["session"],
                             fields={key.name: values[key.name] for key in own if values[key.name]},
                             timeout_s=float(values["timeout"]), subscribe_tokens=bool(values["subscribe_tokens"]),
                             subscribe_url=values["subscribe_url"], subscribe_body=values["subscribe_body"],
                             subscribe_token=values["subscribe_token"])
    for key, reason in check(endpoint, tuple(fields), tuple(purposes)):
        if key != "url" or values["url"]:  # a missing url is reported as required already
            table.fail(key, reason)
    return endpoint


def resolved_headers(endpoint: TokenEndpoint, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Header values to send: `env:NAME` read now. The error names the header and the variable only."""
    headers = {}
    for name, value in endpoint.headers.items():
        if value.startswith("env:"):
            variable = value[4:]
            if not environ.get(variable):
                raise TokenEndpointError(f"token endpoint header {name}: environment variable {variable} is not "
                                         "set or empty")
            headers[name] = environ[variable]
        else:
            headers[name] = value
    return headers


def render(template: str, values: Mapping[str, str], *, escape) -> str:
    """The template with each known `{name}` replaced by `escape(value)`; other braces stay as written
    (a JSON body is full of them)."""
    return _PLACEHOLDER.sub(lambda m: escape(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


def request_of(endpoint: TokenEndpoint, values: Mapping[str, str]) -> tuple[str, str, str]:
    """(url, body, content type) for one fetch: URL values URL-encoded; the body is JSON when its
    template, placeholders aside, starts with `{` or `[` (values JSON-escaped), else a form (values
    URL-encoded). Decided once, here: a form template may start with a placeholder (`{user_id}&…`)."""
    url = render(endpoint.url, values, escape=lambda v: quote(v, safe=""))
    body = endpoint.body
    if not body:
        return url, "", ""
    as_json = _PLACEHOLDER.sub("", body).lstrip()[:1] in ("{", "[")
    body = render(body, values, escape=(lambda v: json.dumps(v)[1:-1]) if as_json else (lambda v: quote(v, safe="")))
    return url, body, "application/json" if as_json else "application/x-www-form-urlencoded"


_PATH = re.compile(r"[^.\[\]]+(\[\d+\])*(\.[^.\[\]]+(\[\d+\])*)*")


def _valid_path(path: str) -> bool:
    return isinstance(path, str) and _PATH.fullmatch(path) is not None


def lookup(document, path: str):
    """The value at `path` (`a.b[0].c`); KeyError naming the first step that is not there."""
    value = document
    walked = ""
    for match in _PATH_STEP.finditer(path):
        name, index = match.group(1), match.group(2)
        if name is not None:
            if not isinstance(value, dict) or name not in value:
                raise KeyError(f"{walked + '.' if walked else ''}{name}")
            value = value[name]
            walked = f"{walked}.{name}" if walked else name
        else:
            position = int(index)
            if not isinstance(value, list) or position >= len(value):
                raise KeyError(f"{walked}[{position}]")
            value = value[position]
            walked = f"{walked}[{position}]"
    return value


@dataclass(frozen=True)
class Answer:
    """What one 2xx answer gave: the token, the service's fields, the session id and the expiry."""

    token: str
    fields: Mapping[str, str]
    session: str | None = None
    expires_at: float | None = None  # epoch seconds


def read_answer(endpoint: TokenEndpoint, raw: bytes, now: float | None = None) -> Answer:
    """The answer's parts by the declared paths; `BadAnswer` naming the path that failed. The error
    never quotes the answer (it holds a token)."""
    try:
        document = json.loads(raw)
    except ValueError:
        raise BadAnswer("bad_json", f"the answer is not JSON ({len(raw)} bytes); the token was looked for at "
                                    f"{endpoint.token!r}") from None

    def string_at(path: str, what: str) -> str:
        try:
            value = lookup(document, path)
        except KeyError as missing:
            raise BadAnswer("no_" + what, f"no {what} at {path!r} in the answer ({missing.args[0]!r} is "
                                          "missing)") from None
        if isinstance(value, int | float) and not isinstance(value, bool) and what in ("expiry", "session"):
            return str(value)
        if not isinstance(value, str) or not value:
            raise BadAnswer("no_" + what, f"the {what} at {path!r} is not a non-empty string")
        return value

    token = string_at(endpoint.token, "token")
    fields = {name: string_at(path, name) for name, path in endpoint.fields.items()}
    session = string_at(endpoint.session, "session") if endpoint.session else None
    expires_at = None
    if endpoint.expiry:
        expires_at = _epoch(string_at(endpoint.expiry, "expiry"), endpoint.expiry)
        if expires_at <= (time.time() if now is None else now):
            raise BadAnswer("expired", f"the token expired already (expiry at {endpoint.expiry!r})")
    return Answer(token, fields, session, expires_at)


def _epoch(value: str, path: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadAnswer("no_expiry", f"the expiry at {path!r} is neither ISO 8601 nor epoch seconds") from None


class IssuedToken(str):
    """A token string that also carries what the answer said beside it (`fields`: e.g. Chime's
    signaling URL), so `ChatService.connect_params(target, token, user)` keeps its signature."""

    fields: Mapping[str, str]

    def __new__(cls, token: str, fields: Mapping[str, str] | None = None) -> IssuedToken:
        issued = super().__new__(cls, token)
        issued.fields = dict(fields or {})
        return issued


def answer_field(token: str, name: str) -> str | None:
    """A field the token endpoint's answer gave with this token, if it came from one."""
    return getattr(token, "fields", {}).get(name)
