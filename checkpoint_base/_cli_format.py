"""Terminal output for the command line: tables, sizes, times, durations, colour on a TTY only."""

from __future__ import annotations

import datetime
import os
import re
import shutil
import time
from collections.abc import Sequence
from typing import TextIO

from ._connect import redact

__all__ = [
    "Style",
    "format_age",
    "format_bytes",
    "format_seconds",
    "format_time",
    "parse_duration",
    "parse_seconds",
    "parse_when",
    "redact",
    "table",
]

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


class Style:
    """ANSI colour when `stream` is a terminal (and `NO_COLOR` is unset); plain text otherwise."""

    def __init__(self, stream: TextIO) -> None:
        isatty = getattr(stream, "isatty", None)
        self.color = bool(
            isatty is not None
            and isatty()
            and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb"
        )
        self.width = shutil.get_terminal_size((100, 24)).columns if self.color else None

    def __call__(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    style: Style,
    *,
    right: Sequence[int] = (),
    shrink: int | None = None,
) -> str:
    """Rows under headers, in aligned columns; on a terminal, column `shrink` is cut to fit."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    if style.width is not None and shrink is not None:
        overflow = sum(widths) + 2 * (len(widths) - 1) - style.width
        if overflow > 0:
            widths[shrink] = max(len(headers[shrink]), widths[shrink] - overflow, 8)

    def line(cells: Sequence[str], head: bool = False) -> str:
        out = []
        for i, cell in enumerate(cells):
            if len(cell) > widths[i]:
                cell = cell[: widths[i] - 1] + "…"
            text = cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            out.append(style(text, "bold") if head else text)
        return "  ".join(out).rstrip()

    return "\n".join([line(headers, head=True), *(line(r) for r in rows)])


def format_bytes(size: int | None) -> str:
    """1234567 -> "1.2 MB"."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop always returns


def format_time(epoch: float | None) -> str:
    """Seconds since the epoch as local "YYYY-MM-DD HH:MM:SS"."""
    if epoch is None:
        return "-"
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def format_age(epoch: float | None, now: float | None = None) -> str:
    """How long ago: "12s ago", "3m ago", "5h ago", "2d ago"."""
    if epoch is None:
        return "-"
    ago = max((now if now is not None else time.time()) - epoch, 0)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if ago >= size:
            return f"{int(ago // size)}{unit} ago"
    return f"{int(ago)}s ago"


def format_seconds(seconds: float | None) -> str:
    """A duration as "1:02:03" or "2:03"; "-" when unknown."""
    if seconds is None:
        return "-:--"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """ "90s", "15m", "12h", "7d", "2w", "1d12h" -> seconds.

    Raises:
        ValueError: not a duration; the message shows the accepted forms.
    """
    compact = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    for match in _DURATION.finditer(compact):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not compact or pos != len(compact):
        raise ValueError(f"not a duration: {text!r}; use forms like 90s, 15m, 12h, 7d, 2w, 1d12h")
    return total


def parse_seconds(text: str) -> float:
    """A number of seconds ("90", "2.5") or a duration ("90s", "12h", "1d12h") -> seconds.

    Raises:
        ValueError: neither; the message shows the accepted forms.
    """
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"{exc}, or a number of seconds") from None


def parse_when(text: str, now: float | None = None) -> float:
    """A point in time: an ISO date/time ("2024-05-04", "2024-05-04T06:30:00+00:00"), or a
    duration meaning that long ago ("7d"). Naive times are local.

    Raises:
        ValueError: neither form; the message shows both.
    """
    try:
        return (now if now is not None else time.time()) - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"not a time: {text!r}; use an ISO date or time (2024-05-04, "
            "2024-05-04T06:30:00+00:00) or an age (7d, 12h)"
        ) from None
    return moment.timestamp()
