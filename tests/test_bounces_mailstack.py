"""End to end with a real mail system (tests/mailstack.py): a digest goes through Debian's
Postfix to recipients some of whom do not exist; Postfix mails its delivery status
notifications to each message's VERP address; Dovecot serves them over IMAPS (TLS
verified against the test's own CA); `digest bounces fetch` reads them, and the next
digest skips the bounced address. Also: an IMAP server that cannot be reached, and a
SIGKILL half way through an IMAP folder."""

from __future__ import annotations

import imaplib
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest import pipeline
from digest.demo.site import SampleSite, SiteServer, load_sample_articles
from tests.conftest import Project, query, write_config
from tests.mailstack import PASSWORD, MailStack, available
from tests.test_bounces_ingest import report_for, sent_digest, status
from tests.test_delivery import _fresh_article

pytestmark = pytest.mark.skipif(bool(available()), reason=available() or "")

SUBSCRIBERS = """email,name
ada@subs.example.org,Ada
jiwon@subs.example.org,Jiwon
ghost@subs.example.org,Nobody Here
kim@slow.example.org,Kim
"""


@pytest.fixture(scope="module")
def stack() -> Iterator[MailStack]:
    with MailStack(("ada", "jiwon")) as mail:
        yield mail


def mail_project(folder: Path, stack: MailStack, site: SiteServer, *, folder_name: str = "INBOX",
                 processed: str = "Processed", ca: bool = True, port: int = 0) -> Project:
    folder.mkdir(parents=True, exist_ok=True)
    path = write_config(folder, feed_urls=[site.feed_url("Spacecraft")],
                        smtp_port=stack.smtp_port)
    (folder / "subscribers" / "subscribers.csv").write_text(SUBSCRIBERS)
    url = f"imaps://127.0.0.1:{port or stack.imaps_port}/{folder_name}"
    text = path.read_text().replace("[email]", '[email]\nreturn_path = "bounces@news.test"')
    path.write_text(text + f'\n[bounces]\nimap_url = "{url}"\nimap_user = "bounces"\n'
                    f'processed_folder = "{processed}"\n'
                    + (f'ca_file = "{stack.ca_file}"\n' if ca else ""))
    return Project(folder, path)


def fetch(project: Project) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIGEST_SIGNING_KEY": "test-signing-key",
           "DIGEST_IMAP_PASSWORD": PASSWORD}
    return subprocess.run([sys.executable, "-m", "digest", "-q", "--config",
                           str(project.config_path), "bounces", "fetch"], env=env,
                          capture_output=True, text=True, timeout=120)


def imap(stack: MailStack) -> imaplib.IMAP4_SSL:
    box = imaplib.IMAP4_SSL("127.0.0.1", stack.imaps_port,
                            ssl_context=ssl.create_default_context(cafile=str(stack.ca_file)))
    box.login("bounces", PASSWORD)
    return box


def count(box: imaplib.IMAP4_SSL, folder: str) -> int:
    box.select(folder)
    return len(box.uid("SEARCH", "ALL")[1][0].split())


def test_postfix_bounces_fetched_over_imap_stop_the_next_digest(
        tmp_path: Path, stack: MailStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", PASSWORD)
    articles = load_sample_articles()
    with SiteServer(SampleSite(articles[:3])) as site:
        project = mail_project(tmp_path, stack, site)
        first = pipeline.run_cycle(project.config)
        assert (first.sent, first.failed) == (4, 0)  # Postfix takes them all, bounces later
        stack.wait_for_bounces(2)
        fetched = fetch(project)
        assert fetched.returncode == 0, fetched.stderr
        assert fetched.stdout.splitlines() == [
            f"{stack.imap_url}: 2 message(s) (1 acted, 1 counted)"]
        assert status(project, "ghost@subs.example.org") == "bounced"
        assert status(project, "kim@slow.example.org") == "active"  # one soft bounce: counted
        events = query(project.folder, "SELECT email_key, kind, status, diagnostic FROM "
                                       "bounce_events ORDER BY email_key")
        assert events == [
            ("ghost@subs.example.org", "hard", "5.1.1", 'unknown user: "ghost@subs.example.org"'),
            ("kim@slow.example.org", "soft", "4.4.1", "mailbox server temporarily unavailable")]
        box = imap(stack)
        assert (count(box, "INBOX"), count(box, "Processed")) == (0, 2)
        box.logout()
        assert fetch(project).stdout.splitlines() == [f"{stack.imap_url}: 0 message(s)"]
        site.site.articles.insert(0, _fresh_article("after-the-bounce"))
        second = pipeline.run_cycle(project.config)
    assert second.recipients == 3
    assert query(project.folder, "SELECT email FROM deliveries WHERE digest_id = 2 ORDER BY "
                                 "email") == [("ada@subs.example.org",),
                                              ("jiwon@subs.example.org",),
                                              ("kim@slow.example.org",)]
    assert (stack.delivered("ada"), stack.delivered("jiwon")) == (2, 2)


def test_an_imap_server_that_cannot_be_reached_or_trusted_is_one_line_and_exit_1(
        tmp_path: Path, stack: MailStack, site: SiteServer) -> None:
    with socket_closed() as port:
        closed = fetch(mail_project(tmp_path / "a", stack, site, port=port))
    assert closed.returncode == 1
    assert closed.stderr.splitlines() == [
        f"error: imaps://127.0.0.1:{port}/INBOX: cannot connect (Connection refused)"]
    untrusted = fetch(mail_project(tmp_path / "b", stack, site, ca=False))
    assert untrusted.returncode == 1
    [line] = untrusted.stderr.splitlines()
    assert "TLS certificate not trusted" in line and "[bounces] ca_file" in line
    project = mail_project(tmp_path / "c", stack, site)
    wrong = subprocess.run([sys.executable, "-m", "digest", "-q", "--config",
                            str(project.config_path), "bounces", "fetch"],
                           env={**os.environ, "DIGEST_IMAP_PASSWORD": "wrong-password"},
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 1 and "login refused" in wrong.stderr
    assert "wrong-password" not in wrong.stderr + wrong.stdout


def test_a_sigkill_half_way_through_an_imap_folder_counts_every_bounce_once(
        tmp_path: Path, stack: MailStack, site: SiteServer) -> None:
    total = 60
    addresses = [f"reader{i:02d}@subs.example.org" for i in range(total)]
    project = mail_project(tmp_path, stack, site, folder_name="Killed", processed="KilledDone")
    (project.folder / "subscribers" / "subscribers.csv").write_text(
        "email,name\n" + "".join(f"{a},R\n" for a in addresses))
    box = imap(stack)
    box.create("Killed")
    for address, sender in sent_digest(project).items():
        box.append("Killed", "", imaplib.Time2Internaldate(time.time()),
                   report_for(sender, address))
    env = {**os.environ, "DIGEST_SIGNING_KEY": "test-signing-key",
           "DIGEST_IMAP_PASSWORD": PASSWORD}
    run = subprocess.Popen([sys.executable, "-m", "digest", "-q", "--config",
                            str(project.config_path), "bounces", "fetch"], env=env)
    recorded, deadline = 0, time.monotonic() + 60
    while recorded < total // 3 and time.monotonic() < deadline and run.poll() is None:
        recorded = query(project.folder, "SELECT COUNT(*) FROM bounce_events")[0][0]
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    assert 0 < query(project.folder, "SELECT COUNT(*) FROM bounce_events")[0][0] < total
    assert fetch(project).returncode == 0
    assert query(project.folder, "SELECT COUNT(*), COUNT(DISTINCT fingerprint), "
                                 "COUNT(DISTINCT delivery_id) FROM bounce_events") == [
        (total, total, total)]
    assert query(project.folder, "SELECT COUNT(DISTINCT email_key) FROM subscriber_events "
                                 "WHERE status = 'bounced'") == [(total,)]
    assert (count(box, "Killed"), count(box, "KilledDone")) == (0, total)
    box.logout()


class socket_closed:  # noqa: N801  (reads as a phrase in the test)
    """A 127.0.0.1 port nothing listens on."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None
