"""The --chat-* options: the harness's own, then each registered service's.

Locust's own parser, not an argument group: only it knows include_in_web_ui. With no endpoint, the
process that owns the run starts the service's emulator on free loopback ports. Whatever the owner
sets on `parsed_options` (above all `chat_target`, the resolved target) reaches workers with every
spawn message.
"""

from __future__ import annotations

import functools

from locust import argument_parser, events

from ..net.source_addresses import parse_source_addresses
from ..net.transport import DEFAULT_TRANSPORT, TRANSPORTS
from ..services import registry
from ..services.token_endpoint import METHODS, TokenEndpoint, TokenEndpointError


@events.init_command_line_parser.add_listener
def _add_options(parser) -> None:
    parser.add_argument("--chat-endpoint", default="", include_in_web_ui=False,
                        help="data-plane endpoint of a running emulator or the real service "
                             "(e.g. wss://edge.ivschat.REGION.amazonaws.com); omit to start the embedded emulator")
    parser.add_argument("--chat-control-endpoint", default="", include_in_web_ui=False,
                        help="control plane of a running emulator (http://…); omit for AWS (default credential chain)")
    parser.add_argument("--chat-region", default="us-east-1", include_in_web_ui=False, help="AWS region")
    parser.add_argument("--chat-ca-file", default="", include_in_web_ui=False,
                        help="trust only this CA (PEM) for the endpoint's wss:// and the control plane's https:// "
                             "(a running emulator or an endpoint behind a private CA); default: the system store")
    parser.add_argument("--chat-tls", action="store_true", include_in_web_ui=False,
                        help="start the embedded emulator over TLS (wss://, https://) with a CA made for the run")
    parser.add_argument("--chat-room", "--chat-room-arn", dest="chat_room", default="", include_in_web_ui=False,
                        help="existing rooms (IVS Chat room ARNs, channels, …), comma-separated; required "
                             "against a real service")
    parser.add_argument("--chat-rooms", type=int, default=1, help="rooms to create on the emulator")
    parser.add_argument("--chat-mix", default="",
                        help="user mix as weights, e.g. Viewer=50,Chatter=5,Moderator=1: only the named classes "
                             "run (the locustfile's other classes get weight 0)")
    parser.add_argument("--chat-connections-per-user", type=int, default=0,
                        help="listener pools (docs/listener-pools.md): connections each pool user holds "
                             "(default: the class's connections_per_user)")
    parser.add_argument("--chat-message-rate", type=float, default=1.0, help="messages per second per sender")
    parser.add_argument("--chat-message-size", type=int, default=32, help="characters per message")
    parser.add_argument("--chat-tokens", default="", include_in_web_ui=False,
                        help="file of pre-made tokens (single-use) instead of the service's own token source")
    parser.add_argument("--chat-token-command", default="", include_in_web_ui=False,
                        help="command printing a token (gets CHATLOAD_USER_ID, CHATLOAD_ROOM, …)")
    _add_token_endpoint_options(parser)
    parser.add_argument("--chat-drain", type=float, default=5.0,
                        help="seconds to keep receiving at stop for messages in flight")
    parser.add_argument("--chat-connect-timeout", type=float, default=10.0, help="seconds per connection attempt")
    parser.add_argument("--chat-transport", default=DEFAULT_TRANSPORT, choices=sorted(TRANSPORTS),
                        include_in_web_ui=False, help="WebSocket client implementation (default %(default)s)")
    parser.add_argument("--chat-source-addresses", default="", include_in_web_ui=False, metavar="IP,IP…",
                        help="local addresses to connect from, in turn (e.g. 127.0.0.1,127.0.0.2): each has its own "
                             "~28k ephemeral ports to one endpoint, so more connections than that from one machine "
                             "need more of them (default: the system chooses)")
    parser.add_argument("--chat-clock-sync", choices=("auto", "ping"), default="auto", include_in_web_ui=False,
                        help="workers' clock offset to the master: auto (exact on the master's machine, found by "
                             "the kernel's boot id; pings elsewhere) or ping (always estimate by min-RTT pings)")
    parser.add_argument("--chat-report-dir", default="reports", include_in_web_ui=False,
                        help="where results.json goes (reports/locust/<timestamp>/ by default)")
    parser.add_argument("--chat-run-name", default="locust", include_in_web_ui=False,
                        help="name of the run's folder under the report dir")
    parser.add_argument("--chat-progress-file", default="", include_in_web_ui=False,
                        help="append one JSON line of progress a second here (used by `chatload run`)")
    parser.add_argument("--chat-command-file", default="", include_in_web_ui=False,
                        help="read commands (JSON lines, e.g. a moderator kick) from here during the run")
    parser.add_argument("--chat-yes", action="store_true", default=False, include_in_web_ui=False,
                        help="against a real service that bills per message (IVS Chat, Hotsock), do not ask "
                             "before sending")
    parser.add_argument("--chat-health-window", choices=("steady", "ramp"), default="steady", include_in_web_ui=False,
                        help="seconds the harness-health rule judges: steady (every user started; the default) "
                             "or ramp (the ramp too, for a run that measures its ramp)")
    parser.add_argument("--chat-target", default="", include_in_web_ui=False,
                        help="the resolved target as JSON (set by chatload itself; no secrets)")
    for name in registry.names():
        registry.get(name).add_locust_options(parser)


def _add_token_endpoint_options(parser) -> None:
    """`[target.token_endpoint]` as options (harness/services/token_endpoint.py; `chatload run` passes a
    scenario's this way, `target.token_endpoint_of` reads them back)."""
    parser.add_argument("--chat-token-url", default="", include_in_web_ui=False,
                        help="the application's own token endpoint (instead of the service's API); placeholders "
                             "{user_id} {room} {capabilities} {session} {session_minutes} {population}")
    parser.add_argument("--chat-token-method", default="POST", choices=METHODS, type=str.upper,
                        include_in_web_ui=False, help="HTTP method of the token endpoint")
    parser.add_argument("--chat-token-header", action="append", default=[], include_in_web_ui=False,
                        help="'Name: value' (repeatable); a value env:NAME is read from the environment, never shown")
    parser.add_argument("--chat-token-body", default="", include_in_web_ui=False,
                        help="request body template, with the placeholders of --chat-token-url")
    parser.add_argument("--chat-token-path", default="token", include_in_web_ui=False,
                        help="JSON path of the token in the answer (a.b, a[0].b)")
    parser.add_argument("--chat-token-expiry-path", default="", include_in_web_ui=False,
                        help="JSON path of the token's expiry (ISO 8601 or epoch seconds)")
    parser.add_argument("--chat-token-session-path", default="", include_in_web_ui=False,
                        help="JSON path of a session id sent back as {session} by the user's next fetch")
    parser.add_argument("--chat-token-field", action="append", default=[], include_in_web_ui=False,
                        help="name=json.path (repeatable): what else the service's connect needs from the answer "
                             "(Chime: signaling_url)")
    parser.add_argument("--chat-token-subscribe", action="store_true", include_in_web_ui=False,
                        help="also fetch a token for each subscribe (Hotsock's subscribeTokenFn); {purpose} "
                             "is then 'subscribe', with {channel} and {connection_id}")
    parser.add_argument("--chat-token-subscribe-url", default=None, include_in_web_ui=False,
                        help="where subscribe tokens come from (default: --chat-token-url)")
    parser.add_argument("--chat-token-subscribe-body", default=None, include_in_web_ui=False,
                        help="the subscribe request's body template (default: --chat-token-body)")
    parser.add_argument("--chat-token-subscribe-path", default=None, include_in_web_ui=False,
                        help="JSON path of the subscribe token (default: --chat-token-path)")
    parser.add_argument("--chat-token-timeout", type=float, default=10.0, include_in_web_ui=False,
                        help="seconds a token fetch may take before it fails as a timeout")


def token_endpoint_from_options(options) -> TokenEndpoint | None:
    """The endpoint the `--chat-token-*` options declare, or None without `--chat-token-url`."""
    url = getattr(options, "chat_token_url", "")
    if not url:
        return None
    headers = {}
    for item in getattr(options, "chat_token_header", None) or ():
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise TokenEndpointError(f"--chat-token-header {item.split(':')[0]!r}…: write it as 'Name: value'")
        headers[name.strip()] = value.strip()
    fields = {}
    for item in getattr(options, "chat_token_field", None) or ():
        name, sep, path = item.partition("=")
        if not sep:
            raise TokenEndpointError(f"--chat-token-field {item!r}: write it as name=json.path")
        fields[name.strip()] = path.strip()
    return TokenEndpoint(url=url, method=options.chat_token_method.upper(), headers=headers,
                         body=options.chat_token_body or "", token=options.chat_token_path,
                         expiry=options.chat_token_expiry_path or None, session=options.chat_token_session_path or None,
                         fields=fields, timeout_s=options.chat_token_timeout,
                         subscribe_tokens=options.chat_token_subscribe,
                         subscribe_url=options.chat_token_subscribe_url, subscribe_body=options.chat_token_subscribe_body,
                         subscribe_token=options.chat_token_subscribe_path)


def option(environment, name: str, default=None):
    options = environment.parsed_options
    return getattr(options, name, default) if options is not None else default


def _compute_locust_defaults_once() -> None:
    """A Locust worker handling a spawn message tests each key of the options against
    `argument_parser.default_args_dict()` inside a dict comprehension, and that function builds
    Locust's whole parser anew on every call: one rebuild per key (a hundred with the --chat-*
    options) for every spawn message, i.e. every second of a ramp. Measured: 0.5 to 3.7 s with the
    worker's hub blocked per message during a 1,000-user ramp on 2 shared cores, enough to miss
    heartbeats and delay every scheduled send. The defaults are Locust's own options, fixed for the
    life of a process: compute them once (each caller still gets its own copy)."""
    current = argument_parser.default_args_dict
    if getattr(current, "chatload_cached", False):
        return
    defaults = functools.cache(current)

    @functools.wraps(current)
    def default_args_dict() -> dict:
        return dict(defaults())

    default_args_dict.chatload_cached = True
    argument_parser.default_args_dict = default_args_dict


_compute_locust_defaults_once()


def source_addresses_of(environment) -> tuple[str, ...]:
    """`--chat-source-addresses` as addresses; a bad one stops the run with the option named."""
    try:
        return parse_source_addresses(option(environment, "chat_source_addresses", ""))
    except ValueError as exc:
        raise SystemExit(f"chatload: --chat-source-addresses: {exc}") from None
