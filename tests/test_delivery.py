"""Delivery against real aiosmtpd servers: exactly once across kills and signals,
retries, deferrals, bounces, pauses, TLS, SMTPUTF8, parallelism, rate limits and the
spliced fast path."""

from __future__ import annotations

import os
import random
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest import pipeline
from digest.config import load_config
from digest.deliver.engine import RateLimiter
from digest.demo.site import SiteServer
from digest.demo.smtp_sink import SmtpSink
from digest.errors import DigestError, TransportError
from digest.message import Envelope, build_message
from digest.models import Recipient, Subscriber
from digest.splice import MessageTemplate
from digest.state import open_state
from tests.conftest import Project, parse, query, write_config
from tests.test_cli import digest
from tests.test_email import big_digest, options


def many_subscribers(folder: Path, count: int) -> set[str]:
    addresses = [f"reader{i:04d}@example.org" for i in range(count)]
    lines = ["email,name"] + [f"{a},Reader {i}" for i, a in enumerate(addresses)]
    path = folder / "subscribers" / "subscribers.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return set(addresses)


def configured(folder: Path, site: SiteServer, port: int, delivery: str = "",
               smtp_extra: str = "") -> Path:
    path = write_config(folder, feed_urls=[site.feed_url("Spacecraft")], smtp_port=port)
    text = path.read_text().replace("[smtp]", f"[smtp]\n{smtp_extra}")
    path.write_text(text + f"\n[delivery]\nretry_delay = 0.01\n{delivery}\n")
    return path


def ledger(folder: Path) -> dict[str, str]:
    return dict(query(folder, "SELECT email, status FROM deliveries"))


def _start_run(folder: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "DIGEST_SIGNING_KEY": "k"}
    return subprocess.Popen([sys.executable, "-m", "digest", "-q", "run"], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_sigkill_at_random_points_never_loses_or_doubles_more_than_one_per_kill(
        tmp_path: Path, site: SiteServer) -> None:
    everyone = many_subscribers(tmp_path, 60)
    rng = random.Random(20261126)
    kills = 0
    with SmtpSink(delay=0.02) as relay:
        # one connection: one message in flight, so a kill may repeat at most that one
        configured(tmp_path, site, relay.port, smtp_extra="connections = 1")
        for _ in range(3):
            proc = _start_run(tmp_path)
            target = len(relay.messages) + rng.randint(3, 12)
            _wait_for(lambda t=target, p=proc: len(relay.messages) >= t or p.poll() is not None)
            time.sleep(rng.uniform(0, 0.03))
            if proc.poll() is None:
                proc.kill()
                kills += 1
            proc.communicate(timeout=30)
        final = digest("run", cwd=tmp_path, timeout=120)
        assert final.returncode == 0, final.stderr
        received = Counter(m.recipients[0] for m in relay.messages)
    assert kills >= 2
    assert set(received) == everyone  # nobody lost
    repeats = sum(n - 1 for n in received.values())
    assert repeats <= kills, received.most_common(5)  # at most one repeat per kill
    assert set(ledger(tmp_path).values()) == {"sent"}


def test_sigterm_finishes_the_message_in_flight_and_says_how_many_remain(
        tmp_path: Path, site: SiteServer) -> None:
    many_subscribers(tmp_path, 40)
    with SmtpSink(delay=0.05) as relay:
        configured(tmp_path, site, relay.port, smtp_extra="connections = 1")
        proc = _start_run(tmp_path)
        _wait_for(lambda: len(relay.messages) >= 5)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 1
        sent_before = len(relay.messages)
        states = Counter(ledger(tmp_path).values())
        assert states["sent"] == sent_before  # the one in flight was recorded
        line = [x for x in err.splitlines() if x.startswith("error: interrupted")]
        assert line and f"has {states['pending']} deliveries still to send" in line[0]
        resumed = digest("resume", cwd=tmp_path, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        assert Counter(m.recipients[0] for m in relay.messages).most_common(1)[0][1] == 1
    assert set(ledger(tmp_path).values()) == {"sent"}


def test_second_run_refuses_while_the_first_is_sending(tmp_path: Path,
                                                       site: SiteServer) -> None:
    many_subscribers(tmp_path, 30)
    with SmtpSink(delay=0.1) as relay:
        configured(tmp_path, site, relay.port, smtp_extra="connections = 1")
        first = _start_run(tmp_path)
        _wait_for(lambda: len(relay.messages) >= 1)
        second = digest("run", cwd=tmp_path)
        assert second.returncode == 3
        assert "state database is locked by another run" in second.stderr
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)


def test_dropped_connections_are_reconnected_and_nobody_is_missed(tmp_path: Path,
                                                                  site: SiteServer) -> None:
    everyone = many_subscribers(tmp_path, 25)
    with SmtpSink(drop_every=4) as relay:
        config = load_config(configured(tmp_path, site, relay.port))
        report = pipeline.run_cycle(config)
        received = Counter(m.recipients[0] for m in relay.messages)
    assert report.sent == 25 and set(received) == everyone
    assert max(received.values()) == 1


@pytest.mark.parametrize(("reply", "status"), [
    ("550 5.1.1 user unknown", "failed"), ("553 5.1.3 bad address", "failed"),
    ("552 5.2.2 mailbox full", "deferred"), ("451 4.3.0 try later", "deferred"),
    ("452 4.2.2 over quota", "deferred")])
def test_each_server_reply_leads_to_its_outcome(tmp_path: Path, site: SiteServer, reply: str,
                                                status: str) -> None:
    many_subscribers(tmp_path, 3)
    unlucky = "reader0001@example.org"
    with SmtpSink(answer=lambda _n, r: reply if r == unlucky else "250 OK") as relay:
        config = load_config(configured(tmp_path, site, relay.port))
        pipeline.run_cycle(config)
        assert unlucky not in {m.recipients[0] for m in relay.messages}
    assert ledger(tmp_path)[unlucky] == status
    ((code, attempts, text),) = query(tmp_path, "SELECT code, attempts, reply FROM deliveries "
                                     "WHERE email = :email", email=unlucky)
    assert code == int(reply[:3]) and reply in text
    assert attempts == (1 if status == "failed" else 3)


def test_a_421_is_retried_on_a_new_connection(tmp_path: Path, site: SiteServer) -> None:
    many_subscribers(tmp_path, 3)
    with SmtpSink(answer=lambda n, _r: "421 4.3.2 closing" if n == 2 else "250 OK") as relay:
        report = pipeline.run_cycle(load_config(configured(tmp_path, site, relay.port)))
        assert report.sent == 3 and len(relay.messages) == 3


def test_hard_failures_mark_the_address_bounced_and_it_is_not_mailed_again(
        tmp_path: Path, site: SiteServer) -> None:
    many_subscribers(tmp_path, 3)
    gone = "reader0002@example.org"
    with SmtpSink(answer=lambda _n, r: "550 5.1.1 no such user" if r == gone
                  else "250 OK") as relay:
        path = configured(tmp_path, site, relay.port, delivery="bounce_after = 2")
        pipeline.run_cycle(load_config(path))
        assert _status(tmp_path, gone) == "active"  # one hard failure is not yet a bounce
        site.site.articles.insert(0, _fresh_article("second"))
        pipeline.run_cycle(load_config(path))
        assert _status(tmp_path, gone) == "bounced"
        site.site.articles.insert(0, _fresh_article("third"))
        before = len(relay.messages)
        report = pipeline.run_cycle(load_config(path))
        assert report.recipients == 2 and len(relay.messages) == before + 2


def _status(folder: Path, email: str) -> str:
    return str(query(folder, "SELECT status FROM subscribers WHERE email_key = :email",
                     email=email)[0][0])


def _fresh_article(slug: str):  # type: ignore[no-untyped-def]
    from digest.demo.site import SampleArticle

    return SampleArticle(slug=slug, title=f"Fresh story {slug}", category="Spacecraft",
                         published=datetime.now(UTC), author="A. Writer",
                         standfirst="Something happened in orbit today.",
                         body="The crew of the station reported that the experiment worked "
                              "as planned on Thursday. " * 4, source="Source: NASA",
                         disclaimer="Disclaimer: May change.")


def test_many_failures_in_a_row_pause_the_digest_until_resumed(tmp_path: Path,
                                                               site: SiteServer) -> None:
    everyone = many_subscribers(tmp_path, 20)
    healthy = {"ok": False}
    with SmtpSink(answer=lambda _n, _r: "250 OK" if healthy["ok"] else "451 busy") as relay:
        path = configured(tmp_path, site, relay.port,
                          delivery="pause_after_failures = 4\nretry_attempts = 1",
                          smtp_extra="connections = 1")
        with pytest.raises(DigestError, match=r"paused after 4 failed or deferred deliveries "
                                              r"in a row \(20 still to send\)"):
            pipeline.run_cycle(load_config(path))
        status = digest("status", cwd=tmp_path).stdout
        assert "paused" in status and "sent 0" in status
        healthy["ok"] = True
        resumed = digest("resume", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert {m.recipients[0] for m in relay.messages} == everyone
    assert "sent      " in digest("status", cwd=tmp_path).stdout


def test_deferred_deliveries_expire_as_failed(tmp_path: Path, site: SiteServer) -> None:
    many_subscribers(tmp_path, 2)
    stuck = "reader0000@example.org"
    with SmtpSink(answer=lambda _n, r: "451 later" if r == stuck else "250 OK") as relay:
        config = load_config(configured(tmp_path, site, relay.port))
        pipeline.run_cycle(config)
        assert ledger(tmp_path)[stuck] == "deferred"
        later = datetime.now(UTC) + timedelta(hours=49)
        pipeline.run_cycle(config, clock=lambda: later)
    assert ledger(tmp_path)[stuck] == "failed"
    ((reply,),) = query(tmp_path, "SELECT reply FROM deliveries WHERE email = :e", e=stuck)
    assert "failed (expired)" in reply
    assert query(tmp_path, "SELECT status FROM digests") == [("sent",)]


def test_auth_failure_stops_at_once_with_nothing_marked_sent(tmp_path: Path,
                                                             site: SiteServer) -> None:
    from tests.test_smtp_transport import _check_login

    many_subscribers(tmp_path, 5)
    with SmtpSink(authenticator=_check_login, auth_required=True,
                  auth_require_tls=False) as relay:
        path = configured(tmp_path, site, relay.port, smtp_extra='username = "digest"')
        result = digest("run", cwd=tmp_path, env={"DIGEST_SMTP_PASSWORD": "wrong"})
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "login as 'digest' refused (535" in errors[0]
        assert "wrong" not in result.stderr + result.stdout
        assert set(ledger(tmp_path).values()) == {"pending"} and relay.messages == []
        ok = digest("run", cwd=tmp_path, env={"DIGEST_SMTP_PASSWORD": "pw"})
        assert ok.returncode == 0 and len(relay.messages) == 5
        assert path.exists()


def test_starttls_verifies_the_certificate_against_ca_file(tmp_path: Path, site: SiteServer,
                                                           tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    many_subscribers(tmp_path, 3)
    with SmtpSink(tls_context=context, require_starttls=True) as relay:
        path = configured(tmp_path, site, relay.port)
        path.write_text(path.read_text().replace('security = "none"', 'security = "starttls"'))
        untrusted = digest("run", cwd=tmp_path)
        assert untrusted.returncode == 1 and "TLS failed" in untrusted.stderr
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        assert relay.messages == []
        path.write_text(path.read_text().replace("[smtp]", f'[smtp]\nca_file = "{cert}"'))
        trusted = digest("run", cwd=tmp_path)
        assert trusted.returncode == 0, trusted.stderr
        assert len(relay.messages) == 3


def test_an_address_unsubscribed_after_the_digest_was_built_gets_nothing(
        tmp_path: Path, site: SiteServer) -> None:
    many_subscribers(tmp_path, 30)
    leaver = "reader0029@example.org"
    with SmtpSink(delay=0.03) as relay:
        config = load_config(configured(tmp_path, site, relay.port,
                                        smtp_extra="connections = 1"))

        def unsubscribe_soon() -> None:
            _wait_for(lambda: len(relay.messages) >= 2)
            with open_state(config) as state:
                state.subscribers.set_status(leaver, "unsubscribed", datetime.now(UTC),
                                             "one-click unsubscribe")

        helper = threading.Thread(target=unsubscribe_soon)
        helper.start()
        report = pipeline.run_cycle(config)
        helper.join()
        assert leaver not in {m.recipients[0] for m in relay.messages}
    assert report.skipped == 1 and ledger(tmp_path)[leaver] == "skipped"


def test_smtputf8_addresses_go_when_offered_and_are_skipped_when_not(
        tmp_path: Path, site: SiteServer) -> None:
    csv_path = tmp_path / "subscribers" / "subscribers.csv"
    csv_path.parent.mkdir(parents=True)
    csv_path.write_text("email,name\nюрий@example.net,Юрий\nada@example.org,Ada\n",
                        encoding="utf-8")
    with SmtpSink() as relay:
        pipeline.run_cycle(load_config(configured(tmp_path, site, relay.port)))
        got = {m.recipients[0]: m for m in relay.messages}
        assert "юрий@example.net" in got
        import email
        from email.policy import default

        utf8_message = email.message_from_string(got["юрий@example.net"].data.decode("utf-8"),
                                                 policy=default)
        assert utf8_message["To"].addresses[0].username == "юрий"
    other = tmp_path / "other"
    other.mkdir()
    (other / "subscribers").mkdir()
    (other / "subscribers" / "subscribers.csv").write_text(csv_path.read_text("utf-8"),
                                                           encoding="utf-8")
    with SmtpSink(enable_SMTPUTF8=False) as plain:
        report = pipeline.run_cycle(load_config(configured(other, site, plain.port)))
        assert [m.recipients[0] for m in plain.messages] == ["ada@example.org"]
    assert report.skipped == 1 and ledger(other)["юрий@example.net"] == "skipped"


def test_parallel_connections_respect_a_global_rate(tmp_path: Path, site: SiteServer) -> None:
    many_subscribers(tmp_path, 30)
    with SmtpSink() as relay:
        config = load_config(configured(tmp_path, site, relay.port,
                                        smtp_extra="connections = 3\nrate_per_second = 20\n"
                                                   "max_per_connection = 4"))
        started = time.monotonic()
        report = pipeline.run_cycle(config)
        elapsed = time.monotonic() - started
    assert report.sent == 30
    assert elapsed >= 29 / 20 * 0.95  # 30 messages at 20 a second, whatever the threads


def test_rate_limiter_holds_per_second_and_per_hour() -> None:
    clock = {"t": 0.0}
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock["t"] += seconds

    limiter = RateLimiter(per_second=10, per_hour=25, clock=lambda: clock["t"], sleep=sleep)
    threads = [threading.Thread(target=limiter.acquire) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert limiter._next >= 20 / 10 - 0.1 + 0.0
    for _ in range(10):
        limiter.acquire()
    assert clock["t"] >= 3600  # the 26th message had to wait for the hour to roll over


def test_outbox_transport_writes_eml_files_through_the_same_ledger(tmp_path: Path,
                                                                   site: SiteServer) -> None:
    many_subscribers(tmp_path, 4)
    path = configured(tmp_path, site, 9, delivery='transport = "outbox"\noutbox = "mailbox"')
    report = pipeline.run_cycle(load_config(path))
    files = sorted((tmp_path / "mailbox").glob("*.eml"))
    assert report.sent == 4 and len(files) == 4
    assert set(ledger(tmp_path).values()) == {"sent"}
    assert parse(files[0].read_bytes())["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_send_test_mails_one_address_and_records_nothing(project: Project,
                                                         smtp: SmtpSink) -> None:
    result = digest("send-test", "editor@news.example", cwd=project.folder)
    assert result.returncode == 0, result.stderr
    assert [m.recipients[0] for m in smtp.messages] == ["editor@news.example"]
    msg = parse(smtp.messages[0].data)
    assert msg["Subject"].startswith("[TEST] Spacecraft Digest")
    assert ledger(project.folder) == {}
    assert pipeline.run_cycle(project.config).sent == 3  # the articles are still new


ENVELOPE = Envelope(from_address="Spacecraft Digest <digest@news.example>",
                    reply_to="editor@news.example", list_id="X <x.news.example>",
                    base_url="https://digest.example", unsubscribe_mailto="u@news.example")
RENDERED = None


def _template(text_only: bool = False) -> MessageTemplate:
    global RENDERED
    if RENDERED is None:
        from digest.render import render_digest

        RENDERED = render_digest(big_digest(3), options())
    return MessageTemplate(RENDERED, envelope=ENVELOPE, digest_id=9,
                           created_at=datetime(2026, 11, 26, 7, tzinfo=UTC),
                           unsubscribe_base="https://digest.example/unsubscribe/",
                           text_only=text_only)


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=80),
       local=st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,20}", fullmatch=True),
       token=st.from_regex(r"[A-Za-z0-9_-]{5,30}\.[A-Za-z0-9_-]{5,30}", fullmatch=True),
       fmt=st.sampled_from(["html", "text"]))
def test_spliced_message_is_identical_to_the_slow_path(name: str, local: str, token: str,
                                                       fmt: str) -> None:
    template = _template(text_only=fmt == "text")
    subscriber = Subscriber(email=f"{local}@example.org", name=name, format=fmt)
    message_id = "<digest-9.0011223344556677@news.example>"
    fast = template.message_bytes(subscriber, token, message_id)
    assert RENDERED is not None
    slow = build_message(RENDERED, subscriber, envelope=ENVELOPE, digest_id=9,
                         created_at=datetime(2026, 11, 26, 7, tzinfo=UTC),
                         unsubscribe_url=f"https://digest.example/unsubscribe/{token}",
                         message_id=message_id).as_bytes()
    assert fast == slow


TRACKED: dict[str, Any] = {}


@settings(max_examples=120, deadline=None)
@given(name=st.text(max_size=60),
       reader=st.from_regex(r"[A-Za-z0-9_-]{1,24}", fullmatch=True),
       mode=st.sampled_from(["clicks", "reader", "reader+opens"]))
def test_spliced_message_with_tracked_links_is_identical_to_the_slow_path(
        name: str, reader: str, mode: str) -> None:
    from dataclasses import replace

    from digest.models import TrackingMode
    from digest.render import render_digest
    from digest.tracking import ReaderLinks

    tracking = TrackingMode(clicks=True, opens="opens" in mode, per_reader="reader" in mode)
    if mode not in TRACKED:
        TRACKED[mode] = render_digest(big_digest(3), replace(options(), tracking=tracking))
    rendered = TRACKED[mode]
    created = datetime(2026, 11, 26, 7, tzinfo=UTC)
    template = MessageTemplate(rendered, envelope=ENVELOPE, digest_id=9, created_at=created,
                               unsubscribe_base="https://digest.example/unsubscribe/")
    subscriber = Recipient(delivery_id=1, email="ada@example.org", name=name,
                           token_id=reader)
    fast = template.message_bytes(subscriber, "tok.sig", "<m.1@news.example>")
    links = ReaderLinks(ENVELOPE.base_url, ENVELOPE.archive_key, 9, tracking.per_reader)
    who = reader if tracking.per_reader else ""
    slow = build_message(rendered, subscriber, envelope=ENVELOPE, digest_id=9,
                         created_at=created,
                         unsubscribe_url="https://digest.example/unsubscribe/tok.sig",
                         message_id="<m.1@news.example>", link=links.clicks_of(who),
                         open_url=links.open(who)).as_bytes()
    assert fast == slow
    assert b"/c/k.9.0." in fast
    assert (f"/c/k.9.0.{reader}.".encode() in fast) == tracking.per_reader


def test_unreachable_relay_is_fatal_and_keeps_everything_pending(tmp_path: Path,
                                                                 site: SiteServer) -> None:
    many_subscribers(tmp_path, 3)
    config = load_config(configured(tmp_path, site, 9))
    with pytest.raises(TransportError, match="cannot connect"):
        pipeline.run_cycle(config)
    assert set(ledger(tmp_path).values()) == {"pending"}


def test_pipelined_sending_with_a_refused_recipient(tmp_path: Path, site: SiteServer) -> None:
    from digest.demo.null_smtp import NullSmtpServer

    everyone = many_subscribers(tmp_path, 12)
    unknown = "reader0005@example.org"
    with NullSmtpServer(refuse=lambda r: r == unknown) as relay:
        report = pipeline.run_cycle(load_config(configured(tmp_path, site, relay.port)))
        received = dict(relay.received)
    assert report.sent == 11 and report.failed == 1
    assert received == {address: 1 for address in everyone - {unknown}}
    assert ledger(tmp_path)[unknown] == "failed"


def test_dot_stuffing_and_final_line_ending() -> None:
    from digest.deliver.smtp import _stuffed

    assert _stuffed(b"a\r\n.b\r\n..c") == b"a\r\n..b\r\n...c\r\n"
    assert _stuffed(b".start\r\n") == b"..start\r\n"
    plain = b"no dots at line starts\r\n"
    assert _stuffed(plain) is plain


def test_text_format_subscribers_get_plain_text_only(tmp_path: Path, site: SiteServer) -> None:
    csv_path = tmp_path / "subscribers" / "subscribers.csv"
    csv_path.parent.mkdir(parents=True)
    csv_path.write_text("email,name,format\nada@example.org,Ada,text\nbob@example.org,Bob,html\n",
                        encoding="utf-8")
    with SmtpSink() as relay:
        pipeline.run_cycle(load_config(configured(tmp_path, site, relay.port)))
        got = {m.recipients[0]: parse(m.data) for m in relay.messages}
    assert got["ada@example.org"].get_content_type() == "text/plain"
    assert "Read on " in got["ada@example.org"].get_content()
    assert got["bob@example.org"].get_content_type() == "multipart/alternative"
