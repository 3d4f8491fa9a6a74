"""When to push: debounce bursts of input changes into one rebuild.

Istio waits for a quiet period (`PILOT_DEBOUNCE_AFTER`, 100 ms) after the last change, but never
longer than `PILOT_DEBOUNCE_MAX` (10 s) after the first, and merges everything in between into one
push (istio-reference.md §10.3). An editor saving a file, or `kubectl apply -f dir/`, produces a
burst of events; pushing once per burst keeps Envoy from applying half of a change.

`Debouncer` holds only timestamps and is driven by the caller's clock, so its decisions are tested
with a fake clock; `DebouncedTrigger` is the asyncio loop around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("pilotfish.push")

DEFAULT_QUIET = 0.1
DEFAULT_MAX_DELAY = 10.0


@dataclass(frozen=True, slots=True)
class Burst:
    """A debounced group of events, handed to the rebuild."""

    first: float
    last: float
    count: int
    fired: float

    @property
    def waited(self) -> float:
        """Time from the first event to the push decision (`pilot_debounce_time`)."""
        return self.fired - self.first


class Debouncer:
    """Pure timing: fire `quiet` after the last event, or `max_delay` after the first, whichever first."""

    def __init__(self, quiet: float = DEFAULT_QUIET, max_delay: float = DEFAULT_MAX_DELAY) -> None:
        if quiet < 0 or max_delay < 0:
            raise ValueError("debounce times must not be negative")
        self.quiet = quiet
        self.max_delay = max_delay
        self._first: float | None = None
        self._last = 0.0
        self._count = 0

    def event(self, now: float) -> None:
        if self._first is None:
            self._first = now
        self._last = now
        self._count += 1

    @property
    def pending(self) -> bool:
        return self._first is not None

    def deadline(self) -> float | None:
        """When the pending burst fires, or None when nothing is pending."""
        if self._first is None:
            return None
        return min(self._last + self.quiet, self._first + self.max_delay)

    def ready(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def fire(self, now: float) -> Burst:
        """Close the pending burst (the caller checked `ready`) and start over."""
        assert self._first is not None, "fire() without a pending burst"
        burst = Burst(self._first, self._last, self._count, now)
        self._first = None
        self._count = 0
        return burst


class DebouncedTrigger:
    """Runs `action(burst)` once per debounced burst of `notify()` calls; one action at a time.

    Events that arrive while the action runs form the next burst, so a slow rebuild is never run
    concurrently with itself and never loses a change.
    """

    def __init__(
        self,
        action: Callable[[Burst], Awaitable[None]],
        quiet: float = DEFAULT_QUIET,
        max_delay: float = DEFAULT_MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.debouncer = Debouncer(quiet, max_delay)
        self._action = action
        self._clock = clock
        self._wake = asyncio.Event()

    def notify(self, at: float | None = None) -> None:
        """Record one change event (at `at`, default now) and wake the loop."""
        self.debouncer.event(self._clock() if at is None else at)
        self._wake.set()

    async def run(self) -> None:
        while True:
            deadline = self.debouncer.deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            now = self._clock()
            if self.debouncer.ready(now):
                burst = self.debouncer.fire(now)
                try:
                    await self._action(burst)
                except Exception:  # a bug in a rebuild must not stop future pushes
                    log.exception("push: rebuild failed")
