"""JSON-constrained decoding: the answer can only be sentence objects citing the prompt's facts.

After ``RESPONSE_PREFIX`` the model may write exactly::

    {"text": "<string>", "cites": ["<fact id>", ...]}, {"text": ...}, ...]}

then a stop token: items separated by ``", "``, the fixed literals forced character for character
(no other whitespace), ``"cites"`` possibly empty, every cited id one of the facts given in that
prompt, each ``"text"`` a non-empty JSON string of at most ``max_text_chars`` source characters
(escapes count as written: ``\\n`` is two) with any JSON escape and no raw control character.
An empty list (``]}`` at once) is allowed. The verifier then runs as before: an item with empty
``cites`` is dropped, so the grammar never pushes a model to cite something.

The automaton works on characters (``START``, ``advance``; pure Python, no torch). The logits
processor (``json_constraint``) maps it onto tokens: every token's text is decoded once per
tokenizer (``TokenTables``), and each step masks, per row, the tokens that would leave the shape.

- Inside a ``"text"`` string (most steps) the mask is one vectorized comparison: each token has a
  precomputed cost (the characters it adds, plus those an escape it opens still needs), or, if it
  closes the string, the characters before its quote, valid only when what follows the quote fits
  the shape.
- Elsewhere (literals, cite ids) the allowed tokens are found by walking the tokens sorted by
  text, narrowing with ``bisect`` to those that start with a character the automaton accepts:
  cost proportional to the allowed tokens, cached per state (and per row's ids when they matter).

Tokens are decoded after an anchor token (``decode([anchor, t])`` minus ``decode([anchor])``) so
that SentencePiece's leading-space marker and byte-level BPE both give the text the token really
adds. A token holding part of a UTF-8 character decodes to U+FFFD, which the automaton treats as
an ordinary character: such tokens can appear only inside ``"text"``, where any bytes >= 0x80 are
valid, and the answer's own decode joins them back. Special tokens and tokens that decode to
nothing are never allowed; stop tokens only once the object is closed. If a row ever has no
allowed token (a tokenizer without a needed character), it may only stop: generation never fails.
"""

from __future__ import annotations

import bisect
import functools
import logging
import re
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

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


# -- tokens --------------------------------------------------------------------------------------


def token_strings(
    tokenizer: Any, vocab_size: int, excluded: Iterable[int] = ()
) -> list[str | None]:
    """The text each token id adds to an answer; None for ids never allowed in an answer.

    Special tokens, ``excluded`` ids, ids past the tokenizer and tokens with no text are None.
    """
    size = min(len(tokenizer), vocab_size)
    banned = set(excluded) | set(getattr(tokenizer, "all_special_ids", ()))
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            banned.add(int(token_id))
    options = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}
    anchor = _anchor(tokenizer, options)
    if anchor is not None:
        head = tokenizer.decode([anchor], **options)
        decoded = tokenizer.batch_decode([[anchor, t] for t in range(size)], **options)
    else:
        head, decoded = "", tokenizer.batch_decode([[t] for t in range(size)], **options)
    strings: list[str | None] = [None] * vocab_size
    for token_id, text in enumerate(decoded):
        if token_id in banned:
            continue
        if text.startswith(head):
            text = text[len(head) :]
        else:  # the anchor merged with the token somehow: fall back to the token alone
            text = tokenizer.decode([token_id], **options)
        strings[token_id] = text or None
    return strings


def _anchor(tokenizer: Any, options: dict[str, bool]) -> int | None:
    """A token that decodes to one plain letter, to decode other tokens after it."""
    for letter in ("a", "x", "0"):
        ids = tokenizer(letter, add_special_tokens=False)["input_ids"]
        if len(ids) == 1 and tokenizer.decode(ids, **options).strip() == letter:
            return int(ids[0])
    return None


@dataclass
class _TextTable:
    """For one escape state: each token's cost inside a string, and the tokens closing it."""

    cost: list[int]  # characters added plus those still due; _BIG if not string content
    fixed: list[int]  # cost, or for a closing token whose suffix fits any row: chars before "
    dependent: list[tuple[int, int, str]]  # (id, pre, suffix): closers whose suffix cites ids
    quote_first: list[int]  # closers with nothing before the quote (not allowed in an empty text)


class TokenTables:
    """What the constraint needs to know about one tokenizer's vocabulary, computed once.

    The text tables are built on first need per escape state; masks are kept per device.
    """

    def __init__(self, strings: list[str | None]) -> None:
        self.strings = strings
        self.size = len(strings)
        by_text: dict[str, list[int]] = {}
        for token_id, text in enumerate(strings):
            if text:
                by_text.setdefault(text, []).append(token_id)
        self.sorted_texts = sorted(by_text)
        self.sorted_ids = [tuple(by_text[t]) for t in self.sorted_texts]
        self._text: dict[int, _TextTable] = {}
        self._walks: dict[tuple, Any] = {}
        self._tensors: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    # -- inside a text string ---------------------------------------------------------------

    def text_table(self, esc: int) -> _TextTable:
        """The text table for escape state ``esc`` (built on first use)."""
        table = self._text.get(esc)
        if table is None:
            with self._lock:
                table = self._text.get(esc) or self._build_text(esc)
                self._text[esc] = table
        return table

    def _build_text(self, esc: int) -> _TextTable:
        cost = [_BIG] * self.size
        fixed = [_BIG] * self.size
        dependent: list[tuple[int, int, str]] = []
        quote_first: list[int] = []
        for token_id, text in enumerate(self.strings):
            if not text:
                continue
            if esc == 0 and not _NOT_PLAIN.search(text):
                cost[token_id] = fixed[token_id] = len(text)
                continue
            scanned = _scan_text(text, esc)
            if scanned is None:
                continue
            closes, count, suffix = scanned
            if not closes:
                cost[token_id] = fixed[token_id] = count
                continue
            probe = _Recorder(_cite_ids(frozenset()))
            fits = advance(_CLOSE_TEXT, suffix, probe, MAX_TEXT_CHARS) is not None
            if probe.touched:
                dependent.append((token_id, count, suffix))
            elif fits:
                fixed[token_id] = count
                if count == 0:
                    quote_first.append(token_id)
        return _TextTable(cost, fixed, dependent, quote_first)

    def text_need(self, esc: int, cites: CiteIds, empty: bool, device: Any) -> tuple[Any, int]:
        """A tensor of each token's need (allowed when need <= characters left), and its min.

        ``empty``: nothing written yet, so a token starting with the closing quote is out.
        """
        table = self.text_table(esc)
        empty = empty and esc == 0
        key = ("need", esc, empty, cites if table.dependent else None, str(device))
        found = self._tensors.get(key)
        if found is None:
            import torch

            values = list(table.fixed)
            if empty:
                for token_id in table.quote_first:
                    values[token_id] = table.cost[token_id]
            for token_id, count, suffix in table.dependent:
                if empty and count == 0:
                    continue
                if advance(_CLOSE_TEXT, suffix, cites, MAX_TEXT_CHARS) is not None:
                    values[token_id] = min(values[token_id], count)
            need = torch.tensor(values, dtype=torch.int32, device=device)
            found = (need, min(values))
            self._remember(key, found)
        return found

    # -- elsewhere -----------------------------------------------------------------------------

    def allowed(self, state: State, cites: CiteIds, limit: int, device: Any) -> tuple[Any, int]:
        """The ids allowed from a state outside text (a device tensor), and how many."""
        key: tuple = (state, limit)
        walk = self._walks.get(key)
        if walk == "cites":  # this state's tokens depend on the row's ids
            key = (state, limit, cites)
            walk = self._walks.get(key)
        if walk is None:
            ids, touched = self._walk(state, cites, limit)
            if touched:
                self._remember_walk((state, limit), "cites")
                key = (state, limit, cites)
            walk = tuple(sorted(ids))
            self._remember_walk(key, walk)
        tensor_key = ("ids", key, str(device))
        tensor = self._tensors.get(tensor_key)
        if tensor is None:
            import torch

            tensor = torch.tensor(walk, dtype=torch.long, device=device)
            self._remember(tensor_key, tensor)
        return tensor, len(walk)

    def _walk(self, state: State, cites: CiteIds, limit: int) -> tuple[list[int], bool]:
        """Every token whose text the automaton accepts from ``state``, by prefix ranges."""
        recorder = _Recorder(cites)
        texts, ids = self.sorted_texts, self.sorted_ids
        found: list[int] = []
        stack: list[tuple[State, str, int, int]] = [(state, "", 0, len(texts))]
        while stack:
            current, prefix, low, high = stack.pop()
            if prefix and low < high and texts[low] == prefix:
                found.extend(ids[low])  # the token is exactly the prefix walked so far
                low += 1
            if low >= high:
                continue
            if current[0] == "T":  # text inside the token: check what remains of each
                for index in range(low, high):
                    if advance(current, texts[index], recorder, limit, len(prefix)) is not None:
                        found.extend(ids[index])
                continue
            for ch in _next_chars(current, recorder):
                following = step(current, ch, recorder, limit)
                if following is None:
                    continue
                longer = prefix + ch
                first = bisect.bisect_left(texts, longer, low, high)
                last = bisect.bisect_left(texts, longer + "\U0010ffff", first, high)
                if first < last:
                    stack.append((following, longer, first, last))
        return found, recorder.touched

    def _remember_walk(self, key: tuple, value: Any) -> None:
        if len(self._walks) > 50_000:
            self._walks.clear()
        self._walks[key] = value

    def _remember(self, key: tuple, value: Any) -> None:
        if len(self._tensors) > 4096:
            self._tensors.clear()
        self._tensors[key] = value


def _scan_text(text: str, esc: int) -> tuple[bool, int, str] | None:
    """A token read from inside a string (nothing written before it, no length limit).

    (False, cost, "") if it stays inside the string; (True, characters before the closing
    quote, what follows it) if it closes it; None if it is not valid there.
    """
    n = 0
    for index, ch in enumerate(text):
        if esc == 0 and ch == '"':
            return True, n, text[index + 1 :]
        following = _text_step(n, esc, ch, _BIG)
        if following is None:
            return None
        n, esc = following[1], following[2]
    return False, n + _pending(esc), ""


_TABLES: weakref.WeakKeyDictionary[Any, dict[tuple, TokenTables]] = weakref.WeakKeyDictionary()
_TABLES_LOCK = threading.Lock()


def tables_for(tokenizer: Any, vocab_size: int, stop_ids: Sequence[int]) -> TokenTables:
    """The tables of ``tokenizer`` for scores of ``vocab_size`` (built once, then shared)."""
    key = (vocab_size, tuple(stop_ids))
    with _TABLES_LOCK:
        per_tokenizer = _TABLES.setdefault(tokenizer, {})
        tables = per_tokenizer.get(key)
        if tables is None:
            tables = TokenTables(token_strings(tokenizer, vocab_size, stop_ids))
            per_tokenizer[key] = tables
    return tables


# -- the logits processor --------------------------------------------------------------------


class _Constraint:
    """Per-row automaton states over one ``generate`` call; masks each row's scores."""

    def __init__(
        self,
        tokenizer: Any,
        stop_ids: Sequence[int],
        fact_ids: Sequence[Sequence[str]],
        max_text_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = tuple(stop_ids)
        self.cites = [CiteIds.of(ids) for ids in fact_ids]
        self.states: list[State] = [START] * len(self.cites)
        self.limit = max_text_chars
        self.tables: TokenTables | None = None
        self._seen: int | None = None
        self._stops: Any = None
        self.fallbacks = 0  # rows that had no allowed token and could only stop

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.tables is None:
            self.tables = tables_for(self.tokenizer, scores.shape[-1], self.stop_ids)
        if self._seen is None:
            self._seen = input_ids.shape[1]  # the (left-padded) prompts: not part of the answer
        elif input_ids.shape[1] > self._seen:
            for row, tokens in enumerate(input_ids[:, self._seen :].tolist()):
                for token in tokens:
                    self._feed(row, token)
            self._seen = input_ids.shape[1]
        blocked = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
        if self._stops is None:
            self._stops = torch.tensor(self.stop_ids, dtype=torch.long, device=scores.device)
        stops = self._stops
        for row, state in enumerate(self.states):
            self._block(blocked[row], state, self.cites[row], stops)
        return scores.masked_fill_(blocked, float("-inf"))

    def _feed(self, row: int, token: int) -> None:
        state = self.states[row]
        if state == _DONE:
            return
        if token in self.stop_ids:
            self.states[row] = _DONE
            return
        assert self.tables is not None
        text = self.tables.strings[token] if token < self.tables.size else None
        following = None
        if text and state[0] in ("T", "L", "C", "I"):
            following = advance(state, text, self.cites[row], self.limit)
        if following is None:
            log.debug("constrained decoding: row %d chose token %d outside the shape", row, token)
            following = _BROKEN
        self.states[row] = following

    def _block(self, blocked: Any, state: State, cites: CiteIds, stops: Any) -> None:
        """Set ``blocked`` (one row, all True) to False where a token is allowed."""
        import torch

        assert self.tables is not None
        if state == _DONE:
            blocked.fill_(False)
            return
        if state[0] == "T":
            n, esc = state[1], state[2]
            need, least = self.tables.text_need(esc, cites, n == 0, blocked.device)
            if least <= self.limit - n:
                torch.gt(need, self.limit - n, out=blocked)
                return
        elif state[0] in ("L", "C", "I"):
            ids, count = self.tables.allowed(state, cites, self.limit, blocked.device)
            if count:
                blocked.index_fill_(0, ids, False)
                return
        if state != END and state != _BROKEN:
            self.fallbacks += 1
            log.debug("constrained decoding: no token fits after state %s; stopping the row", state)
        if stops.numel():
            blocked.index_fill_(0, stops, False)
        else:
            blocked.fill_(False)  # no stop token known: leave the row unconstrained


@functools.cache
def _processor_class() -> type:
    from transformers import LogitsProcessor

    class JsonConstraint(_Constraint, LogitsProcessor):
        """Masks, per row and step, every token that would leave the answer's JSON shape."""

    return JsonConstraint


def json_constraint(
    tokenizer: Any,
    stop_ids: Sequence[int],
    fact_ids: Sequence[Sequence[str]],
    *,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> Any:
    """A ``transformers.LogitsProcessor`` for one ``generate`` call over rows citing ``fact_ids``.

    Put it before any sampling processor. It keeps per-row state, so use it for one call only.
    """
    return _processor_class()(tokenizer, stop_ids, fact_ids, max_text_chars)
