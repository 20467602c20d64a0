from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.message import Envelope, build_message, header_safe
from digest.models import RenderedDigest, Subscriber
from tests.conftest import parse, parts

ENVELOPE = Envelope(from_address="Spacecraft Digest <digest@news.example>",
                    reply_to="editor@news.example",
                    list_id="Spacecraft Digest <spacecraft-digest.news.example>",
                    base_url="https://digest.example")
RENDERED = RenderedDigest(subject="Spacecraft Digest: 3 new stories",
                          html="<html><body><p>Hi %%SUBSCRIBER_NAME%%</p>"
                               '<a href="%%UNSUBSCRIBE_URL%%">Unsubscribe</a></body></html>',
                          text="Hi %%SUBSCRIBER_NAME%%\n%%UNSUBSCRIBE_URL%%\n")
UNSUBSCRIBE = ("https://digest.example/unsubscribe/"
               "YWRhQGV4YW1wbGUub3Jn.F7iP2FMCUcuSj7UOS9tkySJvNjsF7iP2FMCUcuSj7UOS9tkySJvNjs")
WHEN = datetime(2026, 11, 26, 7, tzinfo=UTC)


def build(subscriber: Subscriber, rendered: RenderedDigest = RENDERED) -> bytes:
    return build_message(rendered, subscriber, envelope=ENVELOPE, digest_id=7, created_at=WHEN,
                         unsubscribe_url=UNSUBSCRIBE,
                         message_id="<digest-7.0123456789abcdef@news.example>").as_bytes()


def test_headers_of_a_list_message() -> None:
    msg = parse(build(Subscriber("ada@example.org", "Ada Lovelace")))
    assert msg["To"] == "Ada Lovelace <ada@example.org>"
    assert msg["From"] == "Spacecraft Digest <digest@news.example>"
    assert msg["Reply-To"] == "editor@news.example"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Precedence"] == "bulk"
    assert msg["Message-ID"] == "<digest-7.0123456789abcdef@news.example>"
    assert msg.get_content_type() == "multipart/alternative"
    kinds = [p.get_content_type() for p in msg.iter_parts()]
    assert kinds == ["text/plain", "text/html"]


def test_list_unsubscribe_is_a_plain_url_in_the_raw_bytes() -> None:
    raw = build(Subscriber("ada@example.org", "Ada"))
    assert f"List-Unsubscribe: <{UNSUBSCRIBE}>\r\n".encode() in raw
    assert b"=?utf-8?q?=3Chttps" not in raw


def test_non_ascii_subject_and_name_are_encoded_and_read_back() -> None:
    rendered = RenderedDigest(subject="Союз МС-28 и 김지원 🚀", html=RENDERED.html,
                              text=RENDERED.text)
    raw = build(Subscriber("yuri@example.net", "Юрий Гагарин"), rendered)
    assert raw.isascii() or b"Subject: =?utf-8?" in raw
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert header_block.isascii()
    msg = parse(raw)
    assert msg["Subject"] == "Союз МС-28 и 김지원 🚀"
    assert msg["To"].addresses[0].display_name == "Юрий Гагарин"
    text, html = parts(msg)
    assert "Hi Юрий Гагарин" in text and "Hi Юрий Гагарин" in html


def test_control_characters_never_reach_a_header() -> None:
    assert header_safe("Launch\r\nBcc: victim@example.org") == "Launch Bcc: victim@example.org"
    rendered = RenderedDigest(subject="Launch\r\nBcc: victim@example.org\n", html=RENDERED.html,
                              text=RENDERED.text)
    msg = parse(build(Subscriber("ada@example.org", "Ada\r\nX-Evil: 1"), rendered))
    assert msg["Bcc"] is None and msg["X-Evil"] is None


@settings(max_examples=150, deadline=None)
@given(subject=st.text(min_size=1, max_size=120), name=st.text(max_size=60))
def test_any_subject_and_name_parse_back_to_one_header_each(subject: str, name: str) -> None:
    rendered = RenderedDigest(subject=subject, html=RENDERED.html, text=RENDERED.text)
    raw = build(Subscriber("ada@example.org", name), rendered)
    msg = parse(raw)
    assert msg["Subject"] == header_safe(subject)
    assert len(msg.get_all("To") or []) == 1
    assert msg["To"].addresses[0].addr_spec == "ada@example.org"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert set(msg.keys()) <= {"From", "To", "Reply-To", "Subject", "Date", "Message-ID",
                               "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
                               "Precedence", "Auto-Submitted", "MIME-Version", "Content-Type"}
