"""Stories about the same event from different sites become one digest entry: reports
are compared by TF-IDF cosine of their title and lead; the most complete report leads
and the others are listed under "Also reported by". Pure."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from digest.models import Article
from digest.summarize import terms

LEAD_PARAGRAPHS = 2


def story_vector(article: Article) -> Counter[str]:
    """Term counts of the title (counted twice) and the lead paragraphs."""
    text = " ".join((article.title, article.title, *article.paragraphs[:LEAD_PARAGRAPHS]))
    return Counter(terms(text))


def cosine_matrix(articles: Sequence[Article]) -> list[list[float]]:
    """Pairwise TF-IDF cosine similarity of the articles' title and lead."""
    bags = [story_vector(a) for a in articles]
    n = len(bags)
    frequency = Counter(t for bag in bags for t in bag)
    vectors = []
    for bag in bags:
        weights = {t: c * math.log(1 + n / frequency[t]) for t, c in bag.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        vectors.append({t: w / norm for t, w in weights.items()})
    return [[sum(vectors[i][t] * vectors[j].get(t, 0.0) for t in vectors[i]) for j in range(n)]
            for i in range(n)]


def different_numbers(a: Article, b: Article) -> bool:
    """Titles naming different numbers (Soyuz MS-27 and MS-28) are different events."""
    def numbers(title: str) -> set[str]:
        return set(re.findall(r"\d+", title))
    na, nb = numbers(a.title), numbers(b.title)
    return bool(na and nb and na != nb)


def group_stories(articles: Sequence[Article], threshold: float) -> list[Article]:
    """One article per story, in the order of each story's first report."""
    if threshold >= 1 or len(articles) < 2:
        return list(articles)
    similarity = cosine_matrix(articles)
    group_of = list(range(len(articles)))
    for i in range(len(articles)):
        for j in range(i):
            if (group_of[j] == j and articles[i].source_name != articles[j].source_name
                    and similarity[i][j] >= threshold
                    and not different_numbers(articles[i], articles[j])):
                group_of[i] = j
                break
    stories = []
    for leader in sorted(set(group_of)):
        members = [articles[k] for k in range(len(articles)) if group_of[k] == leader]
        stories.append(_one_entry(members))
    return stories


def _one_entry(reports: list[Article]) -> Article:
    fullest = max(reports, key=lambda a: (sum(len(p.split()) for p in a.paragraphs),
                                          -reports.index(a)))
    others = dict(fullest.also_reported_by)
    for report in reports:
        if report is not fullest:
            others.setdefault(report.source_name, report.url)
            for name, url in report.also_reported_by:
                others.setdefault(name, url)
    others.pop(fullest.source_name, None)
    return replace(fullest, also_reported_by=tuple(others.items()))
