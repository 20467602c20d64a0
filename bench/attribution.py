"""Source and disclaimer lines on a labelled set built from the real pages of
../shared/corpus: each page with lines injected at varied places of its real markup (own
paragraph, <br> in a body paragraph, <em>, <small>, <blockquote>, a div with a class, after
<hr>, &nbsp;, mid-body, end of body), with look-alikes injected that must not be taken
(a related-story link, an affiliate notice, a timestamp, captions, sidebar headlines, a
legal footer), and untouched. Recall and precision for digest.extract and, measured in
the same run, a naive baseline (any block whose text starts with the label).

    .venv/bin/python bench/attribution.py [--corpus PATH] [--placements 4]
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import lxml.html

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.errors import ExtractError  # noqa: E402
from digest.extract import normalise_space  # noqa: E402
from digest.extract.isolated import ExtractionPool  # noqa: E402
from digest.models import FeedEntry  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
SOURCES = ("Source: (Reuters)", "Sources: NASA, ESA", "Source - Press Trust of India",
           "(Source: AFP)", "Source: company filings and analyst notes", "Courtesy: JAXA")
DISCLAIMERS = (
    "(Disclaimer: This story was auto-generated from a syndicated feed; only the headline "
    "may have been reworked by staff.)",
    "Disclaimer: Figures are provisional and may be revised as new data arrive.",
    "(Disclaimer: Details may evolve.)",
    "Disclaimer: This report relies on agency statements and may be updated.",
)


@dataclass(frozen=True)
class Case:
    """One labelled page: its HTML and the lines a reader would call its own."""

    name: str
    html: bytes
    url: str
    source: str = ""
    disclaimer: str = ""


# --- the pages and where their body paragraphs are -------------------------------------------


def corpus_pages(corpus: Path) -> Iterator[tuple[str, bytes, str, str]]:
    """(name, html, url, text the body is known to hold) for each real article page."""
    aeb = corpus / "article-extraction-benchmark"
    truth = json.loads((aeb / "ground-truth.json").read_text(encoding="utf-8"))
    for page_id, item in sorted(truth.items()):
        html = gzip.decompress((aeb / "html" / f"{page_id}.html.gz").read_bytes())
        yield f"aeb/{page_id[:12]}", html, item["url"], item["articleBody"]
    traf = corpus / "trafilatura"
    for url, item in json.loads((traf / "evaldata.json").read_text(encoding="utf-8")).items():
        yield f"trafilatura/{item['file']}", (traf / "html" / item["file"]).read_bytes(), url, \
            "\n".join(item["with"])
    for case in sorted((corpus / "readability" / "test-pages").iterdir()):
        expected = lxml.html.fromstring((case / "expected.html").read_bytes()).text_content()
        yield f"readability/{case.name}", (case / "source.html").read_bytes(), \
            "http://fakehost/test/page.html", expected


def body_paragraphs(doc: lxml.html.HtmlElement, known: str) -> list[lxml.html.HtmlElement]:
    """The page's visible <p> elements of some length whose text the ground truth has: its
    real body paragraphs, where injected lines go."""
    flat = normalise_space(known)
    found = []
    for p in doc.iter("p"):
        text = normalise_space(p.text_content())
        if len(text) >= 80 and not hidden(p) and not PROMO.search(text) and (
                text[:80] in flat or any(
                len(s) >= 20 and s in text for s in known.splitlines())):
            found.append(p)
    return found


# Some ground truths keep a newsletter or affiliate box in the body; lines put in one would
# sit in page furniture, not in the article.
PROMO = re.compile(r"newsletter|sign up|subscribe|affiliate|commission", re.IGNORECASE)


def hidden(el: lxml.html.HtmlElement) -> bool:
    return any(a.get("hidden") is not None or "display:none" in a.get("style", "").replace(" ", "")
               for a in (el, *el.iterancestors()))


# --- injections ------------------------------------------------------------------------------


def fragment(html: str) -> list[lxml.html.HtmlElement]:
    return list(lxml.html.fragments_fromstring(html))


def after(el: lxml.html.HtmlElement, html: str) -> None:
    for new in reversed(fragment(html)):
        el.addnext(new)


def append_inline(p: lxml.html.HtmlElement, html: str) -> None:
    holder = lxml.html.fromstring(f"<span>{html}</span>")
    if len(p):
        p[-1].tail = (p[-1].tail or "") + (holder.text or "")
    else:
        p.text = (p.text or "") + (holder.text or "")
    for child in holder:
        p.append(child)


def label_split(line: str) -> tuple[str, str]:
    head, sep, rest = line.partition(":")
    return (head + sep, rest) if sep else ("", line)


Placement = Callable[[list[lxml.html.HtmlElement], str, str], tuple[str, str]]

# After the last body paragraph; {sl}/{sr} are the source line's label and the rest
# ({sr_} without its leading space), {dl}/{dr}/{dr_} the disclaimer line's.
AFTER_LAST = {
    "own_paragraph_end": "<p>{s}</p><p>{d}</p>",
    "two_lines_one_paragraph": "<p>{s}<br/>\n{d}</p>",
    "emphasised": "<p><em>{s}</em></p><p><i>{d}</i></p>",
    "small_print": "<p><small>{s}</small></p><small>{d}</small>",
    "quoted": "<blockquote><p>{s}</p></blockquote><blockquote>{d}</blockquote>",
    "div_with_class": '<div class="article-source">{s}</div><div class="story-note">{d}</div>',
    "after_rule": "<hr><p>{s}</p><hr/>{d}",
    "strong_label": "<p><strong>{sl}</strong>{sr}</p><p><b>{dl}</b>{dr}</p>",
    "non_breaking": "<p>{sl}&nbsp;{sr_}</p><p>{dl}&nbsp;&nbsp;{dr_}</p>",
}


def after_last(template: str) -> Placement:
    def place(ps: list[lxml.html.HtmlElement], s: str, d: str) -> tuple[str, str]:
        (sl, sr), (dl, dr) = label_split(s), label_split(d)
        after(ps[-1], template.format(s=s, d=d, sl=sl, sr=sr, dl=dl, dr=dr, sr_=sr.strip(),
                                      dr_=dr.strip()))
        return s, d
    return place


def br_in_last_paragraph(ps: list[lxml.html.HtmlElement], s: str, d: str) -> tuple[str, str]:
    append_inline(ps[-1], f"<br>{s}<br>{d}")
    return s, d


def mid_body(ps: list[lxml.html.HtmlElement], s: str, d: str) -> tuple[str, str]:
    after(ps[len(ps) // 2], f"<p>{s}</p>")
    after(ps[1], f"<p>{d}</p>")
    return s, d


def inline_at_paragraph_end(ps: list[lxml.html.HtmlElement], s: str,
                            d: str) -> tuple[str, str]:
    append_inline(ps[-1], f" <em>{s}</em>")
    return s, ""


PLACEMENTS: dict[str, Placement] = {
    **{name: after_last(template) for name, template in AFTER_LAST.items()},
    "br_in_last_paragraph": br_in_last_paragraph, "mid_body": mid_body,
    "inline_at_paragraph_end": inline_at_paragraph_end}


def story_link(ps: list[lxml.html.HtmlElement]) -> None:
    after(ps[-1], "<p>Source: <a href=\"/2019/10/08/trump-irritated-by-report-on-talks/\">"
                  "Trump &#8216;irritated&#8217; by report on talks &#8230;</a></p>")


def affiliate_notice(ps: list[lxml.html.HtmlElement]) -> None:
    after(ps[-1], "<p><em>Disclaimer: We may earn a commission when you buy through links "
                  "on our site.</em></p>")


def timestamp(ps: list[lxml.html.HtmlElement]) -> None:
    after(ps[0], '<div class="article-source">Source: 3 hours ago</div>')


def captions(ps: list[lxml.html.HtmlElement]) -> None:
    after(ps[0], '<figure><img src="/a.jpg"><figcaption>Credit: NASA/Bill Ingalls'
                 '</figcaption></figure><p><img src="/b.jpg"></p><p>Credit: Getty Images</p>')


def sidebar(ps: list[lxml.html.HtmlElement]) -> None:
    region = ps[-1].getparent()
    holder = region.getparent() if region.getparent() is not None else region
    holder.append(fragment('<aside class="widget"><h3>Sources: Agency weighs second landing '
                           'site</h3><p>Source: <a href="https://other.example/news/x">Crew '
                           'returns early after leak</a></p></aside>')[0])
    holder.append(fragment('<div class="col-md-4"><h4>Sources: Rival plans bid for the '
                           'launch contract</h4></div>')[0])


def legal_footer(ps: list[lxml.html.HtmlElement]) -> None:
    body = ps[-1].getroottree().getroot().find("body")
    if body is not None:
        body.append(fragment("<footer><p>Disclaimer: All content on this site is for "
                             "informational purposes only and is not financial advice."
                             "</p></footer>")[0])


DECOYS = (story_link, affiliate_notice, timestamp, captions, sidebar, legal_footer)


def build_cases(corpus: Path, placements: int) -> tuple[list[Case], Counter[str]]:
    """The labelled set: every page untouched, with `placements` injections and with decoys."""
    cases, kinds = [], Counter[str]()
    turn = 0
    for name, html, url, known in corpus_pages(corpus):
        cases.append(Case(f"{name} untouched", html, url))
        kinds["untouched"] += 1
        doc = lxml.html.document_fromstring(html)
        if len(body_paragraphs(doc, known)) < 3:
            continue
        for _ in range(placements):
            name_of, place = list(PLACEMENTS.items())[turn % len(PLACEMENTS)]
            s, d = SOURCES[turn % len(SOURCES)], DISCLAIMERS[turn % len(DISCLAIMERS)]
            turn += 1
            tree = copy.deepcopy(doc)
            source, disclaimer = place(body_paragraphs(tree, known), s, d)
            cases.append(Case(f"{name} {name_of}", lxml.html.tostring(tree), url,
                              source, disclaimer))
            kinds[name_of] += 1
        tree = copy.deepcopy(doc)
        for decoy in DECOYS:
            decoy(body_paragraphs(tree, known))
        cases.append(Case(f"{name} look-alikes", lxml.html.tostring(tree), url))
        kinds["look-alikes"] += 1
    return cases, kinds


# --- the systems and the score ---------------------------------------------------------------


LABEL = re.compile(r"^\(?\s*(sources?|courtesy|credits?|disclaimer)\s*(:|-|–|—)", re.I)


def naive(case: Case) -> tuple[str, str]:
    """Baseline: the last block anywhere on the page whose text starts with the label."""
    doc = lxml.html.document_fromstring(case.html)
    source = disclaimer = ""
    for el in doc.iter("p", "div", "li", "span", "small", "em", "blockquote", "h2", "h3", "h4"):
        text = normalise_space(el.text_content())
        match = LABEL.match(text)
        if match and len(text.split()) <= 60:
            if match.group(1).lower() == "disclaimer":
                disclaimer = text
            else:
                source = text
    return source, disclaimer


def score(found: list[tuple[str, str]], cases: list[Case]) -> dict[str, float]:
    wanted = right = given = 0
    for (source, disclaimer), case in zip(found, cases, strict=True):
        for got, want in ((source, case.source), (disclaimer, case.disclaimer)):
            wanted += bool(want)
            given += bool(got)
            right += bool(got) and got == want
    return {"recall": right / wanted if wanted else 1.0,
            "precision": right / given if given else 1.0,
            "wanted": wanted, "given": given, "right": right}


def ours_all(cases: list[Case]) -> list[tuple[str, str]]:
    """digest.extract on every case, through the isolated pool as a digest run does."""
    with ExtractionPool() as pool, ThreadPoolExecutor(8) as threads:
        return list(threads.map(lambda c: _ours(pool, c), cases))


def _ours(pool: ExtractionPool, case: Case) -> tuple[str, str]:
    entry = FeedEntry(url=case.url, title="", source_name="bench")
    try:
        article = pool.extract(case.html, entry)
    except ExtractError:
        return "", ""
    return article.source_line, article.disclaimer_line


def report(name: str, found: list[tuple[str, str]], cases: list[Case], seconds: float) -> None:
    s = score(found, cases)
    print(f"{name:<22}{s['recall']:>8.3f}{s['precision']:>11.3f}{s['right']:>7}"
          f"{s['wanted']:>8}{s['given']:>7}{seconds:>8.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--placements", type=int, default=4)
    parser.add_argument("--misses", action="store_true", help="list every wrong answer")
    args = parser.parse_args()
    if not (args.corpus / "article-extraction-benchmark").is_dir():
        print(f"corpus not found at {args.corpus}", file=sys.stderr)
        return 2
    cases, kinds = build_cases(args.corpus, args.placements)
    print(f"cases: {len(cases)} ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
    started = time.perf_counter()
    ours = ours_all(cases)
    ours_seconds = time.perf_counter() - started
    started = time.perf_counter()
    base = [naive(c) for c in cases]
    base_seconds = time.perf_counter() - started
    print(f"{'system':<22}{'recall':>8}{'precision':>11}{'right':>7}{'wanted':>8}"
          f"{'given':>7}{'s':>8}")
    report("digest.extract", ours, cases, ours_seconds)
    report("naive baseline", base, cases, base_seconds)
    if args.misses:
        for (source, disclaimer), case in zip(ours, cases, strict=True):
            if (source, disclaimer) != (case.source, case.disclaimer):
                print(f"MISS {case.name}: got {source!r} {disclaimer!r}; "
                      f"want {case.source!r} {case.disclaimer!r}")
    mine = score(ours, cases)
    passed = mine["recall"] >= 0.98 and mine["precision"] == 1.0
    print("gate (recall >= 0.98, precision 1.0):", "PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
