"""The usage page's chart: spend per day, stacked by model, as plain SVG geometry.

Drawn on the server, so the page needs no chart library and no script (the
Content-Security-Policy allows neither inline scripts nor inline styles): the template
writes these numbers into ``<rect>``s and ``<text>``s, and colours come from the
stylesheet's ``series-N`` classes, which follow the dark mode like everything else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from brenia.billing.usage import UsageReport

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 72, 12, 32, 44
SERIES_COLOURS = 8  # the stylesheet's .series-0 … .series-7; more models cycle
MAX_X_LABELS = 12
MAX_BAR = 48.0


@dataclass(frozen=True)
class Segment:
    day: date
    model: str
    spend: Decimal
    series: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Tick:
    label: str
    x: float = 0
    y: float = 0


@dataclass(frozen=True)
class LegendEntry:
    model: str
    series: int
    spend: Decimal


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    segments: list[Segment]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    legend: list[LegendEntry]
    currency: str
    # The same figures as a table: one row per day with spend, one column per model.
    table: list[tuple[date, list[Decimal | None], Decimal]]


def _step(top: float) -> float:
    """A round tick step (1, 2 or 5 × 10^k) giving at most five steps up to ``top``."""
    raw = top / 5
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _money(value: float, step: float) -> str:
    places = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:,.{places}f}"


def usage_chart(report: UsageReport) -> Chart | None:
    """The stacked bars of ``report.series``; None when nothing was spent (the page
    shows an empty state instead of an empty box)."""
    if not report.series:
        return None
    days = report.period.days()
    by_model: dict[str, Decimal] = {}
    per_day: dict[date, Decimal] = {}
    for day, model, spend in report.series:
        by_model[model] = by_model.get(model, Decimal(0)) + spend
        per_day[day] = per_day.get(day, Decimal(0)) + spend
    # Biggest spender first: at the bottom of each bar and at the top of the legend.
    models = sorted(by_model, key=lambda m: (-by_model[m], m))
    series = {model: n % SERIES_COLOURS for n, model in enumerate(models)}

    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = _step(float(max(per_day.values())))
    top = step * math.ceil(float(max(per_day.values())) / step)
    band = plot_w / len(days)
    bar = min(MAX_BAR, max(1.0, band * 0.72))  # a short period: bars, not slabs
    index = {day: n for n, day in enumerate(days)}
    spend_of = {(day, model): spend for day, model, spend in report.series}

    segments: list[Segment] = []
    for day in sorted(per_day):
        base = 0.0
        for model in models:
            amount = spend_of.get((day, model))
            if not amount:
                continue
            height = float(amount) / top * plot_h
            segments.append(Segment(
                day=day, model=model, spend=amount, series=series[model],
                x=round(LEFT + index[day] * band + (band - bar) / 2, 2),
                y=round(TOP + plot_h - base - height, 2), width=round(bar, 2),
                height=round(max(height, 0.5), 2)))
            base += height

    ticks = round(top / step)
    y_ticks = [Tick(label=_money(step * n, step), y=round(TOP + plot_h - plot_h * n / ticks, 2))
               for n in range(ticks + 1)]
    every = max(1, math.ceil(len(days) / MAX_X_LABELS))
    x_ticks = [Tick(label=f"{day:%b} {day.day}", x=round(LEFT + n * band + band / 2, 2))
               for n, day in enumerate(days) if n % every == 0]
    table = [(day, [spend_of.get((day, model)) for model in models], per_day[day])
             for day in sorted(per_day)]
    return Chart(width=WIDTH, height=HEIGHT, plot_left=LEFT, plot_right=WIDTH - RIGHT,
                 plot_top=TOP, plot_bottom=TOP + plot_h, segments=segments, y_ticks=y_ticks,
                 x_ticks=x_ticks, currency=report.currency, table=table,
                 legend=[LegendEntry(model=m, series=series[m], spend=by_model[m])
                         for m in models])
