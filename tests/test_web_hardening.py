"""The web app behind a reverse proxy and under attack: rate limits on the real client,
logins that cannot lock the right password out, a subscribe form that answers alike for
every address, no 500 for odd input, a CSP on every answer, files kept private, and no
bidirectional tricks in what readers see."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import requests

from digest import pipeline
from digest.accounts import add_editor
from digest.config import load_config
from digest.demo.smtp_sink import SmtpSink
from tests.conftest import Project, parse, parts, query
from tests.test_editor import PASSWORD, token_in
from tests.test_web import WebServer, public_on_free_port


def behind_proxy(project: Project, extra: str = "") -> None:
    text = project.config_path.read_text()
    project.config_path.write_text(text + f'\n[web]\ntrusted_proxies = ["127.0.0.1"]\n{extra}')


def login_as(web: WebServer, password: str, client: str) -> requests.Response:
    session = requests.Session()
    headers = {"X-Forwarded-For": client}
    form = session.get(f"{web.url}/editor/login", headers=headers, timeout=10).text
    return session.post(f"{web.url}/editor/login", headers=headers, timeout=30, data={
        "csrf_token": token_in(form), "name": "edith", "password": password, "next": ""},
        allow_redirects=False)


def test_wrong_passwords_from_anyone_never_lock_the_editor_out(
        project: Project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIGEST_WEB_SECRET", "test-web-secret-0123456789")
    behind_proxy(project)
    port = public_on_free_port(project)
    add_editor(project.config_path, "edith", PASSWORD, "edith@example.org")
    with WebServer(project.config, port) as web:
        answers = [login_as(web, "guessing", "203.0.113.5").status_code for _ in range(7)]
        assert answers[:5] == [401] * 5 and answers[5] == 429  # that client slows down
        good = login_as(web, PASSWORD, "198.51.100.7")  # the editor, elsewhere
        assert good.status_code == 302 and good.headers["Location"] == "/editor/"
        # Without a trusted proxy, X-Forwarded-For from a client is ignored: it cannot
        # spread its guesses over made-up addresses.
    text = project.config_path.read_text().replace('trusted_proxies = ["127.0.0.1"]',
                                                   "trusted_proxies = []")
    project.config_path.write_text(text)
    with WebServer(project.config, port) as web:
        spoofed = [login_as(web, "guessing", f"192.0.2.{n}").status_code for n in range(7)]
    assert spoofed[5] == 429


def test_the_csrf_cookie_is_secure_when_the_proxy_says_https(project: Project) -> None:
    behind_proxy(project)
    port = public_on_free_port(project)
    with WebServer(project.config, port) as web:
        secure = requests.get(f"{web.url}/subscribe", timeout=10,
                              headers={"X-Forwarded-Proto": "https"})
        plain = requests.get(f"{web.url}/subscribe", timeout=10)
    assert "Secure" in secure.headers["Set-Cookie"]
    assert "Secure" not in plain.headers["Set-Cookie"]


def test_subscribe_answers_alike_for_new_pending_active_and_suppressed(
        project: Project, smtp: SmtpSink) -> None:
    behind_proxy(project)
    port = public_on_free_port(project)
    pipeline.run_cycle(project.config, dry_run=True)  # ada, yuri, jiwon active; sally not
    timings: dict[str, list[float]] = {}
    with WebServer(project.config, port) as web:
        kinds = {"new": lambda n: f"new{n}@example.org",
                 "pending": lambda _n: "pending@example.org",
                 "active": lambda _n: "ada@example.org",
                 "suppressed": lambda _n: "sally@example.org"}
        session = requests.Session()
        token = token_in(session.get(f"{web.url}/subscribe", timeout=10).text)
        _post(session, web, token, "pending@example.org", "10.0.0.1")
        web.settle()
        for round_ in range(12):
            for kind, address in kinds.items():
                started = time.perf_counter()
                answer = _post(session, web, token, address(round_), f"10.1.{round_}.{len(kind)}")
                timings.setdefault(kind, []).append(time.perf_counter() - started)
                assert answer.status_code == 200 and "Check your inbox" in answer.text
        web.settle()
    medians = {kind: statistics.median(values) for kind, values in timings.items()}
    spread = max(medians.values()) - min(medians.values())
    assert spread < 0.010, medians  # within a few ms of each other
    lows, highs = [min(v) for v in timings.values()], [max(v) for v in timings.values()]
    assert max(lows) <= min(highs)  # the ranges overlap
    confirmations = [m for m in smtp.messages if m.recipients[0].startswith("new")]
    assert len(confirmations) == 12  # the new ones got their confirmation, from the queue
    message = parse(confirmations[0].data)
    assert message["Date"] and message["Message-ID"].startswith("<confirm.")


def _post(session: requests.Session, web: WebServer, token: str, email: str,
          client: str) -> requests.Response:
    return session.post(f"{web.url}/subscribe", timeout=10, headers={"X-Forwarded-For": client},
                        data={"email": email, "csrf_token": token})


def test_odd_input_is_400_or_404_never_500_and_every_answer_has_a_csp(
        project: Project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIGEST_WEB_SECRET", "test-web-secret-0123456789")
    port = public_on_free_port(project)
    with WebServer(project.config, port) as web:
        answers = {
            "token": requests.post(f"{web.url}/unsubscribe/s.ü.ü", timeout=10,
                                   data="List-Unsubscribe=One-Click"),
            "confirm": requests.get(f"{web.url}/confirm/c.é.1.é", timeout=10),
            "csrf": requests.post(f"{web.url}/subscribe", timeout=10,
                                  data={"email": "a@example.org", "csrf_token": "ü.ü"},
                                  cookies={"digest_csrf": "ü"}),
            "archive key": requests.get(f"{web.url}/archive/1/?k=%C3%BC", timeout=10),
            "huge id": requests.get(f"{web.url}/archive/{2**70}/?k=x", timeout=10),
            "crlf next": requests.get(f"{web.url}/editor/login?next=/editor/%0d%0aX:y",
                                      timeout=10),
            "missing": requests.get(f"{web.url}/no/such/page", timeout=10),
        }
    for name, answer in answers.items():
        assert answer.status_code in (200, 400, 403, 404), (name, answer.status_code)
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"], name
    assert "X:y" not in answers["crlf next"].text.split('name="next" value="')[1][:20]


def test_state_outbox_and_a_rewritten_config_stay_private(tmp_path: Path,
                                                         project: Project) -> None:
    os.chmod(project.config_path, 0o600)
    add_editor(project.config_path, "edith", PASSWORD, "edith@example.org")
    assert project.config_path.stat().st_mode & 0o777 == 0o600
    text = project.config_path.read_text()
    project.config_path.write_text(text + '\n[delivery]\ntransport = "outbox"\n')
    pipeline.run_cycle(load_config(project.config_path))
    outbox = project.folder / "outbox"
    files = list(outbox.glob("*.eml"))
    assert files and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert outbox.stat().st_mode & 0o777 == 0o700
    if "postgresql" not in text:
        state = project.folder / "state"
        assert state.stat().st_mode & 0o077 == 0
        assert (state / "digest.sqlite3").stat().st_mode & 0o777 == 0o600


def test_bidi_overrides_never_reach_what_readers_see(project: Project, smtp: SmtpSink) -> None:
    listed = project.folder / "subscribers" / "subscribers.csv"
    listed.write_text("email,name\nada@example.org,\u202eAda\u202c Lovelace\n")
    pipeline.run_cycle(project.config)
    message = parse(smtp.messages[0].data)
    text, html = parts(message)
    for shown in (str(message["To"]), str(message["Subject"]), text, html):
        assert not any(c in shown for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068"
                                            "\u2069")
    assert "Hello Ada," in text and "Ada Lovelace" in str(message["To"])
    assert query(project.folder, "SELECT COUNT(*) FROM deliveries") == [(1,)]
