"""SMTP delivery with smtplib: one connection reused for many messages, STARTTLS or SSL
with certificate checks, login when a username is set."""

from __future__ import annotations

import re
import smtplib
import ssl
import threading

from digest.config import SmtpSettings
from digest.errors import DeliveryError, TransportError, UnknownOutcome
from digest.urls import is_loopback_host

# Enhanced status codes (RFC 3463) that blame the message, not where it is going:
# 5.3.4 too big, 5.5.x protocol (line too long), 5.6.x content.
CONTENT_STATUS = re.compile(r"\b5\.(3\.4|5\.\d{1,3}|6\.\d{1,3})\b")
RECIPIENT_STATUS = re.compile(r"\b5\.[12]\.\d{1,3}\b")
CONTENT_WORDS = re.compile(r"line too long|too (big|large)|size|content|syntax", re.I)


def _about_the_content(code: int, text: str) -> bool:
    """Whether a refusal at DATA is about the message (which every copy shares): 500
    (syntax, line length), a 552 that says the message is too big, a 554 that does not
    name the mailbox."""
    if RECIPIENT_STATUS.search(text):
        return False
    if code == 500:
        return True
    return code in (552, 554) and bool(CONTENT_STATUS.search(text) or CONTENT_WORDS.search(text))


class TlsContext:
    """The TLS context the connections of one sender share: built when the first of them
    needs it (never with security = "none"), once however many connections and
    reconnections follow. Loading the system's CA store costs milliseconds each time."""

    def __init__(self, ca_file: str = "") -> None:
        self.ca_file = ca_file
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        """Whether the context exists yet."""
        return self._context is not None

    def get(self, where: str) -> ssl.SSLContext:
        """The context, verifying certificates against the system's CAs or `ca_file`."""
        with self._lock:
            if self._context is None:
                try:
                    self._context = ssl.create_default_context(cafile=self.ca_file or None)
                except (OSError, ssl.SSLError) as exc:
                    raise TransportError(f"{where}: [smtp] ca_file {self.ca_file}: "
                                         f"cannot load ({exc})") from None
            return self._context


class SmtpTransport:
    """Sends each message with MAIL/RCPT/DATA on one kept-open connection."""

    def __init__(self, settings: SmtpSettings, *, password: str = "",
                 ca_file: str = "", tls: TlsContext | None = None) -> None:
        self.settings = settings
        self._password = password
        self.tls = tls or TlsContext(ca_file)
        self._smtp: smtplib.SMTP | None = None
        self._body_sent = False

    @property
    def is_open(self) -> bool:
        return self._smtp is not None

    def supports_smtputf8(self) -> bool:
        """Whether the server offered SMTPUTF8 (addresses with non-ASCII local parts)."""
        return self._smtp is not None and self._smtp.has_extn("smtputf8")

    @property
    def where(self) -> str:
        return f"SMTP {self.settings.host}:{self.settings.port}"

    def open(self) -> None:
        """Connect, secure and log in; raise TransportError naming the server on failure."""
        s = self.settings
        if s.username and s.security == "none" and not s.allow_plaintext_auth and \
                not is_loopback_host(s.host):
            raise TransportError(f"{self.where}: refusing to send the password for "
                                 f"{s.username!r} in clear ([smtp] security = \"none\"); use "
                                 "starttls or ssl, or set [smtp] allow_plaintext_auth = true")
        smtp: smtplib.SMTP | None = None
        try:
            smtp = self._connect()
            if s.username:
                smtp.login(s.username, self._password)
        except smtplib.SMTPAuthenticationError as exc:
            _close_quietly(smtp)
            raise TransportError(f"{self.where}: login as {s.username!r} refused "
                                 f"({exc.smtp_code} {_text(exc.smtp_error)})") from None
        except smtplib.SMTPNotSupportedError as exc:
            _close_quietly(smtp)
            raise TransportError(f"{self.where}: {exc} (check [smtp] security)") from None
        except (ssl.SSLError, ssl.CertificateError) as exc:
            _close_quietly(smtp)
            raise TransportError(f"{self.where}: TLS failed ({exc})") from None
        except (OSError, smtplib.SMTPException) as exc:
            _close_quietly(smtp)
            raise TransportError(f"{self.where}: cannot connect ({exc})") from None
        self._smtp = smtp

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp: smtplib.SMTP
        if s.security == "ssl":
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                    context=self.tls.get(self.where))
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            smtp.ehlo()
            if s.security == "starttls":
                smtp.starttls(context=self.tls.get(self.where))
                smtp.ehlo()
        except BaseException:
            _close_quietly(smtp)
            raise
        return smtp

    def send(self, sender: str, recipient: str, message: bytes, *, utf8: bool = False) -> str:
        """Send one message: DeliveryError for this recipient, TransportError for the link."""
        smtp = self._smtp
        if smtp is None:
            raise TransportError(f"{self.where}: send() before open()", fatal=False)
        options = " BODY=8BITMIME" if smtp.has_extn("8bitmime") else ""
        if utf8:
            options += " SMTPUTF8"
        smtp.command_encoding = "utf-8" if utf8 else "ascii"  # what smtplib's mail() sets
        self._body_sent = False
        try:
            if smtp.has_extn("pipelining"):
                code, reply = self._pipelined(smtp, sender, recipient, message, options)
            else:
                code, reply = self._one_by_one(smtp, sender, recipient, message, options)
            if code != 250:
                self._reset()
                raise _refusal(recipient, "end of DATA", code, reply)
        except smtplib.SMTPDataError as exc:
            self._reset()
            raise _refusal(recipient, "DATA", exc.smtp_code, exc.smtp_error) from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError) as exc:
            _close_quietly(self._smtp)
            self._smtp = None
            if self._body_sent:
                raise UnknownOutcome(f"{self.where}: connection lost after the message was "
                                     f"sent and before the server answered ({exc})") from None
            raise TransportError(f"{self.where}: connection lost ({exc})", fatal=False) from None
        return f"{code} {_text(reply)}"

    def _one_by_one(self, smtp: smtplib.SMTP, sender: str, recipient: str, message: bytes,
                    options: str) -> tuple[int, bytes]:
        # putcmd rather than mail()/rcpt(): the addresses were validated long ago, and
        # smtplib's re-parsing of them costs more than the rest of the command.
        code, reply = _command(smtp, "mail", f"FROM:<{sender}>{options}")
        if code != 250:
            self._reset()
            raise _refusal(recipient, "MAIL FROM", code, reply)
        code, reply = _command(smtp, "rcpt", f"TO:<{recipient}>")
        if code not in (250, 251):
            self._reset()
            raise _refusal(recipient, "RCPT TO", code, reply)
        # DATA by hand: the message already has CRLF line endings, and smtplib.data() runs
        # two regular expressions over every 35 KB digest, most of its cost per message.
        code, reply = _command(smtp, "data", "")
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        smtp.send(_stuffed(message) + b".\r\n")
        self._body_sent = True
        return smtp.getreply()

    def _pipelined(self, smtp: smtplib.SMTP, sender: str, recipient: str, message: bytes,
                   options: str) -> tuple[int, bytes]:
        """MAIL, RCPT and DATA in one write (RFC 2920), then the body once DATA says 354."""
        smtp.send(f"MAIL FROM:<{sender}>{options}\r\nRCPT TO:<{recipient}>\r\nDATA\r\n")
        replies = [smtp.getreply() for _ in range(3)]
        (mail_code, mail_reply), (rcpt_code, rcpt_reply), (data_code, data_reply) = replies
        if mail_code == 250 and rcpt_code in (250, 251) and data_code == 354:
            smtp.send(_stuffed(message) + b".\r\n")
            self._body_sent = True
            return smtp.getreply()
        if data_code == 354:  # refused sender or recipient, yet DATA open: send nothing
            smtp.send(b".\r\n")
            smtp.getreply()
        self._reset()
        if mail_code != 250:
            raise _refusal(recipient, "MAIL FROM", mail_code, mail_reply)
        if rcpt_code not in (250, 251):
            raise _refusal(recipient, "RCPT TO", rcpt_code, rcpt_reply)
        raise smtplib.SMTPDataError(data_code, data_reply)

    def _reset(self) -> None:
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._smtp = None

    def close(self) -> None:
        """Say QUIT and close the connection."""
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None


def _command(smtp: smtplib.SMTP, name: str, argument: str) -> tuple[int, bytes]:
    smtp.putcmd(name, argument)
    return smtp.getreply()


def _stuffed(message: bytes) -> bytes:
    """The message with leading dots doubled and a final CRLF, ready for the closing dot."""
    if message.startswith(b".") or b"\n." in message:
        message = re.sub(rb"(?m)^\.", b"..", message)
    return message if message.endswith(b"\r\n") else message + b"\r\n"


def _close_quietly(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        smtp.close()


def _refusal(recipient: str, stage: str, code: int, reply: bytes | str) -> DeliveryError:
    if code == 421:  # the server is closing the connection: a new one may do better
        raise TransportError(f"{recipient}: {stage}: {code} {_text(reply)} (server closing "
                             "the connection)", fatal=False)
    content = "DATA" in stage and _about_the_content(code, _text(reply))
    # RFC 5321 treats 552 as temporary, unless it says the message itself is too big.
    permanent = 500 <= code < 600 and (code != 552 or content)
    return DeliveryError(f"{recipient}: {stage} refused: {code} {_text(reply)}",
                         permanent=permanent, code=code, content=content)


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", errors="replace")
    return " ".join(reply.split())
