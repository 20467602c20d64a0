"""What goes out is what the editor saw: no empty digest, Message-IDs no two messages share,
one truth about the next digest in the desk and the status, exit codes a cron job can
trust, edits that must name an article, and the small things readers notice."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from digest import pipeline
from digest.config import load_config
from digest.demo.site import SiteServer
from digest.demo.smtp_sink import SmtpSink
from digest.state import open_state
from tests.conftest import ACTIVE, Project, parse, parts, query, write_config
from tests.test_cli import digest
from tests.test_editor import desk, login, token_in  # noqa: F401  (the desk fixture)
from tests.test_web import WebServer

NOW = datetime.now(UTC)


def exclude(project: Project, url: str) -> None:
    with open_state(project.config) as state:
        state.editorial.save_article_edit(url, NOW, "edith", excluded=1)


def first_article_url(project: Project) -> str:
    return pipeline.next_articles(project.config)[0].url


def test_an_excluded_article_is_not_new_and_no_empty_digest_ever_goes_out(
        project: Project, smtp: SmtpSink) -> None:
    excluded = first_article_url(project)
    exclude(project, excluded)
    first = pipeline.run_cycle(project.config)
    assert first.sent == 3 and first.summarized == 11
    assert all(excluded not in parts(parse(m.data))[0] for m in smtp.messages)
    second = pipeline.run_cycle(project.config)
    assert second.sent == 0 and second.digest_id is None
    assert "nothing new" in second.reason and "1 new article(s) excluded" in second.reason
    assert len(smtp.messages) == 3
    assert query(project.folder, "SELECT COUNT(*) FROM digests") == [(1,)]
    # still excluded next time, unless included again
    with open_state(project.config) as state:
        state.editorial.save_article_edit(excluded, NOW, "edith", excluded=0)
    third = pipeline.run_cycle(project.config)
    assert third.sent == 3 and third.summarized == 1


def test_min_articles_counts_only_what_the_editor_kept(project: Project,
                                                      smtp: SmtpSink) -> None:
    text = project.config_path.read_text().replace("[digest]\n", "[digest]\nmin_articles = 12\n")
    project.config_path.write_text(text)
    exclude(project, first_article_url(project))
    report = pipeline.run_cycle(project.config)
    assert report.sent == 0 and "only 11 new (min_articles = 12)" in report.reason


def test_two_installs_mailing_one_address_give_different_message_ids(
        tmp_path: Path, site: SiteServer, smtp: SmtpSink) -> None:
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        path = write_config(tmp_path / name, feed_urls=[site.feed_url("Spacecraft")],
                            smtp_port=smtp.port)
        assert pipeline.run_cycle(load_config(path)).sent == 3
    ids = Counter(parse(m.data)["Message-ID"] for m in smtp.messages)
    assert len(ids) == 6 and max(ids.values()) == 1


def test_two_test_sends_carry_different_message_ids_and_a_working_web_link(
        project: Project, smtp: SmtpSink) -> None:
    for _ in range(2):
        pipeline.send_test(project.config, "edith@example.org")
    first, second = (parse(m.data) for m in smtp.messages)
    assert first["Message-ID"] != second["Message-ID"]
    text, _ = parts(first)
    assert "https://digest.example/editor/draft.html" in text  # not /archive/0/


def test_a_retried_delivery_keeps_its_message_id(tmp_path: Path, site: SiteServer) -> None:
    refused_once: set[str] = set()

    def answer(_number: int, recipient: str) -> str:
        if recipient == "ada@example.org" and recipient not in refused_once:
            refused_once.add(recipient)
            return "451 4.3.0 try again later"
        return "250 OK"

    with SmtpSink(answer=answer) as relay:
        path = write_config(tmp_path, feed_urls=[site.feed_url("Spacecraft")],
                            smtp_port=relay.port,
                            extra="[delivery]\nretry_attempts = 1\nretry_delay = 0\n")
        first = pipeline.run_cycle(load_config(path))
        assert first.deferred == 1 and first.sent == 2
        resumed = pipeline.resume(load_config(path))
        assert resumed.sent == 1
        to_ada = [parse(m.data)["Message-ID"] for m in relay.attempts
                  if m.recipients == ("ada@example.org",)]
    assert len(to_ada) == 2 and to_ada[0] == to_ada[1]
    ((stored,),) = query(tmp_path, "SELECT message_id FROM deliveries WHERE email = :e",
                         e="ada@example.org")
    assert stored == to_ada[0]


def test_a_relay_refusing_every_message_is_exit_1_and_nobody_bounces(
        tmp_path: Path, site: SiteServer) -> None:
    with SmtpSink(answer=lambda _n, _r: "500 5.5.2 Line too long") as strict:
        path = write_config(tmp_path, feed_urls=[site.feed_url("Spacecraft")],
                            smtp_port=strict.port, extra="[delivery]\nbounce_after = 1\n")
        result = digest("run", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "refused its content (500 5.5.2 Line too long)" in errors[0]
    statuses = dict(query(tmp_path, "SELECT email, status FROM subscribers"))
    assert {statuses[e] for e in ACTIVE} == {"active"}
    assert query(tmp_path, "SELECT status FROM digests") == [("rejected",)]
    with SmtpSink() as good:
        path.write_text(path.read_text().replace(f"port = {strict.port}", f"port = {good.port}"))
        again = pipeline.run_cycle(load_config(path))
    assert again.summarized == 12 and again.sent == 3  # the articles stayed new


def test_all_sources_down_is_exit_1_with_one_line(tmp_path: Path, smtp: SmtpSink) -> None:
    write_config(tmp_path, feed_urls=["http://127.0.0.1:9/feed/"], smtp_port=smtp.port,
                 extra="retries = 0")
    result = digest("run", cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: no source could be read (1 of 1 failed; first: "
                      "http://127.0.0.1:9/feed/: connection refused); no digest built, the "
                      "articles wait"]


def test_a_missing_subscriber_file_is_exit_2_and_an_empty_one_is_fine(
        project: Project) -> None:
    listed = project.folder / "subscribers" / "subscribers.csv"
    listed.unlink()
    result = digest("run", "--dry-run", cwd=project.folder)
    assert result.returncode == 2
    assert "[subscribers] path" in result.stderr and str(listed) in result.stderr
    listed.write_text("email,name\n")
    assert digest("run", "--dry-run", cwd=project.folder).returncode == 0


def test_summary_edits_must_name_an_article_of_the_next_digest(project: Project,
                                                              smtp: SmtpSink) -> None:
    made_up = digest("summary", "set", "https://nowhere.example/story", "Text.",
                     cwd=project.folder)
    assert made_up.returncode == 1
    assert "https://nowhere.example/story: not an article of the next digest" in made_up.stderr
    url = first_article_url(project)
    tracked = f"{url}?utm_source=twitter&utm_medium=social"
    done = digest("summary", "set", tracked, "An editor's words.", cwd=project.folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"summary set: {url}"
    pipeline.run_cycle(project.config)
    assert "An editor's words." in parts(parse(smtp.messages[0].data))[0]


def test_a_second_hold_says_it_replaces_the_first(project: Project) -> None:
    digest("hold", "--reason", "launch slipped", "--by", "ed", cwd=project.folder)
    second = digest("hold", "--reason", "legal check", "--by", "bo", cwd=project.folder)
    assert second.returncode == 0
    assert "replaces the one set by ed" in second.stdout and "(launch slipped)" in second.stdout


def test_after_a_send_status_shows_the_approval_as_used_and_it_can_be_withdrawn(
        project: Project, smtp: SmtpSink) -> None:
    assert digest("approve", "--by", "edith", cwd=project.folder).returncode == 0
    assert "for the next scheduled digest" in digest("status", cwd=project.folder).stdout
    assert digest("approve", "--withdraw", cwd=project.folder).returncode == 0
    assert "approved:" not in digest("status", cwd=project.folder).stdout
    assert digest("approve", "--withdraw", cwd=project.folder).returncode == 1
    digest("approve", "--by", "edith", cwd=project.folder)
    pipeline.run_cycle(project.config)
    status = digest("status", cwd=project.folder).stdout
    assert "approved:" not in status
    assert re.search(r"last approval: by edith at .* UTC, used by digest 1 at", status)
    assert re.search(r"^next run:    \S+ \S+ Europe/London \(local\), \S+ \S+ UTC$", status,
                     re.M)
    health = json.loads(digest("status", "--json", cwd=project.folder).stdout)
    assert health["next_digest"]["approved"] is False
    assert health["next_digest"]["last_approval"]["used_by_digest"] == 1


def test_after_a_send_the_desk_shows_the_next_digest(desk: WebServer,  # noqa: F811
                                                    project: Project, smtp: SmtpSink) -> None:
    editor = login(desk)
    before = editor.get(f"{desk.url}/editor/", timeout=30).text
    assert before.count('<li data-url="') >= 12
    pipeline.run_cycle(project.config)
    after = editor.get(f"{desk.url}/editor/", timeout=30).text
    assert '<li data-url="' not in after.split('id="articles"')[1].split("</ol>")[0]
    assert ">0</dd>" in after  # no articles yet for the next digest


def test_the_unsubscribe_page_names_the_address_and_knows_when_it_is_done(
        project: Project) -> None:
    from tests.test_web import public_on_free_port

    pipeline.run_cycle(project.config, dry_run=True)
    with open_state(project.config) as state:
        row = state.subscribers.get("ada@example.org")
    assert row is not None
    from digest.keys import signing_key
    from digest.tokens import unsubscribe_token

    token = unsubscribe_token(signing_key(project.config), row.token_id)
    port = public_on_free_port(project)
    with WebServer(project.config, port) as web:
        session = requests.Session()
        page = session.get(f"{web.url}/unsubscribe/{token}", timeout=10).text
        assert "<strong>ada@example.org</strong> will not receive" in page
        done = session.post(f"{web.url}/unsubscribe/{token}", timeout=10,
                            data={"csrf_token": token_in(page)}).text
        assert "ada@example.org will not receive" in done
        again = session.get(f"{web.url}/unsubscribe/{token}", timeout=10).text
        assert "You are already unsubscribed" in again and 'method="post"' not in again


def test_words_about_how_often_follow_the_cron(tmp_path: Path, site: SiteServer) -> None:
    from digest.build import render, sample_digest
    from digest.slots import cadence

    assert cadence("0 7 * * mon") == ("once a week", "this week")
    assert cadence("30 6 * * *") == ("every day", "today")
    assert cadence("0 8 1 * *") == ("once a month", "this month")
    path = write_config(tmp_path, feed_urls=[site.feed_url("Spacecraft")], smtp_port=25,
                        extra='[schedule]\ncron = "30 6 * * *"\n')
    config = load_config(path)
    small = replace(config, email=replace(config.email, max_html_bytes=6000))
    rendered = render(small, sample_digest(small, NOW))
    assert "More today" in rendered.html and "More this week" not in rendered.html


def test_the_text_part_has_no_double_blank_lines(project: Project, smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    text, _ = parts(parse(smtp.messages[0].data))
    assert "\n\n\n" not in text.replace("\r\n", "\n")


def test_subscribers_show_prints_times_with_their_zone(project: Project) -> None:
    shown = digest("subscribers", "show", "ada@example.org", cwd=project.folder).stdout
    times = re.findall(r"^(?:subscribed|updated|event):\s+(\S+ \S+ \S+)", shown, re.M)
    assert times and all(t.endswith(" UTC") for t in times), shown


def test_json_logs_are_json_on_every_line(tmp_path: Path, smtp: SmtpSink) -> None:
    write_config(tmp_path, feed_urls=["http://127.0.0.1:9/feed/"], smtp_port=smtp.port,
                 extra="retries = 0")
    result = digest("--log-format", "json", "run", cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and result.returncode == 1
    records = [json.loads(line) for line in lines]  # every line parses
    assert records[-1]["level"] == "error" and "no source could be read" in \
        records[-1]["message"]


@pytest.mark.parametrize(("text", "named"), [
    ("email;name\nada@example.org;Ada\n", "semicolon"),
    ("email\tname\nada@example.org\tAda\n", "tab"),
    ("email,name\nada@example.org,Ada\n", "comma")])
def test_an_import_names_the_delimiter_it_found(project: Project, text: str,
                                                named: str) -> None:
    source = project.folder / "list.csv"
    source.write_text(text)
    result = digest("subscribers", "import", str(source), cwd=project.folder)
    assert result.returncode == 0, result.stderr
    assert f"as {named}-separated values" in result.stdout
    assert "1 added" in result.stdout or "0 added, 1 updated" in result.stdout or \
        "0 added, 0 updated" in result.stdout


def test_an_unclosed_quote_is_reported_by_its_line(project: Project) -> None:
    source = project.folder / "list.csv"
    source.write_text('email,name\nnew@example.org,New\nbob@example.org,"Bob\n'
                      "carol@example.org,Carol\n")
    result = digest("subscribers", "import", str(source), cwd=project.folder)
    assert result.returncode == 0
    assert f"{source}: line 3: a quote opened here is never closed" in result.stderr
    assert "1 added" in result.stdout
