"""Body-extraction quality on ../shared/corpus/article-extraction-benchmark, with that
benchmark's own metric (multisets of 4-word shingles, per-page normalised counts), for our
extractor and, as the baseline measured in the same run, trafilatura with its defaults.
Then headlines: on the corpus pages with a known title (Readability's expected metadata,
trafilatura's evaldata), the title we give when the feed has none, and when the feed's is
cut short ("first words…"), against trafilatura's metadata title.

    .venv/bin/python bench/extract.py [--corpus PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.errors import ExtractError  # noqa: E402
from digest.extract import extract_article, extract_body_text  # noqa: E402
from digest.models import FeedEntry  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "article-extraction-benchmark"


def shingles(text: str, n: int = 4) -> Counter[tuple[str, ...]]:
    tokens = re.findall(r"\w+", text, re.UNICODE)
    return Counter(tuple(tokens[i:i + n]) for i in range(max(len(tokens) - n + 1, 0)))


def page_counts(predicted: str, expected: str) -> tuple[float, float, float]:
    """TP, FP, FN for one page, normalised so every page weighs the same."""
    got, want = shingles(predicted), shingles(expected)
    tp = sum((got & want).values())
    fp = sum((got - want).values())
    fn = sum((want - got).values())
    total = tp + fp + fn
    if total == 0:
        return 1.0, 0.0, 0.0
    return tp / total, fp / total, fn / total


def score(extract: Callable[[str, str], str], corpus: Path) -> dict[str, float]:
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    tps = fps = fns = 0.0
    started = time.perf_counter()
    for page_id, item in sorted(truth.items()):
        html = gzip.open(corpus / "html" / f"{page_id}.html.gz").read().decode("utf-8", "replace")
        tp, fp, fn = page_counts(extract(html, item["url"]), item["articleBody"])
        tps, fps, fns = tps + tp, fps + fp, fns + fn
    elapsed = time.perf_counter() - started
    precision = tps / (tps + fps) if tps + fps else 0.0
    recall = tps / (tps + fns) if tps + fns else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "ms_per_page": 1000 * elapsed / len(truth), "pages": len(truth)}


def trafilatura_defaults(html: str, url: str) -> str:
    import trafilatura

    return trafilatura.extract(html, url=url) or ""


def titled_pages(corpus: Path) -> list[tuple[bytes, str, str]]:
    """(html, url, known title) of the corpus pages that have one."""
    pages = []
    for case in sorted((corpus / "readability" / "test-pages").iterdir()):
        title = json.loads((case / "expected-metadata.json").read_text()).get("title")
        if title:
            pages.append(((case / "source.html").read_bytes(), "http://fakehost/test/page.html",
                          title))
    traf = corpus / "trafilatura"
    for url, item in json.loads((traf / "evaldata.json").read_text(encoding="utf-8")).items():
        if item.get("title"):
            pages.append(((traf / "html" / item["file"]).read_bytes(), url, item["title"]))
    return pages


def title_key(title: str) -> str:
    text = unicodedata.normalize("NFC", title or "").casefold()
    for a, b in (("’", "'"), ("‘", "'"), ("“", '"'), ("”", '"'), ("–", "-"), ("—", "-")):
        text = text.replace(a, b)
    return " ".join(text.split())


def same_title(got: str, want: str) -> tuple[bool, bool]:
    """(exact, exact but for a site name before or after a separator)."""
    got, want = title_key(got), title_key(want)
    return got == want, bool(got) and (got == want or got in _trimmed(want)
                                       or want in _trimmed(got))


def _trimmed(title: str) -> set[str]:
    """The title without what follows its last separator, or precedes its first."""
    found = set()
    for separator in (" | ", " - ", " : ", ": ", " :: ", " · ", " » "):
        if separator in title:
            found.add(title.rsplit(separator, 1)[0].strip())
            found.add(title.split(separator, 1)[1].strip())
    return found


def our_title(html: bytes, url: str, feed_title: str) -> str:
    try:
        return extract_article(html, FeedEntry(url=url, title=feed_title,
                                               source_name="bench")).title
    except ExtractError:
        return feed_title


def trafilatura_title(html: bytes, url: str, feed_title: str) -> str:
    import trafilatura

    return feed_title or trafilatura.extract_metadata(html, default_url=url).title or ""


def cut_short(title: str) -> str:
    words = title.split()
    return " ".join(words[:max(2, len(words) // 2)]) + "…"


def headline_table(corpus: Path) -> None:
    pages = titled_pages(corpus)
    print(f"\nheadlines: {len(pages)} pages with a known title")
    print(f"{'system':<44}{'exact':>8}{'+/- site name':>15}")
    for feed in ("no feed title", "feed title cut short"):
        for name, system in (("digest.extract", our_title),
                             ("trafilatura metadata", trafilatura_title)):
            if name.startswith("trafilatura") and feed != "no feed title":
                name = "feed title as given"
            hits = [same_title(system(html, url, cut_short(title) if "cut" in feed else ""),
                               title) for html, url, title in pages]
            print(f"{name + ', ' + feed:<44}{sum(e for e, _ in hits):>5}/{len(pages)}"
                  f"{sum(near for _, near in hits):>12}/{len(pages)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    if not (args.corpus / "ground-truth.json").exists():
        print(f"corpus not found at {args.corpus}", file=sys.stderr)
        return 2
    ours = score(extract_body_text, args.corpus)
    base = score(trafilatura_defaults, args.corpus)
    print(f"pages: {ours['pages']:.0f}")
    print(f"{'extractor':<24}{'precision':>10}{'recall':>10}{'F1':>8}{'ms/page':>10}")
    for name, s in (("digest.extract", ours), ("trafilatura defaults", base)):
        print(f"{name:<24}{s['precision']:>10.3f}{s['recall']:>10.3f}{s['f1']:>8.3f}"
              f"{s['ms_per_page']:>10.1f}")
    print(f"ratio F1 ours/baseline: {ours['f1'] / base['f1']:.3f}; "
          f"precision ours/baseline: {ours['precision'] / base['precision']:.3f}")
    passed = ours["f1"] >= 0.96 and ours["precision"] >= 0.94
    print("gate (F1 >= 0.96, precision >= 0.94):", "PASS" if passed else "FAIL")
    if (args.corpus.parent / "readability").is_dir():
        headline_table(args.corpus.parent)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
