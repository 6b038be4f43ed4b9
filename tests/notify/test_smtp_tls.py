"""Email over STARTTLS and over SSL, with a login, against a real aiosmtpd server on loopback.

The server has a certificate signed by a CA made for the test; the client trusts that CA only
through ``[notifications] smtp_ca_file`` and always verifies the chain and the host name. A
wiretap (a TCP relay between client and server) records every byte the client sends, to show
that the password never crosses the wire readable; the logs, the captured output and the
registry database must not contain it either.
"""

from __future__ import annotations

import base64
import os
import logging
import socket
import threading
from pathlib import Path

import pytest

from retrain.notify import NotificationService
from retrain.notify.outbox import Outbox
from smtp_server import SmtpServer, free_port, make_certificates

USER = "retrain-mailer"
PASSWORD = "pw-Zq8!never-in-the-clear"
RECIPIENTS = ["ml-team@example.com"]

# aiosmtpd warns when it requires AUTH without requiring STARTTLS (over SMTP over SSL it cannot
# tell the connection is encrypted); the test server's authenticator refuses clear-text logins.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


class Wiretap:
    """A TCP relay on loopback: clients connect to ``port``, it forwards to ``target_port`` and
    keeps every byte the clients sent in ``sent``."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.sent = bytearray()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        try:
            while data := source.recv(65536):
                if record:
                    with self._lock:
                        self.sent += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self) -> "Wiretap":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._listener.close()


def readable_forms(user: str, password: str) -> list[bytes]:
    """How a password shows on the wire in clear text: as is, in AUTH LOGIN (base64 of the
    password) and in AUTH PLAIN (base64 of NUL user NUL password)."""
    return [password.encode(), base64.b64encode(password.encode()),
            base64.b64encode(f"\0{user}\0{password}".encode())]


@pytest.fixture
def certificates(tmp_path):
    return make_certificates(tmp_path / "tls")


def configure(ws, port: int, security: str, ca_file=None, monkeypatch=None) -> None:
    n = ws.settings.notifications
    n.smtp_host, n.smtp_port, n.email_recipients = "127.0.0.1", port, RECIPIENTS
    n.smtp_security, n.smtp_username = security, USER
    n.smtp_ca_file = None if ca_file is None else str(ca_file)
    n.retry_backoff_seconds = 0
    monkeypatch.setenv(n.smtp_password_env, PASSWORD)


def stored_bytes(ws) -> bytes:
    """Everything the registry database holds on disk (SQLite file and its journal)."""
    db = ws.settings.registry_url.removeprefix("sqlite:///")
    return b"".join(Path(p).read_bytes() for p in (db, f"{db}-wal", f"{db}-journal")
                    if os.path.exists(p))


def assert_password_nowhere(ws, caplog, capfd, wire: bytes | None = None) -> None:
    # aiosmtpd's own debug log ("mail.log") echoes AUTH lines it reads: it is the server here,
    # not our code, so its records are left out.
    ours = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records
                     if not r.name.startswith("mail.log"))
    out, err = capfd.readouterr()
    for form in readable_forms(USER, PASSWORD):
        assert form.decode() not in ours, "the password is in a log record"
        assert form.decode() not in out + err, "the password was printed"
        assert form not in stored_bytes(ws), "the password is stored in the registry database"
        if wire is not None:
            assert form not in wire, "the password crossed the wire readable"
    for row in Outbox(ws.registry, ws.settings.notifications).messages():
        assert PASSWORD not in repr(row.model_dump())


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_login_and_mail_go_over_verified_tls(workspace, certificates, security, monkeypatch,
                                             caplog, capfd):
    caplog.set_level(logging.DEBUG)
    port = free_port()
    configure(workspace, port, security, certificates.ca_file, monkeypatch)
    with SmtpServer(port, security=security, certificates=certificates,
                    logins={USER: PASSWORD}) as server, Wiretap(port) as tap:
        workspace.settings.notifications.smtp_port = tap.port
        service = NotificationService(workspace=workspace)
        ids = service.send_rollback("lightgbm", "lightgbm-v1", "lightgbm-v2", "smoke check failed")
        assert service.delivered(ids), Outbox(workspace.registry, workspace.settings.notifications).messages()
    [mail] = server.received
    assert mail.subject == "[retrain] lightgbm: rolled back to lightgbm-v1"
    assert mail.recipients == RECIPIENTS
    assert mail.tls and mail.login == USER
    assert [(a.user, a.tls, a.accepted) for a in server.logins.attempts] == [(USER, True, True)]
    wire = bytes(tap.sent)
    if security == "starttls":  # the only clear text is the greeting and the upgrade
        clear, _, encrypted = wire.lower().partition(b"starttls\r\n")
        assert clear.startswith(b"ehlo ") and b"auth" not in clear and encrypted
    assert b"mail from" not in wire.lower() and b"rolled back" not in wire
    assert_password_nowhere(workspace, caplog, capfd, wire)


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_an_untrusted_certificate_is_refused(workspace, certificates, security, monkeypatch,
                                             caplog, capfd):
    """Without the CA in smtp_ca_file the server's certificate does not verify: nothing is
    sent (no login either), and the message waits in the outbox."""
    port = free_port()
    configure(workspace, port, security, None, monkeypatch)
    with SmtpServer(port, security=security, certificates=certificates,
                    logins={USER: PASSWORD}) as server:
        service = NotificationService(workspace=workspace)
        ids = service.send_rollback("lightgbm", "lightgbm-v1", "lightgbm-v2", "smoke check failed")
    assert not service.delivered(ids)
    assert server.received == [] and server.logins.attempts == []
    [row] = Outbox(workspace.registry, workspace.settings.notifications).messages()
    assert row.status == "pending" and "CERTIFICATE_VERIFY_FAILED" in row.last_error
    assert_password_nowhere(workspace, caplog, capfd)


def test_a_certificate_for_another_host_is_refused(workspace, tmp_path, monkeypatch, caplog, capfd):
    """A trusted CA is not enough: the certificate must name the host connected to."""
    other = make_certificates(tmp_path / "other", names=("mail.example.test",))
    port = free_port()
    configure(workspace, port, "ssl", other.ca_file, monkeypatch)
    with SmtpServer(port, security="ssl", certificates=other, logins={USER: PASSWORD}) as server:
        service = NotificationService(workspace=workspace)
        ids = service.send_drift_alert({"lightgbm": {"detected": True, "drifted_features": ["income"],
                                                      "share": 1.0}})
    assert not service.delivered(ids) and server.received == [] and server.logins.attempts == []
    [row] = Outbox(workspace.registry, workspace.settings.notifications).messages()
    assert "CERTIFICATE_VERIFY_FAILED" in row.last_error and "127.0.0.1" in row.last_error
    assert_password_nowhere(workspace, caplog, capfd)


def test_starttls_configured_but_not_offered_sends_nothing(workspace, certificates, monkeypatch,
                                                           caplog, capfd):
    """A server (or someone in between) that does not offer STARTTLS does not get a plain-text
    login or mail: the delivery fails and the message waits."""
    port = free_port()
    configure(workspace, port, "starttls", certificates.ca_file, monkeypatch)
    with SmtpServer(port, logins={USER: PASSWORD}) as server, Wiretap(port) as tap:
        workspace.settings.notifications.smtp_port = tap.port
        service = NotificationService(workspace=workspace)
        ids = service.send_rollback("lightgbm", "lightgbm-v1", "lightgbm-v2", "smoke check failed")
    assert not service.delivered(ids)
    assert server.received == [] and server.logins.attempts == []
    [row] = Outbox(workspace.registry, workspace.settings.notifications).messages()
    assert row.status == "pending" and "STARTTLS" in row.last_error
    wire = bytes(tap.sent).lower()
    assert b"auth" not in wire and b"mail from" not in wire
    assert_password_nowhere(workspace, caplog, capfd, wire)


def test_the_wiretap_sees_a_login_without_tls(workspace, monkeypatch):
    """The check above can fail: with smtp_security = "none" the same login crosses the wire
    readable (and this server refuses it, as it accepts logins only over TLS)."""
    port = free_port()
    configure(workspace, port, "none", None, monkeypatch)
    with SmtpServer(port, logins={USER: PASSWORD}) as server, Wiretap(port) as tap:
        workspace.settings.notifications.smtp_port = tap.port
        ids = NotificationService(workspace=workspace).send_rollback(
            "lightgbm", "lightgbm-v1", "lightgbm-v2", "smoke check failed")
    # smtplib tries each mechanism the server offers (PLAIN, then LOGIN).
    assert server.logins.attempts and {(a.user, a.tls, a.accepted) for a in server.logins.attempts} == {
        (USER, False, False)}
    assert any(form in bytes(tap.sent) for form in readable_forms(USER, PASSWORD))
    assert not NotificationService(workspace=workspace).delivered(ids)


def test_a_relative_ca_file_is_taken_from_the_config_files_folder(tmp_path):
    from retrain.config import NotificationsConfig, settings_from_dict

    raw = {"data": {"source": "data", "target": "y", "timestamp": "t"},
           "models": {"m": {"kind": "lightgbm"}}}
    settings = settings_from_dict({**raw, "notifications": {"smtp_ca_file": "certs/ca.pem"}},
                                  base_dir=tmp_path)
    assert settings.notifications.smtp_ca_file == str(tmp_path / "certs" / "ca.pem")
    absolute = settings_from_dict({**raw, "notifications": {"smtp_ca_file": "/etc/ca.pem"}},
                                  base_dir=tmp_path)
    assert absolute.notifications.smtp_ca_file == "/etc/ca.pem"
    assert NotificationsConfig().smtp_ca_file is None  # the system's CAs, still verified


def test_a_missing_ca_file_is_a_clear_delivery_error(workspace, tmp_path, monkeypatch):
    port = free_port()
    configure(workspace, port, "starttls", tmp_path / "nowhere.pem", monkeypatch)
    ids = NotificationService(workspace=workspace).send_rollback(
        "lightgbm", "lightgbm-v1", "lightgbm-v2", "smoke check failed")
    [row] = Outbox(workspace.registry, workspace.settings.notifications).messages()
    assert row.id in ids and row.status == "pending"
    assert f"smtp_ca_file {tmp_path / 'nowhere.pem'}: no such file" in row.last_error
