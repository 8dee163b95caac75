"""The automaton on characters: the answer's JSON shape as states (``START``, ``END``), one
character at a time (``step``, ``advance``), and whether a text fits (``accepts``). Pure Python,
no torch."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT_CHARS = 400

State = tuple  # small hashable tuples; see the constants below

END: State = ("E",)  # the object is closed: only a stop token may follow
_BROKEN: State = ("X",)  # a token outside the shape was chosen anyway: only a stop token
_DONE: State = ("D",)  # the row has stopped; its scores no longer matter

# Escape states inside a string: 0 none, 1-4 hex digits still due (\uXXXX), 5 just after "\".
_BACKSLASH = 5
_ESCAPES = frozenset('"\\/bfnrt')
_HEX = frozenset("0123456789abcdefABCDEF")
_BIG = 1 << 30

_TEXT_START: State = ("T", 0, 0)  # ("T", characters written, escape state)
_ID_START: State = ("I", "")  # ("I", the id's characters so far)
_LIST, _AFTER_ITEM, _CITES, _AFTER_ID = ("C", 0), ("C", 1), ("C", 2), ("C", 3)

# ("L", k, i): i characters of literal k written; the state after it is complete.
_LITERALS: tuple[tuple[str, State], ...] = (
    ('{"text": "', _TEXT_START),
    (', {"text": "', _TEXT_START),
    ("]}", END),
    ('", "cites": [', _CITES),
    (', "', _ID_START),
    ("]}", _AFTER_ITEM),
)
_CLOSE_TEXT: State = ("L", 3, 1)  # the quote closing a text
# ("C", c): a choice on the next character.
_CHOICES: dict[int, dict[str, State]] = {
    0: {"{": ("L", 0, 1), "]": ("L", 2, 1)},
    1: {",": ("L", 1, 1), "]": ("L", 2, 1)},
    2: {'"': _ID_START, "]": ("L", 5, 1)},
    3: {",": ("L", 4, 1), "]": ("L", 5, 1)},
}

START: State = _LIST  # right after RESPONSE_PREFIX
_NOT_PLAIN = re.compile(r'["\\\x00-\x1f]')


@dataclass(frozen=True)
class CiteIds:
    """The fact ids one prompt may cite (ids that JSON would need to escape are left out)."""

    ids: frozenset[str]
    prefixes: frozenset[str] = field(compare=False, repr=False)
    next_chars: dict[str, tuple[str, ...]] = field(compare=False, repr=False, hash=False)

    @classmethod
    def of(cls, fact_ids: Iterable[str]) -> CiteIds:
        return _cite_ids(frozenset(i for i in fact_ids if i and not _NOT_PLAIN.search(i)))


@functools.lru_cache(maxsize=1024)
def _cite_ids(ids: frozenset[str]) -> CiteIds:
    following: dict[str, set[str]] = {}
    for fact_id in ids:
        for n, ch in enumerate(fact_id):
            following.setdefault(fact_id[:n], set()).add(ch)
    prefixes = frozenset(f[:n] for f in ids for n in range(1, len(f) + 1))
    return CiteIds(ids, prefixes, {p: tuple(sorted(cs)) for p, cs in following.items()})


class _Recorder:
    """Stands in for a ``CiteIds`` and notes whether the automaton looked at the ids."""

    def __init__(self, cites: CiteIds) -> None:
        self.cites = cites
        self.touched = False

    @property
    def ids(self) -> frozenset[str]:
        self.touched = True
        return self.cites.ids

    @property
    def prefixes(self) -> frozenset[str]:
        self.touched = True
        return self.cites.prefixes

    @property
    def next_chars(self) -> dict[str, tuple[str, ...]]:
        self.touched = True
        return self.cites.next_chars


def _pending(esc: int) -> int:
    """Characters an open escape still needs at least."""
    return 1 if esc == _BACKSLASH else esc


def _text_step(n: int, esc: int, ch: str, limit: int) -> State | None:
    if esc == 0:
        if ch == '"':
            return _CLOSE_TEXT if n >= 1 else None
        if ch < " ":
            return None
        esc = _BACKSLASH if ch == "\\" else 0
    elif esc == _BACKSLASH:
        if ch == "u":
            esc = 4
        elif ch in _ESCAPES:
            esc = 0
        else:
            return None
    elif ch in _HEX:
        esc -= 1
    else:
        return None
    n += 1
    # n + pending never decreases along a string, so checking it at each character keeps every
    # escape completable within the limit, and a token's total decides for all its characters.
    if n + _pending(esc) > limit:
        return None
    return ("T", n, esc)


def step(state: State, ch: str, cites: Any, limit: int = MAX_TEXT_CHARS) -> State | None:
    """The state after one more character, or None if the shape does not allow it."""
    kind = state[0]
    if kind == "T":
        return _text_step(state[1], state[2], ch, limit)
    if kind == "L":
        text, after = _LITERALS[state[1]]
        offset = state[2]
        if text[offset] != ch:
            return None
        return after if offset + 1 == len(text) else ("L", state[1], offset + 1)
    if kind == "C":
        following = _CHOICES[state[1]].get(ch)
        if following is _ID_START and not cites.ids:
            return None
        return following
    if kind == "I":
        prefix = state[1]
        if ch == '"':
            return _AFTER_ID if prefix in cites.ids else None
        longer = prefix + ch
        return ("I", longer) if longer in cites.prefixes else None
    return None


def advance(
    state: State, text: str, cites: Any, limit: int = MAX_TEXT_CHARS, start: int = 0
) -> State | None:
    """The state after ``text[start:]``, or None if the shape does not allow it."""
    for index in range(start, len(text)):
        following = step(state, text[index], cites, limit)
        if following is None:
            return None
        state = following
    return state


def accepts(
    text: str, fact_ids: Iterable[str], *, complete: bool = True, limit: int = MAX_TEXT_CHARS
) -> bool:
    """Whether ``text`` (what follows ``RESPONSE_PREFIX``) fits the shape: whole, or a prefix."""
    state = advance(START, text, CiteIds.of(fact_ids), limit)
    return state is not None and (state == END or not complete)


def _next_chars(state: State, cites: Any) -> Iterable[str]:
    kind = state[0]
    if kind == "L":
        return (_LITERALS[state[1]][0][state[2]],)
    if kind == "C":
        return _CHOICES[state[1]].keys()
    if kind == "I":
        following = cites.next_chars.get(state[1], ())
        return (*following, '"') if state[1] in cites.ids else following
    return ()
