"""The web app through a real HTTP client (and a real browser) against waitress on
127.0.0.1: double opt-in, one-click unsubscribe (RFC 8058), tokens, CSRF, rate limits,
and unsubscribes landing while a digest is being sent."""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from waitress.server import create_server

from digest import pipeline
from digest.config import Config, load_config
from digest.demo.site import SiteServer
from digest.demo.smtp_sink import SmtpSink
from digest.keys import signing_key as state_key
from digest.state.db import as_utc
from digest.tokens import legacy_timed_token, make_token
from digest.web import create_app, waitress_options, web_context
from tests.conftest import REPO, Project, parse, parts, query
from tests.test_delivery import many_subscribers

ARTIFACTS = REPO / "test-artifacts"


class WebServer:
    """The app under waitress in a thread, on a free port."""

    def __init__(self, config: Config, port: int = 0) -> None:
        self.app = create_app(config)
        self.server = create_server(self.app, host="127.0.0.1", port=port,
                                    **waitress_options())  # type: ignore[arg-type]
        self.url = f"http://127.0.0.1:{self.server.effective_port}"  # type: ignore[union-attr]
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.server.run()
        except (OSError, ValueError):
            # closing the listening socket from the test thread can wake waitress's loop
            # on a dead descriptor; only an error before we asked it to stop is real
            if not self.closing.is_set():
                raise

    def __enter__(self) -> WebServer:
        self.thread.start()
        return self

    def settle(self) -> None:
        """Until the queued subscribe requests have had their confirmations mailed."""
        assert web_context(self.app).signups.settle()

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        web_context(self.app).signups.stop()
        self.server.close()
        self.thread.join(timeout=5)
        web_context(self.app).state.close()


def public_on_free_port(project: Project) -> int:
    """A free port, made the project's public base URL."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    text = project.config_path.read_text()
    project.config_path.write_text(text.replace('base_url = "https://digest.example"',
                                                f'base_url = "http://127.0.0.1:{port}"'))
    return port


@pytest.fixture
def web(project: Project) -> Iterator[WebServer]:
    port = public_on_free_port(project)
    with WebServer(project.config, port) as server:
        yield server


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def subscribe(session: requests.Session, web: WebServer, email: str,
              name: str = "") -> requests.Response:
    token = form_token(session.get(f"{web.url}/subscribe").text)
    return session.post(f"{web.url}/subscribe", data={"email": email, "name": name,
                                                      "csrf_token": token})


def status_of(project: Project, email: str) -> str | None:
    rows = query(project.folder, "SELECT status FROM subscribers WHERE email_key = :e",
                 e=email.lower())
    return str(rows[0][0]) if rows else None


def test_subscribe_confirm_receive_and_one_click_unsubscribe(project: Project, web: WebServer,
                                                             smtp: SmtpSink,
                                                             site: SiteServer) -> None:
    session = requests.Session()
    answer = subscribe(session, web, "new.reader@example.org", "New Reader")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    web.settle()  # the confirmation goes out from the queue
    assert status_of(project, "new.reader@example.org") == "pending"
    assert [m.recipients[0] for m in smtp.messages] == ["new.reader@example.org"]
    subscribe(session, web, "new.reader@example.org")  # no flood of confirmations
    web.settle()
    assert len(smtp.messages) == 1
    body = parse(smtp.messages[0].data).get_body(("plain",)).get_content()
    link = re.search(r"(http://127\.0\.0\.1:\d+/confirm/\S+)", body).group(1)
    confirmed = requests.get(link)
    assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
    assert status_of(project, "new.reader@example.org") == "active"

    pipeline.run_cycle(load_config(project.config_path))
    mine = [m for m in smtp.messages if m.recipients[0] == "new.reader@example.org"]
    assert len(mine) == 2  # the confirmation and the digest
    digest_message = parse(mine[-1].data)
    url = re.match(r"<([^>]+)>", digest_message["List-Unsubscribe"]).group(1)
    _, html = parts(digest_message)
    assert f'href="{url}"' in html
    assert "Unsubscribe" in requests.get(url).text  # GET shows a page and changes nothing
    assert status_of(project, "new.reader@example.org") == "active"
    one_click = requests.post(url, data="List-Unsubscribe=One-Click", allow_redirects=False,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert one_click.status_code == 200 and not one_click.is_redirect
    assert status_of(project, "new.reader@example.org") == "unsubscribed"
    assert requests.post(url, data="List-Unsubscribe=One-Click").status_code == 200  # idempotent

    from tests.test_delivery import _fresh_article
    site.site.articles.insert(0, _fresh_article("after-unsubscribe"))
    before = len(smtp.messages)
    report = pipeline.run_cycle(load_config(project.config_path))
    assert report.sent == 3 and "new.reader@example.org" not in \
        [m.recipients[0] for m in smtp.messages[before:]]


def test_forged_truncated_and_other_address_tokens_are_refused(project: Project,
                                                               web: WebServer) -> None:
    key = state_key(project.config)
    good = make_token(key, "unsubscribe", "ada@example.org")
    payload, _, signature = good.partition(".")
    other = make_token(key, "unsubscribe", "yuri@example.net").partition(".")[0]
    for bad in (good[:-3], f"{other}.{signature}", f"{payload}.{'A' * len(signature)}",
                make_token(b"another key", "unsubscribe", "ada@example.org"), "x"):
        response = requests.post(f"{web.url}/unsubscribe/{bad}",
                                 data="List-Unsubscribe=One-Click",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 400, bad
    pipeline.run_cycle(load_config(project.config_path), dry_run=True)  # reads the list in
    assert status_of(project, "ada@example.org") == "active"
    assert status_of(project, "yuri@example.net") == "active"


def test_forms_need_their_csrf_token(project: Project, web: WebServer) -> None:
    refused = requests.post(f"{web.url}/subscribe", data={"email": "a@example.org"})
    assert refused.status_code == 403
    pipeline.run_cycle(load_config(project.config_path), dry_run=True)  # reads the list in
    token = make_token(state_key(project.config), "unsubscribe", "ada@example.org")
    page_post = requests.post(f"{web.url}/unsubscribe/{token}", data={"csrf_token": "x"})
    assert page_post.status_code == 403
    session = requests.Session()
    form = session.get(f"{web.url}/unsubscribe/{token}")
    done = session.post(f"{web.url}/unsubscribe/{token}",
                        data={"csrf_token": form_token(form.text)})
    assert done.status_code == 200 and "You are unsubscribed" in done.text


def test_pages_never_tell_whether_an_address_is_on_the_list(project: Project,
                                                            web: WebServer) -> None:
    pipeline.run_cycle(load_config(project.config_path), dry_run=True)
    answers = {email: subscribe(requests.Session(), web, email).text for email in
               ("ada@example.org", "sally@example.org", "stranger@example.org")}
    texts = {re.sub(r'value="[^"]+"', "", text) for text in answers.values()}
    assert len(texts) == 1


def test_subscribe_is_rate_limited(project: Project, web: WebServer) -> None:
    session = requests.Session()
    codes = [subscribe(session, web, f"r{i}@example.org").status_code for i in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]


def test_expired_confirmation_link_is_refused(project: Project, web: WebServer) -> None:
    subscribe(requests.Session(), web, "late@example.org")
    web.settle()
    old = legacy_timed_token(state_key(project.config), "confirm", "late@example.org",
                           int(time.time()) - 8 * 24 * 3600)
    response = requests.get(f"{web.url}/confirm/{old}")
    assert response.status_code == 400 and "does not work" in response.text
    assert status_of(project, "late@example.org") == "pending"


def test_bad_address_gets_a_clear_message(project: Project, web: WebServer) -> None:
    response = subscribe(requests.Session(), web, "not an address")
    assert response.status_code == 400 and "does not look like an email address" in response.text


def test_subscribe_and_unsubscribe_pages_in_a_real_browser(project: Project,
                                                           web: WebServer) -> None:
    from playwright.sync_api import sync_playwright

    from tests.test_email import CHROMIUM_ARGS, _chromium

    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    token = make_token(state_key(project.config), "unsubscribe", "ada@example.org")
    pipeline.run_cycle(load_config(project.config_path), dry_run=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 800})
            page.goto(f"{web.url}/subscribe")
            page.get_by_label("Email address").fill("browser@example.org")
            page.get_by_label("Name").fill("Browser Reader")
            page.screenshot(path=str(ARTIFACTS / "subscribe-form.png"))
            page.get_by_role("button", name="Subscribe").click()
            assert page.get_by_role("heading").inner_text() == "Check your inbox"
            page.screenshot(path=str(ARTIFACTS / "subscribe-done.png"))
            page.goto(f"{web.url}/unsubscribe/{token}")
            page.screenshot(path=str(ARTIFACTS / "unsubscribe-form.png"))
            page.get_by_role("button", name="Unsubscribe").click()
            assert page.get_by_role("heading").inner_text() == "You are unsubscribed"
            page.screenshot(path=str(ARTIFACTS / "unsubscribe-done.png"))
        finally:
            browser.close()
    web.settle()
    assert status_of(project, "browser@example.org") == "pending"
    assert status_of(project, "ada@example.org") == "unsubscribed"


def test_unsubscribes_during_a_send_are_never_lost_nor_ignored(tmp_path: Path,
                                                               site: SiteServer) -> None:
    from tests.test_delivery import configured

    everyone = sorted(many_subscribers(tmp_path, 2000))
    leavers = random.Random(7).sample(everyone, 150)
    with SmtpSink() as relay:
        path = configured(tmp_path, site, relay.port, smtp_extra="connections = 2")
        config = load_config(path)
        pipeline.run_cycle(config, dry_run=True)  # the list is read in
        key = state_key(config)
        done_at: dict[str, float] = {}
        with WebServer(config) as web:
            sender = threading.Thread(target=pipeline.run_cycle, args=(config,))
            sender.start()
            while len(relay.messages) < 100:
                time.sleep(0.01)
            for email in leavers:
                response = requests.post(f"{web.url}/unsubscribe/"
                                         f"{make_token(key, 'unsubscribe', email)}",
                                         data="List-Unsubscribe=One-Click")
                assert response.status_code == 200
                done_at[email] = datetime.now(UTC).timestamp()
            sender.join(timeout=120)
        received = Counter(m.recipients[0] for m in relay.messages)
    statuses = dict(query(tmp_path, "SELECT email_key, status FROM subscribers"))
    sent_at = {email: as_utc(stamp if isinstance(stamp, datetime)
                             else datetime.fromisoformat(stamp)).timestamp()
               for email, stamp in query(tmp_path, "SELECT email, updated_at FROM deliveries "
                                                   "WHERE status = 'sent'")}
    assert all(statuses[email] == "unsubscribed" for email in leavers)  # none lost
    assert max(received.values()) == 1
    for email in leavers:
        if email in received:  # taken before the unsubscribe landed: sent by then
            assert sent_at[email] <= done_at[email] + 1.0, email
    assert set(received) >= set(everyone) - set(leavers)
    assert len(set(leavers) - set(received)) > 0  # some unsubscribes were in time
