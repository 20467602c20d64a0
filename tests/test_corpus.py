"""Our extractor and feed reader on the real pages and feeds of ../shared/corpus,
checked against their ground truth. Skipped cleanly where the corpus is absent."""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime
from pathlib import Path

import pytest

from digest.errors import FeedError
from digest.extract import extract_article, extract_body_text, normalise_space
from digest.models import FeedEntry
from digest.sources.feed import entries_from_feed, plain_text
from tests.conftest import REPO


def _bench_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_extract", REPO / "bench" / "extract.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_extraction_benchmark_body_f1_and_precision(shared_corpus: Path) -> None:
    scores = _bench_module().score(extract_body_text,
                                   shared_corpus / "article-extraction-benchmark")
    assert scores["pages"] == 60
    assert scores["f1"] >= 0.96, scores
    assert scores["precision"] >= 0.94, scores


def test_wire_datelines_stay_in_the_body(shared_corpus: Path) -> None:
    folder = shared_corpus / "article-extraction-benchmark"
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    import gzip

    checked = 0
    for page_id, item in truth.items():
        if "(Reuters)" in item["articleBody"][:300] or "(AP)" in item["articleBody"][:300]:
            html = gzip.open(folder / "html" / f"{page_id}.html.gz").read().decode("utf-8",
                                                                                  "replace")
            body = extract_body_text(html, item["url"])
            marker = "(Reuters)" if "(Reuters)" in item["articleBody"][:300] else "(AP)"
            assert marker in body[:600], item["url"]
            checked += 1
    assert checked >= 2


def test_trafilatura_eval_pages_keep_content_and_drop_boilerplate(shared_corpus: Path) -> None:
    folder = shared_corpus / "trafilatura"
    data = json.loads((folder / "evaldata.json").read_text(encoding="utf-8"))
    found = wanted = absent = unwanted = dates = 0
    for url, item in data.items():
        html = (folder / "html" / item["file"]).read_bytes()
        body = normalise_space(extract_body_text(html.decode("utf-8", "replace"), url))
        found += sum(normalise_space(s) in body for s in item["with"])
        wanted += len(item["with"])
        absent += sum(normalise_space(s) not in body for s in item["without"])
        unwanted += len(item["without"])
        article = extract_article(html, FeedEntry(url=url, title="", source_name="corpus"))
        dates += bool(article.published and article.published.date().isoformat() == item["date"])
    # trafilatura itself, on these pages: 128/133, 127/138, dates 41/45
    assert found / wanted >= 0.88, (found, wanted)
    assert absent / unwanted >= 0.90, (absent, unwanted)
    assert dates / len(data) >= 0.85, dates


def _rss_parser_cases(corpus: Path) -> list[Path]:
    return sorted((corpus / "rss-parser" / "input").iterdir())


def test_rss_parser_feeds_match_their_expected_items(shared_corpus: Path) -> None:
    compared = 0
    for feed_file in _rss_parser_cases(shared_corpus):
        expected_file = shared_corpus / "rss-parser" / "output" / f"{feed_file.stem}.json"
        if not expected_file.exists():
            continue
        encoding = "latin-1" if feed_file.stem == "encoding" else "utf-8"
        expected = json.loads(expected_file.read_text(encoding=encoding))["feed"]
        try:
            entries, _ = entries_from_feed(feed_file.read_bytes(), url=expected.get("link") or
                                           "https://feed.example/", source_name="corpus",
                                           category="Spacecraft")
        except FeedError:
            assert feed_file.stem == "unrecognized"
            continue
        by_link = {e.url: e for e in entries}
        for item in expected.get("items", []):
            entry = by_link.get((item.get("link") or "").strip())
            if entry is None:
                continue  # off-host links are not followed, by design
            if "\ufffd" not in item.get("title", ""):  # expected text that is itself mojibake
                assert entry.title == plain_text(item.get("title", "")), feed_file.name
            if item.get("isoDate") and entry.published:
                iso = datetime.fromisoformat(item["isoDate"].replace("Z", "+00:00"))
                assert entry.published == iso.replace(microsecond=0), feed_file.name
            compared += 1
    assert compared >= 50


def test_unrecognized_input_is_a_clean_error(shared_corpus: Path) -> None:
    with pytest.raises(FeedError, match="not a readable RSS or Atom feed"):
        entries_from_feed((shared_corpus / "rss-parser" / "input" / "unrecognized.rss")
                          .read_bytes(), url="https://feed.example/", source_name="c",
                          category="Spacecraft")


def test_every_corpus_feed_parses_or_fails_cleanly(shared_corpus: Path) -> None:
    files = [p for folder in ("feed-rs", "feedjira", "node-feedparser", "rss-parser")
             for p in (shared_corpus / folder).rglob("*")
             if p.is_file() and p.suffix in (".xml", ".rss", ".atom", ".rdf")]
    assert len(files) > 50
    read = 0
    for path in files:
        try:
            entries_from_feed(path.read_bytes(), url="https://feed.example/",
                              source_name="c", category="Spacecraft")
            read += 1
        except FeedError as exc:
            assert "\n" not in str(exc)
    assert read > len(files) * 0.8
