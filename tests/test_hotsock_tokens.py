"""Tokens at the upgrade: keys from files, HS256/ES256/RS256, two `kid` slots, `aud`/`iss`, and every way
a token can be wrong — each refused with HTTP 401 and nothing else (no connection, no frame, no state)."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harness.services.hotsock import codec, tokens
from harness.services.hotsock.claims import channel_rule
from harness.services.hotsock.emulator import EmulatorProcess

from .hotsock_chat import (
    assert_next_is_sentinel,
    expect,
    hotsock,  # noqa: F401 - the session fixture
    join,
    run,
    unique,
)


def pem_pair(key) -> tuple[bytes, bytes]:
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """An ES256 and an RS256 key pair, and an HMAC secret, the public halves in files for the emulator."""
    folder = tmp_path_factory.mktemp("hotsock-keys")
    es_private, es_public = pem_pair(ec.generate_private_key(ec.SECP256R1()))
    rs_private, rs_public = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    (folder / "es.pub").write_bytes(es_public)
    (folder / "rs.pub").write_bytes(rs_public)
    (folder / "hs").write_bytes(b"s" * 64 + b"\n")
    return {"folder": folder, "es": es_private, "rs": rs_private, "hs": b"s" * 64}


def claims(**extra) -> dict:
    return tokens.connect_claims({"lobby": channel_rule()}, uid="u", **extra)


async def status_of(emulator: EmulatorProcess, token: str | None) -> int:
    url = emulator.websocket_url + ("" if token is None else f"?token={token}")
    try:
        ws = await connect(url, open_timeout=5)
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


async def accepted(emulator: EmulatorProcess, token: str) -> bool:
    ws = await connect(emulator.connect_url(token), open_timeout=5)
    frame = await expect(ws, codec.Connected)
    await ws.close()
    return frame.meta.uid == "u"


def test_es256_and_rs256_keys_in_two_kid_slots(keys):
    folder = keys["folder"]
    with EmulatorProcess("--signing-key", f"es-1={folder / 'es.pub'}", "--signing-key", f"rs-1={folder / 'rs.pub'}",
                         service="hotsock") as emulator:
        assert [slot["kid"] for slot in emulator.info["key_slots"]] == ["es-1", "rs-1"]

        async def scenario():
            assert await accepted(emulator, tokens.mint(claims(), keys["es"], "es-1", "ES256"))
            assert await accepted(emulator, tokens.mint(claims(), keys["rs"], "rs-1", "RS256"))
            assert await accepted(emulator, tokens.mint(claims(), keys["rs"], "rs-1", "PS256"))
            refused = [
                tokens.mint(claims(), keys["es"], "rs-1", "ES256"),  # the kid of the other slot
                tokens.mint(claims(), keys["es"], "es-2", "ES256"),  # a kid no slot has
                tokens.mint(claims(), keys["es"], None, "ES256"),  # no kid, every slot has one
                tokens.mint(claims(), keys["hs"], "es-1", "HS256"),  # HMAC against a public-key slot
            ]
            assert [await status_of(emulator, t) for t in refused] == [401] * len(refused)

        run(scenario())


def test_hs256_secret_from_the_environment_and_key_rotation(keys, monkeypatch):
    monkeypatch.setenv("HOTSOCK_TEST_SECRET", "n" * 40)
    with EmulatorProcess("--hs256-secret", "env:HOTSOCK_TEST_SECRET", "--hs256-secret",
                         f"old={keys['folder'] / 'hs'}", service="hotsock") as emulator:
        async def scenario():
            assert await accepted(emulator, tokens.mint(claims(), "n" * 40))  # any kid, or none
            assert await accepted(emulator, tokens.mint(claims(), "n" * 40, "whatever"))
            assert await accepted(emulator, tokens.mint(claims(), keys["hs"], "old", "HS512"))
            # The old secret's slot has a kid: a token that does not name it is refused.
            assert await status_of(emulator, tokens.mint(claims(), keys["hs"])) == 401
            assert await status_of(emulator, tokens.mint(claims(), "x" * 40)) == 401

        run(scenario())


def test_audience_and_issuer_only_when_configured(hotsock_aud, hotsock):  # noqa: F811
    async def scenario():
        good = claims(aud=["other", "hotsock-test"], iss="my-backend")
        assert await accepted(hotsock_aud, hotsock_aud.mint(good))
        for bad in (claims(iss="my-backend"), claims(aud="other", iss="my-backend"), claims(aud="hotsock-test"),
                    claims(aud="hotsock-test", iss="someone-else")):
            assert await status_of(hotsock_aud, hotsock_aud.mint(bad)) == 401
        assert await accepted(hotsock, hotsock.mint(claims(aud="anything", iss="anyone"))), "not configured: not checked"

    run(scenario())


@pytest.fixture(scope="module")
def hotsock_aud():
    with EmulatorProcess("--audience", "hotsock-test", "--issuer", "my-backend", service="hotsock") as emulator:
        yield emulator


def _unsigned(payload: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def test_every_bad_token_is_refused_at_the_upgrade_and_nobody_notices(hotsock):  # noqa: F811
    room = unique()
    now = time.time()
    secret = hotsock.hs256_secret()
    bad = {
        "no token": None,
        "empty token": "",
        "garbage": "not.a.jwt",
        "forged": tokens.mint(claims(), b"f" * 64),
        "tampered": hotsock.mint(claims())[:-4] + "AAAA",
        "alg none": _unsigned(claims()),
        "expired": tokens.mint(claims(now=now - 120), secret),
        "not yet valid": tokens.mint(claims(nbf=int(now) + 600), secret),
        "no exp": tokens.mint({"scope": "connect"}, secret),
        "no scope": tokens.mint({"exp": int(now) + 60}, secret),
        "subscribe scope": tokens.mint(tokens.subscribe_claims({}, uid="u"), secret),
        "umd scope": tokens.mint({**claims(), "scope": "umd"}, secret),
        "unknown scope": tokens.mint({**claims(), "scope": "connect admin"}, secret),
        "bound to a connection": tokens.mint(claims(connectionId="AAAAAAAAAAAAAAA="), secret),
        "bad channels claim": tokens.mint({**claims(), "channels": {"a": {"subscribe": "yes"}}}, secret),
        "bad heartbeat": tokens.mint(claims(heartbeatTimeout=1), secret),
    }

    async def scenario():
        bystander, _ = await join(hotsock, {room: channel_rule()}, subscribe=[room])
        before = hotsock.admin.health()["connections"]
        metrics_before = hotsock.admin.metrics_text()
        statuses = {name: await status_of(hotsock, token) for name, token in bad.items()}
        assert statuses == dict.fromkeys(bad, 401)
        assert hotsock.admin.health()["connections"] == before
        assert await status_of(hotsock, hotsock.mint(claims())) == 101, "a good token still works"
        await assert_next_is_sentinel(hotsock, room, bystander)
        rejected_before = _rejected_401(metrics_before)
        assert _rejected_401(hotsock.admin.metrics_text()) == rejected_before + len(bad)
        await bystander.close()

    run(scenario())


def _rejected_401(metrics: str) -> int:
    for line in metrics.splitlines():
        if line.startswith('hotsock_handshakes_rejected_total{status="401"}'):
            return int(line.split()[-1])
    return 0


def test_single_use_connect_token(hotsock):  # noqa: F811
    async def scenario():
        token = hotsock.mint(claims(singleUse=True, jti=unique("jti")))
        assert await status_of(hotsock, token) == 101
        assert await status_of(hotsock, token) == 401

    run(scenario())


def test_wrong_path_is_404(hotsock):  # noqa: F811
    async def scenario():
        with pytest.raises(InvalidStatus) as info:
            await connect(hotsock.messaging_endpoint + "/v2?token=" + hotsock.mint(claims()), open_timeout=5)
        assert info.value.response.status_code == 404

    run(scenario())


def test_minted_tokens_match_what_the_claims_ask(hotsock):  # noqa: F811
    """`tokens.mint` + `channel_rule`, as the load harness will use them, give exactly those permissions."""
    room = unique()

    async def scenario():
        sender, connected = await join(hotsock, {room: channel_rule(publish=["chat"], echo=True)}, uid="s",
                                       subscribe=[room])
        await sender.send(codec.ClientMessage(room, "chat", {"n": 1}).encode().decode())
        assert (await expect(sender, codec.Message)).data == {"n": 1}
        await sender.send(codec.ClientMessage(room, "typing", 1).encode().decode())
        assert (await expect(sender, codec.Error)).code == codec.PUBLISH_PERMISSION_DENIED
        await sender.close()

    run(scenario())
