from __future__ import annotations

import pytest

from digest.demo.site import SampleSite, disclaimer_markup, load_sample_articles, source_markup
from digest.extract import extract_article
from digest.models import FeedEntry

ENTRY = FeedEntry(url="https://news.example/a/", title="Feed title", source_name="News")


def page(body: str) -> str:
    return f"""<html><head><title>T</title></head><body>
<article><h1 class="entry-title">Probe Reaches Venus</h1>
<div class="entry-content">
<h2>Arrival</h2>
<p>The probe fired its engine for 48 minutes and entered orbit around Venus on Tuesday.</p>
<p>Engineers said the burn went exactly as planned, and the spacecraft is healthy.</p>
{body}
<p><strong>Also Read:</strong> <a href="/x">Another story</a></p>
<div class="sharedaddy"><h3>Share this:</h3><a href="#">Twitter</a></div>
</div>
<div id="respond"><h3>Leave a Reply</h3><form><p>Your email address will not be published.
Required fields are marked *</p></form></div>
</article></body></html>"""


@pytest.mark.parametrize(("markup", "expected"), [
    ("<p>Source:  (Reuters)</p>", "Source: (Reuters)"),
    ("<p><strong>Source:</strong> NASA</p>", "Source: NASA"),
    ('<p class="article-source">Source - ESA</p>', "Source - ESA"),
    ("<p><em>Sources: AP, AFP</em></p>", "Sources: AP, AFP"),
    ('<div class="credit">Courtesy: JAXA</div>', "Courtesy: JAXA"),
    ("<p>Credit: Roscosmos</p>", "Credit: Roscosmos"),
])
def test_source_line_is_found_however_it_is_marked_up(markup: str, expected: str) -> None:
    article = extract_article(page(markup), ENTRY)
    assert article.source_line == expected
    assert all(expected not in p for p in article.paragraphs)


@pytest.mark.parametrize(("markup", "expected"), [
    ("<p>(Disclaimer:  Details may evolve.)</p>", "(Disclaimer: Details may evolve.)"),
    ("<p><em>(Disclaimer: Figures are provisional.)</em></p>",
     "(Disclaimer: Figures are provisional.)"),
    ('<p class="disclaimer">Disclaimer: Based on agency statements.</p>',
     "Disclaimer: Based on agency statements."),
    ("<p><strong>Disclaimer:</strong> May be updated.</p>", "Disclaimer: May be updated."),
])
def test_disclaimer_line_is_found_however_it_is_marked_up(markup: str, expected: str) -> None:
    article = extract_article(page(markup), ENTRY)
    assert article.disclaimer_line == expected


def test_boilerplate_is_not_part_of_the_text() -> None:
    article = extract_article(page("<p>Source: NASA</p>"), ENTRY)
    text = " ".join(article.paragraphs)
    for junk in ("Also Read", "Share this", "Twitter", "Leave a Reply", "Required fields"):
        assert junk not in text
    assert article.paragraphs[0].startswith("The probe fired its engine")
    assert "Arrival" not in article.paragraphs  # headings are not body paragraphs


def test_article_without_attribution_lines_is_still_extracted() -> None:
    article = extract_article(page(""), ENTRY)
    assert article.source_line == "" and article.disclaimer_line == ""
    assert len(article.paragraphs) == 2


def test_every_sample_article_keeps_its_own_lines() -> None:
    site = SampleSite(load_sample_articles())
    site.base_url = "http://sample.example"
    for sample in site.articles:
        entry = FeedEntry(url=site.base_url + sample.path, title=sample.title, source_name="S")
        article = extract_article(site.article_page(sample), entry)
        assert article.source_line == " ".join(sample.source.split())
        assert article.disclaimer_line == " ".join(sample.disclaimer.split())
        assert article.title == sample.title
        assert article.published == sample.published
        assert article.url == entry.url
        text = " ".join(article.paragraphs)
        assert "Sign up for our weekly newsletter" not in text
        assert "We use cookies" not in text


def test_sample_site_uses_at_least_four_markups_for_each_line() -> None:
    articles = load_sample_articles()
    source_styles = {a.source_style for a in articles if a.source}
    disclaimer_styles = {a.disclaimer_style for a in articles if a.disclaimer}
    assert len(source_styles) >= 4 and len(disclaimer_styles) >= 4
    rendered = {source_markup(a.source, a.source_style)[:12] for a in articles if a.source}
    assert len(rendered) >= 4


def test_disclaimer_markup_keeps_the_text() -> None:
    html = disclaimer_markup("Disclaimer: May change.", "strong")
    assert html == "<p><strong>Disclaimer:</strong> May change.</p>"


def test_source_line_in_parentheses_and_with_a_dash_variant() -> None:
    article = extract_article(page("<p>(Source: Reuters)</p>"), ENTRY)
    assert article.source_line == "(Source: Reuters)"
    article = extract_article(page("<p>Source — NASA/JPL</p>"), ENTRY)
    assert article.source_line == "Source — NASA/JPL"


def test_lines_only_in_the_feed_content_are_used() -> None:
    entry = FeedEntry(url="https://news.example/a/", title="T", source_name="News",
                      content_html="<p>Body text here.</p><p><strong>Source:</strong> ESA</p>"
                                   "<p><em>(Disclaimer: Provisional.)</em></p>")
    article = extract_article(page(""), entry)
    assert article.source_line == "Source: ESA"
    assert article.disclaimer_line == "(Disclaimer: Provisional.)"


def test_photo_credit_is_not_taken_for_the_source_line() -> None:
    markup = ('<figure><img src="/a.jpg" alt="Rocket on the pad"><figcaption>Credit: NASA/Bill '
              'Ingalls</figcaption></figure><p>Source: (Reuters)</p>')
    article = extract_article(page(markup), ENTRY)
    assert article.source_line == "Source: (Reuters)"
    assert all("Ingalls" not in p for p in article.paragraphs)


def test_lead_image_is_absolute_with_its_alt_text() -> None:
    html = page('<p>Source: NASA</p>').replace(
        "<title>T</title>", '<title>T</title><meta property="og:image" content="/img/lead.jpg">'
    ).replace("<h2>Arrival</h2>",
              '<h2>Arrival</h2><img src="/img/lead.jpg" alt="Venus from orbit">')
    article = extract_article(html, ENTRY)
    assert article.image_url == "https://news.example/img/lead.jpg"
    assert article.image_alt == "Venus from orbit"


def test_canonical_link_wins_and_tracking_parameters_go() -> None:
    html = page("").replace("<title>T</title>", '<title>T</title><link rel="canonical" '
                            'href="https://news.example/story/?utm_source=rss&id=7">')
    article = extract_article(html, ENTRY, page_url="https://news.example/a/?utm_medium=x")
    assert article.url == "https://news.example/story/?id=7"
