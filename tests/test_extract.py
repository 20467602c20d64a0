from __future__ import annotations

from pathlib import Path

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


@pytest.mark.parametrize(("markup", "source", "disclaimer"), [
    ("<p>Source: (Reuters)<br>(Disclaimer: Details may evolve.)</p>",
     "Source: (Reuters)", "(Disclaimer: Details may evolve.)"),
    ("<p>Controllers cheered in the room.<br/>Sources: NASA, ESA</p>", "Sources: NASA, ESA", ""),
    ("<p><small>Source: Press Trust of India</small></p>", "Source: Press Trust of India", ""),
    ("<blockquote>Disclaimer: Figures are provisional.</blockquote>", "",
     "Disclaimer: Figures are provisional."),
    ('<div class="story-note">Source: AFP</div>', "Source: AFP", ""),
    ("<hr>Source: ESA<hr/>(Disclaimer: Based on a briefing.)", "Source: ESA",
     "(Disclaimer: Based on a briefing.)"),
    ("<p>Source:&nbsp;&nbsp;JAXA</p>", "Source: JAXA", ""),
    ("<p>Orbit was confirmed an hour later. <em>Source: Roscosmos</em></p>",
     "Source: Roscosmos", ""),
])
def test_attribution_lines_are_found_in_any_markup_each_as_its_own_line(
        markup: str, source: str, disclaimer: str) -> None:
    article = extract_article(page(markup), ENTRY)
    assert (article.source_line, article.disclaimer_line) == (source, disclaimer)
    for line in (source, disclaimer):
        assert all(not line or line not in p for p in article.paragraphs)


def test_attribution_line_between_body_paragraphs_is_found() -> None:
    html = page("").replace("<h2>Arrival</h2>", "<h2>Arrival</h2><p>(Source: AP)</p>")
    assert extract_article(html, ENTRY).source_line == "(Source: AP)"


def test_body_text_before_a_br_attribution_line_stays_in_the_body() -> None:
    article = extract_article(page("<p>Crews will inspect the heat shield.<br>Source: NASA"
                                   "</p>"), ENTRY)
    assert "Crews will inspect the heat shield." in article.paragraphs


@pytest.mark.parametrize("markup", [
    '<p>Source: <a href="/2019/10/08/trump-irritated-by-report/">Trump &#8216;irritated&#8217; '
    "by report &#8230;</a></p>",
    "<p><em>Disclaimer: We may earn a commission when you buy through links on our site.</em>"
    "</p>",
    '<div class="article-source">Source: 3 hours ago</div>',
    "<p>Source: Updated 10:32 AM ET, Nov 3, 2019</p>",
    '<figure><img src="/a.jpg"><figcaption>Credit: NASA/Bill Ingalls</figcaption></figure>',
    '<p><img src="/b.jpg"></p><p>Credit: Getty Images</p>',
    "<h3>Sources: Agency weighs a second landing site</h3>",
    '<aside class="widget"><p>Sources: Rival plans bid for the launch contract</p></aside>',
    '<p class="caption">Photo: the rocket at dawn. Credit: Agency</p>',
    "<footer><p>Disclaimer: All content is for informational purposes only.</p></footer>",
    "<p>Disclaimer: This is not financial advice.</p>",
])
def test_look_alike_lines_are_never_taken_for_attribution_lines(markup: str) -> None:
    article = extract_article(page(markup), ENTRY)
    assert (article.source_line, article.disclaimer_line) == ("", "")


def test_wire_story_keeps_its_lines_and_leaves_the_sidebar_and_footer_alone() -> None:
    html = (Path(__file__).parent / "pages" / "wire-story.html").read_bytes()
    article = extract_article(html, FeedEntry(url="https://orbit.example/a/", title="",
                                              source_name="Orbit"))
    assert article.source_line == "Source: (Reuters)"
    assert article.disclaimer_line == ("(Disclaimer: This story was auto-generated from a "
                                       "syndicated feed; only the headline may have been "
                                       "reworked by staff.)")
    assert article.title == "Lander Touches Down Near Lunar South Pole"
    assert article.image_url == "https://orbit.example/media/lander-1280.jpg"


def headline_page(head: str, body: str = "") -> str:
    return page("").replace("<title>T</title>", head).replace(
        '<article><h1 class="entry-title">Probe Reaches Venus</h1>', f"<article>{body}")


def test_the_feed_title_wins_over_the_page_headline() -> None:
    html = headline_page('<meta property="og:title" content="Venus probe: live updates">')
    assert extract_article(html, ENTRY).title == "Feed title"


def test_without_a_feed_title_the_page_headline_is_used_without_the_site_name() -> None:
    html = headline_page('<meta property="og:site_name" content="Orbital Desk">'
                         '<meta property="og:title" content="Probe Reaches Venus | Orbital Desk">')
    entry = FeedEntry(url=ENTRY.url, title="", source_name="News")
    assert extract_article(html, entry).title == "Probe Reaches Venus"


def test_a_truncated_feed_title_is_completed_from_the_page() -> None:
    html = headline_page('<script type="application/ld+json">{"@type": "NewsArticle", '
                         '"headline": "Probe Reaches Venus After a Seven-Month Cruise"}</script>')
    entry = FeedEntry(url=ENTRY.url, title="Probe Reaches Venus After a…", source_name="N")
    assert extract_article(html, entry).title == "Probe Reaches Venus After a Seven-Month Cruise"


def test_site_chrome_is_never_taken_for_the_headline() -> None:
    html = ('<html><head><title>thanks for visiting cnnmoney.</title></head><body>'
            '<header><h1>MENU</h1></header><main><article><h1>Cargo Ship Docks With Station</h1>'
            "<p>The cargo ship docked with the station on Sunday after a two-day chase through "
            "low orbit, carrying food, water and experiments for the crew.</p>"
            "<p>The crew will unload it over the coming week.</p></article></main></body></html>")
    entry = FeedEntry(url=ENTRY.url, title="", source_name="N")
    assert extract_article(html, entry).title == "Cargo Ship Docks With Station"
    only_chrome = html.replace("<h1>Cargo Ship Docks With Station</h1>", "")
    assert extract_article(only_chrome, entry).title == ""


@pytest.mark.parametrize(("head", "img", "expected"), [
    ('<meta property="og:image" content="/i/a-320.jpg 320w, /i/a-1280.jpg 1280w, '
     '/i/a-640.jpg 640w">', "", "https://news.example/i/a-1280.jpg"),
    ('<meta property="og:image" content="https://cdn.example/a.jpeg%20320w,%20https://cdn.'
     'example/b.jpeg%20960w">', "", "https://cdn.example/b.jpeg"),
    ('<base href="https://static.example/news/">', '<img src="x.jpg" srcset="s.jpg 1x, '
     'l.jpg 2x" alt="A">', "https://static.example/news/l.jpg"),
    ("", '<img src="data:image/gif;base64,R0lGOD" data-src="/i/lazy.jpg" alt="A">',
     "https://news.example/i/lazy.jpg"),
    ('<meta property="og:image" content="javascript:alert(1)">', "", ""),
])
def test_lead_image_is_one_absolute_url_or_none(head: str, img: str, expected: str) -> None:
    html = page("").replace("<title>T</title>", f"<title>T</title>{head}").replace(
        "<h2>Arrival</h2>", f"<h2>Arrival</h2>{img}")
    article = extract_article(html, ENTRY)
    assert article.image_url == expected
    assert " " not in article.image_url and "," not in article.image_url
