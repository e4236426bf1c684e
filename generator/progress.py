"""Progress of long work as periodic log lines with counts, rate and time left."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class Progress:
    """Log "label: done/total unit (pct), rate/s, ~eta s left" at most every ``every`` seconds.

    Call it with the absolute count done so far; the last call (done == total) always logs.
    """

    def __init__(self, label: str, total: int, unit: str = "users", every: float = 5.0) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.every = every
        self.started = time.monotonic()
        self._last_logged = self.started

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if done < self.total and now - self._last_logged < self.every:
            return
        self._last_logged = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        left = (self.total - done) / rate if rate > 0 else float("inf")
        share = 100.0 * done / self.total if self.total else 100.0
        log.info(
            "%s: %s/%s %s (%.0f%%), %s/s, ~%.0f s left",
            self.label,
            f"{done:,}",
            f"{self.total:,}",
            self.unit,
            share,
            f"{rate:,.0f}",
            left,
        )
