"""An install outside the repository: `digest init`, the bundled templates (and an
operator's own overriding some of them), `digest check` before anything runs, keys an
operator can keep and rotate, and bad input to the command line."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests

from digest.config import documented_keys, load_config
from digest.demo.site import SiteServer
from digest.demo.smtp_sink import SmtpSink
from digest.tokens import make_token, read_unsubscribe
from tests.conftest import REPO, SUBSCRIBERS_CSV, parse, parts, query, state_database
from tests.test_cli import digest


def operator_config(folder: Path, feed_url: str, smtp_port: int, extra: str = "") -> Path:
    """A config.toml with only documented keys and no [email] templates: what an operator
    writes in /etc/spacecraft-digest/."""
    (folder / "subscribers.csv").write_text(SUBSCRIBERS_CSV, encoding="utf-8")
    path = folder / "config.toml"
    path.write_text(f"""
[[sources]]
name = "Orbital Desk"
url = "{feed_url}"

[email]
from = "Spacecraft Digest <digest@news.example>"
base_url = "https://digest.example"
postal_address = "1 Launch Lane, Leicester"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"

[subscribers]
path = "subscribers.csv"

[state]
database = "{state_database(folder)}"
{extra}
""", encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_init_writes_every_key_an_empty_list_and_a_private_state_folder(tmp_path: Path) -> None:
    result = digest("init", str(tmp_path / "etc"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "etc"
    text = (folder / "config.toml").read_text()
    parsed = tomllib.loads(text)
    for key in documented_keys():
        *sections, name = key.split(".")
        table = parsed["sources"][0] if sections == ["sources"] else parsed
        for section in (s for s in sections if s != "sources"):
            table = table[section]
        assert name in table, f"{key} is not in the generated config"
    assert f"# {'(required) '}From: header" in text  # every key with its meaning
    assert (folder / "subscribers.csv").read_text() == "email,name,status,subscribed_at,format\n"
    assert (folder / "state").stat().st_mode & 0o777 == 0o700
    assert (folder / "config.toml").stat().st_mode & 0o777 == 0o600
    checked = digest("--config", str(folder / "config.toml"), "check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_init_never_overwrites_and_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "subscribers.csv").write_text("email\nkeep@example.org\n")
    result = digest("init", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {tmp_path / 'subscribers.csv'} already exists; "
                                     "digest init never overwrites a file (move it away, or "
                                     "pick another folder)")
    assert not (tmp_path / "config.toml").exists()
    assert (tmp_path / "subscribers.csv").read_text() == "email\nkeep@example.org\n"


def test_init_with_templates_copies_the_bundled_ones_and_uses_them(tmp_path: Path) -> None:
    result = digest("init", "--templates", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "templates" / "digest.html").read_text() == \
        (REPO / "templates" / "digest.html").read_text()
    assert (tmp_path / "templates" / "web" / "editor" / "desk.html").is_file()
    assert load_config(tmp_path / "config.toml").template_folder == tmp_path / "templates"


def test_an_install_without_a_templates_key_sends_with_the_bundled_templates(
        tmp_path: Path, site: SiteServer, smtp: SmtpSink) -> None:
    path = operator_config(tmp_path, site.feed_url("Spacecraft"), smtp.port)
    result = digest("--config", str(path), "run", cwd=Path("/"))
    assert result.returncode == 0, result.stderr
    assert "sent:        3" in result.stdout
    text, html = parts(parse(smtp.messages[0].data))
    assert "Soyuz" in text and "<table role=\"presentation\"" in html


def test_an_own_folder_with_only_digest_html_falls_back_for_the_rest(
        tmp_path: Path, site: SiteServer, smtp: SmtpSink) -> None:
    own = tmp_path / "mine"
    own.mkdir()
    bundled_html = (REPO / "templates" / "digest.html").read_text()
    (own / "digest.html").write_text(bundled_html.replace("<body class=\"body\">",
                                                          "<body class=\"body\"><!-- ours -->"))
    path = operator_config(tmp_path, site.feed_url("Spacecraft"), smtp.port)
    path.write_text(path.read_text().replace("[email]\n", '[email]\ntemplates = "mine"\n'))
    result = digest("--config", str(path), "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text, html = parts(parse(smtp.messages[0].data))
    assert "<!-- ours -->" in html  # our digest.html
    assert "Read on " in html  # the bundled _article.html it includes
    assert "Unsubscribe with one click" in text  # the bundled digest.txt


def test_a_template_typo_is_refused_by_check_and_by_schedule_at_start(
        tmp_path: Path, site: SiteServer, smtp: SmtpSink) -> None:
    own = tmp_path / "templates"
    shutil.copytree(REPO / "templates", own)
    article = own / "_article.html"
    article.write_text(article.read_text().replace("{{ item.article.title }}",
                                                   "{{ item.artcle.title }}", 1))
    path = operator_config(tmp_path, site.feed_url("Spacecraft"), smtp.port)
    path.write_text(path.read_text().replace("[email]\n", '[email]\ntemplates = "templates"\n'))
    checked = digest("--config", str(path), "check", cwd=tmp_path)
    assert checked.returncode == 2
    assert re.search(r"^problem +templates: .*_article.html: line \d+: template error: "
                     r".*'artcle'", checked.stdout, re.M)
    scheduled = digest("--config", str(path), "schedule", cwd=tmp_path, timeout=30)
    assert scheduled.returncode == 2
    assert "next digest at" not in scheduled.stderr
    assert scheduled.stderr.strip().splitlines()[-1].startswith("error: templates: ")
    assert "artcle" in scheduled.stderr and "Traceback" not in scheduled.stderr
    assert smtp.messages == []


def test_check_names_a_missing_dkim_key_and_subscriber_file(tmp_path: Path,
                                                           site: SiteServer) -> None:
    path = operator_config(tmp_path, site.feed_url("Spacecraft"), 25,
                           extra='[email.dkim]\nselector = "s1"\n'
                                 'private_key_path = "keys/dkim.pem"\n')
    (tmp_path / "subscribers.csv").unlink()
    result = digest("--config", str(path), "check", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert any(line.startswith("problem") and "[email.dkim] private_key_path" in line
               and str(tmp_path / "keys" / "dkim.pem") in line for line in lines)
    assert any(line.startswith("problem") and "[subscribers] path" in line
               and str(tmp_path / "subscribers.csv") in line for line in lines)
    run = digest("--config", str(path), "run", cwd=tmp_path)
    assert run.returncode == 2
    assert all(line.startswith("error: ") for line in run.stderr.strip().splitlines())


def test_check_connect_talks_to_the_relay_and_every_source(tmp_path: Path, site: SiteServer,
                                                          smtp: SmtpSink) -> None:
    path = operator_config(tmp_path, site.feed_url("Spacecraft"), smtp.port)
    path.write_text(path.read_text().replace(
        "[email]", '[[sources]]\nname = "Gone"\nurl = "http://127.0.0.1:9/feed/"\n\n[email]'))
    path.write_text(path.read_text() + "\n[fetch]\nretries = 0\n")
    result = digest("--config", str(path), "check", "--connect", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(rf"^ok +smtp: 127.0.0.1:{smtp.port} answered EHLO and QUIT", result.stdout,
                     re.M)
    assert re.search(r"^ok +source Orbital Desk: .*feed, 12 entries", result.stdout, re.M)
    assert re.search(r"^unreachable source Gone: http://127.0.0.1:9/feed/: connection refused",
                     result.stdout, re.M)
    assert smtp.messages == []  # nothing was sent


def test_plain_text_auth_to_another_host_is_refused(tmp_path: Path, site: SiteServer) -> None:
    path = operator_config(tmp_path, site.feed_url("Spacecraft"), 25)
    path.write_text(path.read_text().replace(
        'host = "127.0.0.1"', 'host = "smtp.example.org"\nusername = "digest"'))
    result = digest("--config", str(path), "check", cwd=tmp_path,
                    env={"DIGEST_SMTP_PASSWORD": "secret"})
    assert result.returncode == 2
    assert "would send the password for 'digest' in clear to smtp.example.org" in result.stdout
    assert "secret" not in result.stdout + result.stderr
    path.write_text(path.read_text().replace("[smtp]\n", "[smtp]\nallow_plaintext_auth = true\n"))
    allowed = digest("--config", str(path), "check", cwd=tmp_path,
                     env={"DIGEST_SMTP_PASSWORD": "secret"})
    assert allowed.returncode == 0, allowed.stdout


@pytest.mark.parametrize("kind", ["folder", "unreadable", "latin-1", "not toml"])
def test_a_bad_config_path_is_one_line_and_exit_2(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "config.toml"
    if kind == "folder":
        target.mkdir()
    elif kind == "unreadable":
        target.write_text("[email]\n")
        os.chmod(target, 0)
    elif kind == "latin-1":
        target.write_bytes('[digest]\ntitle = "Caf\xe9"\n'.encode("latin-1"))
    else:
        target.write_text("[digest\ntitle = ")
    env = {"HOME": str(tmp_path)}
    if os.geteuid() == 0 and kind == "unreadable":
        # root reads anything: run as nobody to see the refusal an operator would
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 sys.executable, "-m", "digest", "--config", str(target),
                                 "status"], capture_output=True, text=True, timeout=60,
                                cwd="/", env={**os.environ, **env})
    else:
        result = digest("--config", str(target), "status", cwd=tmp_path, env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: {target}: "), result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_port_out_of_range_and_names_the_real_one_for_0(
        tmp_path: Path, site: SiteServer) -> None:
    path = operator_config(tmp_path, site.feed_url("Spacecraft"), 25)
    refused = digest("--config", str(path), "serve", "--port", "70000", cwd=tmp_path)
    assert refused.returncode == 2 and "70000 is not in the range" in refused.stderr
    env = {**os.environ, "DIGEST_SIGNING_KEY": "k"}
    proc = subprocess.Popen([sys.executable, "-m", "digest", "--config", str(path), "serve",
                             "--port", "0"], cwd=tmp_path, env=env, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    seen = ""
    while "serving" not in seen:
        seen += proc.stderr.readline()
    port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", seen).group(1))  # type: ignore[union-attr]
    assert port != 0
    assert requests.get(f"http://127.0.0.1:{port}/subscribe", timeout=10).status_code == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    proc.stderr.close()


def test_links_carry_no_address_and_a_rotated_key_still_opens_old_ones(
        tmp_path: Path, site: SiteServer, smtp: SmtpSink) -> None:
    from tests.test_web import WebServer

    path = operator_config(tmp_path, site.feed_url("Spacecraft"), smtp.port)
    first = digest("--config", str(path), "run", cwd=tmp_path, env={"DIGEST_SIGNING_KEY": "old"})
    assert first.returncode == 0, first.stderr
    ada = next(m for m in smtp.messages if m.recipients == ("ada@example.org",))
    link = re.search(r"https://digest\.example/unsubscribe/(\S+)", parts(parse(ada.data))[0])
    assert link is not None
    token = link.group(1)
    assert "ada" not in token.lower() and b"ada@" not in _b64_pieces(token)
    old_style = make_token(b"old", "unsubscribe", "yuri@example.net")
    os.environ["DIGEST_SIGNING_KEY"] = "new"
    os.environ["DIGEST_SIGNING_KEYS_PREVIOUS"] = "older, old"
    try:
        config = load_config(path)
        with WebServer(config) as web:
            for mailed in (token, old_style):
                answer = requests.post(f"{web.url}/unsubscribe/{mailed}",
                                       data="List-Unsubscribe=One-Click", timeout=10)
                assert answer.status_code == 200, mailed
            forged = make_token(b"another key", "unsubscribe", "jiwon@example.com")
            assert requests.post(f"{web.url}/unsubscribe/{forged}",
                                 data="List-Unsubscribe=One-Click",
                                 timeout=10).status_code == 400
    finally:
        del os.environ["DIGEST_SIGNING_KEYS_PREVIOUS"]
    statuses = dict(query(tmp_path, "SELECT email, status FROM subscribers"))
    assert statuses["ada@example.org"] == "unsubscribed"
    assert statuses["yuri@example.net"] == "unsubscribed"
    assert statuses["jiwon@example.com"] == "active"
    assert read_unsubscribe([b"new"], token) is None  # only the previous key signed it


def _b64_pieces(token: str) -> bytes:
    import base64

    decoded = b""
    for piece in token.split("."):
        try:
            decoded += base64.urlsafe_b64decode(piece + "=" * (-len(piece) % 4))
        except ValueError:
            continue
    return decoded


def test_db_copy_to_a_sqlite_path_carries_the_generated_key(tmp_path: Path, site: SiteServer,
                                                            smtp: SmtpSink) -> None:
    path = operator_config(tmp_path, site.feed_url("Spacecraft"), smtp.port)
    if "postgresql" in path.read_text():
        pytest.skip("the generated key only exists beside a SQLite state database")
    env = {k: v for k, v in os.environ.items() if k != "DIGEST_SIGNING_KEY"}
    run = subprocess.run([sys.executable, "-m", "digest", "--config", str(path), "run"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    key = (tmp_path / "state" / "signing.key").read_bytes()
    copied = subprocess.run([sys.executable, "-m", "digest", "--config", str(path), "db",
                             "copy", "--to", str(tmp_path / "moved" / "digest.sqlite3")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "moved" / "signing.key").read_bytes() == key
    assert (tmp_path / "moved" / "signing.key").stat().st_mode & 0o777 == 0o600
    assert "signing.key" in copied.stdout


def test_the_demo_takes_its_ports_as_options(tmp_path: Path) -> None:
    from tests.test_demo_and_docs import run_demo

    port = free_port()
    first = run_demo(tmp_path, "--fresh", "--site-port", str(port))
    assert first.returncode == 0, first.stderr
    assert "sent:        4" in first.stdout  # the bundled sample list, no checkout files
    feeds = {u for (u,) in query_demo(tmp_path)}
    assert feeds == {f"http://127.0.0.1:{port}/category/spacecraft/feed/"}


def query_demo(folder: Path) -> list[tuple[str]]:
    import sqlite3

    db = sqlite3.connect(folder / "state" / "demo.sqlite3")
    try:
        return db.execute("SELECT url FROM source_state").fetchall()
    finally:
        db.close()
