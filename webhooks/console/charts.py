"""Charts drawn on the server as inline SVG: no script, no CDN, styled by ``console.css``.

Every value and label is escaped; hovering a bar or point shows its ``<title>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 34


@dataclass(frozen=True)
class Series:
    """One line (or bar layer): a CSS class, a legend label, one value per x label."""

    css: str
    label: str
    values: Sequence[float | None]


def _nice_max(value: float) -> float:
    """A round number at or above ``value`` for the top of the y axis."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def duration(seconds: float | None) -> str:
    """Seconds as a short human duration: 850 ms, 42 s, 7.5 min, 3.2 h, 2.1 d."""
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _frame(title: str, labels: Sequence[str], top: float, fmt: str) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        value = top * fraction
        text = duration(value) if fmt == "duration" else f"{value:g}"
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(text)}</text>"
        )
    step = _slot(len(labels))
    every = max(1, len(labels) // 8)
    for index, label in enumerate(labels):
        if index % every == 0:
            x = LEFT + step * (index + 0.5)
            parts.append(
                f'<text class="axis" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    return parts


def _slot(count: int) -> float:
    return (WIDTH - LEFT - RIGHT) / max(count, 1)


def _legend(series: Sequence[Series]) -> list[str]:
    parts = []
    x = LEFT
    for each in series:
        parts.append(
            f'<rect class="{escape(each.css)}" x="{x}" y="{HEIGHT - 12}" width="10" height="10"/>'
            f'<text class="legend" x="{x + 14}" y="{HEIGHT - 3}">{escape(each.label)}</text>'
        )
        x += 24 + 7 * len(each.label)
    return parts


def stacked_bars(title: str, labels: Sequence[str], layers: Sequence[Series]) -> Markup:
    """Bars per label, the layers stacked bottom up (e.g. jobs done, then failed, per hour)."""
    totals = [sum(layer.values[i] or 0 for layer in layers) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    step = _slot(len(labels))
    parts = _frame(title, labels, top, "count")
    for index, label in enumerate(labels):
        base = 0.0
        x = LEFT + step * index + step * 0.15
        for layer in layers:
            value = layer.values[index] or 0
            if value <= 0:
                continue
            height = plot_h * value / top
            y = TOP + plot_h - plot_h * base / top - height
            parts.append(
                f'<rect class="{escape(layer.css)}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{step * 0.7:.1f}" height="{height:.1f}">'
                f"<title>{escape(label)}: {value:g} {escape(layer.label)}</title></rect>"
            )
            base += value
    parts += _legend(layers)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated value is escaped above


def lines(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """One line per series over the labels (gaps where a value is None), y axis as durations."""
    values = [v for s in series for v in s.values if v is not None]
    top = _nice_max(max(values, default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    step = _slot(len(labels))
    parts = _frame(title, labels, top, "duration")
    for each in series:
        points: list[tuple[float, float, int]] = []
        for index, value in enumerate(each.values):
            if value is None:
                continue
            x = LEFT + step * (index + 0.5)
            y = TOP + plot_h - plot_h * value / top
            points.append((x, y, index))
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
            parts.append(f'<polyline class="{escape(each.css)}" points="{path}"/>')
        for x, y, index in points:
            parts.append(
                f'<circle class="{escape(each.css)}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                f"<title>{escape(labels[index])}: {escape(each.label)} "
                f"{escape(duration(each.values[index]))}</title></circle>"
            )
    if not values:
        parts.append(
            f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
            "no drafts written in this period</text>"
        )
    parts += _legend(series)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated value is escaped above
