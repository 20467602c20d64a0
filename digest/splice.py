"""The fast path: a digest's MIME message built once with markers where each
subscriber's values go, then spliced per subscriber — about 20 µs instead of the few
milliseconds an EmailMessage costs. `message_bytes` is proven identical to the slow path
(`build_message(...).as_bytes()`) by the tests."""

from __future__ import annotations

import html
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from digest.message import (
    HEADER_POLICY,
    MAX_LINE_OCTETS,
    Envelope,
    _address,
    build_message,
    display_name,
)
from digest.models import Recipient, RenderedDigest, Subscriber
from digest.render import fill
from digest.tracking import ReaderLinks, first_name, greeting

PLAIN_NAME = re.compile(r"[A-Za-z0-9 !#$%&'*+/=?^_`{|}~-]*")  # needs no quoting in a header


@dataclass(frozen=True)
class _Piece:
    text: bytes
    marker: bytes = b""
    escaped: bool = False  # inside the HTML part


class MessageTemplate:
    """One digest's message with holes for name, greeting, address, unsubscribe token and
    Message-ID, and for tracked links when they name the reader."""

    def __init__(self, rendered: RenderedDigest, *, envelope: Envelope, digest_id: int,
                 created_at: datetime, unsubscribe_base: str, text_only: bool = False) -> None:
        self.envelope = envelope
        self.digest_id = digest_id
        self.created_at = created_at
        self.rendered = rendered
        self.unsubscribe_base = unsubscribe_base
        self.links = ReaderLinks(envelope.base_url, envelope.archive_key, digest_id,
                                 rendered.tracking.per_reader)
        # Random per template and absent from the digest: content cannot place one.
        tag = _tag(rendered)
        self.name, self.email, self.token, self.mid = (f"Zz{tag}N", f"zz{tag}e@marker.invalid",
                                                       f"Zz{tag}T", f"Zz{tag}M")
        self.first, self.greeting, self.open = f"Zz{tag}F", f"Zz{tag}G", f"Zz{tag}O"
        self._link_marker = f"Zz{tag}K"
        fixed = (self.name, self.email, self.token, self.mid, self.first, self.greeting,
                 self.open)
        self._markers = re.compile(b"|".join(
            [re.escape(m.encode()) for m in fixed]
            + [re.escape(self._link_marker.encode()) + rb"\d+K"]))
        marker = Subscriber(email=self.email, name=self.name,
                            format=text_only and "text" or "html")
        reader_holes = fill(rendered, {"first_name": self.first, "greeting": self.greeting,
                                       "open_url": self._open_value()}, self._link_value)
        raw = build_message(reader_holes, marker, envelope=envelope, digest_id=digest_id,
                            created_at=created_at,
                            unsubscribe_url=f"{unsubscribe_base}{self.token}",
                            message_id=self.mid).as_bytes()
        to_start = raw.index(b"\r\nTo: ") + 2
        to_end = raw.index(b"\r\n", to_start) + 2
        self._head, self._tail = raw[:to_start], raw[to_end:]
        html_start = self._tail.find(b"Content-Type: text/html")
        html_start = len(self._tail) if html_start < 0 else html_start
        self._pieces = self._split(self._tail, html_start)
        prefix = self._link_marker.encode()
        self._link_positions = sorted(
            {(p.marker, int(p.marker[len(prefix):-1])) for p in self._pieces
             if p.marker.startswith(prefix)})
        self._plain_base = html.escape(envelope.base_url, quote=True) == envelope.base_url
        self._marked_lines = _marked_lines(self._pieces)
        self._texts = [p.text for p in self._pieces]
        self._holes = [(p.marker, p.escaped) for p in self._pieces[:-1]]
        # The longest marked line's fixed part, by how many markers it holds: a bound
        # that clears almost every message without adding up each line.
        self._widest: dict[int, int] = {}
        for static, markers in self._marked_lines:
            self._widest[len(markers)] = max(static, self._widest.get(len(markers), 0))

    def _link_value(self, position: int) -> str:
        if self.links.per_reader:
            return f"{self._link_marker}{position}K"
        return self.links.click(position)

    def _open_value(self) -> str:
        return self.open if self.links.per_reader else self.links.open()

    def _split(self, data: bytes, html_start: int) -> list[_Piece]:
        pieces, last = [], 0
        for match in self._markers.finditer(data):
            pieces.append(_Piece(data[last:match.start()], match.group(),
                                 escaped=match.start() > html_start))
            last = match.end()
        pieces.append(_Piece(data[last:]))
        return pieces

    def message_bytes(self, subscriber: Subscriber | Recipient, token: str,
                      message_id: str) -> bytes:
        """The complete message for one subscriber, byte for byte what build_message makes."""
        name = display_name(subscriber.name)
        email = subscriber.email.strip()
        if not email.isascii():  # rare: SMTPUTF8 addresses take the slow path
            return self._slow(subscriber, token, message_id)
        raw = {self.name.encode(): name, self.email.encode(): email,
               self.token.encode(): token, self.mid.encode(): message_id,
               self.first.encode(): first_name(name), self.greeting.encode(): greeting(name)}
        reader = getattr(subscriber, "token_id", "")
        if self.links.per_reader:
            raw[self.open.encode()] = self.links.open(reader)
        values = {(k, False): v.encode("utf-8") for k, v in raw.items()}
        values.update({(k, True): html.escape(v, quote=True).encode("utf-8")
                       for k, v in raw.items()})
        if self._link_positions:
            click = self.links.clicks_of(reader)
            for marker, position in self._link_positions:
                url = click(position)
                values[marker, False] = url.encode()
                # tokens are URL-safe: only a base URL with &, <, > or quotes needs escaping
                values[marker, True] = (url if self._plain_base else html.escape(url)).encode()
        if self._too_long(values):
            # A line past SMTP's limit (an unbreakable URL, a long name in a long line):
            # the slow path encodes that part quoted-printable.
            return self._slow(subscriber, token, message_id)
        # Static text and filled holes alternate; slice assignment interleaves them fast.
        out: list[bytes] = [b""] * (2 * len(self._texts) - 1)
        out[0::2] = self._texts
        out[1::2] = [values[hole] for hole in self._holes]
        return self._head + self._to_line(name, email) + b"".join(out)

    def _too_long(self, values: dict[tuple[bytes, bool], bytes]) -> bool:
        longest = max(map(len, values.values()))
        if all(static + count * longest <= MAX_LINE_OCTETS
               for count, static in self._widest.items()):
            return False
        return any(static + sum(len(values[m]) for m in markers) > MAX_LINE_OCTETS
                   for static, markers in self._marked_lines)

    def _slow(self, subscriber: Subscriber | Recipient, token: str, message_id: str) -> bytes:
        reader = getattr(subscriber, "token_id", "") if self.links.per_reader else ""
        return build_message(self.rendered, subscriber, envelope=self.envelope,
                             digest_id=self.digest_id, created_at=self.created_at,
                             unsubscribe_url=f"{self.unsubscribe_base}{token}",
                             message_id=message_id,
                             link=self.links.clicks_of(reader),
                             open_url=self.links.open(reader)).as_bytes()


    def _to_line(self, name: str, email: str) -> bytes:
        if email.isascii() and PLAIN_NAME.fullmatch(name) and "  " not in name:
            return (f"To: {name} <{email}>\r\n" if name else f"To: {email}\r\n").encode()
        return self._folded_to(name, email)

    def _folded_to(self, name: str, email: str) -> bytes:
        msg = EmailMessage(policy=HEADER_POLICY)
        msg["To"] = _address(Subscriber(email=email, name=name))
        return msg.as_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n"


def _marked_lines(pieces: list[_Piece]) -> list[tuple[int, tuple[tuple[bytes, bool], ...]]]:
    """Each line that holds markers: its length without them, and its markers. Only these
    lines change per reader, so only they can pass the line limit once filled in (the
    template itself is built within it)."""
    lines: list[tuple[int, tuple[tuple[bytes, bool], ...]]] = []
    static, markers = 0, list[tuple[bytes, bool]]()
    for piece in pieces:
        segments = piece.text.split(b"\r\n")
        if len(segments) > 1:
            if markers:
                lines.append((static + len(segments[0]), tuple(markers)))
            static, markers = 0, []
        static += len(segments[-1])
        if piece.marker:
            markers.append((piece.marker, piece.escaped))
    if markers:
        lines.append((static, tuple(markers)))
    return lines


def _tag(rendered: RenderedDigest) -> str:
    """The random part of a template's markers: it appears nowhere in the digest."""
    content = rendered.subject + rendered.html + rendered.text
    while True:
        tag = secrets.token_hex(6)
        if tag not in content:
            return tag
