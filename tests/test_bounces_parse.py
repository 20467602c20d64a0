"""Reading what comes back: every sample of the corpus yields its kind, recipients and
status code; bad input yields a record, never an exception."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.bounces.parse import read_report

SAMPLES = Path(__file__).resolve().parent / "bounce_samples"
EXPECTED = tomllib.loads((SAMPLES / "expected.toml").read_text(encoding="utf-8"))


def test_the_corpus_covers_every_kind_and_every_sample_file_is_expected() -> None:
    files = {str(p.relative_to(SAMPLES)) for p in SAMPLES.glob("*/*") if p.suffix in
             (".eml", ".txt")}
    assert files == set(EXPECTED)
    assert {e["kind"] for e in EXPECTED.values()} == {"hard", "soft", "complaint",
                                                      "auto-reply", "unrecognised"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_sample_yields_its_kind_recipients_and_status(name: str) -> None:
    expected = EXPECTED[name]
    report = read_report((SAMPLES / name).read_bytes())
    assert report.kind == expected["kind"]
    assert sorted({r.lower() for r in report.recipients}) == expected["recipients"]
    assert report.status == expected.get("status", "")


def test_a_real_postfix_dsn_names_the_verp_address_and_the_original_message() -> None:
    report = read_report((SAMPLES / "postfix" / "user_unknown.eml").read_bytes())
    assert report.verp == ("bounces+2t-bbbbbbbbbb@news.test",)
    assert report.message_ids == ("<digest-7.0123456789abcdef@news.test>",)
    assert report.diagnostic == 'unknown user: "nobody@subs.test"'


def test_a_complaint_names_the_envelope_sender_of_the_original_message() -> None:
    report = read_report((SAMPLES / "formats" / "arf_yahoo_redacted.eml").read_bytes())
    assert report.kind == "complaint"
    assert report.verp == ("bounces+4k-abcdefghij@news.example",)
    assert "Yahoo!-Mail-Feedback" in report.diagnostic


def test_the_envelope_recipient_the_mail_system_gives_comes_first() -> None:
    data = (SAMPLES / "formats" / "exim_quota_dsn.eml").read_bytes()
    report = read_report(data, envelope_to=["<Bounces+9Z-ABCDEFGHIJ@news.example>"])
    assert report.verp[0] == "bounces+9z-abcdefghij@news.example"


def test_a_message_cut_off_half_way_is_read_as_far_as_it_goes() -> None:
    report = read_report((SAMPLES / "formats" / "truncated_dsn.eml").read_bytes())
    assert report.kind == "hard" and "malformed MIME" in report.problem


def test_a_report_larger_than_the_cap_says_how_much_was_read() -> None:
    data = (SAMPLES / "postfix" / "user_unknown.eml").read_bytes()
    report = read_report(data[:1500], size=20_000_000)
    assert report.problem.startswith("20000000 bytes, only the first 1500 read")


def test_a_message_that_is_no_report_is_unrecognised_with_the_reason() -> None:
    report = read_report(b"Subject: hello\r\n\r\nJust saying hi.\r\n")
    assert report.kind == "unrecognised"
    assert report.problem == "neither a delivery status notification nor a complaint"


@pytest.mark.parametrize("data", [b"", b"\x00\xff" * 100, b"Content-Type: multipart/report; "
                                  b"boundary=\r\n\r\n--\r\n", b"From: \xff\xfe\r\n\r\n"])
def test_garbage_is_unrecognised_not_an_error(data: bytes) -> None:
    assert read_report(data).kind == "unrecognised"


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600))
def test_no_input_makes_the_reader_raise(data: bytes) -> None:
    prefix = (SAMPLES / "postfix" / "user_unknown.eml").read_bytes()[:900]
    assert read_report(prefix + data).kind in ("hard", "soft", "complaint", "auto-reply",
                                               "unrecognised")
