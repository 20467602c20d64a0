"""The message itself: HTML built for email clients, the size guard, the text part,
headers, DKIM, preflight, SpamAssassin and a real browser at phone width."""

from __future__ import annotations

import base64
import dataclasses
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest import pipeline
from digest.config import Config, load_config
from digest.demo.site import SiteServer
from digest.demo.smtp_sink import SmtpSink
from digest.errors import PreflightError
from digest.models import Article, Digest, DigestItem, Summary
from digest.preflight import feature_for, run_preflight
from digest.render import RenderOptions, personalise, placeholders, render_digest
from tests.conftest import REPO, Project, parse, parts, write_config
from tests.test_cli import digest

NOW = datetime(2026, 11, 26, 7, tzinfo=UTC)
ARTIFACTS = REPO / "test-artifacts"


def big_digest(count: int, words: int = 60, image: bool = True) -> Digest:
    items = []
    for i in range(count):
        sentences = tuple(f"Sentence {j} of story {i} says something about the mission "
                          f"{'and more ' * (words // 10)}today." for j in range(3))
        article = Article(url=f"https://news.example/story-{i}/", title=f"Story number {i}",
                          source_name="News", published=NOW - timedelta(hours=i),
                          paragraphs=sentences, source_line="Source: (Reuters)",
                          disclaimer_line="(Disclaimer: Details may change.)",
                          image_url=f"https://news.example/img/{i}.jpg" if image else "",
                          image_alt=f"Picture {i}")
        items.append(DigestItem(article, Summary(sentences, article.source_line,
                                                 article.disclaimer_line)))
    return Digest(title="Spacecraft Digest", category="Spacecraft", created_at=NOW,
                  items=tuple(items), opening_line="Opening.", preheader="Preheader.")


def options(**overrides: object) -> RenderOptions:
    values: dict[str, object] = {"templates": REPO / "templates", "subject_template": "{{ title }}",
                                 "base_url": "https://digest.example", "postal_address": "1 Lane",
                                 **overrides}
    return RenderOptions(**values)  # type: ignore[arg-type]


def test_html_is_built_for_email_clients() -> None:
    html = render_digest(big_digest(3), options()).html
    assert re.search(r'<html lang="en" dir="ltr">', html)
    assert '<meta name="color-scheme" content="light dark">' in html
    assert re.search(r'<table role="presentation" class="container" width="600"', html)
    assert 'class="preheader" style="display:none' in html
    assert "prefers-color-scheme: dark" in html and "max-width: 620px" in html
    for forbidden in ("<script", "<link", "display:flex", "display:grid", "display: flex"):
        assert forbidden not in html
    images = re.findall(r"<img [^>]*>", html)
    assert len(images) == 3
    assert all('alt="Picture' in img and 'width="120"' in img for img in images)


def test_each_article_and_the_footer_carry_what_readers_need() -> None:
    rendered = render_digest(big_digest(1), options())
    html, text = personalise(rendered, name="Ada", email="ada@example.org",
                             unsubscribe_url="https://digest.example/unsubscribe/t",
                             web_url="https://digest.example/archive/7/")
    html = " ".join(html.split()).replace("> <", "><")  # long lines are folded at spaces
    assert re.search(r'<a href="https://news.example/story-0/"[^>]*>Story number 0</a>', html)
    for needle in ("News ·",
                   "26 November 2026", "Source: (Reuters)", "(Disclaimer: Details may change.)",
                   ">Read on News \u2192</a>", "subscribed with ada@example.org",
                   ">Unsubscribe</a>",
                   "1 Lane", 'href="https://digest.example/archive/7/"', "View in your browser"):
        assert needle in html, needle
    assert "https://digest.example/unsubscribe/t" in text.splitlines()
    assert "1 Lane" in text and "https://digest.example/archive/7/" in text.splitlines()


def test_utm_parameters_only_when_configured_and_never_on_unsubscribe() -> None:
    plain = render_digest(big_digest(1), options()).html
    assert "utm_" not in plain
    rendered = render_digest(big_digest(1), options(utm_campaign="weekly"))
    tracked = rendered.html
    assert ("https://news.example/story-0/?utm_source=newsletter&amp;utm_medium=email&amp;"
            "utm_campaign=weekly") in tracked
    # the unsubscribe link is left alone
    assert f'href="{placeholders(rendered.marker)["unsubscribe_url"]}"' in tracked


def test_size_guard_drops_images_then_shortens_then_moves_articles(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.INFO)
    digest_ = big_digest(60)
    full = render_digest(digest_, options(max_html_bytes=10_000_000))
    assert full.size_actions == ()
    limit = 60_000
    rendered = render_digest(digest_, options(max_html_bytes=limit))
    assert rendered.size_actions[:2] == ("dropped article images",
                                         "shortened summaries to their first sentence")
    assert rendered.size_actions[2].startswith("moved the last ")
    assert len(rendered.html.encode()) <= limit - 1024
    assert "<img" not in rendered.html and "More this week" in rendered.html
    assert "MORE THIS WEEK" in rendered.text and "Story number 59" in rendered.text
    assert "dropped article images" in caplog.text
    with_images = len(render_digest(big_digest(5), options()).html.encode())
    without = len(render_digest(big_digest(5, image=False), options()).html.encode())
    between = (with_images + without) // 2 + 1024
    only_images = render_digest(big_digest(5), options(max_html_bytes=between))
    assert only_images.size_actions == ("dropped article images",)


def test_raw_message_lines_stay_under_998_octets(project: Project, smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    for message in smtp.messages:
        assert max(len(line) for line in message.data.split(b"\r\n")) <= 998
        msg = parse(message.data)
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
        assert all(p.get_content_charset() == "utf-8" for p in msg.iter_parts())


def test_names_and_titles_full_of_trouble_arrive_intact(tmp_path: Path, site: SiteServer,
                                                        smtp: SmtpSink) -> None:
    path = write_config(tmp_path, feed_urls=[site.feed_url("Spacecraft")], smtp_port=smtp.port)
    path.write_text(path.read_text().replace(
        '[email]', '[email]\nsubject = "🚀 {{ title }} — «Союз» 우주선 \\"{{ count }}\\""'))
    (tmp_path / "subscribers" / "subscribers.csv").write_text(
        'email,name\nada@example.org,"Ada ""The Countess""\r\nBcc: evil@example.org"\n'
        "yuri@example.net,Юрий 🚀 Гагарин\n", encoding="utf-8")
    pipeline.run_cycle(load_config(path))
    by_rcpt = {m.recipients[0]: parse(m.data) for m in smtp.messages}
    assert set(by_rcpt) == {"ada@example.org", "yuri@example.net"}
    ada = by_rcpt["ada@example.org"]
    assert ada["Subject"] == '🚀 Spacecraft Digest — «Союз» 우주선 "12"'
    assert ada["To"].addresses[0].display_name == 'Ada "The Countess" Bcc: evil@example.org'
    assert ada["Bcc"] is None
    assert by_rcpt["yuri@example.net"]["To"].addresses[0].display_name == "Юрий 🚀 Гагарин"
    raw_headers = smtp.messages[0].data.split(b"\r\n\r\n")[0]
    assert raw_headers.isascii()


def test_envelope_sender_can_differ_from_from(tmp_path: Path, site: SiteServer,
                                              smtp: SmtpSink) -> None:
    path = write_config(tmp_path, feed_urls=[site.feed_url("Spacecraft")], smtp_port=smtp.port)
    path.write_text(path.read_text().replace(
        "[email]", '[email]\nreturn_path = "bounces@news.example"'))
    pipeline.run_cycle(load_config(path))
    # VERP: the return path's local part, + the delivery it names, @ its domain
    assert all(re.fullmatch(r"bounces\+[0-9a-z]+-[a-z2-7]{10}@news\.example", m.sender)
               for m in smtp.messages)
    assert len({m.sender for m in smtp.messages}) == len(smtp.messages)
    assert parse(smtp.messages[0].data)["From"] == "Spacecraft Digest <digest@news.example>"


def test_dkim_signature_verifies(tmp_path: Path, site: SiteServer, smtp: SmtpSink) -> None:
    import dkim

    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    public_der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform",
                                 "DER"], check=True, capture_output=True).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der)
    path = write_config(tmp_path, feed_urls=[site.feed_url("Spacecraft")], smtp_port=smtp.port,
                        extra=f'[email.dkim]\nselector = "s1"\nprivate_key_path = "{key}"\n'
                              .replace("[fetch]", ""))
    text = path.read_text()
    dkim_block = text[text.index("[email.dkim]"):]
    text = text[:text.index("[email.dkim]")]
    path.write_text(text.replace("[smtp]", dkim_block + "\n[smtp]"))
    pipeline.run_cycle(load_config(path))
    data = smtp.messages[0].data
    assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    assert b"d=news.example" in data[:400] and b"s=s1" in data[:400]

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.news.example."
        return record

    assert dkim.verify(data, dnsfunc=dns)
    assert not dkim.verify(data.replace(b"Read on", b"Read ON", 1), dnsfunc=dns)


def test_missing_dkim_key_is_a_config_error(tmp_path: Path, site: SiteServer) -> None:
    path = write_config(tmp_path, feed_urls=[site.feed_url("Spacecraft")], smtp_port=25)
    path.write_text(path.read_text().replace(
        "[smtp]", '[email.dkim]\nselector = "s1"\nprivate_key_path = "nope.pem"\n\n[smtp]'))
    result = digest("run", cwd=tmp_path)
    assert result.returncode == 2
    assert "[email.dkim] private_key_path: cannot read" in result.stderr


def _sample_preflight(html: str, text: str = "https://x.example/unsubscribe/t\n",
                      limit: int = 100_000) -> list[tuple[str, str]]:
    report = run_preflight(html=html, text=text, message=b"", max_html_bytes=limit,
                           unsubscribe_url="https://x.example/unsubscribe/t",
                           max_spam_score=99)
    return [(c.name, c.status) for c in report.checks if c.name != "spam"]


GOOD = ('<html><body><a href="https://x.example/a">A</a>'
        '<a href="https://x.example/unsubscribe/t">Unsubscribe</a>'
        '<img src="https://x.example/i.jpg" alt="i" width="10"></body></html>')


def test_preflight_passes_a_good_message_and_catches_each_problem() -> None:
    assert all(status == "ok" for _, status in _sample_preflight(GOOD))
    assert ("links", "FAILED") in _sample_preflight(GOOD.replace("https://x.example/a",
                                                                 "javascript:alert(1)"))
    assert ("links", "FAILED") in _sample_preflight(GOOD.replace(' alt="i"', ""))
    assert ("unsubscribe", "FAILED") in _sample_preflight(
        GOOD.replace("https://x.example/unsubscribe/t", "https://x.example/b"))
    assert ("unsubscribe", "FAILED") in _sample_preflight(GOOD, text="no link here")
    assert ("size", "FAILED") in _sample_preflight(GOOD, limit=50)
    shadow = GOOD.replace("<a href", '<a style="box-shadow: 0 0 2px #000" href', 1)
    assert ("css", "FAILED") in _sample_preflight(shadow)
    outlook = GOOD.replace("<a href", '<a style="opacity: 0.5" href', 1)
    assert ("css-outlook", "warning") in _sample_preflight(outlook)


def test_css_features_map_to_caniemail_slugs() -> None:
    assert feature_for("display", "flex") == "css-display-flex"
    assert feature_for("margin-top", "4px") == "css-margin"
    assert feature_for("border-bottom", "1px solid") == "css-border"
    assert feature_for("mso-hide", "all") is None


def test_a_failed_preflight_stops_the_send_and_records_nothing(project: Project,
                                                               smtp: SmtpSink) -> None:
    templates = project.folder / "templates"
    shutil.copytree(REPO / "templates", templates)
    footer = templates / "_footer.html"
    footer.write_text(footer.read_text().replace('<a href="{{ subscriber.unsubscribe_url }}">'
                                                 'Unsubscribe</a>', "Unsubscribe by mail"))
    text = project.config_path.read_text()
    project.config_path.write_text(re.sub(r'templates = "[^"]*"', 'templates = "templates"',
                                          text))
    with pytest.raises(PreflightError, match=r"preflight failed: unsubscribe"):
        pipeline.run_cycle(project.config)
    assert smtp.messages == []
    refused = digest("preview", "--out", "p.html", cwd=project.folder)
    assert refused.returncode == 1 and "preflight FAILED   unsubscribe" in refused.stderr
    assert digest("preview", "--force", "--out", "p.html", cwd=project.folder).returncode == 0
    forced = digest("run", "--force", cwd=project.folder)
    assert forced.returncode == 0 and "sent:        3" in forced.stdout


@pytest.mark.skipif(shutil.which("spamassassin") is None,
                    reason="SpamAssassin is not installed (.ci/run installs it)")
def test_demo_digest_scores_zero_or_lower_with_spamassassin(project: Project,
                                                            smtp: SmtpSink) -> None:
    from digest.preflight import spam_score

    pipeline.run_cycle(project.config)
    score = spam_score(smtp.messages[0].data)
    assert score is not None and score <= 0, score


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    return path


def test_no_horizontal_overflow_at_600_and_375_px(project: Project, smtp: SmtpSink) -> None:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    pipeline.run_cycle(project.config)
    _, html = parts(parse(smtp.messages[0].data))
    page_file = project.folder / "digest.html"
    page_file.write_text(html, encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            for width in (600, 375):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(page_file.as_uri())
                scroll_width = page.evaluate("document.documentElement.scrollWidth")
                assert scroll_width <= width, (width, scroll_width)
                widest = page.evaluate("Math.max(...[...document.querySelectorAll('body *')]"
                                       ".map(e => e.getBoundingClientRect().right))")
                assert widest <= width + 0.5, (width, widest)
                page.screenshot(path=str(ARTIFACTS / f"digest-{width}px.png"), full_page=False)
                page.close()
        finally:
            browser.close()
    assert (ARTIFACTS / "digest-375px.png").stat().st_size > 10_000


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _config_with(config: Config, **email: object) -> Config:
    return dataclasses.replace(config, email=dataclasses.replace(config.email, **email))
