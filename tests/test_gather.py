"""Gathering across sources against real HTTP servers: duplicates, 304s, robots.txt,
failure counting and the per-host parallelism."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from digest import pipeline
from digest.demo.site import SampleSite, SiteServer, load_sample_articles
from digest.demo.smtp_sink import SmtpSink
from digest.errors import SourcesDown
from digest.gather import gather, make_fetcher
from digest.state import open_state
from tests.conftest import Project, parse, parts, write_config
from tests.test_cli import digest


def test_the_same_story_from_three_sources_appears_once(tmp_path: Path, site: SiteServer,
                                                       smtp: SmtpSink) -> None:
    urls = [site.feed_url("Spacecraft"), site.url + "/wp-json/wp/v2/posts",
            site.url + "/category/spacecraft/"]
    project = Project(tmp_path, write_config(tmp_path, feed_urls=urls, smtp_port=smtp.port))
    report = pipeline.run_cycle(project.config)
    assert (report.found, report.summarized) == (12, 12)
    text, html = parts(parse(smtp.messages[0].data))
    contents, stories = text.split("IN THIS ISSUE", 1)[1].split("=" * 72, 1)
    assert contents.count("Keystone Module Reaches Orbit") == 1
    assert stories.count("Keystone Module Reaches Orbit") == 1
    assert "Also reported by Site 2, Site 3" in text
    assert ">Site 2</a>" in html


def test_near_identical_titles_on_two_sites_are_merged(tmp_path: Path, smtp: SmtpSink) -> None:
    articles = load_sample_articles()
    retitled = [a if a.category != "Spacecraft" else
                type(a)(**{**a.__dict__, "title": a.title.upper() + "!"}) for a in articles]
    with SiteServer(SampleSite(articles)) as one, SiteServer(SampleSite(retitled)) as two:
        path = write_config(tmp_path, feed_urls=[one.feed_url("Spacecraft"),
                                                 two.feed_url("Spacecraft")],
                            smtp_port=smtp.port)
        report = pipeline.run_cycle(Project(tmp_path, path).config)
    assert report.summarized == 12
    text, _ = parts(parse(smtp.messages[0].data))
    assert text.count("Also reported by Site 2") == 12


def test_not_modified_feed_costs_no_parsing_and_loses_nothing(project: Project,
                                                              site: SiteServer) -> None:
    (project.folder / "subscribers" / "subscribers.csv").write_text("email,name\n")
    first = pipeline.run_cycle(project.config)  # no subscribers: nothing sent, entries kept
    assert first.summarized == 12 and first.sent == 0
    (project.folder / "subscribers" / "subscribers.csv").write_text(
        "email,name\nada@example.org,Ada\n")
    feed_path = "/category/spacecraft/feed/"
    before = site.site.requests.count(feed_path)
    second = pipeline.run_cycle(project.config)
    assert site.site.requests.count(feed_path) == before + 1
    assert second.summarized == 12 and second.sent == 1  # from the kept entries after a 304
    with open_state(project.config) as state:
        assert state.sources.state(site.feed_url("Spacecraft")).etag


def test_articles_disallowed_by_robots_txt_are_skipped(project: Project,
                                                       site: SiteServer) -> None:
    blocked = site.site.by_category("spacecraft")[0]
    original = site.site.page

    def page(path: str) -> tuple[int, str, str]:
        if path == "/robots.txt":
            return 200, "text/plain", f"User-agent: *\nDisallow: {blocked.path}\n"
        return original(path)

    site.site.page = page  # type: ignore[method-assign]
    report = pipeline.run_cycle(project.config)
    assert report.summarized == 11
    assert [f.reason for f in report.failures] == [
        f"{site.url}{blocked.path}: disallowed by robots.txt"]
    assert blocked.path not in site.site.requests


def test_a_source_failing_three_cycles_in_a_row_is_flagged(tmp_path: Path,
                                                           smtp: SmtpSink) -> None:
    path = write_config(tmp_path, feed_urls=["http://127.0.0.1:9/feed/"], smtp_port=smtp.port,
                        extra="retries = 0")
    for _ in range(2):
        with pytest.raises(SourcesDown):
            pipeline.run_cycle(Project(tmp_path, path).config)
    assert "FAILING" not in digest("status", cwd=tmp_path).stdout
    with pytest.raises(SourcesDown):
        pipeline.run_cycle(Project(tmp_path, path).config)
    status = digest("status", cwd=tmp_path).stdout
    assert ("FAILING source http://127.0.0.1:9/feed/: 3 cycles in a row; last error: "
            "http://127.0.0.1:9/feed/: connection refused") in status


def test_dry_run_and_preview_record_nothing_about_sources(project: Project) -> None:
    pipeline.run_cycle(project.config, dry_run=True)
    pipeline.preview(project.config)
    with open_state(project.config) as state:
        assert state.sources.all_states() == []


def test_article_pages_are_fetched_in_parallel(tmp_path: Path, site: SiteServer) -> None:
    original = site.site.page

    def slow(path: str) -> tuple[int, str, str]:
        if path.startswith("/2026/"):
            time.sleep(0.2)
        return original(path)

    site.site.page = slow  # type: ignore[method-assign]
    path = write_config(tmp_path, feed_urls=[site.feed_url("Spacecraft")], smtp_port=25)
    config = Project(tmp_path, path).config
    with open_state(config) as state:
        started = time.monotonic()
        with make_fetcher(config) as fetcher:
            result = gather(config, state, fetcher, record=False)
        elapsed = time.monotonic() - started
    assert len(result.articles) == 12
    assert elapsed < 12 * 0.2 / 2  # 4 at a time: about 0.6 s, one by one 2.4 s


def test_titles_that_differ_only_in_a_number_are_different_stories() -> None:
    from digest.dedupe import same_title

    assert not same_title("Soyuz MS-27 Launches to the ISS", "Soyuz MS-28 Launches to the ISS")
    assert same_title("Soyuz MS-27 launches to the ISS!", "SOYUZ MS-27 LAUNCHES TO THE ISS")
    assert same_title("Starliner crew returns to Earth safely",
                      "Starliner crew returns to Earth, safely.")
    assert not same_title("Starliner crew returns", "Dragon crew returns")
