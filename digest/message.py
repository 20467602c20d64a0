"""One subscriber's email: multipart/alternative (text, then HTML) with the headers
mailbox providers expect of a list message."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, parseaddr

from digest.models import Recipient, RenderedDigest, Subscriber
from digest.render import LinkFiller, personalise

CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
# Bidirectional overrides and isolates turn "moc.elgoog" into "google.com" on screen.
BIDI_CONTROLS = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Python's folding turns a long List-Unsubscribe into RFC 2047 encoded words, which
# mail clients no longer read as URLs (CPython issue 85725); long lines are fine up to 998.
HEADER_POLICY = SMTP.clone(max_line_length=998)


@dataclass(frozen=True)
class Envelope:
    """Sender-side settings shared by every message of a digest."""

    from_address: str
    reply_to: str
    list_id: str
    base_url: str
    unsubscribe_mailto: str = ""  # address for mailto: unsubscribes; empty for none
    archive_key: bytes = b""  # signs the web-version link, so only readers can open it


MAX_NAME = 120


def header_safe(value: str) -> str:
    """Remove CR, LF and other control characters so a value cannot break out of a header."""
    return " ".join(CONTROL_CHARS.sub(" ", without_bidi(value)).split())


def without_bidi(text: str) -> str:
    """The text without bidirectional override and isolate characters."""
    return BIDI_CONTROLS.sub("", text)


def display_name(name: str) -> str:
    """A subscriber's name as it goes into a message: one line, at most MAX_NAME characters."""
    return header_safe(name)[:MAX_NAME]


def sender_domain(from_address: str) -> str:
    """The domain of the From address, used for Message-IDs and List-Id."""
    return parseaddr(from_address)[1].rpartition("@")[2].lower() or "localhost"


def new_message_id(digest_id: int, domain: str) -> str:
    """A Message-ID no other message of any install shares: the digest's number for people
    reading headers, and a random part."""
    return f"<digest-{digest_id}.{secrets.token_hex(8)}@{domain}>"


def web_version_url(base_url: str, digest_id: int, key: bytes = b"") -> str:
    """Where the web version of a digest is served; with a key, the link carries a token
    that opens it even when the archive is not public."""
    url = f"{base_url.rstrip('/')}/archive/{digest_id}/"
    return f"{url}?k={archive_token(key, digest_id)}" if key else url


def archive_token(key: bytes, digest_id: int) -> str:
    """The signature part of a digest's web-version link."""
    from digest.tokens import make_token

    return make_token(key, "archive", str(digest_id)).rpartition(".")[2]


def list_unsubscribe(unsubscribe_url: str, mailto: str, token: str) -> str:
    """The List-Unsubscribe value: the one-click https URL, then a mailto: with the token."""
    value = f"<{unsubscribe_url}>"
    if mailto:
        value += f", <mailto:{mailto}?subject=unsubscribe%20{token}>"
    return value


def build_message(rendered: RenderedDigest, subscriber: Subscriber | Recipient, *,
                  envelope: Envelope, digest_id: int, created_at: datetime,
                  unsubscribe_url: str, message_id: str, web_url: str = "",
                  link: LinkFiller | None = None, open_url: str = "") -> EmailMessage:
    """The complete message for one subscriber (`web_url` replaces the digest's web-version
    link, as a test send's does; tracked links lead straight to the articles unless
    `link` makes them)."""
    html_part, text_part = personalise(
        rendered, name=display_name(subscriber.name), email=subscriber.email.strip(),
        unsubscribe_url=unsubscribe_url,
        web_url=web_url or web_version_url(envelope.base_url, digest_id, envelope.archive_key),
        link=link, open_url=open_url or f"{envelope.base_url}/o/preview.gif")
    # An address with a non-ASCII local part can only travel with SMTPUTF8, as raw UTF-8.
    policy = HEADER_POLICY if subscriber.email.isascii() else HEADER_POLICY.clone(utf8=True)
    msg = EmailMessage(policy=policy)
    msg["From"] = envelope.from_address
    msg["To"] = _address(subscriber)
    if envelope.reply_to:
        msg["Reply-To"] = envelope.reply_to
    msg["Subject"] = header_safe(rendered.subject)
    msg["Date"] = format_datetime(created_at)
    msg["Message-ID"] = message_id
    msg["List-Id"] = envelope.list_id
    token = unsubscribe_url.rstrip("/").rsplit("/", 1)[-1]
    msg["List-Unsubscribe"] = list_unsubscribe(unsubscribe_url, envelope.unsubscribe_mailto,
                                               token)
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Precedence"] = "bulk"
    msg["Auto-Submitted"] = "auto-generated"
    # 8bit bodies when every line fits SMTP's 998 octets whatever is filled in (the renderer
    # folds lines, and the spliced fast path relies on values standing verbatim); a part
    # with a line it could not fold (a URL thousands of characters long) goes
    # quoted-printable.
    msg.set_content(text_part, subtype="plain", charset="utf-8", cte=body_encoding(text_part))
    if subscriber.format != "text":  # text-only readers get the text part alone
        msg.add_alternative(html_part, subtype="html", charset="utf-8",
                            cte=body_encoding(html_part))
        msg.set_boundary(boundary(digest_id))
    return msg


MAX_LINE_OCTETS = 998


def body_encoding(part: str) -> str:
    """'8bit' when every line of the filled-in part fits SMTP's 998 octets, else
    'quoted-printable'."""
    if len(part) <= MAX_LINE_OCTETS // 4:
        return "8bit"
    longest = max(len(line.encode("utf-8")) for line in part.split("\n"))
    return "8bit" if longest <= MAX_LINE_OCTETS else "quoted-printable"


def boundary(digest_id: int) -> str:
    """The MIME boundary of a digest's messages: fixed per digest, so a message can be
    spliced once and rebuilt identically."""
    return f"=_digest-{digest_id}-alternative_="


def dkim_signer(selector: str, domain: str, private_key: bytes) -> Callable[[bytes], bytes]:
    """A function that prepends a DKIM-Signature header to a finished message."""
    import dkim

    headers = [b"From", b"To", b"Subject", b"Date", b"Message-ID", b"Reply-To", b"List-Id",
               b"List-Unsubscribe", b"List-Unsubscribe-Post", b"MIME-Version", b"Content-Type"]

    def sign(message: bytes) -> bytes:
        signature = dkim.sign(message, selector.encode(), domain.encode(), private_key,
                              include_headers=headers)
        return signature + message

    return sign


def _address(subscriber: Subscriber | Recipient) -> Address | str:
    name = display_name(subscriber.name)
    local, _, domain = subscriber.email.strip().rpartition("@")
    try:
        return Address(display_name=name, username=local, domain=domain)
    except (ValueError, IndexError):
        return formataddr((name, subscriber.email.strip()))
