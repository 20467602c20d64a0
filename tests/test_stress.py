"""Many pages extracted many times at once, as a busy digest run does: nothing crashes, and
every result is the one a lone, sequential extraction gives. The CI version uses the pages
the project ships; the full version every real page of ../shared/corpus, when present."""

from __future__ import annotations

import gzip
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from digest.demo.site import SampleSite, load_sample_articles
from digest.errors import ExtractError
from digest.extract import extract_article
from digest.extract.isolated import ExtractionPool
from digest.models import Article, FeedEntry

PAGES = Path(__file__).parent / "pages"
Page = tuple[bytes, FeedEntry]
Outcome = Article | str


def shipped_pages() -> list[Page]:
    """The sample site's article pages and the small real-world-like pages in tests/pages."""
    site = SampleSite(load_sample_articles())
    site.base_url = "http://sample.example"
    pages = [(site.article_page(a).encode(), FeedEntry(url=site.base_url + a.path,
                                                        title=a.title, source_name="S"))
             for a in site.articles]
    pages += [(path.read_bytes(), FeedEntry(url=f"https://pages.example/{path.stem}/",
                                            title="", source_name="P"))
              for path in sorted(PAGES.glob("*.html"))]
    return pages


def corpus_pages(corpus: Path) -> list[Page]:
    """Every real article page of the corpus (the three sets with article pages)."""
    files = [(gzip.decompress(p.read_bytes()), p.name) for p in
             sorted((corpus / "article-extraction-benchmark" / "html").glob("*.html.gz"))]
    files += [(p.read_bytes(), p.name) for p in sorted((corpus / "trafilatura" / "html").iterdir())]
    files += [((p / "source.html").read_bytes(), p.name)
              for p in sorted((corpus / "readability" / "test-pages").iterdir())]
    return [(body, FeedEntry(url=f"https://corpus.example/{name}", title="", source_name="C"))
            for body, name in files]


def outcome(extract: object, page: Page) -> Outcome:
    """The Article, or the ExtractError's message."""
    body, entry = page
    try:
        return extract(body, entry)  # type: ignore[operator, no-any-return]
    except ExtractError as exc:
        return str(exc)


def hammer(extract: object, pages: list[Page], *, rounds: int,
           threads: int) -> tuple[list[Outcome], float]:
    """Every page `rounds` times over, from `threads` threads at once."""
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda p: outcome(extract, p), pages * rounds))
    return results, time.monotonic() - started


def assert_same_as_alone(pages: list[Page], results: list[Outcome], rounds: int) -> None:
    alone = [outcome(extract_article, page) for page in pages]
    assert len(results) == len(pages) * rounds
    differing = [i % len(pages) for i, got in enumerate(results) if got != alone[i % len(pages)]]
    assert differing == [], [pages[i][1].url for i in differing[:5]]


def test_shipped_pages_extracted_20_times_over_concurrently_never_crash() -> None:
    pages = shipped_pages()
    with ExtractionPool() as pool:
        results, _ = hammer(pool.extract, pages, rounds=20, threads=8)
    assert_same_as_alone(pages, results, rounds=20)
    assert all(isinstance(r, Article) for r in results)


def test_extraction_in_threads_of_one_process_gives_the_lone_result() -> None:
    pages = shipped_pages()
    results, _ = hammer(extract_article, pages, rounds=4, threads=4)
    assert_same_as_alone(pages, results, rounds=4)


def test_every_corpus_page_extracted_20_times_over_concurrently_never_crashes(
        shared_corpus: Path) -> None:
    pages = corpus_pages(shared_corpus) + shipped_pages()
    with ExtractionPool() as pool:
        results, seconds = hammer(pool.extract, pages, rounds=20, threads=8)
    assert_same_as_alone(pages, results, rounds=20)
    failures = {r for r in results if isinstance(r, str)}
    assert all("no article text found" in reason for reason in failures), failures
    print(f"{len(results)} extractions of {len(pages)} pages in {seconds:.1f} s")
