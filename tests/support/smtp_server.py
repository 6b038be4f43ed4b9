"""A real SMTP server on loopback (aiosmtpd) that records what it receives.

Plain by default; with ``security="starttls"`` it offers STARTTLS and requires it before
anything else, with ``security="ssl"`` it speaks TLS from the first byte (SMTP over SSL). With
``logins`` it requires authentication and accepts it only over TLS. ``make_certificates``
writes a throwaway CA and a server certificate signed by it.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Callable, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    message: Message
    recipients: list[str]
    observed: object = None  # what ``on_receive`` saw at the moment of arrival
    tls: bool = False  # the message came over an encrypted connection
    login: str | None = None  # the user the client authenticated as

    @property
    def subject(self) -> str:
        return str(self.message["Subject"]).strip()

    def part(self, content_type: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return part.get_content()
        return ""


def _over_tls(server) -> bool:
    # After STARTTLS aiosmtpd swaps in the TLS transport; with SMTP over SSL it is TLS from
    # the start. Either way the transport knows.
    return server.transport is not None and server.transport.get_extra_info("ssl_object") is not None


@dataclass
class Login:
    """One AUTH attempt as the server saw it (never the password)."""
    user: str
    mechanism: str
    tls: bool
    accepted: bool


@dataclass
class Handler:
    on_receive: Callable[[Message], object] | None = None
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's API
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        observed = self.on_receive(msg) if self.on_receive else None
        login = session.auth_data if session.authenticated else None
        self.received.append(Received(msg, list(envelope.rcpt_tos), observed, _over_tls(server), login))
        return "250 OK"


@dataclass
class Authenticator:
    """Accepts ``logins`` (user -> password), and only over an encrypted connection."""
    logins: dict[str, str]
    attempts: list[Login] = field(default_factory=list)

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        tls = _over_tls(server)
        accepted = tls and self.logins.get(user) == password
        self.attempts.append(Login(user, mechanism, tls, accepted))
        return AuthResult(success=accepted, handled=False, auth_data=user if accepted else None)


@dataclass
class Certificates:
    ca_file: Path  # the CA certificate clients must trust
    cert_file: Path  # the server's certificate, signed by the CA
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificates(directory: Path, names: tuple[str, ...] = ("127.0.0.1", "localhost")
                      ) -> Certificates:
    """A throwaway CA and a server certificate for ``names`` (IP addresses or host names)
    signed by it, valid for a day, as PEM files in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = {"not_valid_before": now - datetime.timedelta(hours=1),
             "not_valid_after": now + datetime.timedelta(days=1)}
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "retrain test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder(**valid).subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))

    def san(name: str) -> x509.GeneralName:
        try:
            return x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            return x509.DNSName(name)

    leaf = (x509.CertificateBuilder(**valid)
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.SubjectAlternativeName([san(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    certificates = Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    certificates.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certificates.cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    certificates.key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return certificates


class SmtpServer:
    """``with SmtpServer(port) as server: ... server.received``

    ``security``: "none" (plain), "starttls" (STARTTLS offered and required before any mail
    command) or "ssl" (TLS from the first byte); both need ``certificates``. ``logins``
    (user -> password): authentication required, accepted only over TLS
    (``server.logins.attempts`` lists what was tried).
    """

    def __init__(self, port: int | None = None, on_receive: Callable[[Message], object] | None = None,
                 *, security: Literal["none", "starttls", "ssl"] = "none",
                 certificates: Certificates | None = None, logins: dict[str, str] | None = None):
        self.port = port or free_port()
        self.handler = Handler(on_receive)
        self.logins = Authenticator(dict(logins or {}))
        options: dict = {}
        if security != "none":
            if certificates is None:
                raise ValueError(f"security={security!r} needs certificates")
            if security == "starttls":
                options.update(tls_context=certificates.server_context(), require_starttls=True)
            else:
                options["ssl_context"] = certificates.server_context()
        if logins:
            # With SMTP over SSL aiosmtpd does not know the connection is encrypted (its
            # auth_require_tls looks for STARTTLS only), so the authenticator checks the
            # transport itself and refuses a login that is not over TLS.
            options.update(authenticator=self.logins, auth_required=True,
                           auth_require_tls=security == "starttls")
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **options)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
