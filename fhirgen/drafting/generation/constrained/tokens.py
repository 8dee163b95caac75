"""What the constraint knows about one tokenizer (``TokenTables``, built once per tokenizer and
shared through ``tables_for``): each token's text (``token_strings``), its cost inside a
``"text"`` string, and the tokens allowed from each state outside one."""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fhirgen.drafting.generation.constrained.automaton import (
    _BIG,
    _CLOSE_TEXT,
    _NOT_PLAIN,
    MAX_TEXT_CHARS,
    CiteIds,
    State,
    _cite_ids,
    _next_chars,
    _pending,
    _Recorder,
    _text_step,
    advance,
    step,
)


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
