"""Optional abstractive summaries from any OpenAI-compatible chat endpoint (a local
llama.cpp or Ollama server, or a hosted one). Any failure, or an answer that is empty,
too long or in another language than the article, falls back to the extractive summary."""

from __future__ import annotations

import logging
import os

import requests

from digest.config import SummarySettings
from digest.language import guess_language
from digest.models import Article, Summary
from digest.summarize import split_sentences

log = logging.getLogger(__name__)

MAX_ARTICLE_CHARS = 12_000
SYSTEM_PROMPT = (
    "You summarise news articles for an email digest. Write one short paragraph of at most "
    "{max_words} words, using only facts stated in the article, in the article's own "
    "language. No preamble, no headline, no source line."
)


def chat_url(endpoint: str) -> str:
    """The chat-completions URL from a base URL (…/v1) or the full URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/chat/completions") else f"{endpoint}/chat/completions"


def abstractive_summary(article: Article, settings: SummarySettings, *, max_words: int,
                        fallback: Summary) -> Summary:
    """Ask the endpoint for a summary; return `fallback` (extractive) when it does not serve."""
    try:
        answer = _ask(article, settings, max_words)
    except (requests.RequestException, ValueError, KeyError, IndexError, TypeError) as exc:
        return _fall_back(article, fallback, f"endpoint failed: {_short(exc)}")
    answer = " ".join(answer.split())
    if not answer:
        return _fall_back(article, fallback, "empty answer")
    if len(answer.split()) > max_words:
        return _fall_back(article, fallback,
                          f"answer of {len(answer.split())} words, over {max_words}")
    article_language = guess_language(" ".join(article.paragraphs) or article.title)
    answer_language = guess_language(answer)
    if "und" not in (article_language, answer_language) and article_language != answer_language:
        return _fall_back(article, fallback, f"answer in {answer_language!r}, "
                          f"article in {article_language!r}")
    return Summary(sentences=tuple(split_sentences(answer)) or (answer,),
                   source_line=article.source_line, disclaimer_line=article.disclaimer_line,
                   method="abstractive")


def _ask(article: Article, settings: SummarySettings, max_words: int) -> str:
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(settings.api_key_env, "")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    text = "\n\n".join(article.paragraphs)[:MAX_ARTICLE_CHARS]
    payload = {
        "model": settings.model,
        "temperature": 0,
        "max_tokens": max_words * 3,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT.format(max_words=max_words)},
            {"role": "user", "content": f"{article.title}\n\n{text}"},
        ],
    }
    response = requests.post(chat_url(settings.endpoint), json=payload, headers=headers,
                             timeout=settings.timeout)
    response.raise_for_status()
    content = response.json()["choices"][0]["message"]["content"]
    if not isinstance(content, str):
        raise TypeError("message content is not text")
    return content


def _fall_back(article: Article, fallback: Summary, reason: str) -> Summary:
    log.warning("%s: abstractive summary not used (%s); extractive summary instead",
                article.url, reason)
    return fallback


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__
