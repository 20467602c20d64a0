"""One contract, every transport: the SMTP relay (a real aiosmtpd server), the outbox
folder and the in-memory list take the same calls and give the same guarantees."""

from __future__ import annotations

import email
from collections.abc import Callable, Iterator
from email.policy import default as default_policy
from pathlib import Path

import pytest

from digest.config import SmtpSettings
from digest.deliver import Transport
from digest.deliver.memory import MemoryTransport
from digest.deliver.outbox import OutboxTransport
from digest.deliver.smtp import SmtpTransport
from digest.demo.smtp_sink import SmtpSink
from digest.errors import TransportError

MESSAGE = (b"From: digest@news.example\r\nTo: ada@example.org\r\nSubject: contract\r\n"
           b"Message-ID: <contract@news.example>\r\n\r\n.leading dot stays\r\nbody\r\n")


class Backend:
    """A transport under test and a way to read back what it delivered."""

    def __init__(self, make: Callable[[], Transport], delivered: Callable[[], list[bytes]]):
        self.make, self.delivered = make, delivered


@pytest.fixture(params=["smtp", "outbox", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "smtp":
        with SmtpSink() as sink:
            settings = SmtpSettings(host="127.0.0.1", port=sink.port, security="none",
                                    timeout=10)
            yield Backend(lambda: SmtpTransport(settings), lambda: [m.data for m in
                                                                   sink.messages])
    elif request.param == "outbox":
        folder = tmp_path / "outbox"
        yield Backend(lambda: OutboxTransport(folder),
                      lambda: [p.read_bytes() for p in sorted(folder.glob("*.eml"))])
    else:
        memory = MemoryTransport()
        yield Backend(lambda: memory, lambda: [kept.data for kept in memory.sent])


def _headers(data: bytes) -> dict[str, str]:
    parsed = email.message_from_bytes(data, policy=default_policy)
    return {k: str(v) for k, v in parsed.items()}


def test_a_sent_message_arrives_with_its_headers_and_body(backend: Backend) -> None:
    transport = backend.make()
    transport.open()
    reply = transport.send("digest@news.example", "ada@example.org", MESSAGE)
    transport.close()
    assert reply.startswith("250")
    (received,) = backend.delivered()
    headers = _headers(received)
    assert headers["Message-ID"] == "<contract@news.example>"
    assert received.replace(b"\r\n", b"\n").endswith(b"\n.leading dot stays\nbody\n")


def test_one_opened_transport_carries_many_messages(backend: Backend) -> None:
    transport = backend.make()
    transport.open()
    for number in range(5):
        transport.send("digest@news.example", f"reader{number}@example.org",
                       MESSAGE.replace(b"contract@", f"contract{number}@".encode()))
    assert transport.is_open
    transport.close()
    ids = sorted(_headers(m)["Message-ID"] for m in backend.delivered())
    assert ids == [f"<contract{n}@news.example>" for n in range(5)]


def test_sending_before_open_is_a_retryable_transport_error(backend: Backend) -> None:
    transport = backend.make()
    with pytest.raises(TransportError) as refused:
        transport.send("digest@news.example", "ada@example.org", MESSAGE)
    assert refused.value.fatal is False
    assert backend.delivered() == []


def test_close_is_idempotent_and_leaves_it_closed(backend: Backend) -> None:
    transport = backend.make()
    transport.open()
    assert transport.is_open
    transport.close()
    transport.close()
    assert not transport.is_open


def test_an_address_that_needs_smtputf8_goes_where_it_is_offered(backend: Backend) -> None:
    transport = backend.make()
    transport.open()
    assert transport.supports_smtputf8()  # the test relay offers it, files take anything
    reply = transport.send("digest@news.example", "jürgen@example.org", MESSAGE, utf8=True)
    transport.close()
    assert reply.startswith("250") and len(backend.delivered()) == 1
