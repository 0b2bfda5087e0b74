"""The SVG bar charts: the overall score and each task's headline metric.

Each bar has its label on a line of its own above it, so that no label is ever cut and the
chart stays narrow enough for a phone (the page scales it to the screen's width). Scores
normally lie in [0, 1]; the overall chart's axis spans [0, 1], widened to at most
SCORE_AXIS, and a bar beyond the axis is cut at its edge and marked with an arrowhead
(its number is still the exact value).
"""

from __future__ import annotations

import html

from grue.leaderboard.aggregate import HEADLINE, Row
from grue.leaderboard.board import Board, arrow, fmt

Bar = tuple[str, float, "float | None", bool]
"""(label, value, error or None, reported?)."""
WIDTH, PAD, FONT, LINE, BAR_H, GAP = 460, 4, 13, 16, 12, 8
"""Chart width, margin, font size, label line height, bar height, space between bars (px)."""
VALUE_W = 64
"""Room right of the plot for a bar's number."""
CHAR_W = 7.5
"""A generous width of one character at FONT px, to wrap labels (SVG text does not wrap by itself)."""
TIP = 6
"""Width of the arrowhead that marks a bar cut at the axis."""
SCORE_AXIS = (-0.25, 1.25)
"""The furthest the overall chart's axis reaches beyond [0, 1]."""


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken at spaces; a longer word is split."""
    lines, line = [], ""
    for word in text.split():
        while len(word) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if word:
            if line and len(line) + 1 + len(word) <= width:
                line += " " + word
            else:
                if line:
                    lines.append(line)
                line = word
    return lines + [line] if line or not lines else lines


def score_axis(values: list[float]) -> tuple[float, float]:
    """The overall chart's axis: [min(0, lowest), max(1, highest)], kept within SCORE_AXIS."""
    return max(min([0.0, *values]), SCORE_AXIS[0]), min(max([1.0, *values]), SCORE_AXIS[1])


def data_axis(bars: list[Bar]) -> tuple[float, float]:
    """A metric chart's axis: from min(0, lowest bar - error) to max(0, highest bar + error)."""
    return (min(0.0, min(v - (e or 0) for _, v, e, _ in bars)), max(0.0, max(v + (e or 0) for _, v, e, _ in bars)))


def _text(x: float, y: float, text: str, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{html.escape(text)}</text>'


def _bar(x, y: float, value: float, err: float | None, reported: bool, axis: tuple[float, float]) -> list[str]:
    """One bar (its top at ``y``) from 0 to ``value``, ``x`` mapping a value to its abscissa (clamped to the
    axis): the bar, an arrowhead when the value lies beyond the axis, the error bar, the number."""
    lo, hi = axis
    x0, x1 = sorted((x(0.0), x(value)))
    fill = "#c9a227" if reported else "#3b6ea5"
    out = [f'<rect x="{x0:.1f}" y="{y + 1}" width="{max(x1 - x0, 0.5):.1f}" height="{BAR_H}" fill="{fill}"/>']
    end = x1
    if value < lo or value > hi:  # an arrowhead out of the axis' edge, in the margin kept for it
        sign = -1 if value < lo else 1
        out.append(
            f'<path d="M{x(value):.1f} {y - 2}l{sign * TIP} {BAR_H / 2 + 3}l{-sign * TIP} {BAR_H / 2 + 3}z" '
            f'fill="{fill}"/>'
        )
        end = x1 + TIP if sign > 0 else x1
    if err:
        a, b, mid = x(value - err), x(value + err), y + 1 + BAR_H / 2
        out.append(
            f'<path d="M{a:.1f} {mid:.1f}H{b:.1f}M{a:.1f} {mid - 4:.1f}V{mid + 4:.1f}M{b:.1f} '
            f'{mid - 4:.1f}V{mid + 4:.1f}" stroke="#222" fill="none"/>'
        )
        end = max(end, b)
    return out + [_text(end + 4, y + BAR_H - 1, fmt(value))]


def _ticks(x, axis: tuple[float, float], marks: tuple[float, ...], y: float) -> list[str]:
    """Tick marks and numbers under the axis line at ``y``: its ends, then 0 and ``marks`` where they lie on it
    and leave room (40 px) beside the numbers already placed."""
    lo, hi = axis
    placed: list[float] = []
    for t in (lo, hi, 0.0, *marks):
        if lo <= t <= hi and all(abs(x(t) - x(p)) >= 40 for p in placed):
            placed.append(t)
    out = []
    for t in sorted(placed):
        anchor = ' text-anchor="end"' if t == hi else (' text-anchor="middle"' if t != lo else "")
        out.append(f'<path d="M{x(t):.1f} {y}v4" stroke="#888"/>' + _text(x(t), y + 16, fmt(t), anchor))
    return out


# why hand-written SVG: a few bars need no plotting library, and the bytes stay the same from run to run
def bar_svg(title: str, bars: list[Bar], axis: tuple[float, float], marks: tuple[float, ...] = ()) -> str:
    """A horizontal bar chart of ``bars`` on ``axis`` (lo, hi), ticked at its ends, 0 and ``marks``; error bars
    span ± error; a bar beyond the axis is cut at its edge and ends in an arrowhead. Empty without bars.

    Layout, top to bottom: the title, then per bar its label's lines and the bar, then the axis; the plot
    spans [PAD + TIP, WIDTH - VALUE_W] so that an arrowhead and a number always fit beside it."""
    if not bars:
        return ""
    lo, hi = axis
    left, right = PAD + TIP, WIDTH - VALUE_W
    x = lambda v: left + (min(max(v, lo), hi) - lo) / ((hi - lo) or 1.0) * (right - left)
    chars = int((WIDTH - 2 * PAD) / CHAR_W)
    out, y, zero = [], PAD, []
    for line in wrap(title, int((WIDTH - 2 * PAD) / (CHAR_W + 1))):
        y += LINE + 1
        out.append(_text(PAD, y, line, ' font-size="14" font-weight="bold"'))
    y += GAP
    for label, value, err, reported in bars:
        for line in wrap(label, chars):
            y += LINE
            out.append(_text(PAD, y - 3, line))
        zero.append(f"M{x(0.0):.1f} {y - 1}V{y + BAR_H + 3}")  # the zero line, beside the bars only (not across labels)
        out += _bar(x, y, value, err, reported, axis)
        y += BAR_H + GAP
    axis_y = y - GAP + 4
    out.append(f'<path d="M{x(lo):.1f} {axis_y}H{x(hi):.1f}{"".join(zero)}" stroke="#888" fill="none"/>')
    out += _ticks(x, axis, marks, axis_y)
    height = axis_y + 22
    if any(v < lo or v > hi for _, v, _, _ in bars):
        for line in wrap("A bar ending in an arrowhead lies beyond the axis; its number is the exact value.", chars):
            height += LINE
            out.append(_text(PAD, height - 3, line, ' fill="#555"'))
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height + PAD}" '
        f'viewBox="0 0 {WIDTH} {height + PAD}" font-family="sans-serif" font-size="{FONT}" role="img" '
        f'aria-label="{html.escape(title)}">'
    )
    return "\n".join([head, *out, "</svg>"]) + "\n"


def task_bars(board: Board, task: str) -> list[Bar]:
    """Bars of a task's headline metric on its benchmark split: each submission (± std over seeds), then the paper's
    main-table rows (for a task outside the overall score, e.g. ToTTo on validation: the paper's rows of that split)."""
    metric = HEADLINE.get(task)
    bars = []
    for kind in ("submission", "reported"):
        for r in board.task_rows(task, kind):
            if metric in r.cells and (kind == "submission" or r.in_pool or r.split != "test"):
                bars.append((_bar_label(r), r.cells[metric].mean, r.cells[metric].std, kind == "reported"))
    return bars


def _bar_label(r: Row) -> str:
    if r.kind == "submission":
        return r.ref
    return f"{r.algorithm}{' · ' + r.reward if r.reward else ''} (paper)"


def svgs(board: Board) -> dict[str, str]:
    """Plot name -> SVG text: ``overall`` and one per task with a headline metric."""
    overall = [
        (
            o.group + ("" if o.complete else " (incomplete)") + (" (paper)" if o.kind == "reported" else ""),
            o.score,
            None,
            o.kind == "reported",
        )
        for o in board.ranking
        if o.score is not None
    ]
    out = {
        "overall": bar_svg(
            "Overall GRUE score (gold: reported in the paper)",
            overall,
            score_axis([v for _, v, _, _ in overall]),
            marks=(1.0,),
        )
        if overall
        else ""
    }
    for task in board.tasks:
        metric = HEADLINE.get(task)
        bars = task_bars(board, task) if metric else []
        if bars:
            out[task] = bar_svg(
                f"{task}: {metric} {arrow(board.directions.get(metric))} (mean ± std; gold: paper)",
                bars,
                data_axis(bars),
            )
    return {k: v for k, v in out.items() if v}
