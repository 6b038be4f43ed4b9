"""Delivery channels: email over SMTP (plain, STARTTLS, SSL), Slack-compatible webhooks, log."""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import httpx

from retrain.config import NotificationsConfig
from retrain.registry.tables import Notification

log = logging.getLogger("retrain")


class DeliveryError(Exception):
    """A channel could not deliver; the message stays in the outbox for a retry."""


def smtp_password(config: NotificationsConfig, override: str | None = None) -> str | None:
    """The SMTP password: given explicitly (e.g. from a Prefect Secret block), or from the
    environment variable named by ``smtp_password_env``. Never logged."""
    return override if override is not None else os.environ.get(config.smtp_password_env)


def tls_context(config: NotificationsConfig) -> ssl.SSLContext:
    """The TLS settings for ``starttls`` and ``ssl``: the server's certificate chain and host
    name are always verified, against ``smtp_ca_file`` when set, else the system's CAs."""
    if not config.smtp_ca_file:
        return ssl.create_default_context()
    if not Path(config.smtp_ca_file).is_file():
        raise DeliveryError(f"[notifications] smtp_ca_file {config.smtp_ca_file}: no such file")
    try:
        return ssl.create_default_context(cafile=config.smtp_ca_file)
    except ssl.SSLError as exc:
        raise DeliveryError(f"[notifications] smtp_ca_file {config.smtp_ca_file}: "
                            f"not PEM CA certificates ({exc})") from None


def message_id(message: Notification) -> str:
    """The Message-ID of an outbox row: a pure function of the row (its id and when it was
    written), the same on every attempt, so a receiver can drop a redelivered duplicate."""
    return f"<retrain-{message.id}.{message.created_at:%Y%m%d%H%M%S%f}@retrain.local>"


def send_email(config: NotificationsConfig, message: Notification, password: str | None = None) -> None:
    """Deliver ``message`` by SMTP. With ``starttls`` the connection is upgraded before
    anything else is said (a server that does not offer STARTTLS is an error, never a silent
    fallback to plain text), so the login always travels encrypted; with ``ssl`` it is
    encrypted from the start. The password is never logged."""
    if not config.smtp_host:
        raise DeliveryError("no [notifications] smtp_host configured")
    if not message.recipients:
        raise DeliveryError("no email recipients")
    email = EmailMessage()
    email["Subject"] = message.subject
    email["From"] = config.sender
    email["To"] = ", ".join(message.recipients)
    email["Date"] = formatdate(localtime=False)
    # Stable per outbox row: a receiver can drop a duplicate after a crash mid-delivery.
    email["Message-ID"] = message_id(message)
    email["X-Retrain-Kind"] = message.kind
    email["X-Retrain-Notification-Id"] = str(message.id)
    email.set_content(message.body_text)
    if message.body_html:
        email.add_alternative(message.body_html, subtype="html")
    timeout = config.smtp_timeout_seconds
    context = tls_context(config) if config.smtp_security != "none" else None
    try:
        if config.smtp_security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(config.smtp_host, config.smtp_port, timeout=timeout,
                                                    context=context)
        else:
            client = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=timeout)
        with client:
            if config.smtp_security == "starttls":
                client.starttls(context=context)
            if config.smtp_username:
                client.login(config.smtp_username, smtp_password(config, password) or "")
            client.send_message(email)
    except (OSError, smtplib.SMTPException, socket.timeout, ssl.SSLError) as exc:
        raise DeliveryError(f"SMTP {config.smtp_host}:{config.smtp_port}: {exc}") from None


def send_webhook(config: NotificationsConfig, message: Notification) -> None:
    if not config.webhook_url:
        raise DeliveryError("no [notifications] webhook_url configured")
    body = {"text": f"*{message.subject}*\n{message.body_text}",
            "retrain": {"kind": message.kind, "model": message.model_name,
                        "notification_id": message.id, **message.payload}}
    try:
        response = httpx.post(config.webhook_url, json=body, timeout=10.0)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook: {exc}") from None


def _would_show(level: int) -> bool:
    """Whether a line at ``level`` on the ``retrain`` logger reaches a handler that takes it
    here and now (one that keeps only the lines of a flow run does not, outside a run)."""
    if not log.isEnabledFor(level):
        return False
    record = log.makeRecord(log.name, level, __file__, 0, "probe", (), None)
    logger: logging.Logger | None = log
    while logger is not None:
        if any(level >= h.level and h.filter(record) for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False


def send_log(_config: NotificationsConfig, message: Notification) -> None:
    """The ``retrain`` logger: the console of a command, the logs of the run inside a flow.
    A logger that would drop the line (below INFO, or no handler anywhere) does not deliver."""
    if not _would_show(logging.INFO):
        raise DeliveryError("log: the 'retrain' logger shows no INFO lines here (nobody would "
                            "see it); configure a channel in [notifications] or log at INFO")
    log.info("notification: %s", message.subject)
    log.debug("%s", message.body_text)
