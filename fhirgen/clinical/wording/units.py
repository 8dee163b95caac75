"""Units as a reader writes them: UCUM codes rendered (``unit_text``), values with their unit
(``quantity_text``)."""

from __future__ import annotations

import re

# Whole unit strings with a fixed rendering: unitless codes (and the words some records put in
# Quantity.unit for them), heart and breathing rates written as UCUM-ish text, Fahrenheit/Celsius
# spelled without UCUM brackets.
_WHOLE_UNITS: dict[str, str] = {
    "1": "",
    "pH": "",
    "INR": "",
    "ratio": "",
    "score": "",
    "(score)": "",
    "#": "",
    "beats/min": "/min",
    "breaths/min": "/min",
    "degF": "°F",
    "degC": "°C",
}

# UCUM bracketed atoms ("special" and customary units). Others lose their brackets and any
# "_qualifier" (``[cup_us]`` -> ``cup``).
_BRACKET_UNITS: dict[str, str] = {
    "[degF]": "°F",
    "[pH]": "",
    "[iU]": "IU",
    "[IU]": "IU",
    "[HPF]": "hpf",
    "[LPF]": "lpf",
    "[drp]": "drop",
    "[ppm]": "ppm",
    "[ppb]": "ppb",
    "[CFU]": "CFU",
    "[arb'U]": "arb. unit",
}

_PER_BSA = re.compile(r"\{?1\.73[._ ]?m2\}?")  # eGFR's "per 1.73 m² body surface area"
_ANNOTATION = re.compile(r"\{[^}]*\}")  # UCUM annotations are comments: {beats}, {INR}, {#}
_BRACKET = re.compile(r"\[[^\]]*\]")
_POWER = re.compile(r"(?<![\d.])(\d+)[*^](-?\d+)")  # 10*3, 10^9, 10*-3
# u as the micro prefix: only directly before a unit atom (uL, ug, umol, uIU, uU, um, us).
_MICRO = re.compile(r"(?<![A-Za-zµ])u(?=(?:mol|IU|Eq|eq|kat|g|L|l|m|s|U|V)(?![a-z]))")
_CELSIUS = re.compile(r"(?<![A-Za-z])Cel(?![A-Za-z])")
_SQUARE_CUBE = re.compile(r"(?<=[A-Za-z])([23])(?![\w])")  # m2, mm3
_PRODUCT = re.compile(r"(?<=[A-Za-z²³])\.(?=[A-Za-z])")  # UCUM "." is multiplication
_FORBIDDEN = re.compile(r"[\[\]{}*]")
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _bracket_unit(match: re.Match[str]) -> str:
    atom = match.group(0)
    if atom in _BRACKET_UNITS:
        return _BRACKET_UNITS[atom]
    return atom[1:-1].split("_", 1)[0]


def _power(match: re.Match[str]) -> str:
    base, exponent = match.groups()
    prefix = "×" if base == "10" else ""
    return f"{prefix}{base}{exponent.translate(_SUPERSCRIPT)}"


def unit_text(unit: str) -> str:
    """A UCUM code or unit string as a reader writes it: ``10*3/uL`` -> ``×10³/µL``.

    Unitless codes (``1``, ``{INR}``, ``[pH]``, ``{score}``) give ``""``; UCUM annotations
    (``{beats}/min``) are dropped; unknown plain units pass through. The result never contains
    ``[``, ``]``, ``{``, ``}``, ``*`` or ``_``.
    """
    text = unit.strip()
    if text in _WHOLE_UNITS:
        return _WHOLE_UNITS[text]
    text = _PER_BSA.sub("1.73 m²", text)
    text = _ANNOTATION.sub("", text)
    text = _BRACKET.sub(_bracket_unit, text)
    text = _POWER.sub(_power, text)
    text = _MICRO.sub("µ", text)
    text = _CELSIUS.sub("°C", text)
    text = _SQUARE_CUBE.sub(lambda m: m.group(1).translate(_SUPERSCRIPT), text)
    text = _PRODUCT.sub("·", text)
    text = _FORBIDDEN.sub("", text.replace("_", " "))
    text = " ".join(text.split())
    if text.startswith("1/"):
        text = text[1:]  # 1/min -> /min
    return "" if text == "1" else text


def quantity_text(value: str, unit: str) -> str:
    """A formatted value with its rendered unit: ``("16.8", "10*3/uL")`` -> ``16.8 ×10³/µL``.

    ``value`` is already formatted text and is kept digit for digit. ``%`` and per-units
    (``/min``) follow the value directly; unitless values stand alone.
    """
    value = value.strip()
    rendered = unit_text(unit)
    if not value or not rendered:
        return value
    if rendered == "%" or rendered.startswith("/"):
        return f"{value}{rendered}"
    return f"{value} {rendered}"
