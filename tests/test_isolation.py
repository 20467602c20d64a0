"""Extraction in isolated worker processes: a page that overruns the time limit, exhausts
the memory cap or loses its worker fails alone, the pool replaces the worker, and the rest
of the digest goes out. Hostile pages are real HTML, served over HTTP by the sample site."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from digest import pipeline
from digest.demo.site import SampleSite, SiteServer, load_sample_articles
from digest.demo.smtp_sink import SmtpSink
from digest.errors import ExtractError
from digest.extract import isolated
from digest.extract.isolated import ExtractionPool
from digest.models import FeedEntry
from tests.conftest import Project, parse, parts

ENTRY = FeedEntry(url="https://news.example/hostile/", title="Hostile", source_name="News")
TIGHT_MEMORY = 150 * 2**20


def endless_paragraphs(count: int = 40_000) -> bytes:
    """A page of tens of thousands of one-word paragraphs: seconds of extraction work."""
    return ("<html><body><article>" + "<p>Word " * count + "</article></body></html>").encode()


def huge_table(rows: int = 30_000) -> bytes:
    """A page whose tree and its copies need far more memory than a news page."""
    row = "<tr><td>cell text here</td><td>more</td></tr>"
    return f"<html><body><table>{row * rows}</table></body></html>".encode()


def sample_page() -> tuple[bytes, FeedEntry]:
    site = SampleSite(load_sample_articles())
    site.base_url = "http://sample.example"
    sample = site.articles[0]
    entry = FeedEntry(url=site.base_url + sample.path, title=sample.title, source_name="S")
    return site.article_page(sample).encode(), entry


def test_a_page_over_the_time_limit_fails_alone_and_the_worker_is_replaced() -> None:
    body, entry = sample_page()
    with ExtractionPool(1, time_limit=1.0) as pool:
        started = time.monotonic()
        with pytest.raises(ExtractError, match=r"^https://news\.example/hostile/: extraction "
                                               r"took longer than 1 s and was stopped$"):
            pool.extract(endless_paragraphs(), ENTRY)
        assert time.monotonic() - started < 5
        assert pool.extract(body, entry).title == entry.title


def test_a_page_over_the_memory_cap_fails_alone_and_the_worker_is_replaced() -> None:
    body, entry = sample_page()
    with ExtractionPool(1, memory_limit=TIGHT_MEMORY) as pool:
        with pytest.raises(ExtractError, match=r"^https://news\.example/hostile/: extraction "
                                               r"ran out of memory \(over the 150 MiB limit"):
            pool.extract(huge_table(), ENTRY)
        assert pool.extract(body, entry).title == entry.title


def test_a_worker_killed_mid_page_is_that_page_s_failure_only() -> None:
    body, entry = sample_page()
    with ExtractionPool(1) as pool:
        pool.extract(body, entry)  # the worker is up
        (worker,) = pool._all
        killer = threading.Timer(0.5, os.kill, (worker.process.pid, signal.SIGKILL))
        killer.start()
        with pytest.raises(ExtractError, match="hostile/: the extraction process was killed "
                                               "by SIGKILL while extracting the page"):
            pool.extract(endless_paragraphs(), ENTRY)
        killer.join()
        assert pool.extract(body, entry).url == entry.url


def test_closing_the_pool_leaves_no_worker_process_behind() -> None:
    body, entry = sample_page()
    with ExtractionPool(2) as pool:
        threads = [threading.Thread(target=pool.extract, args=(body, entry)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        pids = [w.process.pid for w in pool._all]
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_pages_that_stall_or_exhaust_extraction_fail_alone_and_the_digest_goes_out(
        project: Project, site: SiteServer, smtp: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolated, "TIME_LIMIT", 5.0)  # the greedy page hits the cap in ~2 s
    monkeypatch.setattr(isolated, "MEMORY_LIMIT", 200 * 2**20)
    slow, greedy, *others = site.site.by_category("spacecraft")
    original = site.site.page

    def page(path: str) -> tuple[int, str, str]:
        if path == slow.path:
            return 200, "text/html; charset=utf-8", endless_paragraphs(60_000).decode()
        if path == greedy.path:
            return 200, "text/html; charset=utf-8", huge_table(60_000).decode()
        return original(path)

    site.site.page = page  # type: ignore[method-assign]
    report = pipeline.run_cycle(project.config)
    assert (report.summarized, report.sent) == (len(others), 3), report.failures
    reasons = {f.url: f.reason for f in report.failures}
    assert "extraction took longer than 5 s" in reasons[site.url + slow.path]
    assert "extraction ran out of memory" in reasons[site.url + greedy.path]
    text, _ = parts(parse(smtp.messages[0].data))
    assert slow.title not in text and greedy.title not in text
    assert all(o.title in text for o in others)
