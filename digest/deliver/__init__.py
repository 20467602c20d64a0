"""Delivery backends. Each one honours the same contract: open(), send(), close()."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from digest.config import Config


class Transport(Protocol):
    """Where finished messages go. `send` returns the server's reply to the message."""

    def open(self) -> None: ...

    def send(self, sender: str, recipient: str, message: bytes) -> str: ...

    def close(self) -> None: ...


def smtp_transport(config: Config) -> Transport:
    """The SMTP relay named in [smtp]."""
    from digest.deliver.smtp import SmtpTransport

    return SmtpTransport(config.smtp, password=config.smtp_password())


def outbox_transport(folder: Path) -> Transport:
    """A folder that receives every message as an .eml file."""
    from digest.deliver.outbox import OutboxTransport

    return OutboxTransport(folder)
