"""A progress bar with live figures and ETA that also reads well in a batch job's log file."""

from __future__ import annotations

import sys
import time
from typing import Dict, Optional, TextIO


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def plural(unit: str, count: int) -> str:
    """`unit` as it reads after the number `count`: "1 step", "2 steps", "2 batches"."""
    if count == 1:
        return unit
    return unit + ("es" if unit.endswith(("s", "sh", "ch", "x", "z")) else "s")


class ProgressBar:
    """Redraws one line on a terminal; in a log file, prints a line every `log_interval` seconds."""

    def __init__(self, total: Optional[int], description: str = "", unit: str = "step",
                 stream: Optional[TextIO] = None, width: int = 30, log_interval: float = 30.0):
        self.total, self.description, self.unit = total, description, unit
        self.stream = stream or sys.stdout
        self.width, self.log_interval = width, log_interval
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.time()
        self._last_print = 0.0
        self.current = 0
        self.counts: Dict[str, float] = {}  # totals shown as rates ("tokens" -> "12,345 tokens/s")

    def _line(self, figures: Dict[str, float]) -> str:
        elapsed = time.time() - self.started
        shown = "  ".join([f"{k} {v:.4f}" for k, v in figures.items()]
                          + [f"{total / max(elapsed, 1e-9):,.0f} {k}/s" for k, total in self.counts.items()])
        if self.total:
            done = min(self.current / self.total, 1.0)
            filled = int(done * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            remaining = elapsed / max(self.current, 1) * (self.total - self.current)
            timing = (f"{_duration(elapsed)} total" if self.current >= self.total
                      else f"{_duration(elapsed)} elapsed, ETA {_duration(remaining)}")
            rate = self.current / max(elapsed, 1e-9)
            return (f"{self.description} [{bar}] {self.current}/{self.total} {plural(self.unit, self.total)} "
                    f"({rate:.2f}/s, {timing})  {shown}")
        return f"{self.description} {self.current} {plural(self.unit, self.current)} ({_duration(elapsed)})  {shown}"

    def update(self, current: int, figures: Optional[Dict[str, float]] = None,
               counts: Optional[Dict[str, float]] = None) -> None:
        """Show progress up to `current` units with the given live figures; `counts` (say, the tokens of the
        units just done) are added up and shown as rates per second since the bar started."""
        self.current = current
        for key, value in (counts or {}).items():
            self.counts[key] = self.counts.get(key, 0) + value
        finished = bool(self.total) and current >= self.total
        now = time.time()
        if self.interactive:
            self.stream.write("\r" + self._line(figures or {}) + ("\n" if finished else ""))
            self.stream.flush()
        elif finished or now - self._last_print >= self.log_interval:
            self._last_print = now
            self.stream.write(self._line(figures or {}) + "\n")
            self.stream.flush()
