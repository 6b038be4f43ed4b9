"""A real SMTP server on loopback (aiosmtpd) that records what it receives."""

from __future__ import annotations

import email
import socket
from dataclasses import dataclass, field
from email.message import Message
from typing import Callable

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    message: Message
    recipients: list[str]
    observed: object = None  # what ``on_receive`` saw at the moment of arrival

    @property
    def subject(self) -> str:
        return str(self.message["Subject"]).strip()

    def part(self, content_type: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return part.get_content()
        return ""


@dataclass
class Handler:
    on_receive: Callable[[Message], object] | None = None
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's API
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        observed = self.on_receive(msg) if self.on_receive else None
        self.received.append(Received(msg, list(envelope.rcpt_tos), observed))
        return "250 OK"


class SmtpServer:
    """``with SmtpServer(port) as server: ... server.received``"""

    def __init__(self, port: int | None = None, on_receive: Callable[[Message], object] | None = None):
        self.port = port or free_port()
        self.handler = Handler(on_receive)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
