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

``automaton`` holds the shape on characters, ``tokens`` the per-tokenizer tables and
``processor`` the logits processor.
"""

from fhirgen.drafting.generation.constrained.automaton import (
    END,
    MAX_TEXT_CHARS,
    START,
    CiteIds,
    State,
    accepts,
    advance,
    step,
)
from fhirgen.drafting.generation.constrained.processor import json_constraint
from fhirgen.drafting.generation.constrained.tokens import TokenTables, tables_for, token_strings

__all__ = [
    "END",
    "MAX_TEXT_CHARS",
    "START",
    "CiteIds",
    "State",
    "TokenTables",
    "accepts",
    "advance",
    "json_constraint",
    "step",
    "tables_for",
    "token_strings",
]
