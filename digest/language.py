"""A small, dependency-free guess at a text's language: by script for Cyrillic, Greek,
Hangul, Kana, Han and Arabic, by common function words for Latin-script languages.
Enough to tell that a model answered in the wrong language."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

FUNCTION_WORDS = {
    "en": "the and of to in is that for with on was as are by it from this be at have",
    "fr": "le la les et des un une est que dans pour pas sur au du qui avec ce il",
    "de": "der die das und ist nicht mit den von zu sich des auf für ein eine dem im",
    "es": "el la los las y de que en un una es por con para del se su al lo",
    "it": "il la le di che e un una per non con del della sono gli nel si",
    "pt": "o a os as e de que em um uma para com não do da no na se por",
    "nl": "de het een en van is dat op te in met voor niet zijn er aan ook",
}
SCRIPTS = {"CYRILLIC": "ru", "GREEK": "el", "HANGUL": "ko", "HIRAGANA": "ja",
           "KATAKANA": "ja", "CJK": "zh", "ARABIC": "ar", "HEBREW": "he"}
_WORDS = {lang: set(words.split()) for lang, words in FUNCTION_WORDS.items()}


def guess_language(text: str) -> str:
    """An ISO 639-1 code, or 'und' when the text gives too little to go on."""
    scripts: Counter[str] = Counter()
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "")
            scripts[next((code for key, code in SCRIPTS.items() if name.startswith(key)),
                         "latin")] += 1
    if not scripts:
        return "und"
    script, count = scripts.most_common(1)[0]
    if script != "latin":
        if script == "zh" and (scripts["ja"] > 0):
            return "ja"
        return script
    words = re.findall(r"[^\W\d_]+", text.casefold())
    hits = {lang: sum(w in vocabulary for w in words) for lang, vocabulary in _WORDS.items()}
    best = max(hits, key=lambda lang: hits[lang])
    return best if hits[best] >= 2 else "und"
