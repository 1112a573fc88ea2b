"""The resolved target as every process reads it: which service, where, which rooms, and where
tokens come from.

The process that owns the run resolves the target once (`harness.locust.target_setup`, or `chatload
run` itself) and stores it as JSON in `parsed_options.chat_target`, which reaches every worker with
every spawn message. Every process then builds its runtime from that one `Target` (`resolved_target`).
"""

from __future__ import annotations

import json

from ..net.tls import trust_target
from ..services import registry
from ..services.base import ChatService, Target
from ..services.token_endpoint import TokenEndpointError
from .options import option, token_endpoint_from_options


def resolved_target(environment) -> tuple[ChatService, Target]:
    raw = option(environment, "chat_target")
    if not raw:
        raise RuntimeError("chatload: no resolved target; the master/local process sets it at init")
    target = Target.from_dict(json.loads(raw))
    trust_target(target)  # before any token provider or control-plane client of this process is made
    return registry.get(target.service), target


def token_endpoint_of(environment, service: ChatService):
    """The application's token endpoint the `--chat-token-*` options declare (None: not used), checked
    whole — its header variables set too — or SystemExit naming the option and the reason."""
    from ..services.token_endpoint import check, resolved_headers

    try:
        endpoint = token_endpoint_from_options(environment.parsed_options)
        if endpoint is None:
            return None
        problems = check(endpoint, tuple(service.token_endpoint_fields), service.token_purposes)
        if problems:
            raise TokenEndpointError("; ".join(f"token endpoint {key}: {why}" for key, why in problems))
        resolved_headers(endpoint)
    except TokenEndpointError as exc:
        raise SystemExit(f"chatload: {exc}") from None
    return endpoint


def token_provider(environment, service: ChatService, target: Target):
    from ..services.tokens import CommandTokenProvider, StaticTokenProvider

    endpoint = token_endpoint_of(environment, service)
    if endpoint is not None:
        from ..session.token_fetch import EndpointTokens

        return EndpointTokens(endpoint, service.name, target)
    if option(environment, "chat_tokens"):
        return StaticTokenProvider(option(environment, "chat_tokens"))
    if option(environment, "chat_token_command"):
        return CommandTokenProvider(option(environment, "chat_token_command"), service=service.name)
    return service.token_provider(target)


def public_target(environment) -> dict:
    """The target as a report may show it (a Target holds no secrets by construction)."""
    raw = option(environment, "chat_target")
    target = json.loads(raw) if raw else {}
    target.pop("ca_pem", None)  # the CA's whole PEM, for workers: ca_file names it in a report
    return target
