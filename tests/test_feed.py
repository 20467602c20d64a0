from __future__ import annotations

import pytest

from digest.errors import FeedError
from digest.models import FeedEntry
from digest.sources.feed import entries_from_feed, in_category

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>
<item><title>A</title><link>https://n.example/a</link><category>SpaceCraft</category>
<pubDate>Tue, 24 Nov 2026 09:30:00 +0000</pubDate></item>
<item><title>B</title><link>https://n.example/b</link><category>Astronomy</category></item>
<item><title>C</title><link>https://n.example/c</link><category>Spacécraft</category></item>
</channel></rss>"""


def test_items_are_kept_by_category_case_and_accent_insensitively() -> None:
    entries, feed_is_category = entries_from_feed(RSS.encode(), url="https://n.example/feed/",
                                                  source_name="N", category="Spacecraft")
    kept = [e.url for e in entries if in_category(e, "Spacecraft", feed_is_category)]
    assert kept == ["https://n.example/a", "https://n.example/c"]
    assert entries[0].published is not None and entries[0].published.tzinfo is not None


def test_uncategorised_items_count_when_the_feed_is_the_categorys_own() -> None:
    entry = FeedEntry(url="u", title="t", source_name="s")
    assert in_category(entry, "Spacecraft", source_is_category=True)
    assert not in_category(entry, "Spacecraft", source_is_category=False)


@pytest.mark.parametrize("body", [
    b"<html><body><h1>Welcome</h1></body></html>",
    b"not xml at all",
    b"",
])
def test_something_that_is_not_a_feed_is_refused_naming_the_url(body: bytes) -> None:
    with pytest.raises(FeedError, match=r"https://n.example/feed/: not a readable"):
        entries_from_feed(body, url="https://n.example/feed/", source_name="N",
                          category="Spacecraft")
