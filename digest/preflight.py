"""Checks before sending: size, link and image URLs, the unsubscribe link, CSS that the
big clients do not support (caniemail data), and a SpamAssassin score when it is
installed. `digest preview` and every real run print the report; a failed check stops
the send unless the operator forces it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import lxml.html

OK, WARN, FAIL, SKIP = "ok", "warning", "FAILED", "skipped"
DECLARATION = re.compile(r"([a-zA-Z-]+)\s*:\s*([^;{}]+)")
MEDIA_BLOCK = re.compile(r"@media[^{]*\{((?:[^{}]*\{[^{}]*\})*[^{}]*)\}", re.S)
SPAM_SCORE = re.compile(rb"X-Spam-Status: \w+, score=(-?\d+(?:\.\d+)?)")
SHORTHAND = {"margin": "margin", "padding": "padding", "border": "border",
             "background": "background", "font": "font", "list-style": "list-style"}


@dataclass(frozen=True)
class Check:
    """One preflight check and what it found."""

    name: str
    status: str
    detail: str


@dataclass(frozen=True)
class PreflightReport:
    """All checks of one digest."""

    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def lines(self) -> list[str]:
        """One line per check, for the terminal or the log."""
        return [f"preflight {c.status:<8} {c.name}: {c.detail}" for c in self.checks]


def run_preflight(*, html: str, text: str, message: bytes, unsubscribe_url: str,
                  max_html_bytes: int, max_spam_score: float,
                  spam: bool = True) -> PreflightReport:
    """Every check on a digest as the sample subscriber would receive it (`spam=False`
    leaves out the SpamAssassin score, which takes a second or two)."""
    doc = lxml.html.document_fromstring(html)
    checks = [
        check_size(html, max_html_bytes),
        check_urls(doc),
        check_unsubscribe(doc, text, unsubscribe_url),
        *check_css(doc),
    ]
    if spam:
        checks.append(check_spam(message, max_spam_score))
    return PreflightReport(tuple(checks))


def check_size(html: str, limit: int) -> Check:
    size = len(html.encode("utf-8"))
    status = OK if size <= limit else FAIL
    return Check("size", status, f"HTML is {size:,} bytes (limit {limit:,}; Gmail clips "
                 "over 102 KB)")


def check_urls(doc: lxml.html.HtmlElement) -> Check:
    bad = []
    for el, attribute in [(a, "href") for a in doc.iter("a")] + \
                         [(img, "src") for img in doc.iter("img")]:
        url = (el.get(attribute) or "").strip()
        if el.tag == "a" and url.startswith("mailto:"):
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in url:
            bad.append(f"<{el.tag} {attribute}={url!r}>")
    missing_alt = [img.get("src", "") for img in doc.iter("img")
                   if img.get("alt") is None or not img.get("width")]
    if bad:
        return Check("links", FAIL, f"{len(bad)} broken link/image URL(s): "
                     + ", ".join(bad[:3]))
    if missing_alt:
        return Check("links", FAIL, f"image(s) without alt or width: {missing_alt[:3]}")
    return Check("links", OK, "every link and image is an http(s) URL; images have alt "
                 "and width")


def check_unsubscribe(doc: lxml.html.HtmlElement, text: str, url: str) -> Check:
    in_html = any((a.get("href") or "") == url for a in doc.iter("a"))
    in_text = url in text
    if in_html and in_text:
        return Check("unsubscribe", OK, "visible one-click unsubscribe link in HTML and text")
    where = " and ".join(p for p, ok in (("HTML", in_html), ("text", in_text)) if not ok)
    return Check("unsubscribe", FAIL, f"no unsubscribe link in the {where} part")


@lru_cache(maxsize=1)
def _support() -> dict[str, dict[str, str]]:
    data = resources.files("digest.data").joinpath("caniemail.json").read_text("utf-8")
    return dict(json.loads(data)["features"])


def feature_for(prop: str, value: str) -> str | None:
    """The caniemail feature slug of a CSS declaration, when the data has one."""
    support = _support()
    prop = prop.strip().lower()
    candidates = [f"css-{prop}"]
    if prop == "display":
        candidates.insert(0, f"css-display-{value.strip().split()[0].lower()}")
    for short, family in SHORTHAND.items():
        if prop.startswith(f"{short}-"):
            candidates.append(f"css-{family}")
    return next((c for c in candidates if c in support), None)


def check_css(doc: lxml.html.HtmlElement) -> list[Check]:
    """Inline CSS a client ignores breaks the layout there: Gmail or Apple Mail 'no' fails,
    Outlook on Windows 'no' warns. Media queries are enhancements: warnings at most."""
    support = _support()
    inline: set[str] = set()
    for el in doc.xpath("//*[@style]"):
        for prop, value in DECLARATION.findall(el.get("style", "")):
            slug = feature_for(prop, value)
            if slug:
                inline.add(slug)
    enhancements: set[str] = set()
    for style in doc.iter("style"):
        css = style.text or ""
        for block in MEDIA_BLOCK.findall(css):
            enhancements.update(s for s in (feature_for(p, v) for p, v in
                                            DECLARATION.findall(block)) if s)
        if "@media" in css:
            enhancements.add("css-at-media")
        if "prefers-color-scheme" in css:
            enhancements.add("css-at-media-prefers-color-scheme")
    failing = sorted(s for s in inline if "n" in (support[s]["gmail"], support[s]["apple-mail"]))
    outlook = sorted(s for s in inline if support[s]["outlook-windows"] == "n")
    ignored = sorted(s for s in enhancements
                     if "n" in (support[s]["gmail"], support[s]["apple-mail"]))
    checks = [Check("css", FAIL if failing else OK,
                    f"unsupported in Gmail or Apple Mail: {', '.join(failing)}" if failing else
                    f"{len(inline)} inline CSS features, all supported in Gmail and Apple Mail")]
    if outlook:
        checks.append(Check("css-outlook", WARN, "ignored by Outlook on Windows: "
                            + ", ".join(outlook)))
    if ignored:
        checks.append(Check("css-enhancements", WARN, "media-query styles some clients "
                            "ignore (the inline layout still works): " + ", ".join(ignored)))
    return checks


def check_spam(message: bytes, limit: float) -> Check:
    """SpamAssassin with local rules only (-L), when it is installed."""
    binary = shutil.which("spamassassin")
    if binary is None:
        return Check("spam", SKIP, "SpamAssassin is not installed; no spam score")
    score = _remembered_score(message)
    if score is None:
        try:
            result = subprocess.run([binary, "-t", "-L"], input=message, capture_output=True,
                                    timeout=120, check=False)
        except subprocess.TimeoutExpired:
            return Check("spam", WARN, "SpamAssassin took over 120 s; no score")
        match = SPAM_SCORE.search(result.stdout)
        if match is None:
            return Check("spam", WARN, "SpamAssassin gave no score "
                         f"({result.stderr.decode(errors='replace').strip()[:120]})")
        score = float(match.group(1))
        _remember_score(message, score)
    status = OK if score <= limit else FAIL
    return Check("spam", status, f"SpamAssassin score {score:g} (limit {limit:g})")


# SpamAssassin takes a second or two per message, and the same digest is checked again
# and again (preview, the desk, the run): a score is kept a day per message content, the
# headers that differ every time (Date, Message-ID) aside.
SCORE_TTL = 24 * 3600
VOLATILE_HEADERS = re.compile(rb"^(Date|Message-ID): [^\r\n]*\r?\n", re.M | re.I)


def _score_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spacecraft-digest" / "spam-scores"


def _fingerprint(message: bytes) -> str:
    import hashlib

    return hashlib.sha256(VOLATILE_HEADERS.sub(b"", message)).hexdigest()


def _remembered_score(message: bytes) -> float | None:
    path = _score_cache() / _fingerprint(message)
    try:
        if time.time() - path.stat().st_mtime > SCORE_TTL:
            return None
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _remember_score(message: bytes, score: float) -> None:
    folder = _score_cache()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = folder / f".{os.getpid()}-{_fingerprint(message)}"
        tmp.write_text(f"{score}\n")
        os.replace(tmp, folder / _fingerprint(message))
    except OSError:
        pass  # a cache that cannot be written only costs time


def spam_score(message: bytes) -> float | None:
    """The SpamAssassin score of a message, or None when it cannot be had."""
    check = check_spam(message, float("inf"))
    match = re.search(r"score (-?\d+(?:\.\d+)?)", check.detail)
    return float(match.group(1)) if match else None
