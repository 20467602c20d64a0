"""Delivery backends. Each one honours the same contract: open(), send(), close()."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from digest.config import Config


class Transport(Protocol):
    """Where finished messages go. `send` returns the server's reply to the message."""

    @property
    def is_open(self) -> bool: ...

    def open(self) -> None: ...

    def supports_smtputf8(self) -> bool: ...

    def send(self, sender: str, recipient: str, message: bytes, *,
             utf8: bool = False) -> str: ...

    def close(self) -> None: ...


def smtp_transport(config: Config) -> Transport:
    """The SMTP relay named in [smtp]."""
    from digest.deliver.smtp import SmtpTransport

    ca_file = str(config.resolve(config.smtp.ca_file)) if config.smtp.ca_file else ""
    return SmtpTransport(config.smtp, password=config.smtp_password(), ca_file=ca_file)


def configured_transport(config: Config) -> Transport:
    """The transport [delivery] transport names."""
    if config.delivery.transport == "outbox":
        return outbox_transport(config.resolve(config.delivery.outbox))
    return smtp_transport(config)


def outbox_transport(folder: Path) -> Transport:
    """A folder that receives every message as an .eml file."""
    from digest.deliver.outbox import OutboxTransport

    return OutboxTransport(folder)
