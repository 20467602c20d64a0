"""The editor's desk against the real app under waitress on 127.0.0.1: a real browser
(Debian chromium through Playwright) logs in, curates the draft and sends a test to the
local SMTP server; plain HTTP checks that nothing works without a login or a CSRF token;
the scheduled digest carries the editor's changes; the archive shows what went out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from digest import pipeline
from digest.accounts import add_editor
from digest.demo.smtp_sink import SmtpSink
from tests.conftest import REPO, Project, parse, parts, query
from tests.test_web import WebServer, public_on_free_port

ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "a long editor password"


@pytest.fixture
def desk(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebServer]:
    monkeypatch.setenv("DIGEST_WEB_SECRET", "test-web-secret-0123456789")
    port = public_on_free_port(project)
    add_editor(project.config_path, "edith", PASSWORD, "edith@example.org")
    with WebServer(project.config, port) as server:
        yield server


def login(web: WebServer, password: str = PASSWORD) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{web.url}/editor/login", timeout=10).text
    response = session.post(f"{web.url}/editor/login", timeout=10, data={
        "csrf_token": token_in(form), "name": "edith", "password": password, "next": ""})
    assert response.status_code in (200, 401)
    return session


def log_in_with_browser(page: Any, web: WebServer) -> None:
    """Log in as the test editor in a Playwright page; returns on the desk."""
    page.goto(f"{web.url}/editor/login")
    page.get_by_label("Name").fill("edith")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("h1")


def token_in(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def article_urls(html: str) -> list[str]:
    articles = html.split('id="articles"')[1].split("</ol>")[0]
    return re.findall(r'<li data-url="([^"]+)"', articles)


def test_editor_pages_need_a_login_and_every_form_a_csrf_token(desk: WebServer) -> None:
    anonymous = requests.Session()
    page = anonymous.get(f"{desk.url}/editor/", timeout=10, allow_redirects=False)
    assert page.status_code == 302 and "/editor/login" in page.headers["Location"]
    assert anonymous.post(f"{desk.url}/editor/approve", timeout=10).status_code == 403
    assert anonymous.get(f"{desk.url}/editor/draft.html", timeout=10,
                         allow_redirects=False).status_code == 302
    wrong = login(desk, "not the password")
    assert wrong.get(f"{desk.url}/editor/", timeout=10, allow_redirects=False).status_code == 302
    editor = login(desk)
    desk_page = editor.get(f"{desk.url}/editor/", timeout=60)
    assert desk_page.status_code == 200 and "Next digest" in desk_page.text
    refused = editor.post(f"{desk.url}/editor/approve", timeout=10)  # no token
    assert refused.status_code == 403
    forged = editor.post(f"{desk.url}/editor/approve", data={"csrf_token": "forged"},
                         timeout=10)
    assert forged.status_code == 403
    sent = editor.post(f"{desk.url}/editor/approve", timeout=10,
                       data={"csrf_token": token_in(desk_page.text)})
    assert sent.status_code == 200 and "Approved" in sent.text
    assert "frame-ancestors 'none'" in desk_page.headers["Content-Security-Policy"]
    assert '<iframe class="email" src="/editor/draft.html" sandbox' in desk_page.text


def test_editor_pages_are_off_without_a_session_secret(project: Project,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIGEST_WEB_SECRET", raising=False)
    with WebServer(project.config) as web:
        response = requests.get(f"{web.url}/editor/", timeout=10)
    assert response.status_code == 503 and "DIGEST_WEB_SECRET" in response.text


def test_article_content_is_escaped_on_the_desk(desk: WebServer, project: Project) -> None:
    editor = login(desk)
    html = editor.get(f"{desk.url}/editor/", timeout=60).text
    url = article_urls(html)[0]
    editor.post(f"{desk.url}/editor/article", timeout=60, data={
        "csrf_token": token_in(html), "url": url, "action": "edit",
        "headline": "<script>alert(1)</script> Probe", "summary": "Fine <b>text</b>."})
    html = editor.get(f"{desk.url}/editor/", timeout=60).text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Probe" in html


def test_an_editor_curates_the_draft_in_a_browser(desk: WebServer, project: Project,
                                                  smtp: SmtpSink) -> None:
    from playwright.sync_api import sync_playwright

    from tests.test_email import CHROMIUM_ARGS, _chromium

    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{desk.url}/editor/")
            assert "/editor/login" in page.url
            page.get_by_label("Name").fill("edith")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_selector("#articles")
            assert "12 new Spacecraft stories" in page.locator("#subject").inner_text()
            assert page.locator("#recipients").inner_text() == "3 active subscribers"
            page.screenshot(path=str(ARTIFACTS / "editor-desk.png"), full_page=True)
            items = page.locator("#articles > li")
            first_url = items.nth(0).get_attribute("data-url")
            first_title = items.nth(0).locator(".article-title").inner_text()
            frame = page.frame_locator("iframe.email")
            assert first_title in frame.locator("body").inner_text()

            # Exclude the lead article: it leaves the list, the preview and the text part.
            items.nth(0).get_by_role("button", name="Exclude").click()
            page.wait_for_selector("text=Article excluded.")
            assert "11 new Spacecraft stories" in page.locator("#subject").inner_text()
            assert page.locator(f'#articles > li[data-url="{first_url}"]').count() == 0
            assert page.locator(f'#excluded > li[data-url="{first_url}"]').count() == 1
            assert first_title not in page.frame_locator("iframe.email").locator(
                "body").inner_text()
            assert first_title not in page.locator("#text-part").inner_text()

            # Reorder: the second article moves down below the third.
            second = items.nth(0).get_attribute("data-url")
            third = items.nth(1).get_attribute("data-url")
            items.nth(0).get_by_role("button", name="Down").click()
            page.wait_for_selector("text=Article moved down.")
            assert [items.nth(i).get_attribute("data-url") for i in (0, 1)] == [third, second]

            # Edit a summary; the preview and the text part follow, and it can be undone.
            target = page.locator("#articles > li").nth(2)
            target.locator("summary").click()
            target.locator("textarea[name=summary]").fill("The editor wrote this summary.")
            target.get_by_role("button", name="Save").click()
            page.wait_for_selector("text=Changes saved.")
            assert "The editor wrote this summary." in page.locator("#text-part").inner_text()
            assert "The editor wrote this summary." in page.frame_locator(
                "iframe.email").locator("body").inner_text()

            # An opening note, and a test to the editor's own address.
            page.locator("#note").fill("Welcome to this week's digest.")
            page.get_by_role("button", name="Save note").click()
            page.wait_for_selector("text=Note saved.")
            assert page.locator("#test-address").input_value() == "edith@example.org"
            page.get_by_role("button", name="Send test").click()
            page.wait_for_selector("text=Test sent to edith@example.org")

            page.get_by_role("button", name="Approve").click()
            page.wait_for_selector("text=Approved: the next scheduled digest will go out.")
            assert "Approved by edith" in page.locator("#status").inner_text()
            page.screenshot(path=str(ARTIFACTS / "editor-desk-curated.png"), full_page=True)
            page.goto(f"{desk.url}/editor/?view=phone")
            page.screenshot(path=str(ARTIFACTS / "editor-desk-phone.png"))
            page.get_by_role("button", name="Log out").click()
            assert "/editor/login" in page.url
            page.goto(f"{desk.url}/editor/")
            assert "/editor/login" in page.url
        finally:
            browser.close()

    (test,) = smtp.messages
    message = parse(test.data)
    assert test.recipients == ("edith@example.org",)
    assert str(message["Subject"]).startswith("[TEST] ")
    text, _ = parts(message)
    assert "Welcome to this week's digest." in text and first_title not in text
    assert "The editor wrote this summary." in text
    assert query(project.folder, "SELECT COUNT(*) FROM deliveries") == [(0,)]

    # The real digest carries the same changes; the note is used once.
    report = pipeline.run_cycle(project.config)
    assert report.sent == 3 and report.summarized == 11
    text, _ = parts(parse(smtp.messages[-1].data))
    assert first_title not in text and "Welcome to this week's digest." in text
    assert "The editor wrote this summary." in text


def test_the_archive_shows_past_digests_and_the_web_version_has_no_personal_data(
        desk: WebServer, project: Project, smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    editor = login(desk)
    archive = editor.get(f"{desk.url}/editor/archive/", timeout=10).text
    assert "Spacecraft Digest: 12 new Spacecraft stories" in archive
    assert re.search(r"<td>12</td><td>3</td><td>3</td><td>0</td><td>sent</td>", archive)
    detail = editor.get(f"{desk.url}/editor/archive/1/email.html", timeout=10).text
    assert "Keystone" in detail or "Orbit" in detail
    _, html = parts(parse(smtp.messages[0].data))
    link = re.search(r'href="(http://127\.0\.0\.1:\d+/archive/1/\?k=[^"]+)"', html)
    assert link
    public = requests.get(link.group(1), timeout=10)
    assert public.status_code == 200
    for private in ("ada@example.org", "Ada", "Юрий", "김지원", "/unsubscribe/"):
        assert private not in public.text
    assert requests.get(f"{desk.url}/archive/1/", timeout=10).status_code == 404
    assert requests.get(f"{desk.url}/archive/", timeout=10).status_code == 404


def test_changing_an_approved_draft_withdraws_the_approval(desk: WebServer) -> None:
    editor = login(desk)
    html = editor.get(f"{desk.url}/editor/", timeout=60).text
    editor.post(f"{desk.url}/editor/approve", data={"csrf_token": token_in(html)}, timeout=10)
    html = editor.get(f"{desk.url}/editor/", timeout=60).text
    assert "Approved</strong> by edith" in html
    changed = editor.post(f"{desk.url}/editor/article", timeout=60, data={
        "csrf_token": token_in(html), "url": article_urls(html)[0], "action": "pin"})
    assert "The approval was withdrawn" in changed.text
    assert "Approved</strong>" not in changed.text


def test_a_cookie_kept_after_logout_no_longer_works(desk: WebServer) -> None:
    editor = login(desk)
    html = editor.get(f"{desk.url}/editor/", timeout=60).text
    kept = editor.cookies.get("digest_editor")
    assert kept
    editor.post(f"{desk.url}/editor/logout", data={"csrf_token": token_in(html)}, timeout=10)
    thief = requests.Session()
    thief.cookies.set("digest_editor", kept)
    page = thief.get(f"{desk.url}/editor/", timeout=10, allow_redirects=False)
    assert page.status_code == 302
    held = thief.post(f"{desk.url}/editor/hold", data={"csrf_token": token_in(html)},
                      timeout=10, allow_redirects=False)
    assert held.status_code == 403


def test_the_desk_keeps_its_place_answers_fast_and_fits_a_phone(desk: WebServer,
                                                                 project: Project) -> None:
    import time

    from playwright.sync_api import sync_playwright

    from tests.test_email import CHROMIUM_ARGS, _chromium

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            log_in_with_browser(page, desk)
            page.wait_for_selector("#articles")
            # 390 px wide: nothing scrolls sideways, and every button is on the page.
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            for box in page.locator("button").evaluate_all(
                    "bs => bs.map(b => b.getBoundingClientRect().right)"):
                assert box <= 390
            item = page.locator("#articles > li").nth(7)
            item.scroll_into_view_if_needed()
            scrolled = page.evaluate("window.scrollY")
            assert scrolled > 0
            timings = []
            for action in ("Down", "Pin to top", "Exclude"):
                target = page.locator("#articles > li").nth(7)
                started = time.monotonic()
                target.get_by_role("button", name=action).click()
                page.wait_for_function("() => document.querySelector('.notice') !== null")
                timings.append(time.monotonic() - started)
                page.evaluate("document.querySelector('.notice').remove()")
            # the page stays where the editor was working
            assert abs(page.evaluate("window.scrollY") - scrolled) < 400
            page.screenshot(path=str(ARTIFACTS / "editor-desk-390px.png"), full_page=True)
        finally:
            browser.close()
    # Each action answers in well under a second on the demo data (the spam score is
    # worked out in the background).
    assert max(timings) < 1.0, timings
    (ARTIFACTS / "editor-desk-timings.txt").write_text(
        "".join(f"{t:.3f} s\n" for t in timings))
