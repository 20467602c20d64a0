"""The draft-editing model: exclusions, pins, manual order, headlines and summaries are
kept per article URL and survive a rebuild of the draft when new articles arrive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.compose import build_digest
from digest.draft import arrange, move
from digest.models import ArticleEdit
from digest.state import open_url
from tests.test_compose import NOW, article, config

TOPICS = ["Lunar lander", "Solar sail", "Cargo ship", "Space telescope", "Mars rover"]
BODY = ("The mission team said on Monday that the spacecraft had passed every check so far "
        "and would continue on its planned course over the coming weeks.")


def articles(count: int = 4, *, start: int = 0) -> list:  # type: ignore[type-arg]
    return [article(f"{TOPICS[i]} reaches milestone {i}", f"Site{i}",
                    f"{TOPICS[i]} number {i}: {BODY}", hours_ago=10 - i,
                    url=f"https://news.example/{i}") for i in range(start, start + count)]


def urls(digest) -> list[str]:  # type: ignore[no-untyped-def]
    return [item.article.url for item in digest.items]


def test_natural_order_is_newest_first_without_edits(tmp_path: Path) -> None:
    digest = build_digest(config(tmp_path), articles(), NOW)
    assert urls(digest) == [f"https://news.example/{i}" for i in (3, 2, 1, 0)]


def test_excluded_articles_leave_and_pinned_ones_lead(tmp_path: Path) -> None:
    edits = {"https://news.example/2": ArticleEdit("https://news.example/2", excluded=True),
             "https://news.example/0": ArticleEdit("https://news.example/0", pinned=True)}
    digest = build_digest(config(tmp_path), articles(), NOW, edits)
    assert urls(digest) == ["https://news.example/0", "https://news.example/3",
                            "https://news.example/1"]


def test_headline_summary_and_note_replace_the_generated_ones(tmp_path: Path) -> None:
    url = "https://news.example/1"
    edits = {url: ArticleEdit(url, headline="A better headline", summary="Short and true.")}
    digest = build_digest(config(tmp_path), articles(), NOW, edits, note="Welcome back.")
    item = next(i for i in digest.items if i.article.url == url)
    assert item.article.title == "A better headline"
    assert item.summary.sentences == ("Short and true.",) and item.summary.method == "edited"
    assert item.summary.source_line == "Source: (Reuters)"
    assert digest.editor_note == "Welcome back."


def test_moves_are_kept_when_new_articles_arrive(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    first = build_digest(cfg, articles(), NOW)
    order = move(urls(first), "https://news.example/0", -3)  # oldest to the top
    edits = {u: ArticleEdit(u, position=i) for i, u in enumerate(order)}
    edits["https://news.example/2"] = ArticleEdit("https://news.example/2", position=2,
                                                  excluded=True)
    rebuilt = build_digest(cfg, articles(5), NOW + timedelta(hours=1), edits)
    # The newcomer (4, newest) takes its natural place at the top; the editor's order of
    # the others holds; the exclusion holds.
    assert urls(rebuilt) == ["https://news.example/4", "https://news.example/0",
                             "https://news.example/3", "https://news.example/1"]


def test_arrange_keeps_moved_items_in_their_slots() -> None:
    edits = {"b": ArticleEdit("b", position=1), "a": ArticleEdit("a", position=0)}
    assert arrange(["x", "a", "y", "b"], str, edits) == ["x", "a", "y", "b"]
    edits = {"b": ArticleEdit("b", position=0), "a": ArticleEdit("a", position=1)}
    assert arrange(["x", "a", "y", "b"], str, edits) == ["x", "b", "y", "a"]


def test_move_clamps_at_the_ends() -> None:
    assert move(["a", "b", "c"], "a", -1) == ["a", "b", "c"]
    assert move(["a", "b", "c"], "a", 1) == ["b", "a", "c"]
    assert move(["a", "b", "c"], "c", 5) == ["a", "b", "c"]


def test_edits_are_stored_per_url_and_an_edited_summary_can_be_undone(tmp_path: Path) -> None:
    with open_url(f"sqlite:///{tmp_path / 'state.sqlite3'}") as state:
        records = state.editorial
        now = datetime(2026, 11, 26, tzinfo=UTC)
        records.save_article_edit("https://news.example/1", now, "edith", text="Edited.")
        records.save_article_edit("https://news.example/1", now, "edith", pinned=1)
        edit = records.article_edits()["https://news.example/1"]
        assert edit.summary == "Edited." and edit.pinned
        assert records.clear_summary_edit("https://news.example/1")
        edit = records.article_edits()["https://news.example/1"]
        assert edit.summary == "" and edit.pinned  # the pin stays; the summary is generated
