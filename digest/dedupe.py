"""The same story from two sources appears once: entries with the same canonical URL,
the same GUID or a near-identical title are merged, the first source listing the others."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from difflib import SequenceMatcher

from digest.models import Article, FeedEntry
from digest.sources.feed import normalise_label
from digest.urls import strip_tracking

TITLE_SIMILARITY = 0.92


def title_key(title: str) -> str:
    """A title reduced to lowercase words without accents or punctuation."""
    return " ".join(re.findall(r"\w+", normalise_label(title)))


def same_title(a: str, b: str) -> bool:
    """True for titles that differ at most by punctuation, case or a few characters."""
    ka, kb = title_key(a), title_key(b)
    if not ka or not kb:
        return False
    if ka == kb:
        return True
    # "Soyuz MS-27 …" and "Soyuz MS-28 …" are different stories however alike they read.
    if re.findall(r"\d+", ka) != re.findall(r"\d+", kb):
        return False
    return SequenceMatcher(None, ka, kb).ratio() >= TITLE_SIMILARITY


def merge_entries(entries: Sequence[FeedEntry]) -> list[FeedEntry]:
    """One entry per story, in first-seen order, with the other sources in also_reported_by."""
    merged: list[FeedEntry] = []
    for entry in entries:
        twin = next((i for i, kept in enumerate(merged) if _same_story(kept, entry)), None)
        if twin is None:
            merged.append(entry)
        elif entry.source_name != merged[twin].source_name or entry.url != merged[twin].url:
            merged[twin] = _with_other(merged[twin], entry.source_name, entry.url)
    return merged


def merge_articles(articles: Sequence[Article]) -> list[Article]:
    """Articles that turned out to share a canonical URL or title after fetching, merged."""
    merged: list[Article] = []
    for article in articles:
        twin = next((i for i, kept in enumerate(merged)
                     if kept.url == article.url or same_title(kept.title, article.title)), None)
        if twin is None:
            merged.append(article)
            continue
        kept = merged[twin]
        others = dict(kept.also_reported_by)
        for name, url in ((article.source_name, article.url), *article.also_reported_by):
            if url != kept.url and name != kept.source_name:
                others.setdefault(name, url)
        merged[twin] = replace(kept, also_reported_by=tuple(others.items()))
    return merged


def _same_story(a: FeedEntry, b: FeedEntry) -> bool:
    if strip_tracking(a.url) == strip_tracking(b.url):
        return True
    if a.guid and a.guid == b.guid:
        return True
    return same_title(a.title, b.title)


def _with_other(entry: FeedEntry, name: str, url: str) -> FeedEntry:
    others = dict(entry.also_reported_by)
    if name != entry.source_name:
        others.setdefault(name, url)
    return replace(entry, also_reported_by=tuple(others.items()))
