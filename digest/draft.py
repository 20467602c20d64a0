"""The draft-editing model: an editor's changes (exclude, pin, move, new headline or
summary) are kept per article URL and applied to whatever articles the next digest has,
so they survive a rebuild of the draft when new articles arrive. Pure functions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from digest.models import Article, ArticleEdit

T = TypeVar("T")


def included(articles: Sequence[Article], edits: Mapping[str, ArticleEdit]) -> list[Article]:
    """The articles the editor has not excluded, with their edited headlines."""
    kept = []
    for article in articles:
        edit = edits.get(article.url)
        if edit and edit.excluded:
            continue
        if edit and edit.headline:
            article = replace(article, title=edit.headline)
        kept.append(article)
    return kept


def excluded(articles: Sequence[Article], edits: Mapping[str, ArticleEdit]) -> list[Article]:
    """The articles the editor has excluded."""
    return [a for a in articles if (e := edits.get(a.url)) is not None and e.excluded]


def arrange(items: Sequence[T], url_of: Callable[[T], str],
            edits: Mapping[str, ArticleEdit]) -> list[T]:
    """Items in the editor's order: pinned ones first (in their manual order), then the
    rest, where the ones the editor moved keep their relative order and the places they
    occupy, and the others (new arrivals included) stay where the natural order put them."""
    def position(item: T) -> int:
        edit = edits.get(url_of(item))
        return edit.position if edit and edit.position is not None else 0

    def is_pinned(item: T) -> bool:
        edit = edits.get(url_of(item))
        return bool(edit and edit.pinned)

    pinned = sorted((i for i in items if is_pinned(i)), key=position)
    rest = [i for i in items if not is_pinned(i)]
    moved = iter(sorted((i for i in rest if _has_position(url_of(i), edits)), key=position))
    ordered = [next(moved) if _has_position(url_of(i), edits) else i for i in rest]
    return pinned + ordered


def move(order: Sequence[str], url: str, step: int) -> list[str]:
    """The URLs with `url` moved `step` places (negative: up), clamped at the ends."""
    urls = list(order)
    if url not in urls:
        return urls
    at = urls.index(url)
    target = max(0, min(len(urls) - 1, at + step))
    urls.insert(target, urls.pop(at))
    return urls


def _has_position(url: str, edits: Mapping[str, ArticleEdit]) -> bool:
    edit = edits.get(url)
    return edit is not None and edit.position is not None
