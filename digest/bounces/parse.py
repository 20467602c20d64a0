"""A report mailed back to the envelope sender → a frozen Report: a delivery status
notification (RFC 3464, or one of the older dialects flufl.bounce knows), a spam complaint
(ARF, RFC 5965), an auto-reply, or something we do not understand. Pure: bytes in, a
record out, and it never raises, however malformed the message."""

from __future__ import annotations

import email
import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32

from digest.bounces.verp import looks_like_verp

KINDS = ("hard", "soft", "complaint", "auto-reply", "unrecognised")
COMPLAINT_TYPES = ("abuse", "fraud")
FAILED_ACTIONS = ("fail", "error", "delayed")  # some MTAs write "failure", "error", comments
# Permanent failures that say more about the message (spam blocks, size) than the address:
# counted as soft, so one blocked send does not suppress everyone at a provider.
MESSAGE_PROBLEMS = ("5.2.2", "5.2.3", "5.3.4", "5.6.", "5.7.")
MAX_TEXT = 300

# flufl.bounce logs every detector it runs at INFO; our log wants one line per report.
logging.getLogger("flufl.bounce").setLevel(logging.WARNING)

VERP_SHAPE = re.compile(r"[a-z0-9._%=-]+\+[0-9a-z]{1,13}-[a-z2-7]{10}@[a-z0-9.-]+", re.I)
OUR_MESSAGE_ID = re.compile(r"<digest-\d+\.[0-9a-f]{16}@[^<>\s]+>", re.I)
ENHANCED = re.compile(r"\b([45])\.(\d{1,3})\.(\d{1,3})\b")
BASIC = re.compile(r"(?:^|[\s:(])([45])\d\d[ -]+[A-Za-z<#(]")  # "550 user unknown", not "556 277"
AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic|matische)?[ -]?(reply|response|antwort)|auto:|autoreply|"
    r"out of (the )?office|abwesen|r[ée]ponse automatique|respuesta autom[aá]tica|"
    r"risposta automatica|automatisch antwoord|on vacation|vacation reply|"
    r"absence|ausente|fuori ufficio)", re.I)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status notification \(failure|fail)|returned mail|"
    r"could not be delivered|non-?delivery|mail delivery failed|failure notice|"
    r"delivery problem|unzustellbar|non remis|no entregado", re.I)
BOUNCE_SENDERS = ("mailer-daemon", "postmaster", "mail delivery")
AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Response-Suppress")


@dataclass(frozen=True)
class Report:
    """What one message in the bounce mailbox says."""

    kind: str  # hard | soft | complaint | auto-reply | unrecognised
    fingerprint: str  # sha256 of the bytes read: the same message is the same report
    size: int  # the whole message's size, read or not
    recipients: tuple[str, ...] = ()  # the addresses it reports
    status: str = ""  # the enhanced status code, e.g. "5.1.1"
    diagnostic: str = ""  # the server's words
    verp: tuple[str, ...] = ()  # addresses of our VERP shape it names, envelope first
    message_ids: tuple[str, ...] = ()  # our Message-IDs it quotes (the original message)
    subject: str = ""
    problem: str = ""  # why it was not understood, or what was wrong with it

    @property
    def is_bounce(self) -> bool:
        """A hard or soft bounce."""
        return self.kind in ("hard", "soft")


def read_report(data: bytes, *, size: int | None = None,
                envelope_to: Sequence[str] = ()) -> Report:
    """The report in a message's bytes (perhaps only its first `max_message_bytes`, when
    `size` says the whole is larger); `envelope_to` is the address it was delivered to,
    when the mail system tells."""
    total = len(data) if size is None else size
    fingerprint = hashlib.sha256(data).hexdigest()
    try:
        return _read(data, fingerprint, total, envelope_to)
    except Exception as exc:  # a message we cannot read is recorded as such, never fatal
        return Report("unrecognised", fingerprint, total,
                      problem=_clip(f"cannot be read ({type(exc).__name__}: {exc})"))


def _read(data: bytes, fingerprint: str, size: int, envelope_to: Sequence[str]) -> Report:
    msg = email.message_from_bytes(data, policy=compat32)
    texts = list(_texts(msg))
    base = Report("unrecognised", fingerprint, size, subject=_clip(_header(msg, "Subject")),
                  verp=_verp_candidates(envelope_to, texts),
                  message_ids=tuple(dict.fromkeys(
                      m for t in texts for m in OUR_MESSAGE_ID.findall(t))),
                  problem=_damage(msg, len(data), size))
    for reader in (_complaint, _delivery_status, _detected, _other_bounce, _auto_reply):
        found = reader(msg, base, texts)
        if found is not None:
            return found
    return replace(base, problem="; ".join(filter(None, (
        "neither a delivery status notification nor a complaint", base.problem))))


# --- the kinds of report -------------------------------------------------------------------


def _complaint(msg: Message, base: Report, _texts: list[str]) -> Report | None:
    fields = _first_block(msg, "message/feedback-report")
    if fields is None:
        return None
    feedback = (_header(fields, "Feedback-Type") or "abuse").strip().lower()
    recipients = _addresses(fields.get_all("Original-Rcpt-To", []) +
                            fields.get_all("Removal-Recipient", []))
    if feedback not in COMPLAINT_TYPES:
        return replace(base, recipients=recipients,
                       problem=f"feedback report of type {feedback!r}: not a complaint")
    agent = _header(fields, "User-Agent")
    return replace(base, kind="complaint", recipients=recipients,
                   diagnostic=_clip(f"feedback-type {feedback}" + (f" from {agent}"
                                                                    if agent else "")))


def _delivery_status(msg: Message, base: Report, _texts: list[str]) -> Report | None:
    blocks = _status_blocks(msg)
    if not blocks:
        return None
    # Every block, the first too: a stray blank-looking line can merge them.
    failures = [b for b in blocks if _header(b, "Action").lower().startswith(FAILED_ACTIONS)]
    if not failures:
        action = next((_header(b, "Action").lower() for b in blocks if b.get("Action")), "")
        return replace(base, problem="a delivery status notification that reports no "
                                     f"failure (action: {action or 'none given'})")
    graded = sorted(((_grade(b), b) for b in failures), key=lambda item: item[0][0] != "hard")
    (kind, status), worst = graded[0]
    recipients = _addresses([_recipient(b) for _, b in graded])
    return replace(base, kind=kind, status=status, recipients=recipients,
                   diagnostic=_clip(_typed_value(_header(worst, "Diagnostic-Code"))))


def _detected(msg: Message, base: Report, texts: list[str]) -> Report | None:
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a heuristic tripping over a strange message: not a bounce we know
        return None
    found = permanent or temporary
    if not found:
        return None
    recipients = tuple(sorted(a.decode("utf-8", "replace") for a in found))
    line = _diagnostic_line(texts, recipients)
    status = _status_in(line) if permanent else ""
    status = status if status.startswith("5") else "5.0.0" if permanent else "4.0.0"
    return replace(base, kind=_kind_of(status), recipients=recipients,
                   diagnostic=_clip(line), status=status)


def _other_bounce(msg: Message, base: Report, texts: list[str]) -> Report | None:
    """A bounce in no format we know (it names no recipient we can find): the VERP address
    it came back to still says whose it is, its reply code how bad."""
    if not _looks_like_bounce(msg, base):
        return None
    line = _diagnostic_line(texts, ())
    status = _status_in(line) or "5.0.0"
    return replace(base, kind=_kind_of(status), status=status,
                   diagnostic=_clip(line or base.subject))


def _looks_like_bounce(msg: Message, base: Report) -> bool:
    sender = _header(msg, "From").lower()
    return any(name in sender for name in BOUNCE_SENDERS) or \
        BOUNCE_SUBJECT.search(base.subject) is not None


def _auto_reply(msg: Message, base: Report, _texts: list[str]) -> Report | None:
    submitted = _header(msg, "Auto-Submitted").lower()
    flagged = any(msg.get(name) is not None for name in AUTO_HEADERS)
    precedence = _header(msg, "Precedence").lower() == "auto_reply"
    if (submitted and submitted != "no") or flagged or precedence or \
            AUTO_SUBJECT.match(base.subject):
        return replace(base, kind="auto-reply", diagnostic=base.subject)
    return None


# --- delivery status fields ----------------------------------------------------------------


def _status_blocks(msg: Message) -> list[Message]:
    """The field blocks of the first message/delivery-status part: per-message first."""
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = [b for b in payload if isinstance(b, Message)] \
            if isinstance(payload, list) else []
        if any(b.get("Final-Recipient") or b.get("Action") for b in blocks):
            return blocks
        text = _decoded(part)  # encoded (base64, quoted-printable) or not split by the parser
        return [email.message_from_string(chunk, policy=compat32)
                for chunk in re.split(r"\r?\n\s*\r?\n", text.strip()) if chunk.strip()]
    return []


def _grade(block: Message) -> tuple[str, str]:
    """(hard or soft, the status code) of one recipient's failure."""
    status = _status_in(_header(block, "Status"))
    detail = _status_in(_header(block, "Diagnostic-Code"))
    if not status or (status.endswith(".0.0") and detail[:1] == status[:1]):
        status = detail or status  # "5.0.0" says less than the server's own "5.7.1"
    delayed = _header(block, "Action").lower().startswith("delayed")
    if delayed or status.startswith("4"):
        return "soft", status or "4.0.0"
    status = status if status.startswith("5") else "5.0.0"
    return _kind_of(status), status


def _kind_of(status: str) -> str:
    """hard for a permanent failure of the address, soft for the rest."""
    return "hard" if status.startswith("5") and not status.startswith(MESSAGE_PROBLEMS) \
        else "soft"


def _recipient(block: Message) -> str:
    """The recipient a status block is about: the original one when it is an RFC 822
    address (Final-Recipient may be an X.400 name or an internal alias), else the final."""
    for name in ("Original-Recipient", "Final-Recipient", "X-Actual-Recipient"):
        value = _header(block, name)
        if value.lower().startswith("rfc822") and "@" in value:
            return value
    return _header(block, "Final-Recipient")


def _status_in(text: str) -> str:
    """The enhanced status code in a text, else one made of its basic reply code."""
    enhanced = ENHANCED.search(text)
    if enhanced:
        return ".".join(enhanced.groups())
    basic = BASIC.search(text)
    return f"{basic.group(1)}.0.0" if basic else ""


def _typed_value(value: str) -> str:
    """'smtp; 550 5.1.1 …' → '550 5.1.1 …' (the type before the semicolon dropped)."""
    kind, sep, rest = value.partition(";")
    return rest.strip() if sep and " " not in kind.strip() else value.strip()


def _diagnostic_line(texts: list[str], recipients: Sequence[str]) -> str:
    """The line of a free-text bounce that says why: one with a reply code, else one that
    names the recipient."""
    lines = [line.strip() for text in texts[1:] for line in text.splitlines() if line.strip()]
    coded = next((line for line in lines if ENHANCED.search(line) or BASIC.search(line)), "")
    named = next((line for line in lines
                  if any(r.lower() in line.lower() for r in recipients)), "")
    return coded or named


# --- reading the message ---------------------------------------------------------------------


def _texts(msg: Message) -> Iterator[str]:
    """The top-level headers, then every part's headers and decoded body."""
    yield "\n".join(f"{k}: {v}" for k, v in msg.items())
    for part in msg.walk():
        if part is not msg:
            yield "\n".join(f"{k}: {v}" for k, v in part.items())
        if not part.is_multipart():
            yield _decoded(part)


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode(part.get_content_charset() or "utf-8", "replace") \
            if _known_charset(part.get_content_charset()) else payload.decode("latin-1")
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def _known_charset(name: str | None) -> bool:
    import codecs

    try:
        codecs.lookup(name or "utf-8")
    except LookupError:
        return False
    return True


def _first_block(msg: Message, content_type: str) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == content_type:
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            return email.message_from_string(_decoded(part), policy=compat32)
    return None


def _verp_candidates(envelope_to: Sequence[str], texts: list[str]) -> tuple[str, ...]:
    found = [a.strip().strip("<>").lower() for a in envelope_to]
    found += [m.lower() for t in texts for m in VERP_SHAPE.findall(t)]
    return tuple(a for a in dict.fromkeys(found) if looks_like_verp(a))


def _addresses(values: Sequence[str]) -> tuple[str, ...]:
    """Addresses out of 'rfc822; a@b' fields, in order, once each."""
    found = []
    for value in values:
        address = _typed_value(str(value)).strip().strip("<>").strip()
        if "@" in address:
            found.append(address)
    return tuple(dict.fromkeys(found))


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    try:
        text = str(make_header(decode_header(str(value))))
    except (LookupError, UnicodeError, ValueError, HeaderParseError):
        text = str(value)
    return " ".join(text.split())


def _damage(msg: Message, read: int, size: int) -> str:
    problems = []
    if read < size:
        problems.append(f"{size} bytes, only the first {read} read")
    defects = {type(d).__name__ for part in msg.walk() for d in getattr(part, "defects", [])}
    broken = sorted(defects & {"StartBoundaryNotFoundDefect", "CloseBoundaryNotFoundDefect",
                               "MultipartInvariantViolationDefect", "NoBoundaryInMultipartDefect",
                               "MissingHeaderBodySeparatorDefect"})
    if broken:
        problems.append("malformed MIME (" + ", ".join(broken) + ")")
    return "; ".join(problems)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"
