"""Click counts and the reader-facing digest, as readers, editors and operators meet them:
a real digest received by the SMTP server, its links followed against the real web app
under waitress (requests, and Debian chromium through Playwright), the counts read back
from the desk, `digest report` and `digest status --json`."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from digest import pipeline, tracking
from digest.accounts import add_editor
from digest.config import ConfigError, load_config
from digest.demo.smtp_sink import SmtpSink
from tests.conftest import REPO, Project, parse, parts, query
from tests.test_cli import digest
from tests.test_editor import PASSWORD, log_in_with_browser, login
from tests.test_web import WebServer, public_on_free_port

ARTIFACTS = REPO / "test-artifacts"
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
           "Gecko) Chrome/131.0 Safari/537.36", "Accept-Language": "en-GB,en;q=0.9"}
TRACKED = re.compile(r'https?://127\.0\.0\.1:\d+/c/[A-Za-z0-9._-]+')


def enable(project: Project, settings: str) -> None:
    """Append a [tracking] section to the project's config."""
    path = project.config_path
    path.write_text(path.read_text() + f"\n[tracking]\n{settings}\n")


@pytest.fixture
def tracked(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebServer]:
    """Click counting on, the web app serving base_url, an editor account for the desk."""
    monkeypatch.setenv("DIGEST_WEB_SECRET", "test-web-secret-0123456789")
    port = public_on_free_port(project)
    enable(project, "clicks = true")
    add_editor(project.config_path, "edith", PASSWORD, "edith@example.org")
    with WebServer(project.config, port) as server:
        yield server


def links_of(smtp: SmtpSink, index: int = 0) -> tuple[list[str], str, str]:
    """The tracked links of a received message (in order of appearance), and its parts."""
    text, html = parts(parse(smtp.messages[index].data))
    return list(dict.fromkeys(TRACKED.findall(html))), text, html


def change(project: Project, *statements: str) -> None:
    """Alter the project's state database by hand, as a damaged or hostile row would."""
    from sqlalchemy import create_engine, text

    engine = create_engine(project.config.database_url())
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def stored_links(project: Project) -> list[str]:
    """Where each article of the sent digest leads, in its order."""
    return [url for (url,) in query(project.folder,
                                    "SELECT link FROM digest_articles ORDER BY position")]


def click_counts(project: Project) -> dict[tuple[int, bool], int]:
    rows = query(project.folder, "SELECT position, automated, COUNT(*) FROM clicks "
                 "GROUP BY position, automated")
    return {(int(p), bool(a)): int(n) for p, a, n in rows}


def test_without_tracking_links_go_straight_to_the_articles_and_nothing_reports_back(
        project: Project, smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    text, html = parts(parse(smtp.messages[0].data))
    assert "/c/" not in html and "/c/" not in text and "/o/" not in html
    stored = [url for (url,) in query(project.folder, "SELECT url FROM digest_articles")]
    assert stored and all(f'href="{url}"' in html for url in stored)


def test_a_tracked_link_redirects_to_its_article_and_counts_people_and_scanners_apart(
        tracked: WebServer, project: Project, smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    links, text, html = links_of(smtp)
    stored = stored_links(project)
    assert len(links) == len(stored) >= 2
    assert links[0] in text  # the plain-text part carries the same tracked links
    first = requests.get(links[0], headers=BROWSER, allow_redirects=False, timeout=10)
    assert first.status_code == 302 and first.headers["Location"] == stored[0]
    assert first.headers["Referrer-Policy"] == "no-referrer"
    # the reader lands on the article itself
    landed = requests.get(links[0], headers=BROWSER, timeout=10)
    assert landed.status_code == 200 and landed.url == stored[0]
    # the same reader clicking again counts once; a scanner's HEAD and agent count apart
    requests.head(links[0], headers=BROWSER, timeout=10)
    requests.get(links[0], headers={"User-Agent": "Mimecast URL Protect"},
                 allow_redirects=False, timeout=10)
    requests.get(links[1], headers=BROWSER, allow_redirects=False, timeout=10)
    assert click_counts(project) == {(0, False): 1, (0, True): 2, (1, False): 1}


def test_forged_foreign_or_unknown_tokens_are_refused_and_redirect_nowhere(
        tracked: WebServer, project: Project, smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    links, _, _ = links_of(smtp)
    token = links[0].rsplit("/", 1)[1]
    digest_id = int(token.split(".")[1])
    other_install = tracking.click_token(b"another install's key", digest_id, 0)
    probes = [
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # signature changed
        token.replace(f"k.{digest_id}.0.", f"k.{digest_id}.1.", 1),  # position changed
        other_install,
        tracking.click_token(b"test-signing-key", digest_id + 50, 0),  # no such digest
        "k.1.0.https%3A%2F%2Fevil.example%2F",
        "https:%2F%2Fevil.example", "k.%E2%80%AE.0.x", "k." + "9" * 40 + ".0.sig",
    ]
    for probe in probes:
        answer = requests.get(f"{tracked.url}/c/{probe}", headers=BROWSER,
                              allow_redirects=False, timeout=10)
        assert answer.status_code == 404, probe
        assert "Location" not in answer.headers, probe
    assert click_counts(project) == {}


def test_a_token_names_a_position_so_a_changed_stored_link_cannot_send_readers_elsewhere(
        tracked: WebServer, project: Project, smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    links, _, _ = links_of(smtp)
    # a target that is not a web page is never followed
    change(project, "UPDATE digest_articles SET link = 'javascript:alert(1)' WHERE position = 0")
    answer = requests.get(links[0], headers=BROWSER, allow_redirects=False, timeout=10)
    assert answer.status_code == 404 and "Location" not in answer.headers


def test_per_subscriber_tokens_name_each_reader_until_forgotten(
        project: Project, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    port = public_on_free_port(project)
    enable(project, "clicks = true\nper_subscriber = true")
    pipeline.run_cycle(project.config)
    by_reader = {}
    for index, message in enumerate(smtp.messages):
        by_reader[message.recipients[0]] = links_of(smtp, index)[0]
    ada, yuri = by_reader["ada@example.org"], by_reader["yuri@example.net"]
    assert len(ada) == len(yuri) >= 2 and not set(ada) & set(yuri)
    with WebServer(project.config, port):
        requests.get(ada[0], headers=BROWSER, allow_redirects=False, timeout=10)
        requests.get(yuri[0], headers=BROWSER, allow_redirects=False, timeout=10)
    readers = query(project.folder, "SELECT reader FROM clicks WHERE reader IS NOT NULL")
    assert len(readers) == 2
    done = digest("subscribers", "forget", "ada@example.org", cwd=project.folder,
                  env={"DIGEST_SIGNING_KEY": "test-signing-key"})
    assert done.returncode == 0, done.stderr
    assert len(query(project.folder, "SELECT reader FROM clicks WHERE reader IS NOT NULL")) == 1
    assert query(project.folder, "SELECT COUNT(*) FROM clicks") == [(2,)]  # counts stay


def test_the_open_image_is_there_only_when_asked_for_and_is_always_a_gif(
        project: Project, smtp: SmtpSink) -> None:
    port = public_on_free_port(project)
    enable(project, "opens = true")
    pipeline.run_cycle(project.config)
    _, html = parts(parse(smtp.messages[0].data))
    pixel = re.search(r'<img[^>]+src="(http://127\.0\.0\.1:\d+/o/[^"]+\.gif)"', html)
    assert pixel, "no open image with [tracking] opens = true"
    with WebServer(project.config, port) as web:
        genuine = requests.get(pixel.group(1), headers=BROWSER, timeout=10)
        forged = requests.get(f"{web.url}/o/o.1.forged.gif", headers=BROWSER, timeout=10)
    for answer in (genuine, forged):
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/gif"
        assert answer.content == tracking.GIF_PIXEL
    assert query(project.folder, "SELECT COUNT(*) FROM opens") == [(1,)]


def test_tracking_needs_an_https_base_url(project: Project) -> None:
    text = project.config_path.read_text().replace('base_url = "https://digest.example"',
                                                   'base_url = "http://digest.example"')
    project.config_path.write_text(text + "\n[tracking]\nclicks = true\n")
    with pytest.raises(ConfigError) as caught:
        load_config(project.config_path)
    message = str(caught.value)
    assert "\n" not in message and "[tracking] clicks" in message and "https" in message
    checked = digest("check", cwd=project.folder)
    assert checked.returncode != 0 and "[tracking] clicks" in checked.stderr
    assert "Traceback" not in checked.stderr


def test_digest_report_gives_the_figures_as_text_csv_and_json(
        tracked: WebServer, project: Project, smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    links, _, _ = links_of(smtp)
    requests.get(links[1], headers=BROWSER, allow_redirects=False, timeout=10)
    [(digest_id,)] = query(project.folder, "SELECT id FROM digests")
    env = {"DIGEST_SIGNING_KEY": "test-signing-key"}
    as_csv = digest("report", str(digest_id), "--csv", cwd=project.folder, env=env)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert rows[0]["row"] == "digest" and rows[0]["delivered"] == "3"
    assert rows[0]["clicks"] == "1"
    articles = rows[1:]
    assert [r["clicks"] for r in articles][:3] == ["0", "1", "0"]
    as_json = json.loads(digest("report", str(digest_id), "--json", cwd=project.folder,
                                env=env).stdout)
    assert as_json["delivered"] == 3 and as_json["clicks"]["people"] == 1
    assert as_json["articles"][1]["clicks"] == 1
    status = json.loads(digest("status", "--json", cwd=project.folder, env=env).stdout)
    assert status["reports"][0]["digest_id"] == digest_id
    assert status["reports"][0]["clicks"]["people"] == 1
    assert status["audience"][-1]["recipients"] == 3
    as_text = digest("report", str(digest_id), cwd=project.folder, env=env)
    assert "delivered" in as_text.stdout.lower() and as_text.returncode == 0
    missing = digest("report", "9999", cwd=project.folder, env=env)
    assert missing.returncode == 1 and "9999" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_a_spreadsheet_formula_in_a_headline_stays_text_in_the_csv(
        tracked: WebServer, project: Project, smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    change(project, "UPDATE digest_articles SET title = '=HYPERLINK(\"http://x\")' "
                    "WHERE position = 0")
    [(digest_id,)] = query(project.folder, "SELECT id FROM digests")
    out = digest("report", str(digest_id), "--csv", cwd=project.folder,
                 env={"DIGEST_SIGNING_KEY": "test-signing-key"}).stdout
    title = list(csv.DictReader(io.StringIO(out)))[1]["title"]
    assert title.startswith("'=")


def test_a_reader_clicks_in_a_browser_and_the_desk_counts_it(
        tracked: WebServer, project: Project, smtp: SmtpSink) -> None:
    from playwright.sync_api import sync_playwright

    from tests.test_email import CHROMIUM_ARGS, _chromium

    executable = _chromium()
    pipeline.run_cycle(project.config)
    _, html = parts(parse(smtp.messages[0].data))
    received = project.folder / "received.html"
    received.write_text(html, encoding="utf-8")
    [(digest_id,)] = query(project.folder, "SELECT id FROM digests")
    stored = stored_links(project)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            # a person's browser: headless Chromium names itself, and counts as a scanner
            reader = browser.new_page(user_agent=BROWSER["User-Agent"])
            reader.goto(received.as_uri())
            reader.locator("a", has_text="Read on").first.click()
            reader.wait_for_load_state()
            assert reader.url == stored[0]
            assert urlsplit(reader.url).path.startswith("/20")  # the sample site's article
            editor = browser.new_page(viewport={"width": 1100, "height": 900})
            log_in_with_browser(editor, tracked)
            editor.goto(f"{tracked.url}/editor/archive/{digest_id}/")
            counts = editor.locator("td.clicks").all_inner_texts()
            assert counts[0] == "1" and set(counts[1:]) == {"0"}
            chart = editor.locator(".chart-box svg").first
            assert chart.is_visible()
            widths = [float(w) for w in chart.locator("rect.bar:not(.automated)").evaluate_all(
                "rs => rs.map(r => r.getAttribute('width'))")]
            assert len(widths) == len(counts) and widths[0] > 0 and not any(widths[1:])
            assert editor.locator(".chart-box svg rect.column").count() == 1
            frame = editor.frame_locator("iframe.email")
            assert frame.locator("a", has_text="Read on").count() >= len(stored)
            chart.screenshot(path=str(ARTIFACTS / "desk-clicks-chart.png"))
            editor.screenshot(path=str(ARTIFACTS / "desk-digest-report.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "desk-clicks-chart.png").stat().st_size > 2_000


def test_the_desk_report_needs_a_login_and_a_missing_digest_is_404(
        tracked: WebServer, project: Project) -> None:
    pipeline.run_cycle(project.config)
    [(digest_id,)] = query(project.folder, "SELECT id FROM digests")
    anonymous = requests.get(f"{tracked.url}/editor/archive/{digest_id}/",
                             allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302
    editor = login(tracked)
    assert editor.get(f"{tracked.url}/editor/archive/{digest_id}/",
                      timeout=30).status_code == 200
    assert editor.get(f"{tracked.url}/editor/archive/{digest_id + 40}/",
                      timeout=30).status_code == 404


def _contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    def luminance(rgb: tuple[float, ...]) -> float:
        channels = [c / 255 for c in rgb[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
                  for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _rgb(css: str) -> tuple[float, ...]:
    return tuple(float(n) for n in re.findall(r"[\d.]+", css)[:3])


def test_links_and_dividers_stay_legible_in_dark_mode_at_600_and_375_px(
        project: Project, smtp: SmtpSink, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from tests.test_email import CHROMIUM_ARGS, _chromium

    executable = _chromium()
    pipeline.run_cycle(project.config)
    _, html = parts(parse(smtp.messages[0].data))
    page_file = tmp_path / "digest.html"
    page_file.write_text(html, encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    measure = """() => {
      const card = document.querySelector('td.article');
      const bg = el => { for (; el; el = el.parentElement) {
          const c = getComputedStyle(el).backgroundColor;
          if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c; }
        return 'rgb(255,255,255)'; };
      const link = document.querySelector('p.read-more a');
      return {link: getComputedStyle(link).color, linkBg: bg(link),
              divider: getComputedStyle(card).borderTopColor, cardBg: bg(card),
              contents: !!document.querySelector('.contents')};
    }"""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            for scheme in ("light", "dark"):
                for width in (600, 375):
                    page = browser.new_page(viewport={"width": width, "height": 1000},
                                            color_scheme=scheme)
                    page.goto(page_file.as_uri())
                    found = page.evaluate(measure)
                    assert found["contents"], "no In this issue list"
                    assert _contrast(_rgb(found["link"]), _rgb(found["linkBg"])) >= 4.5, found
                    assert _contrast(_rgb(found["divider"]), _rgb(found["cardBg"])) >= 1.3, \
                        found
                    page.screenshot(path=str(ARTIFACTS / f"digest-{scheme}-{width}px.png"),
                                    full_page=True)
                    page.close()
        finally:
            browser.close()
    assert (ARTIFACTS / "digest-dark-375px.png").stat().st_size > 10_000


def test_the_digest_greets_by_first_name_lists_its_stories_and_names_each_site(
        project: Project, smtp: SmtpSink) -> None:
    listed = project.folder / "subscribers" / "subscribers.csv"
    listed.write_text("email,name\nada@example.org,Ada Lovelace\nnoname@example.org,\n"
                      "prof@example.org,\"Lovelace, Ada\"\n")
    pipeline.run_cycle(project.config)
    got = {m.recipients[0]: parts(parse(m.data)) for m in smtp.messages}
    for address, greeting in (("ada@example.org", "Hello Ada,"),
                              ("noname@example.org", "Hello,"),
                              ("prof@example.org", "Hello Ada,")):
        text, html = got[address]
        assert greeting in text and greeting in html, address
        assert "Hello ," not in text and "Hello Ada Lovelace" not in text
        assert "Hello Lovelace" not in text
    text, html = got["ada@example.org"]
    html = " ".join(html.split())  # long lines are folded at spaces
    assert "IN THIS ISSUE" in text and "In this issue" in html
    titles = [t for (t,) in query(project.folder,
                                  "SELECT title FROM digest_articles ORDER BY position")]
    contents = html.split("In this issue", 1)[1].split('class="article"', 1)[0]
    for title in titles[:3]:
        escaped = title.replace("&", "&amp;").replace("'", "&#39;").replace('"', "&#34;")
        assert title in contents or escaped in contents, title
    assert "Read more" not in html and re.search(r"Read on [^<]+ \u2192", html)
    # the demo's articles with an image show it as a thumbnail with its alt text
    assert re.search(r'<img class="thumb" src="http://127\.0\.0\.1:\d+/wp-content/uploads/'
                     r'[^"]+" alt="[^"]+" width="120"', html)
    assert all(len(line) <= 998 for line in smtp.messages[0].data.split(b"\r\n"))


def test_tracked_links_count_whole_in_the_size_guard() -> None:
    from dataclasses import replace

    from digest.models import Recipient, TrackingMode
    from digest.render import render_digest
    from digest.splice import MessageTemplate
    from digest.tracking import longest_click_url
    from tests.test_delivery import ENVELOPE
    from tests.test_email import big_digest, options

    limit = 60_000
    mode = TrackingMode(clicks=True, opens=True, per_reader=True)
    rendered = render_digest(big_digest(40), replace(
        options(max_html_bytes=limit), tracking=mode,
        link_length=len(longest_click_url("https://digest.example", mode))))
    template = MessageTemplate(rendered, envelope=ENVELOPE, digest_id=123_456,
                               created_at=datetime(2026, 11, 26, 7, tzinfo=UTC), unsubscribe_base="https://"
                               "digest.example/unsubscribe/")
    reader = Recipient(delivery_id=1, email="ada@example.org", name="Ada Lovelace",
                       token_id="x" * 16)
    message = parse(template.message_bytes(reader, "tok.sig", "<m@news.example>"))
    _, html = parts(message)
    assert "/c/k.123456." in html
    assert len(html.encode()) <= limit


def test_the_logo_shows_with_its_size_and_alt_text(project: Project, smtp: SmtpSink) -> None:
    text = project.config_path.read_text().replace(
        'postal_address = "1 Launch Lane, Leicester"',
        'postal_address = "1 Launch Lane, Leicester"\n'
        'logo_url = "https://digest.example/logo.png"\nlogo_width = 180\nlogo_height = 48\n'
        'logo_alt = "Spacecraft Digest logo"')
    project.config_path.write_text(text)
    pipeline.run_cycle(project.config)
    _, html = parts(parse(smtp.messages[0].data))
    html = " ".join(html.split())
    assert re.search(r'<img class="logo" src="https://digest.example/logo.png" width="180" '
                     r'height="48" alt="Spacecraft Digest logo"', html)
    project.config_path.write_text(text.replace("https://digest.example/logo.png",
                                                "javascript:alert(1)"))
    with pytest.raises(ConfigError, match="logo_url"):
        load_config(project.config_path)


def test_one_client_cannot_inflate_the_counts_and_keeps_nothing_readable_in_memory(
        tracked: WebServer, project: Project, smtp: SmtpSink) -> None:
    from digest.web import web_context

    pipeline.run_cycle(project.config)
    links, _, _ = links_of(smtp)
    answers = [requests.get(links[0], allow_redirects=False, timeout=10, headers={
        **BROWSER, "User-Agent": f"{BROWSER['User-Agent']} variant/{i} " + "x" * 4000})
        for i in range(70)]
    assert {a.status_code for a in answers} == {302}  # always answered
    assert click_counts(project) == {(0, False): 60}
    remembered = web_context(tracked.app).repeats._seen
    assert all(len(key[2]) == 16 for key in remembered)  # a digest, not address and agent
    [(at,)] = query(project.folder, "SELECT DISTINCT at FROM clicks")
    assert str(at)[14:19] in ("00:00", "00:00+")  # unnamed clicks keep the hour only


def test_a_stored_target_no_browser_could_follow_is_refused_before_counting(
        tracked: WebServer, project: Project, smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    links, _, _ = links_of(smtp)
    change(project,
           "UPDATE digest_articles SET link = 'https://a.example:99999/' WHERE position = 0",
           "UPDATE digest_articles SET link = 'https://[::1/' WHERE position = 1")
    for link in links[:2]:
        answer = requests.get(link, headers=BROWSER, allow_redirects=False, timeout=10)
        assert answer.status_code == 404
    assert click_counts(project) == {}


def test_the_web_version_links_straight_to_the_articles(
        tracked: WebServer, project: Project, smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    _, text, _ = links_of(smtp)
    web_url = re.search(r"(http://127\.0\.0\.1:\d+/archive/\d+/\?k=\S+)", text)
    assert web_url
    page = requests.get(web_url.group(1), timeout=10)
    assert page.status_code == 200 and "/c/" not in page.text
    stored = stored_links(project)
    assert all(f'href="{url}"' in page.text for url in stored)
