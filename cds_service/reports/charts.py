"""The feedback page's charts: matplotlib (the optional extra ``reports``), Agg backend, each
rendered to SVG in memory and returned as the ``<svg>`` element to inline in the page. Text is
drawn as paths (no font file, nothing to load), and each chart gets its own id salt so the ids
of two charts on one page never clash."""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from typing import Any

ACCEPTED, OVERRIDDEN, IGNORED = "#2e7d32", "#c62828", "#9e9e9e"
_LABEL_MAX = 48
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)


class ChartsUnavailable(ImportError):
    """matplotlib is not installed: the HTML report cannot draw its charts."""


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ChartsUnavailable(
            "the HTML feedback report draws its charts with matplotlib, which is not installed: "
            "pip install 'ivig-cds[reports]' (or use --format json or csv)"
        ) from exc
    matplotlib.use("Agg")
    return matplotlib


def require_matplotlib() -> None:
    """Raise ``ChartsUnavailable`` (an ImportError) saying what to install when matplotlib is
    missing."""
    _matplotlib()


def _label(text: str) -> str:
    """A tick label: shortened, and ``$`` kept literal (matplotlib reads ``$...$`` as math)."""
    short = text if len(text) <= _LABEL_MAX else text[: _LABEL_MAX - 1] + "…"
    return short.replace("$", r"\$")


def _svg(figure: Any, salt: str, title: str) -> str:
    matplotlib = _matplotlib()
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "path"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :].strip()  # no XML prolog or DOCTYPE inside HTML
    text = _METADATA.sub("", text, count=1)  # matplotlib's RDF credits: nothing to show
    return text.replace("<svg ", f'<svg role="img" aria-label="{html.escape(title)}" ', 1)


def _figure(width: float, height: float) -> Any:
    _matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def outcome_bars(
    labels: Sequence[str],
    accepted: Sequence[int],
    overridden: Sequence[int],
    ignored: Sequence[int],
    title: str = "Cards shown by card group",
) -> str:
    """A stacked horizontal bar per label: accepted, overridden, ignored (first label on top)."""
    figure = _figure(9.0, 1.2 + 0.45 * len(labels))
    axes = figure.add_subplot()
    rows = list(range(len(labels)))[::-1]
    left = [0] * len(labels)
    for values, colour, name in (
        (accepted, ACCEPTED, "accepted"),
        (overridden, OVERRIDDEN, "overridden"),
        (ignored, IGNORED, "ignored"),
    ):
        axes.barh(rows, values, left=left, color=colour, label=name, height=0.6)
        left = [a + b for a, b in zip(left, values, strict=True)]
    axes.set_yticks(rows, [_label(label) for label in labels])
    axes.set_xlabel("cards shown")
    axes.set_title(title)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axes.xaxis.get_major_locator().set_params(integer=True)
    return _svg(figure, "outcomes", title)


def rate_line(weeks: Sequence[str], rates: Sequence[float | None]) -> str:
    """Override rate (percent of cards shown) by ISO week; a week without cards is a gap."""
    figure = _figure(9.0, 3.2)
    axes = figure.add_subplot()
    points = [math.nan if rate is None else 100 * rate for rate in rates]
    axes.plot(range(len(weeks)), points, marker="o", color=OVERRIDDEN)
    axes.set_xticks(range(len(weeks)), [_label(week) for week in weeks], rotation=45, ha="right")
    axes.set_ylim(0, 100)
    axes.set_ylabel("% of cards shown overridden")
    axes.set_title("Override rate by week")
    axes.grid(axis="y", alpha=0.3)
    return _svg(figure, "weeks", "Override rate by week")


def reason_bars(labels: Sequence[str], counts: Sequence[int]) -> str:
    """Overridden cards per override reason (first label on top)."""
    figure = _figure(9.0, 1.2 + 0.45 * len(labels))
    axes = figure.add_subplot()
    rows = list(range(len(labels)))[::-1]
    axes.barh(rows, counts, color=OVERRIDDEN, height=0.6)
    axes.set_yticks(rows, [_label(label) for label in labels])
    axes.set_xlabel("cards overridden")
    axes.set_title("Override reasons")
    axes.xaxis.get_major_locator().set_params(integer=True)
    return _svg(figure, "reasons", "Override reasons")
