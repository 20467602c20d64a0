"""Rendering cost: a 10, 50 and 100 article digest rendered and inlined; ms per digest for
the whole render (Jinja2 + premailer) and for premailer alone, and, as the baseline that
motivates rendering once per digest, the cost of filling one subscriber's placeholders
into the finished HTML against inlining it again per subscriber. Then the per-subscriber
cost of a whole spliced message (what the send loop pays for each reader) with click
tracking off (the baseline), on for the digest, and on per reader: tokens are spliced in,
never re-rendered, so the cost should stay within noise of the baseline.

    .venv/bin/python bench/render.py
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import digest.render as render_module  # noqa: E402
from digest.message import Envelope  # noqa: E402
from digest.models import (  # noqa: E402
    Article,
    Digest,
    DigestItem,
    Recipient,
    Summary,
    TrackingMode,
)
from digest.render import (  # noqa: E402
    RenderOptions,
    inline_css,
    personalise,
    render_digest,
)
from digest.splice import MessageTemplate  # noqa: E402
from digest.tracking import longest_click_url  # noqa: E402

NOW = datetime(2026, 11, 26, 7, tzinfo=UTC)
OPTIONS = RenderOptions(templates=REPO / "templates", subject_template="{{ title }}",
                        base_url="https://digest.example", postal_address="1 Launch Lane",
                        max_html_bytes=10_000_000)


def digest_of(count: int) -> Digest:
    items = []
    for i in range(count):
        sentences = (f"The spacecraft number {i} reached orbit after a flawless launch on "
                     "Tuesday morning from the coast.",
                     "Engineers said every system aboard was working as expected.",
                     "The mission will last about six months.")
        article = Article(url=f"https://news.example/{i}/", title=f"Spacecraft {i} reaches orbit",
                          source_name="Orbital Desk", published=NOW - timedelta(hours=i),
                          paragraphs=sentences, source_line="Source: (Reuters)",
                          disclaimer_line="(Disclaimer: Details may evolve.)",
                          image_url=f"https://news.example/{i}.jpg", image_alt="Launch")
        items.append(DigestItem(article, Summary(sentences, article.source_line,
                                                 article.disclaimer_line)))
    return Digest(title="Spacecraft Digest", category="Spacecraft", created_at=NOW,
                  items=tuple(items), opening_line="Opening.", preheader="Preheader.")


def timed(action, repeat: int) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for _ in range(repeat):
        action()
    return (time.perf_counter() - started) * 1000 / repeat


def raw_page(digest: Digest) -> str:
    """The Jinja2 output premailer receives inside render_digest."""
    seen: list[str] = []
    original = render_module.inline_css

    def capture(page: str) -> str:
        seen.append(page)
        return original(page)

    render_module.inline_css = capture
    try:
        render_digest(digest, OPTIONS)
    finally:
        render_module.inline_css = original
    return seen[-1]


def main() -> int:
    print(f"{'articles':>8}{'render ms':>11}{'premailer ms':>14}{'share':>7}{'KB':>7}"
          f"{'fill µs':>9}{'re-inline/fill':>16}")
    for count in (10, 50, 100):
        digest = digest_of(count)
        rendered = render_digest(digest, OPTIONS)
        whole = timed(lambda d=digest: render_digest(d, OPTIONS), 5)
        raw = raw_page(digest)
        premailer_ms = timed(lambda r=raw: inline_css(r), 5)
        fill_us = 1000 * timed(lambda r=rendered: personalise(
            r, name="Ada Lovelace", email="ada@example.org",
            unsubscribe_url="https://digest.example/unsubscribe/abc.def",
            web_url="https://digest.example/archive/1/"), 200)
        print(f"{count:>8}{whole:>11.1f}{premailer_ms:>14.1f}{premailer_ms / whole:>7.0%}"
              f"{len(rendered.html.encode()) / 1024:>7.1f}{fill_us:>9.1f}"
              f"{premailer_ms * 1000 / fill_us:>15.0f}x")
    assert "ada@example.org" not in rendered.html  # placeholders, filled per subscriber
    spliced_per_subscriber()
    return 0


ENVELOPE = Envelope(from_address="Spacecraft Digest <digest@news.example>", reply_to="",
                    list_id="<digest.news.example>", base_url="https://digest.example",
                    archive_key=b"bench-key")
MODES = (("off (baseline)", TrackingMode()), ("clicks", TrackingMode(clicks=True)),
         ("clicks per reader", TrackingMode(clicks=True, per_reader=True)),
         ("clicks+opens per reader", TrackingMode(clicks=True, opens=True, per_reader=True)))


def spliced_per_subscriber(articles: int = 20, readers: int = 2000) -> None:
    """µs per spliced message for each tracking mode, as the send loop builds them."""
    from dataclasses import replace

    digest = digest_of(articles)
    recipients = [Recipient(delivery_id=i, email=f"reader{i}@example.org",
                            name=f"Reader {i} Example", token_id=f"tok{i:013d}")
                  for i in range(readers)]
    print(f"\nper-subscriber message, {articles} articles, {readers} readers, best of 3")
    print(f"{'tracking':>24}{'µs/message':>12}{'KB':>7}{'vs off':>8}")
    baseline = 0.0
    for label, mode in MODES:
        options = replace(OPTIONS, tracking=mode,
                          link_length=len(longest_click_url(OPTIONS.base_url, mode)))
        template = MessageTemplate(render_digest(digest, options), envelope=ENVELOPE,
                                   digest_id=7, created_at=NOW,
                                   unsubscribe_base="https://digest.example/unsubscribe/")
        best = min(_per_message(template, recipients) for _ in range(3))
        size = len(template.message_bytes(recipients[0], "t.abc", "<m@x>")) / 1024
        baseline = baseline or best
        print(f"{label:>24}{best:>12.1f}{size:>7.1f}{best / baseline:>7.2f}x")


def _per_message(template: MessageTemplate, recipients: list[Recipient]) -> float:
    started = time.perf_counter()
    for r in recipients:
        template.message_bytes(r, f"t.{r.token_id}", f"<digest-7.{r.delivery_id}@x>")
    return (time.perf_counter() - started) * 1e6 / len(recipients)


if __name__ == "__main__":
    raise SystemExit(main())
