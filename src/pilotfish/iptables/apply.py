"""Apply or remove a `RuleSet` in the current network namespace (the pod's).

Each family is changed by a single `iptables-restore --noflush` (`ip6tables-restore`) transaction that
`state.plan_transaction` computes from the live tables: atomic, idempotent, and touching only our chains
and rules. TPROXY routing and the IPv6 `::6` address are set with `ip` afterwards (`apply_routes`), the way
istio-iptables configures routes as a separate step.

Every command goes through a `Runner`, so tests can record the commands instead of running them, like
Istio's dependency stub (the conformance goldens are such recordings). Commands are argv lists; no shell.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pilotfish.iptables.rules import FAMILIES, Family, IpCommand, RuleSet
from pilotfish.iptables.state import SavedState, has_our_rules, parse_save, plan_transaction

_MAX_REPEAT = 64  # bound for "delete every copy" loops (a recording runner always succeeds)
SAVE: dict[Family, str] = {4: "iptables-save", 6: "ip6tables-save"}
RESTORE: dict[Family, tuple[str, ...]] = {4: ("iptables-restore", "--noflush"),
                                          6: ("ip6tables-restore", "--noflush")}


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Runner(Protocol):
    """Runs one command (argv list, optional stdin text) and reports how it went."""

    def run(self, argv: Sequence[str], stdin: str | None = None) -> RunResult: ...


class SubprocessRunner:
    """The real thing: run the command in this process's network namespace."""

    def run(self, argv: Sequence[str], stdin: str | None = None) -> RunResult:
        try:
            done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            return RunResult(127, "", f"{argv[0]}: command not found")
        return RunResult(done.returncode, done.stdout, done.stderr)


@dataclass
class RecordingRunner:
    """Records commands instead of running them; replies from `responses` (default: success, no output).

    `lines()` renders the record as the conformance goldens do: a command line per plain command, and
    only the input lines for a command that reads stdin.
    """

    responses: dict[tuple[str, ...], RunResult] = field(default_factory=dict)
    calls: list[tuple[tuple[str, ...], str | None]] = field(default_factory=list)

    def run(self, argv: Sequence[str], stdin: str | None = None) -> RunResult:
        self.calls.append((tuple(argv), stdin))
        return self.responses.get(tuple(argv), RunResult(0))

    def lines(self) -> list[str]:
        out: list[str] = []
        for argv, stdin in self.calls:
            out += [" ".join(argv)] if stdin is None else stdin.splitlines()
        return out


class IptablesError(Exception):
    """A command failed; the message says which and why (the failed transaction changed nothing)."""


@dataclass(frozen=True)
class Outcome:
    """What was done: the restore input per family (empty: nothing to do) and the tables afterwards."""

    transactions: dict[Family, str]
    final_state: dict[Family, str]


def read_state(runner: Runner, family: Family, *, required: bool) -> tuple[SavedState, bool]:
    """Parse the live tables; (empty, False) when the save command is unusable and not `required`."""
    result = runner.run([SAVE[family]])
    if result.returncode != 0:
        if required:
            raise IptablesError(f"{SAVE[family]} failed: {_why(result)}")
        return SavedState(), False
    return parse_save(result.stdout), True


def plan(ruleset: RuleSet, runner: Runner, *, install: bool) -> dict[Family, str]:
    """Read both families' tables (read-only) and compute each family's transaction."""
    out: dict[Family, str] = {}
    for family in FAMILIES:
        wanted = family == 4 or ruleset.options.ipv6
        saved, usable = read_state(runner, family, required=wanted and install)
        if usable and (wanted or has_our_rules(saved)):
            out[family] = plan_transaction(saved, ruleset.family(family), install=install and wanted)
        else:
            out[family] = ""
    return out


def apply_rules(ruleset: RuleSet, runner: Runner) -> Outcome:
    """Install the rule set (replacing any earlier one of ours), one atomic transaction per family."""
    transactions = plan(ruleset, runner, install=True)
    _restore_all(runner, transactions)
    return Outcome(transactions, _final_state(ruleset, runner))


def apply_routes(ruleset: RuleSet, runner: Runner) -> None:
    """Run the `ip` commands of the rule set (TPROXY routing, ::6 on lo); existing ones are fine."""
    _run_ip(runner, ruleset.setup)


def apply(ruleset: RuleSet, runner: Runner) -> Outcome:
    """Rules, then routes: what `pilotfish iptables` does."""
    outcome = apply_rules(ruleset, runner)
    apply_routes(ruleset, runner)
    return outcome


def cleanup(ruleset: RuleSet, runner: Runner) -> Outcome:
    """Remove our chains, our rules in built-in chains and our routes; doing it twice is harmless."""
    transactions = plan(ruleset, runner, install=False)
    _restore_all(runner, transactions)
    _run_ip(runner, ruleset.teardown, best_effort=True)
    return Outcome(transactions, _final_state(ruleset, runner))


def _restore_all(runner: Runner, transactions: dict[Family, str]) -> None:
    for family, text in transactions.items():
        if not text:
            continue
        result = runner.run(RESTORE[family], stdin=text)
        if result.returncode != 0:
            raise IptablesError(f"{' '.join(RESTORE[family])} failed, the IPv{family} tables were left as "
                                f"they were: {_why(result)}")


def _final_state(ruleset: RuleSet, runner: Runner) -> dict[Family, str]:
    """The tables after the change, as istio-iptables logs them (IPv6 only when enabled)."""
    families: tuple[Family, ...] = (4, 6) if ruleset.options.ipv6 else (4,)
    return {family: runner.run([SAVE[family]]).stdout for family in families}


def _run_ip(runner: Runner, commands: Sequence[IpCommand], *, best_effort: bool = False) -> None:
    """Run `ip` commands in order; with `best_effort` run them all before reporting failures."""
    failures: list[str] = []
    for command in commands:
        if command.unless and runner.run(command.unless).stdout.strip():
            continue
        for _ in range(_MAX_REPEAT if command.repeat else 1):
            result = runner.run(command.argv)
            if result.returncode != 0:
                break
        if result.returncode != 0 and not any(t in result.stderr for t in command.tolerate):
            failures.append(f"{' '.join(command.argv)} failed: {_why(result)}")
            if not best_effort:
                break
    if failures:
        raise IptablesError("; ".join(failures))


def _why(result: RunResult) -> str:
    return result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}"


def detect_ipv6(runner: Runner) -> bool:
    """Whether a non-loopback interface of this namespace has a global IPv6 address (the pod is IPv6).

    Link-local fe80:: addresses do not count: every interface gets one whenever IPv6 is on.
    """
    result = runner.run(["ip", "-o", "-6", "addr", "show", "scope", "global"])
    if result.returncode != 0:
        return False
    return any(len(words) > 1 and words[1] != "lo" for words in (line.split() for line in
                                                                    result.stdout.splitlines()))
