"""Charts drawn on the server as inline SVG: bars or lines over a row of days, with axes, labels
and a legend. No chart library and no JavaScript: the page is complete as served.

Every drawn value is a `mark` (`rect` for a bar, `polyline` for a line) carrying `data-series`,
`data-day` (bars) and a `<title>` with the exact value; points of a line are `dot`s. Text is
escaped here, so the result can be placed in a template as it is."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 72, 12, 30, 34
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
COLOURS = ("#2457d6", "#b91c1c", "#15803d", "#b45309")
MAX_X_LABELS = 8


@dataclass(frozen=True)
class Series:
    name: str
    values: Mapping[str, Decimal]  # by day (ISO); a day without a value draws nothing
    kind: Literal["bar", "line"] = "bar"


def days_between(first: str, last: str) -> list[str]:
    """Every ISO day from `first` to `last`, inclusive: a time axis with its gaps kept."""
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def ticks(low: float, high: float, wanted: int = 4) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) covering [low, high], zero included."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        high = low + 1.0
    raw = (high - low) / wanted
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step)
    last = math.ceil(high / step)
    return [n * step for n in range(first, last + 1)]


def _num(value: float) -> str:
    return f"{value:.1f}"


def chart(title: str, days: Sequence[str], series: Sequence[Series], label: Callable[[Decimal], str]) -> Markup:
    """An SVG chart of `series` over `days`; `label` formats a value (axis ticks and titles)."""
    values = [float(v) for s in series for v in s.values.values()]
    scale = ticks(min(values, default=0.0), max(values, default=0.0))
    low, high = scale[0], scale[-1]

    def y(value: float) -> float:
        return TOP + PLOT_H * (high - value) / (high - low)

    slot = PLOT_W / max(1, len(days))
    bars = [s for s in series if s.kind == "bar"]
    bar_w = slot * 0.8 / max(1, len(bars))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        # the y axis: a grid line and a label per tick
        *(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{_num(y(t))}" y2="{_num(y(t))}" '
            f'stroke="{"#9ca3af" if t == 0 else "#e5e7eb"}"/>'
            f'<text x="{LEFT - 6}" y="{_num(y(t) + 4)}" text-anchor="end">{escape(label(Decimal(str(t))))}</text>'
            for t in scale
        ),
        f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + PLOT_H}" stroke="#9ca3af"/>',
    ]
    # the x axis: at most MAX_X_LABELS day labels, evenly spread
    every = max(1, math.ceil(len(days) / MAX_X_LABELS))
    for n, day in enumerate(days):
        if n % every == 0:
            parts.append(f'<text x="{_num(LEFT + slot * (n + 0.5))}" y="{HEIGHT - BOTTOM + 16}" '
                         f'text-anchor="middle">{escape(day[5:])}</text>')
    for index, one in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        name = escape(one.name)
        if one.kind == "bar":
            offset = slot * 0.1 + bar_w * bars.index(one)
            for n, day in enumerate(days):
                if day not in one.values:
                    continue
                value = one.values[day]
                top, bottom = sorted((y(float(value)), y(0.0)))
                parts.append(
                    f'<rect class="mark" data-series="{name}" data-day="{day}" data-value="{value}" '
                    f'x="{_num(LEFT + slot * n + offset)}" y="{_num(top)}" width="{_num(bar_w)}" '
                    f'height="{_num(max(bottom - top, 0.5))}" fill="{colour}">'
                    f'<title>{day} · {name}: {escape(label(value))}</title></rect>'
                )
        else:
            points = [(LEFT + slot * (n + 0.5), y(float(one.values[day])), day) for n, day in enumerate(days)
                      if day in one.values]
            if points:
                parts.append(f'<polyline class="mark" data-series="{name}" fill="none" stroke="{colour}" '
                             f'stroke-width="2" points="{" ".join(f"{_num(x)},{_num(v)}" for x, v, _ in points)}"/>')
            parts += [
                f'<circle class="dot" data-series="{name}" data-day="{day}" cx="{_num(x)}" cy="{_num(v)}" r="3" '
                f'fill="{colour}"><title>{day} · {name}: {escape(label(one.values[day]))}</title></circle>'
                for x, v, day in points
            ]
        # the legend: a swatch and the name of each series, along the top
        x = LEFT + 130 * index
        parts.append(f'<g class="legend"><rect x="{x}" y="8" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="17">{name}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))
