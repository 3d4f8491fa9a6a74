"""Figures: what every tier reports, how it is printed and written, and how time is taken.

A figure is one number with its unit and, where the issue sets one, an upper-bound target; `pass`
is computed, never asserted: a MISS is a finding for the closing note, not a failure.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value: float | None
    unit: str
    target: float | None = None
    """Upper bound (every target of the issue is "at most"); None where none applies."""
    note: str = ""
    """Printed in the table only (e.g. why a tier is not available)."""

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        return self.value <= self.target

    def as_json(self) -> dict[str, Any]:
        """Exactly the issue's keys: name, value, unit, target, pass."""
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "pass": self.passed,
        }


def unavailable(name: str, reason: str) -> Figure:
    """A tier (or figure) that cannot run here yet: value null, the reason in the table."""
    return Figure(name, None, "n/a", note=f"not available: {reason}")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def print_table(figures: Sequence[Figure], out: TextIO = sys.stdout) -> None:
    rows = [
        (
            f.name,
            _fmt(f.value),
            f.unit,
            f"<= {_fmt(f.target)}" if f.target is not None else "",
            {True: "PASS", False: "MISS", None: ""}[f.passed],
            f.note,
        )
        for f in figures
    ]
    header = ("figure", "value", "unit", "target", "", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        cells = [
            row[0].ljust(widths[0]),
            row[1].rjust(widths[1]),
            row[2].ljust(widths[2]),
            row[3].ljust(widths[3]),
            row[4].ljust(widths[4]),
            row[5],
        ]
        print("  ".join(cells).rstrip(), file=out)
    out.flush()


def write_json(figures: Iterable[Figure], path: Path) -> None:
    path.write_text(json.dumps([f.as_json() for f in figures], indent=1) + "\n")


def time_ms(
    operation: Callable[[], object],
    setup: Callable[[], object] = lambda: None,
    repeat: int = 5,
    budget_s: float = 5.0,
) -> float:
    """Median CPU time of `operation` in ms over up to `repeat` runs (fewer if the budget runs
    out; at least one). CPU time, not wall time: on a shared 2-core box the wall clock mostly
    measures the neighbours, while the CPU the control plane spends per op is the figure that
    matters (and the one that stays put from run to run). `setup` runs untimed before each run; a
    collection before each run keeps garbage of the previous run from being charged to this one."""
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < repeat and (not samples or time.perf_counter() < deadline):
        setup()
        gc.collect()
        start = time.process_time()
        operation()
        samples.append((time.process_time() - start) * 1000)
    return statistics.median(samples)


def time_pair_ms(
    operation: Callable[[], object],
    baseline: Callable[[], object],
    setup: Callable[[], object] = lambda: None,
    repeat: int = 5,
    budget_s: float = 5.0,
) -> tuple[float, float]:
    """Median CPU times in ms of `operation` and `baseline`, run alternately (as `time_ms` runs
    one): the speed of a shared box drifts by up to 2x over seconds, so a ratio of two figures
    timed one after the other says more about the box than about the code; timed in turns, both
    see the same box. `setup` runs untimed before each run of `operation`."""
    samples: tuple[list[float], list[float]] = ([], [])
    deadline = time.perf_counter() + budget_s
    while len(samples[0]) < repeat and (not samples[0] or time.perf_counter() < deadline):
        for timed, prepare in ((operation, setup), (baseline, lambda: None)):
            prepare()
            gc.collect()
            start = time.process_time()
            timed()
            samples[timed is baseline].append((time.process_time() - start) * 1000)
    return statistics.median(samples[0]), statistics.median(samples[1])
