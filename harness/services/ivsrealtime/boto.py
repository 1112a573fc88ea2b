"""A boto3 `ivs-realtime` client for AWS or for the emulator (one shared per process for the stage
operations), and token issuance that reports 429s.

The control plane model has no throttling shape; past its quotas the service (and the emulator with
`--throttle`) answers HTTP 429 `ThrottlingException`, which botocore retries by default. A load test
of token issuance must see each 429, so `no_retry_client` turns botocore's retries off and
`create_participant_token` returns the answer or raises the ClientError as it came.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

THROTTLED = "ThrottlingException"


def ivsrealtime_client(region: str, endpoint_url: str | None = None, **options):
    """AWS (default credential chain) without `endpoint_url`; the emulator with it."""
    import boto3

    from ...net.tls import http_verify  # an emulator over https:// is trusted through its own CA

    if endpoint_url:  # the emulator ignores signatures, but boto3 wants credentials to sign with
        options = {"endpoint_url": endpoint_url, "aws_access_key_id": "emulator",
                   "aws_secret_access_key": "emulator", "verify": http_verify(endpoint_url), **options}
    return boto3.client("ivs-realtime", region_name=region, **options)


def no_retry_client(region: str, endpoint_url: str | None = None, **options):
    """The same client with botocore retries off: one HTTP request per call, 429s raised at once."""
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    if "config" in options:
        config = options.pop("config").merge(config)
    return ivsrealtime_client(region, endpoint_url, config=config, **options)


@functools.cache
def _control_client(region: str, endpoint_url: str | None):
    from botocore.config import Config

    # The stage operations are limited to 5 TPS: provisioning, GetStage and kicks retry a throttled call
    # (botocore's standard mode backs off); CreateParticipantToken never goes through this client.
    return ivsrealtime_client(region, endpoint_url, config=Config(
        retries={"mode": "standard", "total_max_attempts": 6}, connect_timeout=5, read_timeout=10))


def control_client(region: str, endpoint_url: str | None = None):
    """One boto3 `ivs-realtime` client per process and endpoint, retrying throttled calls."""
    return _control_client(region, endpoint_url or None)


def create_participant_token(client, stage_arn: str, *, user_id: str | None = None,
                             capabilities: Iterable[str] | None = None, attributes: Mapping[str, str] | None = None,
                             duration_minutes: int | None = None) -> dict:
    """One CreateParticipantToken call: the `participantToken` structure (token, participantId, …).

    Use a `no_retry_client`; a throttled call raises botocore's ClientError whose
    `response["Error"]["Code"]` is "ThrottlingException" and HTTP status 429 (`is_throttled`).
    """
    kwargs: dict = {"stageArn": stage_arn}
    if user_id is not None:
        kwargs["userId"] = user_id
    if capabilities is not None:
        kwargs["capabilities"] = list(capabilities)
    if attributes is not None:
        kwargs["attributes"] = dict(attributes)
    if duration_minutes is not None:
        kwargs["duration"] = duration_minutes
    return client.create_participant_token(**kwargs)["participantToken"]


def is_throttled(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    return (response.get("Error", {}).get("Code") == THROTTLED
            or response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 429)
