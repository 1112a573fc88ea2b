"""A boto3 `ivschat` client for AWS or for the emulator, built the same way everywhere."""

from __future__ import annotations


def ivschat_client(region: str, endpoint_url: str | None = None, **options):
    """AWS (default credential chain) without `endpoint_url`; the emulator with it. `options` go to
    `boto3.client` (e.g. `config=`)."""
    import boto3

    from ...net.tls import http_verify  # an emulator over https:// is trusted through its own CA

    if endpoint_url:  # the emulator ignores signatures, but boto3 wants credentials to sign with
        options = {"endpoint_url": endpoint_url, "aws_access_key_id": "emulator",
                   "aws_secret_access_key": "emulator", "verify": http_verify(endpoint_url), **options}
    return boto3.client("ivschat", region_name=region, **options)
