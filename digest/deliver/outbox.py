"""A transport that writes each message as an .eml file: previews, staging, tests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from digest.errors import TransportError


class OutboxTransport:
    """Writes every message into a folder, one file per recipient and message."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.is_open = False

    def open(self) -> None:
        """Create the folder."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.is_open = True

    def supports_smtputf8(self) -> bool:
        """Files take any address."""
        return True

    def send(self, sender: str, recipient: str, message: bytes, *, utf8: bool = False) -> str:
        """Write the message atomically; the name is stable for the same message and recipient."""
        if not self.is_open:
            raise TransportError(f"outbox {self.folder}: send() before open()", fatal=False)
        name = hashlib.sha256(recipient.casefold().encode() + message[:4096]).hexdigest()[:20]
        path = self.folder / f"{name}.eml"
        tmp = path.with_suffix(".tmp")
        # Messages hold subscribers' addresses: readable by the owner only.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(message)
        os.replace(tmp, path)
        return f"250 written to {path.name}"

    def close(self) -> None:
        """Nothing to release."""
        self.is_open = False
