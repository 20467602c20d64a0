"""Stories about the same event from different sites become one digest entry: reports
are compared by TF-IDF cosine of their title and lead; the most complete report leads
and the others are listed under "Also reported by". Pure."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from digest.models import Article
from digest.summarize import cosine, terms, tfidf_vectors

LEAD_PARAGRAPHS = 2


def story_vector(article: Article) -> Counter[str]:
    """Term counts of the title (counted twice) and the lead paragraphs."""
    text = " ".join((article.title, article.title, *article.paragraphs[:LEAD_PARAGRAPHS]))
    return Counter(terms(text))


def cosine_matrix(articles: Sequence[Article]) -> list[list[float]]:
    """Pairwise TF-IDF cosine similarity of the articles' title and lead."""
    vectors = tfidf_vectors([story_vector(a) for a in articles])
    return [[cosine(u, v) for v in vectors] for u in vectors]


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
