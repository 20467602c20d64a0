"""The whole cycle against the real sample site over HTTP and a real aiosmtpd server."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest import pipeline
from digest.demo.site import SampleArticle, SampleSite, SiteServer, load_sample_articles
from digest.demo.smtp_sink import SmtpSink
from digest.errors import LockedError, SourcesDown, TransportError
from digest.extract import normalise_space
from digest.state import open_state
from tests.conftest import ACTIVE, POSTGRES_SERVER, Project, parse, parts, query, write_config


def spacecraft(site: SiteServer) -> list[SampleArticle]:
    return site.site.by_category("spacecraft")


def test_one_cycle_mails_every_active_subscriber_once(project: Project, site: SiteServer,
                                                      smtp: SmtpSink) -> None:
    report = pipeline.run_cycle(project.config)
    assert (report.found, report.new, report.summarized) == (12, 12, 12)
    assert report.recipients == 3 and report.sent == 3 and report.failures == []
    received = [r.recipients[0] for r in smtp.messages]
    assert sorted(received) == sorted(ACTIVE)
    assert all(re.fullmatch(r"digest\+[0-9a-z]+-[a-z2-7]{10}@news\.example", m.sender)
               for m in smtp.messages)


def test_received_message_holds_every_article_with_its_lines(project: Project,
                                                             site: SiteServer,
                                                             smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    msg = parse(next(m.data for m in smtp.messages if m.recipients[0] == "ada@example.org"))
    assert msg["To"] == "Ada Lovelace <ada@example.org>"
    assert msg["Subject"] == "Spacecraft Digest: 12 new Spacecraft stories"
    assert msg["Date"] and msg["Message-ID"]
    assert re.fullmatch(r"<https://digest\.example/unsubscribe/(s\.[\w-]+\.[\w-]+)>, "
                        r"<mailto:unsubscribe@news\.example\?subject=unsubscribe%20\1>",
                        msg["List-Unsubscribe"])
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = parts(msg)
    flat = normalise_space(text)
    assert 'style="' in html and "<style" in html  # inlined, media queries kept
    for sample in spacecraft(site):
        assert sample.title.replace("'", "&#39;") in html or sample.title in html
        assert site.url + sample.path in text
        for line in (sample.source, sample.disclaimer):
            if line:
                assert normalise_space(line) in flat
    for other in site.site.articles:
        if other.category != "Spacecraft":
            assert other.title not in text
    for junk in ("Also Read", "Leave a Reply", "Share this", "Sign up for our weekly",
                 "Required fields"):
        assert junk not in text and junk not in html
    assert "Hello Ada," in text


def test_summaries_are_sentences_from_the_articles(project: Project, site: SiteServer,
                                                   smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    text, _ = parts(parse(smtp.messages[0].data))
    flat = normalise_space(text)
    for sample in spacecraft(site):
        body = normalise_space(sample.body)
        first_paragraph = normalise_space(sample.body.split("\n\n")[1])
        first_sentence = first_paragraph.split(". ")[0]
        assert first_sentence in flat, sample.slug  # the lead leads each summary
        assert first_sentence in body


def test_second_run_sends_nothing(project: Project, smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    second = pipeline.run_cycle(project.config)
    assert second.new == 0 and second.sent == 0
    assert "nothing new: no digest built" in second.notes
    assert len(smtp.messages) == 3


def test_a_new_article_gets_a_digest_of_its_own(project: Project, site: SiteServer,
                                                smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    fresh = SampleArticle(slug="late-breaking-docking", title="Late-Breaking Docking at the ISS",
                          category="Spacecraft", published=datetime(2026, 11, 26, tzinfo=UTC),
                          author="A. Writer", standfirst="A cargo ship docked.",
                          body="The Dragonfly cargo ship docked with the station on Thursday "
                               "after a smooth two-day chase through orbit. " * 3
                               + "\n\nThe crew will unload two tonnes of supplies and "
                               "experiments over the coming week, controllers said.",
                          source="Source: NASA", disclaimer="Disclaimer: Details may change.")
    site.site.articles.insert(0, fresh)
    report = pipeline.run_cycle(project.config)
    assert report.new == 1 and report.sent == 3
    latest = parse(smtp.messages[-1].data)
    text, _ = parts(latest)
    assert "Late-Breaking Docking at the ISS" in text
    assert "Keystone" not in text
    assert latest["Subject"] == "Spacecraft Digest: 1 new Spacecraft story"


def test_dry_run_sends_and_records_nothing(project: Project, smtp: SmtpSink) -> None:
    report = pipeline.run_cycle(project.config, dry_run=True)
    assert report.summarized == 12 and report.recipients == 3 and report.sent == 0
    assert smtp.messages == []
    assert pipeline.run_cycle(project.config).sent == 3


def test_preview_is_the_next_digest_and_records_nothing(project: Project,
                                                        smtp: SmtpSink) -> None:
    draft = pipeline.preview(project.config)
    rendered, result, html, text = draft.rendered, draft.gathered, draft.html, draft.text
    assert len(result.articles) == 12
    assert "Hello Sample," in text and "%%" not in html
    assert rendered.subject == "Spacecraft Digest: 12 new Spacecraft stories"
    assert pipeline.run_cycle(project.config).new == 12


@pytest.mark.parametrize("kind", ["500", "html", "refused"])
def test_broken_feed_is_reported_and_nothing_bogus_is_sent(tmp_path: Path, smtp: SmtpSink,
                                                           kind: str) -> None:
    with SiteServer(SampleSite(load_sample_articles())) as site:
        urls = {"500": site.url + "/category/no-such-thing/feed/",  # the site answers 404
                "html": site.url + "/category/spacecraft/",
                "refused": "http://127.0.0.1:9/feed/"}
        config_path = write_config(tmp_path, feed_urls=[urls[kind]], smtp_port=smtp.port,
                                   source_extra='kind = "feed"')
        project = Project(tmp_path, config_path)
        with pytest.raises(SourcesDown) as down:  # the only source: exit 1, one line
            pipeline.run_cycle(project.config)
    assert smtp.messages == []
    assert "no source could be read (1 of 1 failed" in str(down.value)
    assert urls[kind] in str(down.value)
    assert "\n" not in str(down.value)
    (run,) = query(tmp_path, "SELECT outcome, sent FROM runs")
    assert run == ("failed", 0)


def test_one_broken_source_does_not_stop_the_others(tmp_path: Path, site: SiteServer,
                                                    smtp: SmtpSink) -> None:
    config_path = write_config(tmp_path, feed_urls=["http://127.0.0.1:9/feed/",
                                                    site.feed_url("Spacecraft")],
                               smtp_port=smtp.port)
    report = pipeline.run_cycle(Project(tmp_path, config_path).config)
    assert report.summarized == 12 and report.sent == 3
    assert [f.url for f in report.failures] == ["http://127.0.0.1:9/feed/"]


def test_a_missing_article_page_is_skipped_and_counted(project: Project, site: SiteServer,
                                                       smtp: SmtpSink) -> None:
    gone = spacecraft(site)[0]
    site.site.page = _without(site.site.page, gone.path)  # type: ignore[method-assign]
    report = pipeline.run_cycle(project.config)
    assert report.summarized == 11 and report.sent == 3
    assert len(report.failures) == 1 and "HTTP 404" in report.failures[0].reason
    text, _ = parts(parse(smtp.messages[0].data))
    assert gone.title not in text


def _without(page, missing_path):  # type: ignore[no-untyped-def]
    def wrapped(path: str):  # type: ignore[no-untyped-def]
        if path == missing_path:
            return 404, "text/html", "gone"
        return page(path)
    return wrapped


def test_deferred_recipient_is_retried_by_the_next_run_and_gets_one_copy(
        tmp_path: Path, site: SiteServer) -> None:
    relay_ok = {"yuri@example.net": False}

    def answer(_number: int, recipient: str) -> str:
        return "451 4.3.0 try later" if relay_ok.get(recipient) is False else "250 OK"

    with SmtpSink(answer=answer) as flaky:
        config_path = write_config(tmp_path, feed_urls=[site.feed_url("Spacecraft")],
                                   smtp_port=flaky.port)
        config_path.write_text(config_path.read_text() + "\n[delivery]\nretry_delay = 0.01\n")
        config = Project(tmp_path, config_path).config
        first = pipeline.run_cycle(config)
        assert first.sent == 2 and first.remaining == 1
        assert any("1 deliveries deferred" in note for note in first.notes)
        relay_ok["yuri@example.net"] = True
        second = pipeline.run_cycle(config)
        assert second.resumed_digest_id == first.digest_id and second.sent == 1
        assert second.new == 0
        per_recipient = Counter(m.recipients[0] for m in flaky.messages)
    assert per_recipient == Counter({address: 1 for address in ACTIVE})


def test_unreachable_relay_keeps_every_delivery_pending(tmp_path: Path,
                                                        site: SiteServer) -> None:
    config_path = write_config(tmp_path, feed_urls=[site.feed_url("Spacecraft")], smtp_port=9)
    config = Project(tmp_path, config_path).config
    with pytest.raises(TransportError, match=r"SMTP 127.0.0.1:9: cannot connect.*3 deliveries "
                                             r"still pending"):
        pipeline.run_cycle(config)
    with SmtpSink() as relay:
        path = write_config(tmp_path, feed_urls=[site.feed_url("Spacecraft")],
                            smtp_port=relay.port)
        report = pipeline.run_cycle(Project(tmp_path, path).config)
        assert report.resumed_digest_id is not None and report.sent == 3
        assert len(relay.messages) == 3


def test_every_delivery_is_recorded_in_the_state_database(project: Project) -> None:
    report = pipeline.run_cycle(project.config)
    rows = query(project.folder, "SELECT email, status, message_id, reply FROM deliveries "
                 "WHERE digest_id = :d", d=report.digest_id)
    assert {r[0] for r in rows} == ACTIVE
    assert all(r[1] == "sent" and r[2].startswith("<digest-") and r[3].startswith("250")
               for r in rows)
    if not POSTGRES_SERVER:
        assert query(project.folder, "PRAGMA journal_mode") == [("wal",)]
    assert query(project.folder, "SELECT count(*) FROM digest_articles") == [(12,)]


def test_a_second_run_refuses_while_one_holds_the_lock(project: Project) -> None:
    config = project.config
    with open_state(config) as state, state.db.lock("run", datetime.now(UTC)), \
            pytest.raises(LockedError, match="pid"):
        pipeline.run_cycle(config)


def test_a_lock_left_by_a_dead_process_is_taken_over(project: Project) -> None:
    config = project.config
    import socket

    from sqlalchemy import insert

    from digest.state.schema import locks
    with open_state(config) as state, state.db.begin() as conn:
        conn.execute(insert(locks).values(name="run", host=socket.gethostname(), pid=2**22 + 7,
                                          acquired_at=datetime.now(UTC) - timedelta(hours=1)))
    assert pipeline.run_cycle(config).sent == 3


def test_no_active_subscribers_leaves_the_articles_new(project: Project, smtp: SmtpSink) -> None:
    (project.folder / "subscribers" / "subscribers.csv").write_text("email,name,status\n")
    report = pipeline.run_cycle(project.config)
    assert report.sent == 0 and any("no active subscribers" in n for n in report.notes)
    (project.folder / "subscribers" / "subscribers.csv").write_text(
        "email,name\nada@example.org,Ada\n")
    assert pipeline.run_cycle(project.config).summarized == 12
