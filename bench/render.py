"""Rendering cost: a 10, 50 and 100 article digest rendered and inlined; ms per digest for
the whole render (Jinja2 + premailer) and for premailer alone, and, as the baseline that
motivates rendering once per digest, the cost of filling one subscriber's placeholders
into the finished HTML against inlining it again per subscriber.

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
from digest.models import Article, Digest, DigestItem, Summary  # noqa: E402
from digest.render import (  # noqa: E402
    PLACEHOLDERS,
    RenderOptions,
    inline_css,
    personalise,
    render_digest,
)

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
    assert all(marker in rendered.html for marker in (PLACEHOLDERS["unsubscribe_url"],))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
