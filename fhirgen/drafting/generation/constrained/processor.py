"""The logits processor (``json_constraint``): per-row automaton states over one ``generate``
call, masking each row's scores to the tokens that keep the answer in shape."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

from fhirgen.drafting.generation.constrained.automaton import (
    _BROKEN,
    _DONE,
    END,
    MAX_TEXT_CHARS,
    START,
    CiteIds,
    State,
    advance,
)
from fhirgen.drafting.generation.constrained.tokens import TokenTables, tables_for

log = logging.getLogger(__name__)


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
