"""Article → Summary: a few whole sentences from the article, ranked by how central they
are to it and biased towards the lead, returned in article order. Pure and deterministic."""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from functools import lru_cache

import pysbd

from digest.extract import DISCLAIMER_LINE, SOURCE_LINE
from digest.models import Article, Summary

log = logging.getLogger(__name__)

MIN_SENTENCE_WORDS = 5
MIN_ARTICLE_WORDS = 40
WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", re.UNICODE)
STOPWORDS = frozenset("""a an and are as at be been but by for from had has have he her his
in into is it its of on or our she that the their them they this to was were which while
who will with would not no so than then there these those also after before over about
said says more most can could may might one two new""".split())


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


def split_sentences(paragraph: str) -> list[str]:
    """Split one paragraph into sentences with a real segmenter (abbreviations, decimals)."""
    return [s.strip() for s in _segmenter().segment(paragraph) if s.strip()]


def summarize(article: Article, *, max_sentences: int, max_words: int) -> Summary:
    """Up to max_sentences whole sentences (max_words in all) that best represent the article."""
    sentences = [s for p in article.paragraphs for s in split_sentences(p) if _usable(s)]
    if sum(_word_count(s) for s in sentences) < MIN_ARTICLE_WORDS:
        fallback = article.feed_summary or article.standfirst
        if fallback:
            log.info("%s: article text too short, summary taken from the %s", article.url,
                     "feed excerpt" if article.feed_summary else "standfirst")
            sentences = [s for s in split_sentences(fallback) if _usable(s)] or [fallback]
    chosen = _choose(sentences, max_sentences, max_words)
    return Summary(sentences=tuple(chosen), source_line=article.source_line,
                   disclaimer_line=article.disclaimer_line)


def _usable(sentence: str) -> bool:
    return (_word_count(sentence) >= MIN_SENTENCE_WORDS
            and not SOURCE_LINE.match(sentence) and not DISCLAIMER_LINE.match(sentence))


def _word_count(sentence: str) -> int:
    return len(sentence.split())


def _content_words(sentence: str) -> list[str]:
    return [w for w in (m.group().casefold() for m in WORD.finditer(sentence))
            if w not in STOPWORDS and len(w) > 2]


def _choose(sentences: list[str], max_sentences: int, max_words: int) -> list[str]:
    if not sentences:
        return []
    frequency = Counter(w for s in sentences for w in set(_content_words(s)))
    scored = []
    for position, sentence in enumerate(sentences):
        words = _content_words(sentence)
        centrality = sum(frequency[w] for w in set(words)) / (1 + math.log1p(len(words)))
        lead_bias = 1.0 / (1 + position) ** 0.5
        scored.append((centrality * (0.5 + lead_bias) + (3.0 if position == 0 else 0.0),
                       -position))
    ranked = sorted(range(len(sentences)), key=lambda i: scored[i], reverse=True)
    picked: list[int] = []
    words_used = 0
    for index in ranked:
        length = _word_count(sentences[index])
        if len(picked) == max_sentences:
            break
        if words_used + length <= max_words:
            picked.append(index)
            words_used += length
    if not picked:  # even the best sentence is over the word budget: take the shortest whole one
        picked = [min(range(len(sentences)), key=lambda i: _word_count(sentences[i]))]
    return [sentences[i] for i in sorted(picked)]
