"""Certificates made for one emulator run (`chatload emulator --tls`), and the server's TLS context.

Each run makes its own CA and a server certificate signed by it (`cryptography`, EC P-256), for the
host the emulator binds and `localhost`, valid for a day from a few minutes ago. Clients trust that
CA alone: the CA file's path is in the emulator's ready line (`ca_file`), `chatload run --tls` puts
it in the target, boto3 takes it as `verify=`. Nothing secret leaves the folder: the keys stay in it
and the folder goes when the emulator stops.

Tests make the bad certificates a real endpoint might present (expired, not yet valid, for another
host, from an unknown CA) with the same function.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class RunCertificates:
    folder: Path
    ca_file: Path  # the CA certificate (PEM): what clients trust
    cert_file: Path  # the server's certificate, then the CA's (a full chain)
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """The server side: TLS 1.2+, this run's certificate (session tickets on, as real endpoints)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chatload"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_certificates(folder: str | Path | None = None, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), *,
                      not_before: datetime.datetime | None = None, not_after: datetime.datetime | None = None,
                      self_signed: bool = False) -> RunCertificates:
    """A CA and a server certificate for `hosts`, written as PEM into `folder` (a new temporary one
    by default). `not_before`/`not_after` bound the server certificate (default: now − 5 min to now + 1
    day); `self_signed` makes the server certificate its own issuer (then `ca_file` is that
    certificate)."""
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="chatload-tls-"))
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(_name("chatload run CA")).issuer_name(_name("chatload run CA"))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + DAY)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    issuer, signer = (_name(hosts[0]), key) if self_signed else (ca_cert.subject, ca_key)
    builder = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before or now - datetime.timedelta(minutes=5))
               .not_valid_after(not_after or now + DAY)
               .add_extension(x509.SubjectAlternativeName([_alt_name(h) for h in hosts]), critical=False)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
               .add_extension(x509.BasicConstraints(ca=self_signed, path_length=None), critical=True))
    if not self_signed:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    cert = builder.sign(signer, hashes.SHA256())
    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server-key.pem"
    ca_file.write_bytes((cert if self_signed else ca_cert).public_bytes(pem))
    cert_file.write_bytes(cert.public_bytes(pem) + (b"" if self_signed else ca_cert.public_bytes(pem)))
    key_file.touch(mode=0o600)
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return RunCertificates(folder, ca_file, cert_file, key_file)
