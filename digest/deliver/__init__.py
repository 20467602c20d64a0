"""Delivery backends. Each one honours the same contract: open(), send(), close()."""

from __future__ import annotations

from collections.abc import Callable
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


def configured_transport(config: Config) -> Transport:
    """The transport [delivery] transport names."""
    return transport_factory(config)()


def transport_factory(config: Config) -> Callable[[], Transport]:
    """A maker of the configured transport, called once per sending connection; the SMTP
    transports it makes share one TLS context, built when the first of them needs it."""
    if config.delivery.transport == "outbox":
        folder = config.resolve(config.delivery.outbox)
        return lambda: outbox_transport(folder)
    from digest.deliver.smtp import SmtpTransport, TlsContext

    tls = TlsContext(str(config.resolve(config.smtp.ca_file)) if config.smtp.ca_file else "")
    return lambda: SmtpTransport(config.smtp, password=config.smtp_password(), tls=tls)


def outbox_transport(folder: Path) -> Transport:
    """A folder that receives every message as an .eml file."""
    from digest.deliver.outbox import OutboxTransport

    return OutboxTransport(folder)
