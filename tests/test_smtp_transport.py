"""The SMTP transport against a real aiosmtpd server: login, refusals, one connection, TLS
set up only when asked for, and once per sender."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from digest.config import SmtpSettings, load_config
from digest.deliver import transport_factory
from digest.deliver.smtp import SmtpTransport
from digest.demo.smtp_sink import SmtpSink
from digest.errors import DeliveryError, TransportError
from tests.conftest import write_config

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


def test_no_tls_context_is_built_without_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_tls(*_args: Any, **_kwargs: Any) -> ssl.SSLContext:
        raise AssertionError("a TLS context was built for security = \"none\"")

    monkeypatch.setattr(ssl, "create_default_context", no_tls)
    with SmtpSink() as server:
        transport = SmtpTransport(settings(server.port))
        for i in range(3):  # a fresh connection each time
            transport.open()
            assert transport.send("a@news.example", f"r{i}@example.org", MESSAGE)[:3] == "250"
            transport.close()
        assert not transport.tls.built
        assert len(server.messages) == 3


def test_one_tls_context_serves_every_connection_of_a_sender(
        tmp_path: Path, tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = tls_files
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    built: list[ssl.SSLContext] = []
    original = ssl.create_default_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(original(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(ssl, "create_default_context", counted)
    with SmtpSink(tls_context=server_side, require_starttls=True) as server:
        config = load_config(write_config(tmp_path, feed_urls=["http://127.0.0.1:9/feed"],
                                          smtp_port=server.port))
        config = replace(config, smtp=replace(config.smtp, security="starttls",
                                              ca_file=str(cert)))
        make = transport_factory(config)
        for i in range(4):  # four connections of one send, each opened twice
            transport = make()
            for _ in range(2):
                transport.open()
                transport.send("a@news.example", f"r{i}@example.org", MESSAGE)
                transport.close()
    assert len(server.messages) == 8
    assert len(built) == 1
