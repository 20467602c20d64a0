"""A transport that keeps every message in a list: for previews, embedding and tests."""

from __future__ import annotations

from dataclasses import dataclass

from digest.errors import TransportError


@dataclass(frozen=True)
class Kept:
    """One message as the transport took it."""

    sender: str
    recipient: str
    data: bytes


class MemoryTransport:
    """Keeps messages in `sent`, in the order they were handed over."""

    def __init__(self) -> None:
        self.sent: list[Kept] = []
        self.is_open = False

    def open(self) -> None:
        """Nothing to connect to."""
        self.is_open = True

    def supports_smtputf8(self) -> bool:
        """Any address is kept."""
        return True

    def send(self, sender: str, recipient: str, message: bytes, *, utf8: bool = False) -> str:
        """Keep the message; the reply names its place in the list."""
        if not self.is_open:
            raise TransportError("memory transport: send() before open()", fatal=False)
        self.sent.append(Kept(sender, recipient, message))
        return f"250 kept as message {len(self.sent)}"

    def close(self) -> None:
        """Nothing to release."""
        self.is_open = False
