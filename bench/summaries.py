"""Summary quality: ROUGE-1, ROUGE-2 and ROUGE-L F1 of our summaries against a human
summary or standfirst, with a lead-3 baseline computed in the same run, on the articles of
../shared/corpus that carry one (trafilatura's "description", Readability's "excerpt") and
on the bundled sample site's standfirsts; plus summaries per second.

Then, on the 60 annotated pages of the article-extraction benchmark: sentence precision
(each summary sentence found verbatim in the annotated body, whitespace aside: the
annotations put spaces at inline-tag boundaries, "“ Wild Rose ”"), how many summaries
open with the article's lead sentence, and how many sentences are captions, bylines,
"Advertisement", newsletter or share text; against lead-3 of trafilatura's default
extraction, measured in the same run.

Last, the cost of long articles: seconds and peak memory to summarise 10 KB, 100 KB,
1 MB and 10 MB of article text, each in a process of its own, against the same summariser
with its cap on how much is ranked lifted (the baseline, measured up to 100 KB: beyond
that it runs for minutes).

    .venv/bin/python bench/summaries.py
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.demo.site import SampleSite, load_sample_articles  # noqa: E402
from digest.extract import extract_article  # noqa: E402
from digest.models import Article, FeedEntry  # noqa: E402
from digest.summarize import candidate_sentences, split_sentences, summarize  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"
JUNK = re.compile(r"^(by [A-Z]|advertisement|sponsored|sign up|subscribe|share (this|on)"
                  r"|follow us|read more|related|photo|image|credit)|newsletter|©"
                  r"|\((photo|image|credit)", re.IGNORECASE)
SENTENCES, WORDS = 3, 90  # the shipped config.toml defaults


def tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def rouge_n(candidate: str, reference: str, n: int) -> float:
    def grams(words: list[str]) -> Counter[tuple[str, ...]]:
        return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    got, want = grams(tokens(candidate)), grams(tokens(reference))
    overlap = sum((got & want).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(got.values()), overlap / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def rouge_l(candidate: str, reference: str) -> float:
    a, b = tokens(candidate), tokens(reference)
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if not lcs:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def cases() -> Iterator[tuple[str, Article, str]]:
    site = SampleSite(load_sample_articles())
    site.base_url = "http://sample.example"
    for a in site.articles:
        entry = FeedEntry(url=site.base_url + a.path, title=a.title, source_name="sample")
        yield "sample", extract_article(site.article_page(a), entry), a.standfirst
    traf = CORPUS / "trafilatura"
    if (traf / "evaldata.json").exists():
        for url, item in json.loads((traf / "evaldata.json").read_text()).items():
            if item.get("description"):
                html = (traf / "html" / item["file"]).read_bytes()
                yield "trafilatura", _article(html, url), item["description"]
    readability = CORPUS / "readability" / "test-pages"
    if readability.exists():
        for case in sorted(readability.iterdir()):
            meta = json.loads((case / "expected-metadata.json").read_text())
            if meta.get("excerpt") and len(tokens(meta["excerpt"])) >= 8:
                html = (case / "source.html").read_bytes()
                yield "readability", _article(html, "http://fakehost/test/page.html"), \
                    meta["excerpt"]


def _article(html: bytes, url: str) -> Article:
    return extract_article(html, FeedEntry(url=url, title="", source_name="corpus"))


def ours(article: Article) -> str:
    return summarize(article, max_sentences=SENTENCES, max_words=WORDS).text


def lead3(article: Article) -> str:
    return " ".join(candidate_sentences(article.paragraphs)[:3])


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def annotated_pages() -> Iterator[tuple[bytes, str, str]]:
    """(html, url, annotated body) of each page of the extraction benchmark."""
    folder = CORPUS / "article-extraction-benchmark"
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    for page_id, item in sorted(truth.items()):
        html = gzip.decompress((folder / "html" / f"{page_id}.html.gz").read_bytes())
        yield html, item["url"], item["articleBody"]


def lead_of(body: str) -> str:
    """The annotated body's lead: the first sentence of its first real paragraph."""
    for paragraph in body.splitlines():
        for sentence in split_sentences(" ".join(paragraph.split()))[:1]:
            if len(sentence.split()) >= 3 and sentence[-1] in ".!?\"”’)":
                return sentence
    return ""


def trafilatura_lead3(html: bytes, url: str) -> list[str]:
    import trafilatura

    text = trafilatura.extract(html, url=url) or ""
    return [s for line in text.splitlines() for s in split_sentences(line)][:3]


def ours_sentences(html: bytes, url: str) -> list[str]:
    article = _article(html, url)
    return list(summarize(article, max_sentences=SENTENCES, max_words=WORDS).sentences)


def precision_table() -> dict[str, float]:
    pages = list(annotated_pages())
    systems: dict[str, Callable[[bytes, str], list[str]]] = {
        "digest (TextRank+lead)": ours_sentences,
        "lead-3, our extraction": lambda h, u: candidate_sentences(_article(h, u).paragraphs)[:3],
        "lead-3, trafilatura": trafilatura_lead3}
    print(f"\nannotated pages: {len(pages)} (article-extraction-benchmark)")
    print(f"{'system':<26}{'sentences':>10}{'verbatim':>10}{'precision':>10}{'junk':>6}"
          f"{'lead opens':>12}")
    precisions = {}
    for name, system in systems.items():
        found = verbatim = junk = leads = 0
        for html, url, body in pages:
            sentences = system(html, url)
            found += len(sentences)
            verbatim += sum(squeeze(s) in squeeze(body) for s in sentences)
            junk += sum(bool(JUNK.search(s)) for s in sentences)
            leads += bool(sentences) and squeeze(sentences[0]) == squeeze(lead_of(body))
        precisions[name] = verbatim / found if found else 0.0
        print(f"{name:<26}{found:>10}{verbatim:>10}{precisions[name]:>10.3f}{junk:>6}"
              f"{leads:>8}/{len(pages)}")
    return precisions


def main() -> int:
    data = [c for c in cases() if c[1].paragraphs]
    systems: dict[str, Callable[[Article], str]] = {"digest (TextRank+lead)": ours,
                                                    "lead-3 baseline": lead3}
    by_set = Counter(c[0] for c in data)
    print(f"articles: {len(data)} ({', '.join(f'{k} {v}' for k, v in sorted(by_set.items()))})")
    print(f"{'system':<24}{'ROUGE-1':>9}{'ROUGE-2':>9}{'ROUGE-L':>9}{'per s':>9}")
    results = {}
    for name, system in systems.items():
        started = time.perf_counter()
        outputs = [system(article) for _, article, _ in data]
        rate = len(data) / (time.perf_counter() - started)
        pairs = [(o, ref) for o, (_, _, ref) in zip(outputs, data, strict=True)]
        r1 = sum(rouge_n(o, ref, 1) for o, ref in pairs) / len(pairs)
        r2 = sum(rouge_n(o, ref, 2) for o, ref in pairs) / len(pairs)
        rl = sum(rouge_l(o, ref) for o, ref in pairs) / len(pairs)
        results[name] = (r1, r2, rl)
        print(f"{name:<24}{r1:>9.3f}{r2:>9.3f}{rl:>9.3f}{rate:>9.0f}")
    ours_scores, base = results["digest (TextRank+lead)"], results["lead-3 baseline"]
    ratios = [o / b for o, b in zip(ours_scores, base, strict=True)]
    print("ratio ours/lead-3:", " ".join(f"{r:.3f}" for r in ratios))
    passed = all(o >= b for o, b in zip(ours_scores, base, strict=True))
    print("gate (not below lead-3 on every ROUGE):", "PASS" if passed else "FAIL")
    if (CORPUS / "article-extraction-benchmark").is_dir():
        precision = precision_table()["digest (TextRank+lead)"]
        print("gate (sentence precision >= 0.98):", "PASS" if precision >= 0.98 else "FAIL")
        passed = passed and precision >= 0.98
    passed = long_article_costs() and passed
    return 0 if passed else 1


SIZE_PROBE = """
import resource, sys, time
sys.path.insert(0, {repo!r})
import digest.summarize as s
from digest.models import Article
if {uncapped}:
    s.RANKED_CHARACTERS = s.RANKED_SENTENCES = 10**12
sentence = "The capsule docked with the station after a long and careful approach. "
text = sentence * ({size} // len(sentence) + 1)
paragraphs = tuple(text[i:i + 1500] for i in range(0, {size}, 1500))
article = Article(url="u", title="t", source_name="n", published=None, paragraphs=paragraphs)
started = time.perf_counter()
s.summarize(article, max_sentences=3, max_words=90)
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def long_article_costs() -> bool:
    """Seconds and peak RSS per article size, ours against the uncapped baseline."""
    import subprocess

    print(f"\n{'article':>8}{'ours s':>9}{'ours MB':>9}{'uncapped s':>12}{'uncapped MB':>13}"
          f"{'ratio':>8}")
    within = True
    for size, label in ((10_000, "10 KB"), (100_000, "100 KB"), (1_000_000, "1 MB"),
                        (10_000_000, "10 MB")):
        figures = []
        for uncapped in (False, True):
            if uncapped and size > 100_000:
                figures.append(None)
                continue
            out = subprocess.run([sys.executable, "-c", SIZE_PROBE.format(
                repo=str(REPO), uncapped=uncapped, size=size)], capture_output=True,
                text=True, timeout=900, check=True).stdout.split()
            figures.append((float(out[0]), int(out[1]) / 1024))
        (ours_s, ours_mb), base = figures[0], figures[1]
        within = within and (size < 10_000_000 or (ours_s < 5 and ours_mb < 200))
        print(f"{label:>8}{ours_s:>9.2f}{ours_mb:>9.0f}"
              + (f"{base[0]:>12.2f}{base[1]:>13.0f}{base[0] / ours_s:>8.1f}x" if base
                 else f"{'(minutes)':>12}{'':>13}{'':>8}"))
    print("gate (10 MB under 5 s and 200 MB):", "PASS" if within else "FAIL")
    return within


if __name__ == "__main__":
    raise SystemExit(main())
