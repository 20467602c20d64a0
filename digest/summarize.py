"""Article → Summary: whole sentences from the article, ranked with TextRank (PageRank
over a TF-IDF cosine graph of the sentences) personalised towards the lead, as news
summaries should be, and returned in article order. Pure and deterministic."""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from functools import lru_cache

import pysbd

from digest.extract import BOILERPLATE_TEXT, BYLINE, DISCLAIMER_LINE, PHOTO_CREDIT, SOURCE_LINE
from digest.models import Article, Summary

log = logging.getLogger(__name__)

MIN_SENTENCE_WORDS = 5
RANKED_CHARACTERS = 40_000  # about 6,000 words: far more than any summary draws on
RANKED_SENTENCES = 200
CAPTION_WORDS = 40
MIN_LEAD_WORDS = 3  # "Your success mindset matters." still leads its article
SENTENCE_ENDS = ".!?\"'”’)…"
MIN_ARTICLE_WORDS = 40
DAMPING = 0.85
ITERATIONS = 60
WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.UNICODE)
CREDIT_MARK = re.compile(r"©|\(c\) \d{4}|\ball rights reserved\b"
                         r"|\((photo |image |picture )?credits?\s*:", re.IGNORECASE)
STOPWORDS = frozenset("""a an and are as at be been but by for from had has have he her his
in into is it its of on or our she that the their them they this to was were which while
who will with would not no so than then there these those also after before over about
said says more most can could may might one two new its it's we you i our your""".split())


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


def split_sentences(paragraph: str) -> list[str]:
    """Split one paragraph into sentences with a real segmenter (abbreviations, decimals)."""
    return list(_split(paragraph))


# The desk rebuilds the draft on every click: segmenting the same paragraphs again costs
# pysbd most of a second (it compiles hundreds of patterns), so each paragraph's answer
# is kept.
@lru_cache(maxsize=8192)
def _split(paragraph: str) -> tuple[str, ...]:
    sentences: list[str] = []
    for piece in (s.strip() for s in _segmenter().segment(paragraph)):
        if not piece:
            continue
        if sentences and not any(c.isalnum() for c in piece):
            sentences[-1] += piece  # stray punctuation split off the sentence before
            continue
        # pysbd ends a sentence at every ellipsis; one that goes on in lower case did not end.
        if sentences and piece[0].islower() and sentences[-1].endswith(("...", "…")):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return tuple(sentences)


def summarize(article: Article, *, max_sentences: int, max_words: int) -> Summary:
    """Up to max_sentences whole sentences (max_words in all) that best represent the article."""
    sentences = candidate_sentences(article.paragraphs)
    method = "extractive"
    if sum(word_count(s) for s in sentences) < MIN_ARTICLE_WORDS:
        fallback = article.feed_summary or article.standfirst
        if fallback:
            log.info("%s: article text too short, summary taken from the %s", article.url,
                     "feed excerpt" if article.feed_summary else "standfirst")
            sentences = candidate_sentences([fallback]) or [fallback]
            method = "fallback"
    chosen = choose(sentences, max_sentences, max_words)
    return Summary(sentences=tuple(chosen), source_line=article.source_line,
                   disclaimer_line=article.disclaimer_line, method=method)


def candidate_sentences(paragraphs: tuple[str, ...] | list[str]) -> list[str]:
    """The article's sentences that may stand in a summary, in order; the first sentence of
    the first real paragraph (the lead) is kept even when short."""
    sentences: list[str] = []
    read = 0
    for paragraph in paragraphs:
        # News puts what matters first: past the first RANKED_CHARACTERS (or sentences) a
        # very long article adds cost (splitting, then a graph quadratic in its sentences)
        # and no summary sentence.
        if read >= RANKED_CHARACTERS or len(sentences) >= RANKED_SENTENCES:
            break
        paragraph = paragraph[:RANKED_CHARACTERS - read]
        read += len(paragraph)
        if is_caption(paragraph):
            continue
        split = split_sentences(paragraph)
        if not sentences and split and usable(split[0], lead=True):
            sentences.append(split.pop(0))
        sentences.extend(s for s in split if usable(s))
    return sentences[:RANKED_SENTENCES]


def is_caption(paragraph: str) -> bool:
    """A short paragraph that credits a picture ('… (credit: NASA)', 'photos © X')."""
    return word_count(paragraph) < CAPTION_WORDS and bool(
        CREDIT_MARK.search(paragraph) or PHOTO_CREDIT.search(paragraph))


def usable(sentence: str, *, lead: bool = False) -> bool:
    """False for fragments, headlines, bylines, captions, boilerplate and attribution lines."""
    words = word_count(sentence)
    return (words >= (MIN_LEAD_WORDS if lead else MIN_SENTENCE_WORDS)
            and sentence[-1] in SENTENCE_ENDS
            and not SOURCE_LINE.match(sentence) and not DISCLAIMER_LINE.match(sentence)
            and not BYLINE.match(sentence) and not BOILERPLATE_TEXT.match(sentence)
            and not CREDIT_MARK.search(sentence)
            and not (words < 25 and PHOTO_CREDIT.search(sentence)))


def word_count(sentence: str) -> int:
    return len(sentence.split())


def terms(sentence: str) -> list[str]:
    """Content words of a sentence, lowercased, with a light plural/tense folding."""
    words = (m.group().casefold() for m in WORD.finditer(sentence))
    return [_fold(w) for w in words if w not in STOPWORDS and (len(w) > 2 or not w.isascii())]


def _fold(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.isascii() and word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def tfidf_vectors(bags: list[Counter[str]]) -> list[dict[str, float]]:
    """Unit-length TF-IDF vectors of term counts, the documents being the bags themselves."""
    frequency = Counter(t for bag in bags for t in bag)
    vectors = []
    for bag in bags:
        weights = {t: c * math.log(1 + len(bags) / frequency[t]) for t, c in bag.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        vectors.append({t: w / norm for t, w in weights.items()})
    return vectors


def cosine(a: dict[str, float], b: dict[str, float]) -> float:
    """Cosine similarity of two unit-length vectors."""
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return sum(w * large.get(t, 0.0) for t, w in small.items())


def textrank(sentences: list[str]) -> list[float]:
    """PageRank scores of sentences in a TF-IDF cosine similarity graph, lead-personalised."""
    n = len(sentences)
    if n == 0:
        return []
    vectors = tfidf_vectors([Counter(terms(s)) for s in sentences])
    neighbours: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            value = cosine(vectors[i], vectors[j])
            if value > 0:
                neighbours[i].append((j, value))
                neighbours[j].append((i, value))
    out_weight = [sum(w for _, w in links) for links in neighbours]
    lead = [1.0 / (1 + position) for position in range(n)]
    total = sum(lead)
    prior = [p / total for p in lead]
    scores = prior[:]
    for _ in range(ITERATIONS):
        scores = [(1 - DAMPING) * prior[i] + DAMPING * sum(
            w / out_weight[j] * scores[j] for j, w in neighbours[i]) for i in range(n)]
    return scores


def choose(sentences: list[str], max_sentences: int, max_words: int) -> list[str]:
    """The lead sentence, then the best-ranked others that fit, in article order."""
    if not sentences:
        return []
    # Centrality alone favours long middle sentences; news puts what matters first.
    scores = [score / (1 + position) for position, score in enumerate(textrank(sentences))]
    ranked = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
    ranked.remove(0)
    picked: list[int] = []
    words_used = 0
    for index in [0, *ranked]:
        if len(picked) == max_sentences:
            break
        length = word_count(sentences[index])
        if words_used + length <= max_words:
            picked.append(index)
            words_used += length
    if not picked:  # even the best sentence is over the word budget: take the shortest whole one
        picked = [min(range(len(sentences)), key=lambda i: word_count(sentences[i]))]
    return [sentences[i] for i in sorted(picked)]
