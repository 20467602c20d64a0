"""Taking reports in from a Maildir and from an MTA's pipe: what each kind does to the
subscriber, thresholds, rates and alerts, bad input, and a SIGKILL half way through a
mailbox. The reports are real Postfix DSNs (captured by tests/mailstack.py) addressed to
the VERP address each delivery really went out with."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.bounces.ingest import fetch_all
from digest.bounces.verp import verp_address
from digest.demo.smtp_sink import SmtpSink
from digest.models import Article, RenderedDigest
from digest.state import open_state
from digest.subscribers import sync_file
from tests.conftest import Project, parse, query

ARTICLE = Article(url="https://news.example/a", title="A", source_name="N", published=None,
                  paragraphs=("p",))

SAMPLES = Path(__file__).resolve().parent / "bounce_samples"
TEMPLATE_RCPT = "nobody@subs.test"


def report_for(sender: str, recipient: str, *, sample: str = "postfix/user_unknown.eml",
               nonce: str = "1") -> bytes:
    """A real DSN (or complaint) rewritten for one delivery's envelope sender."""
    data = re.sub(rb"bounces\+[0-9a-z]+-[a-z2-7]{10}@news\.(test|example)", sender.encode(),
                  (SAMPLES / sample).read_bytes())
    for old in (TEMPLATE_RCPT, "kim@slow.test", "reader@example.net"):
        data = data.replace(old.encode(), recipient.encode())
    return data.replace(b"Subject:", f"X-Nonce: {nonce}\r\nSubject:".encode(), 1)


def bounce_project(project: Project, extra: str = "") -> Project:
    text = project.config_path.read_text().replace(
        "[email]", '[email]\nreturn_path = "bounces@news.example"')
    project.config_path.write_text(text + f'\n[bounces]\nmaildir = "bounces"\n{extra}\n')
    for sub in ("new", "cur", "tmp"):
        (project.folder / "bounces" / sub).mkdir(parents=True, exist_ok=True)
    return project


def sent_digest(project: Project) -> dict[str, str]:
    """A digest committed and marked sent to every active subscriber, as a send leaves
    it (the whole send path is tested with Postfix in test_bounces_mailstack.py): each
    address and the VERP envelope sender its message went out with."""
    config, now = project.config, datetime.now(UTC)
    with open_state(config) as state:
        sync_file(state.subscribers, config.subscribers_path, now)
        digest_id = state.ledger.create_digest(RenderedDigest("s", "h", "t"), [ARTICLE],
                                               state.subscribers.iter_active(), now,
                                               message_domain="news.example")
        rows = query(project.folder, "SELECT id, email FROM deliveries WHERE digest_id = :d",
                     d=digest_id)
        connection = state.db.raw_connection()
        writer = state.ledger.writer(connection)
        for delivery_id, _ in rows:
            writer.mark(delivery_id, status="sent", reply="250 ok", code=250, attempts=1,
                        now=now)
        connection.close()
    return {email: verp_address("bounces@news.example", delivery_id, b"test-signing-key")
            for delivery_id, email in rows}


def drop(project: Project, name: str, data: bytes) -> None:
    (project.folder / "bounces" / "new" / name).write_bytes(data)


def status(project: Project, email: str) -> str:
    return str(query(project.folder, "SELECT status FROM subscribers WHERE email_key = :e",
                     e=email)[0][0])


def digest(project: Project, *args: str, stdin: bytes = b"",
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    full = {**os.environ, "DIGEST_SIGNING_KEY": "test-signing-key", **(env or {})}
    return subprocess.run([sys.executable, "-m", "digest", "--config",
                           str(project.config_path), *args], input=stdin, env=full,
                          capture_output=True, timeout=120, cwd=project.folder)


def test_a_hard_bounce_marks_the_address_bounced_with_the_code_and_text(
        project: Project, smtp: SmtpSink) -> None:
    bounce_project(project)
    sent = sent_digest(project)
    drop(project, "1.eml", report_for(sent["ada@example.org"], "ada@example.org"))
    [result] = fetch_all(project.config)
    assert result.outcomes == {"acted": 1} and not result.error
    assert status(project, "ada@example.org") == "bounced"
    shown = digest(project, "subscribers", "show", "ada@example.org").stdout.decode()
    assert "bounced" in shown and "5.1.1" in shown and 'unknown user: "ada@example.org"' in shown
    assert "hard bounce 5.1.1 (digest 1)" in shown and "suppressed:  yes" in shown
    assert list((project.folder / "bounces" / ".Processed" / "cur").iterdir())
    assert not list((project.folder / "bounces" / "new").iterdir())
    assert fetch_all(project.config)[0].outcomes == {}
    status_json = json.loads(digest(project, "status", "--json").stdout)
    assert status_json["digests"][0]["bounces"]["hard"] == 1
    assert status_json["digests"][0]["bounces"]["hard_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert "bounces:   hard 1 (33.33%)" in digest(project, "status").stdout.decode()


def test_soft_bounces_count_once_per_message_until_the_limit(project: Project,
                                                              smtp: SmtpSink) -> None:
    bounce_project(project, "soft_limit = 2")
    sent = sent_digest(project)
    first = sent["yuri@example.net"]
    with open_state(project.config) as state:
        second = state.ledger.create_digest(RenderedDigest("s", "h", "t"), [ARTICLE],
                                            state.subscribers.iter_active(), datetime.now(UTC))
        assert isinstance(second, int)
        row = query(project.folder, "SELECT id FROM deliveries WHERE digest_id = :d AND "
                                    "email = 'yuri@example.net'", d=second)[0][0]
    again = verp_address("bounces@news.example", row, b"test-signing-key")
    soft = "postfix/deferred_expired.eml"
    drop(project, "1.eml", report_for(first, "yuri@example.net", sample=soft))
    drop(project, "2.eml", report_for(first, "yuri@example.net", sample=soft, nonce="2"))
    assert fetch_all(project.config)[0].outcomes == {"counted": 2}
    assert status(project, "yuri@example.net") == "active"
    drop(project, "3.eml", report_for(again, "yuri@example.net", sample=soft))
    assert fetch_all(project.config)[0].outcomes == {"acted": 1}
    assert status(project, "yuri@example.net") == "bounced"
    causes = query(project.folder, "SELECT cause FROM subscriber_events WHERE email_key = "
                                   "'yuri@example.net' AND status = 'bounced'")
    assert causes == [("2 soft bounces within 30 days, last: soft bounce 4.4.1 (digest 2): "
                       "mailbox server temporarily unavailable",)]


def test_a_complaint_suppresses_at_once_and_alerts_once_over_the_rate(
        project: Project, smtp: SmtpSink) -> None:
    bounce_project(project)
    text = project.config_path.read_text()
    project.config_path.write_text(text + '\n[alerts]\nemail = "ops@news.example"\n')
    sent = sent_digest(project)
    sender = sent["jiwon@example.com"]
    drop(project, "1.eml", report_for(sender, "jiwon@example.com",
                                      sample="formats/arf_rfc5965.eml"))
    assert fetch_all(project.config)[0].outcomes == {"acted": 1}
    assert status(project, "jiwon@example.com") == "complained"
    alerts = [m for m in smtp.messages if m.recipients == ("ops@news.example",)]
    assert len(alerts) == 1
    assert parse(alerts[0].data)["Subject"] == ("[Spacecraft Digest alert] digest 1: spam "
                                                "complaints at 33.33% of messages sent")
    drop(project, "2.eml", report_for(sender, "jiwon@example.com",
                                      sample="formats/arf_rfc5965.eml", nonce="2"))
    assert fetch_all(project.config)[0].outcomes == {"counted": 1}
    assert len([m for m in smtp.messages if m.recipients == ("ops@news.example",)]) == 1


def test_forged_unknown_unmatched_and_auto_replies_change_nobody_and_are_counted(
        project: Project, smtp: SmtpSink) -> None:
    bounce_project(project)
    sent = sent_digest(project)
    real = sent["ada@example.org"]
    forged = real[:-len("@news.example") - 3] + "aaa@news.example"
    drop(project, "1.eml", report_for(forged, "ada@example.org"))
    drop(project, "2.eml", report_for(verp_address("bounces@news.example", 9999,
                                                   b"test-signing-key"), "ada@example.org"))
    drop(project, "3.eml", (SAMPLES / "formats" / "human_reply.eml").read_bytes())
    drop(project, "4.eml", report_for(real, "ada@example.org",
                                      sample="formats/outlook_automatic_reply.eml"))
    [result] = fetch_all(project.config)
    assert result.outcomes == {"forged": 1, "unknown": 1, "unmatched": 1, "ignored": 1}
    assert status(project, "ada@example.org") == "active"
    lines = digest(project, "status").stdout.decode()
    assert "bounce mail: 4 report(s) read (forged 1, ignored 1, unknown 1, unmatched 1)" in lines


def test_a_report_without_its_verp_address_is_matched_by_the_message_id_it_quotes(
        project: Project, smtp: SmtpSink) -> None:
    bounce_project(project)
    sent_digest(project)
    message_id = query(project.folder, "SELECT message_id FROM deliveries WHERE email = "
                                       "'yuri@example.net'")[0][0]
    data = report_for("bounces@news.example", "yuri@example.net").replace(
        b"<digest-7.0123456789abcdef@news.test>", message_id.encode())
    drop(project, "1.eml", data)
    assert fetch_all(project.config)[0].outcomes == {"acted": 1}
    assert status(project, "yuri@example.net") == "bounced"


def test_bad_input_is_recorded_in_one_line_and_the_next_message_still_counts(
        project: Project, smtp: SmtpSink) -> None:
    bounce_project(project)
    sent = sent_digest(project)
    truncated = report_for(sent["yuri@example.net"], "yuri@example.net")
    drop(project, "1-truncated.eml", truncated[:truncated.index(b"Content-Description: Und")])
    big = report_for(sent["jiwon@example.com"], "jiwon@example.com")
    drop(project, "2-big.eml", big + b"x" * (20 * 1024 * 1024) + b"\r\n")
    drop(project, "3-garbage.eml", b"\x00\xff\xfe garbage")
    drop(project, "4-good.eml", report_for(sent["ada@example.org"], "ada@example.org"))
    fetched = digest(project, "bounces", "fetch")
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.decode().splitlines() == [
        f"maildir {project.folder / 'bounces'}: 4 message(s) (3 acted, 1 unmatched)"]
    assert {status(project, a) for a in ("ada@example.org", "yuri@example.net",
                                         "jiwon@example.com")} == {"bounced"}
    problems = dict(query(project.folder, "SELECT kind, diagnostic FROM bounce_events "
                                          "WHERE outcome = 'unmatched'"))
    assert problems == {"unrecognised": "neither a delivery status notification nor a "
                                        "complaint; malformed MIME "
                                        "(MissingHeaderBodySeparatorDefect)"}
    big_problem = query(project.folder, "SELECT diagnostic FROM bounce_events WHERE "
                                        "email_key = 'jiwon@example.com'")[0][0]
    assert big_problem == 'unknown user: "jiwon@example.com"'


def test_ingest_from_a_pipe_exits_0_when_taken_and_75_when_the_database_is_down(
        project: Project, smtp: SmtpSink) -> None:
    bounce_project(project)
    sent = sent_digest(project)
    data = report_for(sent["ada@example.org"], "ada@example.org")
    taken = digest(project, "bounces", "ingest", stdin=data)
    assert (taken.returncode, taken.stdout) == (0, b"taken: acted\n"), taken.stderr
    again = digest(project, "bounces", "ingest", stdin=data)
    assert (again.returncode, again.stdout) == (0, b"taken: already\n")
    garbage = digest(project, "bounces", "ingest", stdin=b"not mail at all")
    assert (garbage.returncode, garbage.stdout) == (0, b"taken: unmatched\n")
    text = project.config_path.read_text()
    start = text.index('database = "') + len('database = "')
    project.config_path.write_text(text[:start] + "postgresql://digest@127.0.0.1:1/digest"
                                   + text[text.index('"', start):])
    down = digest(project, "bounces", "ingest", stdin=data)
    assert down.returncode == 75
    [line] = down.stderr.decode().splitlines()
    assert "cannot open" in line and line.endswith("try again later")


def test_fetch_with_no_mailbox_configured_says_which_keys_to_set(project: Project) -> None:
    done = digest(project, "bounces", "fetch")
    assert done.returncode == 2
    assert b"[bounces]: no bounce mailbox configured; set imap_url or maildir" in done.stderr


def test_a_sigkill_half_way_through_a_maildir_loses_and_doubles_nothing(
        project: Project, smtp: SmtpSink) -> None:
    count = 150
    addresses = [f"reader{i:03d}@example.org" for i in range(count)]
    (project.folder / "subscribers" / "subscribers.csv").write_text(
        "email,name\n" + "".join(f"{a},R\n" for a in addresses))
    bounce_project(project)
    sent = sent_digest(project)
    for address, sender in sent.items():
        drop(project, f"{address}.eml", report_for(sender, address))
    env = {**os.environ, "DIGEST_SIGNING_KEY": "test-signing-key"}
    run = subprocess.Popen([sys.executable, "-m", "digest", "-q", "--config",
                            str(project.config_path), "bounces", "fetch"], env=env)
    recorded = 0
    deadline = time.monotonic() + 60
    while recorded < count // 3 and time.monotonic() < deadline and run.poll() is None:
        recorded = query(project.folder, "SELECT COUNT(*) FROM bounce_events")[0][0]
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    assert 0 < query(project.folder, "SELECT COUNT(*) FROM bounce_events")[0][0] < count
    rerun = digest(project, "bounces", "fetch")
    assert rerun.returncode == 0, rerun.stderr
    assert query(project.folder, "SELECT COUNT(*), COUNT(DISTINCT fingerprint), "
                                 "COUNT(DISTINCT delivery_id) FROM bounce_events") == [
        (count, count, count)]
    assert query(project.folder, "SELECT COUNT(*), COUNT(DISTINCT email_key) FROM "
                                 "subscriber_events WHERE status = 'bounced'") == [(count, count)]
    assert not list((project.folder / "bounces" / "new").iterdir())
    assert len(list((project.folder / "bounces" / ".Processed" / "cur").iterdir())) == count


def test_the_scheduler_reads_the_mailboxes_on_its_own_cron_and_records_the_run(
        project: Project, smtp: SmtpSink) -> None:
    from digest import scheduler

    bounce_project(project, 'cron = "*/15 * * * *"')
    assert [job.id for job in scheduler.planned_jobs(project.config)] == ["digest", "bounces"]
    sent = sent_digest(project)
    drop(project, "1.eml", report_for(sent["ada@example.org"], "ada@example.org"))
    scheduler.scheduled_bounces(str(project.config_path))
    assert status(project, "ada@example.org") == "bounced"
    runs = json.loads(digest(project, "status", "--json").stdout)["runs"]
    assert [(r["kind"], r["outcome"], r["articles"]) for r in runs] == [("bounces", "fetched",
                                                                         1)]
