"""The mailboxes reports land in: IMAP (imaplib; imaps://, or imap:// with STARTTLS; the
server's certificate always verified) and a Maildir on this machine. Each hands out its
messages and, once a message is recorded, moves it to the processed folder (or flags it
read and `$DigestProcessed`, when there is none)."""

from __future__ import annotations

import imaplib
import os
import re
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from digest.bounces.ingest import BounceSourceError, Incoming
from digest.config import Config

KEYWORD = "$DigestProcessed"
SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class ImapSource:
    """The IMAP folder [bounces] imap_url names."""

    kind = "imap"

    def __init__(self, config: Config) -> None:
        b = config.bounces
        self.config, self.url = config, b.imap_url
        parts = urlsplit(b.imap_url)
        self.secure = parts.scheme == "imaps"
        self.host, self.port = parts.hostname or "", parts.port or (993 if self.secure else 143)
        self.folder = unquote(parts.path.strip("/")) or "INBOX"
        self.name = b.imap_url
        self.limit, self.processed = b.max_message_bytes, b.processed_folder
        self._imap: imaplib.IMAP4 | None = None
        self._move = False

    def messages(self) -> Iterator[Incoming]:
        """Every message of the folder not yet processed, oldest first."""
        imap = self._connect()
        criteria = "UNDELETED" if self.processed else f"UNDELETED UNKEYWORD {KEYWORD}"
        found = self._call("search", imap.uid("SEARCH", criteria))
        for uid in (found[0] or b"").split():
            yield self._fetch(imap, uid.decode())

    def done(self, message: Incoming) -> None:
        """Move the message to the processed folder, or flag it."""
        imap = self._imap
        assert imap is not None
        if not self.processed:
            self._call("flag", imap.uid("STORE", message.ref, "+FLAGS",
                                        f"(\\Seen {KEYWORD})"))
        elif self._move:
            self._call("move", imap.uid("MOVE", message.ref, _quoted(self.processed)))
        else:
            self._call("copy", imap.uid("COPY", message.ref, _quoted(self.processed)))
            self._call("delete", imap.uid("STORE", message.ref, "+FLAGS", "(\\Deleted)"))
            self._call("expunge", imap.expunge())

    def close(self) -> None:
        """Log out (quietly: the server may have gone already)."""
        if self._imap is not None:
            try:
                self._imap.logout()
            except (OSError, imaplib.IMAP4.error):
                pass
            self._imap = None

    def _connect(self) -> imaplib.IMAP4:
        b = self.config.bounces
        password = os.environ.get(b.imap_password_env, "")
        if not b.imap_user or not password:
            raise BounceSourceError(f"{self.name}: set [bounces] imap_user and the "
                                    f"environment variable {b.imap_password_env}")
        context = ssl.create_default_context(
            cafile=str(self.config.resolve(b.ca_file)) if b.ca_file else None)
        step = "connect"
        try:
            imap = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context,
                                     timeout=b.timeout) if self.secure else \
                imaplib.IMAP4(self.host, self.port, timeout=b.timeout)
            if not self.secure:
                step = "STARTTLS"
                imap.starttls(ssl_context=context)
            self._imap = imap
            step = "login"
            self._call(step, imap.login(b.imap_user, password))
            step = f"select {self.folder}"
            self._call(step, imap.select(_quoted(self.folder)))
            self._move = "MOVE" in self._call("capability", imap.capability())[0].decode()
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
            raise BounceSourceError(f"{self.name}: {_why(exc, step)}") from None
        if self.processed:
            imap.create(_quoted(self.processed))  # NO when it exists: fine
        return imap

    def _fetch(self, imap: imaplib.IMAP4, uid: str) -> Incoming:
        sized = self._call("size", imap.uid("FETCH", uid, "(RFC822.SIZE)"))
        match = SIZE.search(b" ".join(p if isinstance(p, bytes) else p[0] for p in sized
                                      if p))
        size = int(match.group(1)) if match else 0
        part = "BODY.PEEK[]" if size <= self.limit else f"BODY.PEEK[]<0.{self.limit}>"
        fetched = self._call("fetch", imap.uid("FETCH", uid, f"({part})"))
        data = next((bytes(p[1]) for p in fetched if isinstance(p, tuple)), b"")
        return Incoming(uid, data, max(size, len(data)))

    def _call(self, what: str, answer: tuple[str, list[Any]]) -> list[Any]:
        status, data = answer
        if status != "OK":
            said = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
            raise BounceSourceError(f"{self.name}: {what} refused: {said or status}")
        return data


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _why(exc: BaseException, step: str) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message}); set [bounces] ca_file " \
               "for a private CA"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "no answer (timed out)"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot connect ({exc.strerror})"
    text = str(exc.args[0] if exc.args else exc)
    if isinstance(exc.args[0] if exc.args else None, bytes):
        text = exc.args[0].decode("utf-8", "replace")
    return f"{step} refused: {(text.strip() or type(exc).__name__).splitlines()[0]}"


class MaildirSource:
    """A Maildir on this machine: new messages (and, with a processed folder, the ones a
    mail reader moved to cur/) are read, then moved into the Maildir++ subfolder
    `.<processed_folder>` (or, without one, into cur/ flagged seen)."""

    kind = "maildir"

    def __init__(self, path: Path, processed: str, limit: int) -> None:
        self.path, self.processed, self.limit = path, processed, limit
        self.name = f"maildir {path}"

    def messages(self) -> Iterator[Incoming]:
        """Every message waiting, oldest name first."""
        if not (self.path / "new").is_dir():
            raise BounceSourceError(f"[bounces] maildir {self.path}: not a Maildir (no new/ "
                                    "folder)")
        folders = ("new", "cur") if self.processed else ("new",)
        for sub in folders:
            for path in sorted((self.path / sub).iterdir()):
                if path.is_file():
                    yield self._read(path)

    def _read(self, path: Path) -> Incoming:
        with path.open("rb") as handle:
            data = handle.read(self.limit)
            size = os.fstat(handle.fileno()).st_size
        return Incoming(str(path.relative_to(self.path)), data, size)

    def done(self, message: Incoming) -> None:
        """Move the message out of the way (a rename: atomic)."""
        source = self.path / message.ref
        base = source.name.split(":", 1)[0]
        if self.processed:
            target = self.path / f".{self.processed}"
            for sub in ("tmp", "new", "cur"):
                (target / sub).mkdir(parents=True, exist_ok=True)
            (target / "maildirfolder").touch()
        else:
            target = self.path
        try:
            source.rename(target / "cur" / f"{base}:2,S")
        except FileNotFoundError:
            pass  # another reader moved it meanwhile: it was recorded all the same

    def close(self) -> None:
        """Nothing to release."""
