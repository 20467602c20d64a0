"""The SMTP transport against a real aiosmtpd server: login, refusals, one connection."""

from __future__ import annotations

from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from digest.config import SmtpSettings
from digest.deliver.smtp import SmtpTransport
from digest.demo.smtp_sink import SmtpSink
from digest.errors import DeliveryError, TransportError

MESSAGE = b"From: a@news.example\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


def _check_login(_server: Any, _session: Any, _envelope: Any, mechanism: str,
                 data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == b"digest" and data.password == b"pw"
    return AuthResult(success=ok, handled=False)


def settings(port: int, **overrides: Any) -> SmtpSettings:
    return SmtpSettings(**{"host": "127.0.0.1", "port": port, "security": "none",
                           "timeout": 5.0, **overrides})


def test_login_then_many_messages_on_one_connection() -> None:
    with SmtpSink(authenticator=_check_login, auth_required=True,
                  auth_require_tls=False) as server:
        transport = SmtpTransport(settings(server.port, username="digest"), password="pw")
        transport.open()
        try:
            replies = [transport.send("a@news.example", f"r{i}@example.org", MESSAGE)
                       for i in range(5)]
        finally:
            transport.close()
        assert all(reply.startswith("250") for reply in replies)
        assert [m.recipients[0] for m in server.messages] == [f"r{i}@example.org"
                                                              for i in range(5)]


def test_wrong_password_stops_with_one_clear_line() -> None:
    with SmtpSink(authenticator=_check_login, auth_required=True,
                  auth_require_tls=False) as server:
        transport = SmtpTransport(settings(server.port, username="digest"), password="nope")
        with pytest.raises(TransportError) as caught:
            transport.open()
        message = str(caught.value)
        assert message.startswith(f"SMTP 127.0.0.1:{server.port}: login as 'digest' refused (535")
        assert "nope" not in message


def test_starttls_required_but_not_offered_is_refused() -> None:
    with SmtpSink() as server:
        transport = SmtpTransport(settings(server.port, security="starttls"))
        with pytest.raises(TransportError, match="STARTTLS"):
            transport.open()


@pytest.mark.parametrize(("reply", "permanent"), [
    ("550 5.1.1 no such user", True),
    ("553 5.1.3 bad address", True),
    ("552 5.2.2 mailbox full", False),
    ("451 4.3.0 try again later", False),
])
def test_refusals_say_whether_a_retry_can_help(reply: str, permanent: bool) -> None:
    with SmtpSink(answer=lambda n, _r: reply if n == 1 else "250 OK") as server:
        transport = SmtpTransport(settings(server.port))
        transport.open()
        try:
            with pytest.raises(DeliveryError) as caught:
                transport.send("a@news.example", "b@example.org", MESSAGE)
            assert caught.value.permanent is permanent
            assert reply.split()[0] in str(caught.value)
            assert transport.send("a@news.example", "c@example.org", MESSAGE).startswith("250")
        finally:
            transport.close()
        assert [m.recipients[0] for m in server.messages] == ["c@example.org"]
