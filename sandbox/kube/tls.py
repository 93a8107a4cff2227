"""TLS for the API server. kubectl sends a bearer token only over TLS, so the sandbox API
server serves HTTPS with a certificate for 127.0.0.1 signed by a throwaway CA; kubeconfig
carries the CA (``certificate-authority-data``)."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class ServerCert:
    """Files for uvicorn (``ssl_certfile``, ``ssl_keyfile``) and the CA for clients."""

    cert_file: Path
    key_file: Path
    ca_file: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_server_cert(directory: Path, host: str = "127.0.0.1") -> ServerCert:
    """Write ``ca.crt``, ``apiserver.crt`` and ``apiserver.key`` (mode 0600) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    end = start + datetime.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name("sandbox-ca")).issuer_name(_name("sandbox-ca"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name("kube-apiserver")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = ServerCert(directory / "apiserver.crt", directory / "apiserver.key",
                       directory / "ca.crt")
    paths.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key_file.touch(mode=0o600)
    paths.key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return paths


def kubeconfig(server: str, ca_pem: bytes, users: dict[str, str],
               namespace: str = "default", current: str | None = None) -> str:
    """A kubeconfig (YAML) with one context per user (context name = user name)."""
    ca = base64.b64encode(ca_pem).decode()
    names = list(users)
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "sandbox",
                      "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": n, "user": {"token": t}} for n, t in users.items()],
        "contexts": [{"name": n, "context": {"cluster": "sandbox", "user": n,
                                             "namespace": namespace}} for n in names],
        "current-context": current or names[0],
    }
    return json.dumps(config, indent=2) + "\n"
