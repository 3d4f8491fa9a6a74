"""The benchmark entry point: run tiers, print one table, write the figures as JSON.

Tiers are listed once, in `TIERS`. Each is a function `(quick) -> list[Figure]`; a tier whose
prerequisites have not landed yet reports why instead of a number, so the JSON always lists it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import convergence, datapath, generation, memory
from bench.figures import Figure, print_table, write_json

TIERS: dict[str, Callable[[bool, str], list[Figure]]] = {
    "generation": generation.run,
    "convergence": convergence.run,
    "memory": memory.run,
    "datapath": datapath.run,
}
DEFAULT_JSON = Path("bench/results.json")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--tier", choices=[*TIERS, "all"], default="all", help="which tier to run (default: all)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small shapes and few repeats (well under a minute)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help=f"where to write the figures (default: {DEFAULT_JSON})",
    )
    parser.add_argument(
        "--only",
        default="",
        metavar="TEXT",
        help="generation tier: only shapes whose name contains TEXT (for profiling)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = list(TIERS) if args.tier == "all" else [args.tier]
    figures: list[Figure] = []
    for name in names:
        start = time.perf_counter()
        tier = TIERS[name](args.quick, args.only)
        print(f"# {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        print_table(tier)
        print()
        figures += tier
    write_json(figures, args.json)
    print(f"wrote {len(figures)} figures to {args.json}")
    return 0
