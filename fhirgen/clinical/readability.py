"""How easy a text is to read: the Flesch reading ease score (Flesch 1948).

206.835 - 1.015 × (words / sentences) - 84.6 × (syllables / words). 60-70 is "plain English"
(readable by most 13-15 year olds); patient materials should score 60 or more. Syllables are
counted by the usual vowel-group heuristic, which is within one syllable for most English words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)|\n")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def syllables(word: str) -> int:
    """Syllables in one English word (at least one)."""
    word = word.lower().strip("'’-")
    if not word:
        return 0
    count = len(_VOWEL_GROUPS.findall(word[1:] if word.startswith("y") else word)) or 1
    if word.endswith("e") and not word.endswith(("le", "ee", "ye")) and count > 1:
        count -= 1  # a silent final e: "take", "home"
    if word.endswith("ed") and not word.endswith(("ted", "ded")) and count > 1:
        count -= 1  # "stopped", "changed"
    return max(count, 1)


def flesch_reading_ease(text: str, names: Iterable[str] = ()) -> float | None:
    """The Flesch reading ease of ``text`` (higher is easier), or None if it has no words.

    ``names`` (medicine and test names, which a patient reads off the bottle or the letter and
    no plainer wording can replace) each count as one two-syllable word, so that the score
    measures the wording around them.
    """
    for name in sorted({n for n in names if n.strip()}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", "tablet", text, flags=re.IGNORECASE)
    words = _WORD.findall(text)
    if not words:
        return None
    sentences = max(1, len([s for s in _SENTENCE_END.split(text) if _WORD.search(s)]))
    total = sum(syllables(w) for w in words)
    score = 206.835 - 1.015 * (len(words) / sentences) - 84.6 * (total / len(words))
    return round(score, 1)
