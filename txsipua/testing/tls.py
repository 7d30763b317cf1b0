"""A throw-away TLS certificate for tests on 127.0.0.1 (RFC 5922 names in SAN).

``self_signed(...)`` returns a server context factory carrying a fresh
self-signed certificate for ``127.0.0.1`` (and ``localhost``) and a client
context factory that trusts exactly that certificate and verifies the name.
Needs ``pyOpenSSL``, ``service_identity`` and ``cryptography`` (the ``tls``
extra).
"""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any


def self_signed(host: str = "127.0.0.1", days: int = 1) -> tuple[Any, Any]:
    """``(server_context_factory, client_context_factory)`` for ``host``.

    Args:
        host: the address or name the client dials and verifies.
        days: validity, days (starting yesterday).
    """
    from twisted.internet import ssl

    pem_cert, pem_key = self_signed_pem(host, days)
    server = ssl.PrivateCertificate.loadPEM(pem_cert + pem_key).options()
    client = ssl.optionsForClientTLS(host, trustRoot=ssl.Certificate.loadPEM(pem_cert))
    return server, client


def self_signed_pem(host: str = "127.0.0.1", days: int = 1) -> tuple[bytes, bytes]:
    """``(certificate PEM, private key PEM)`` of a fresh self-signed certificate for ``host``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        sans.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        sans.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem_cert = cert.public_bytes(serialization.Encoding.PEM)
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem_cert, pem_key
