"""A progress bar on stderr: redrawn in place on a terminal, one line per phase otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Counts units of work (a subject's share of one round) against a planned total."""

    def __init__(self, total: int, *, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.started = time.perf_counter()
        self.phase = ""
        self._last_draw = 0.0

    def begin(self, phase: str) -> None:
        """Start a named phase (a workload with its parameters)."""
        self.phase = phase
        if self.enabled and not self.tty:
            self.stream.write(f"[{self._percent():3d}%] {phase}\n")
            self.stream.flush()
        self._draw(force=True)

    def grow(self, units: int) -> None:
        """Add work found after planning (e.g. a subject that opened late)."""
        self.total += units

    def advance(self, units: int = 1) -> None:
        """Mark `units` done."""
        self.done = min(self.done + units, self.total)
        self._draw()

    def note(self, text: str) -> None:
        """Print a line above the bar."""
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\x1b[2K")
        self.stream.write(text + "\n")
        self.stream.flush()
        self._draw(force=True)

    def close(self) -> None:
        """Finish the bar's line."""
        if self.tty:
            self.done = self.total
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def _percent(self) -> int:
        return int(100 * self.done / self.total)

    def _draw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.perf_counter()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        width = 30
        filled = int(width * self.done / self.total)
        elapsed = now - self.started
        eta = ""
        if 0 < self.done < self.total:
            eta = f" eta {elapsed * (self.total - self.done) / self.done:4.0f}s"
        bar = "#" * filled + "." * (width - filled)
        line = f"[{bar}] {self._percent():3d}% {elapsed:5.0f}s{eta}  {self.phase}"
        self.stream.write("\r\x1b[2K" + line[:120])
        self.stream.flush()
