"""The target of a plain Locust run (`locust -f`), prepared by the process that owns the run.

The local runner or the master resolves it once in `init`: it starts the service's embedded emulator
when no endpoint is given and provisions rooms where none are named (`net.target_resolution`, as
`chatload run` does), then stores the resolved `Target` as JSON in `parsed_options.chat_target`,
which reaches every worker with every spawn message (`harness.locust.target` reads it). `chatload
run` resolves the target itself and passes it the same way.
"""

from __future__ import annotations

import json
import logging

from locust import events
from locust.runners import WorkerRunner

from ..net.tls import ca_file_problem, ca_pem_of
from ..services import registry
from ..services.base import KIND_EMULATOR, KIND_RUNNING_EMULATOR, ChatService, ServiceError, Target
from ..services.target_resolution import resolve_target
from .options import option, source_addresses_of
from .state import state_of
from .target import token_endpoint_of
from .users import ChatUser

log = logging.getLogger("chatload")


def service_of(environment) -> ChatService | None:
    """The service this locustfile's chat users speak (one per run), or None without chat users."""
    names = {cls.service for cls in environment.user_classes if issubclass(cls, ChatUser)}
    if len(names) > 1:
        raise SystemExit(f"chatload: one service per run; this locustfile's users speak {', '.join(sorted(names))}")
    return registry.get(names.pop()) if names else None


@events.init.add_listener
def _on_init(environment, runner=None, **_kwargs) -> None:
    if isinstance(runner, WorkerRunner) or environment.parsed_options is None:
        return
    service = service_of(environment)
    if service is None:
        return
    _apply_mix(environment)  # a bad option must stop us before anything is started
    source_addresses_of(environment)
    token_endpoint_of(environment, service)
    _prepare_target(environment, service)


def _apply_mix(environment) -> None:
    """`--chat-mix Viewer=50,Chatter=5`: weights by user class name, checked against the locustfile.
    Only the named classes run: every other class of the locustfile gets weight 0."""
    mix = option(environment, "chat_mix")
    if not mix:
        return
    classes = {cls.__name__: cls for cls in environment.user_classes}
    weights = {}
    for item in mix.split(","):
        name, _, weight = item.partition("=")
        name = name.strip()
        if name not in classes:
            raise SystemExit(f"chatload: --chat-mix names {name!r}; user classes here: {', '.join(sorted(classes))}")
        if not weight.strip().isdigit():
            raise SystemExit(f"chatload: --chat-mix weight for {name} must be a whole number, not {weight!r}")
        weights[name] = int(weight)
    if not any(weights.values()):
        raise SystemExit("chatload: --chat-mix gives every class weight 0: nothing would run")
    for name, cls in classes.items():
        cls.weight, cls.fixed_count = weights.get(name, 0), 0


def _prepare_target(environment, service: ChatService) -> None:
    options = environment.parsed_options
    if options.chat_target:
        _show_target_as_host(environment)
        return  # resolved by `chatload run`
    state = state_of(environment)
    endpoint, control, region = options.chat_endpoint, options.chat_control_endpoint, options.chat_region
    ca_file = options.chat_ca_file
    if endpoint and options.chat_tls:
        raise SystemExit("chatload: --chat-tls starts the embedded emulator over TLS; with --chat-endpoint, give "
                         "its wss:// URL (and --chat-ca-file for a private CA)")
    if ca_file:
        if endpoint and (problem := ca_file_problem(ca_file)):
            raise SystemExit(f"chatload: --chat-ca-file: {problem}")
    if not endpoint:
        if ca_file:
            raise SystemExit("chatload: --chat-ca-file is for a running emulator or a real endpoint; the embedded "
                             "emulator makes its own CA (--chat-tls)")
        state.emulator = service.start_emulator(*(["--tls"] if options.chat_tls else []))
        control = state.emulator.control_endpoint
        kind = KIND_EMULATOR
        events.quitting.add_listener(lambda **_: state.emulator.stop())
        log.info("chatload: embedded %s emulator at %s", service.title, state.emulator.messaging_endpoint)
    else:
        kind = KIND_RUNNING_EMULATOR if control else service.real_kind
    if kind == service.real_kind:
        _confirm_billing(environment, service)
    rooms = tuple(r for r in options.chat_room.split(",") if r)
    if not rooms and not control:
        raise SystemExit(f"chatload: --chat-room is required against the real {service.title} "
                         f"({service.room_noun}s are not created for you)")
    target = Target(service.name, kind, endpoint, control, region, rooms, ca_file=ca_file, ca_pem=ca_pem_of(ca_file))
    try:
        target = resolve_target(service, target, None if rooms else service.rooms_from_options(options), "chatload",
                                emulator=state.emulator if kind == KIND_EMULATOR else None)
    except ServiceError as exc:
        raise SystemExit(f"chatload: {exc}") from None
    options.chat_target = json.dumps(target.to_dict())
    _show_target_as_host(environment)


def _confirm_billing(environment, service: ChatService) -> None:
    """Against a real service that bills per message, ask first, as `chatload run` does: with the
    load bounded (headless, -u and -t) say at most how much; else say the load is what you start."""
    from ..services.billing import ask_before_billing

    if not service.bills_messages:
        return
    options = environment.parsed_options
    users, seconds = getattr(options, "num_users", None), getattr(options, "run_time", None)
    if getattr(options, "headless", False) and users and seconds:
        rate = option(environment, "chat_message_rate", 1.0)
        sent = int(users * rate * seconds)  # as if every user sent: an upper bound
        note = f"{service.billing_note(sent, sent * users)} (at most: every user counted as a sender)"
    else:
        note = (f"{service.title} bills every message sent and every delivery; the load is what you start "
                "(users, --chat-message-rate, run time), without an upper bound here.")
    refusal = ask_before_billing(f"chatload: this Locust run targets the REAL {service.title} "
                                 f"({options.chat_endpoint}).", note, option(environment, "chat_yes", False),
                                 flag="--chat-yes")
    if refusal:
        raise SystemExit(f"chatload: {refusal}")


def _show_target_as_host(environment) -> None:
    """Locust's web UI asks for a host when none is set; a chat run's host is its data-plane endpoint
    (shown there, never used: our users connect where the target says)."""
    if not environment.host:
        environment.host = json.loads(environment.parsed_options.chat_target)["endpoint"]
