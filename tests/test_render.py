from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.errors import ConfigError
from digest.models import Article, Digest, DigestItem, Summary
from digest.render import RenderOptions, personalise, placeholders, render_digest
from tests.conftest import REPO

OPTIONS = RenderOptions(templates=REPO / "templates",
                        subject_template="{{ title }}: {{ count }} new",
                        base_url="https://digest.example", postal_address="1 Launch Lane")


def digest(title: str = "Soyuz <MS-28> docks & more") -> Digest:
    article = Article(url="https://n.example/a?x=1&y=2", title=title, source_name="Orbital Desk",
                      published=datetime(2026, 11, 24, tzinfo=UTC),
                      paragraphs=("Body.",), source_line="Source: (Reuters)",
                      disclaimer_line="(Disclaimer: Details may evolve.)")
    summary = Summary(sentences=("The capsule docked.", "The crew is well."),
                      source_line=article.source_line, disclaimer_line=article.disclaimer_line)
    return Digest(title="Spacecraft Digest", category="Spacecraft",
                  created_at=datetime(2026, 11, 26, 7, tzinfo=UTC),
                  items=(DigestItem(article, summary),))


def test_css_is_inlined_and_media_queries_are_kept() -> None:
    rendered = render_digest(digest(), OPTIONS)
    assert re.search(r'<p class="summary" style="[^"]*font-size:15px', rendered.html)
    style_blocks = re.findall(r"<style[^>]*>(.*?)</style>", rendered.html, re.S)
    leftover = " ".join(style_blocks)
    assert "@media only screen and (max-width: 620px)" in leftover
    assert "prefers-color-scheme: dark" in leftover
    without_media = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", leftover)
    assert "{" not in without_media  # every plain rule went inline


def test_article_fields_are_escaped_in_html() -> None:
    rendered = render_digest(digest(), OPTIONS)
    assert "Soyuz &lt;MS-28&gt; docks &amp; more" in rendered.html
    assert 'href="https://n.example/a?x=1&amp;y=2"' in rendered.html


def test_text_part_has_each_line_and_url_on_its_own_line() -> None:
    text = render_digest(digest(), OPTIONS).text
    lines = text.splitlines()
    assert "https://n.example/a?x=1&y=2" in lines
    assert "Source: (Reuters)" in lines
    assert "(Disclaimer: Details may evolve.)" in lines
    assert all(len(line) <= 78 for line in lines if "://" not in line)
    assert "<" not in text.replace("<MS-28>", "")


def test_personalise_fills_and_escapes_subscriber_values() -> None:
    rendered = render_digest(digest(), OPTIONS)
    assert placeholders(rendered.marker)["unsubscribe_url"] in rendered.html
    html, text = personalise(rendered, name='"<b>Ada</b>" Lovelace', email="ada@example.org",
                             unsubscribe_url="https://digest.example/unsubscribe/t?a=1&b=2")
    assert "%%" not in html and "%%" not in text
    assert "Hello &quot;&lt;b&gt;Ada&lt;/b&gt;&quot;," in html
    assert 'href="https://digest.example/unsubscribe/t?a=1&amp;b=2"' in html
    assert "https://digest.example/unsubscribe/t?a=1&b=2" in text.splitlines()
    assert 'Hello "<b>Ada</b>",' in text.splitlines()


def test_subject_comes_from_the_configured_template() -> None:
    assert render_digest(digest(), OPTIONS).subject == "Spacecraft Digest: 1 new"


def test_bad_subject_template_is_a_config_error() -> None:
    options = RenderOptions(templates=REPO / "templates", subject_template="{{ title",
                            base_url="https://x.example")
    with pytest.raises(ConfigError, match="template error"):
        render_digest(digest(), options)


def test_missing_template_folder_is_named(tmp_path: Path) -> None:
    options = RenderOptions(templates=tmp_path, subject_template="x", base_url="https://x.example")
    with pytest.raises(ConfigError, match=f"{tmp_path} has no digest.html"):
        render_digest(digest(), options)
