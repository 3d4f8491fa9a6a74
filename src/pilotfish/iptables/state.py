"""What the tables hold now (`iptables-save` text), and the one restore transaction to where we want.

Idempotency without bookkeeping: before every apply (and for `--cleanup`) we read the live tables and
write one `iptables-restore --noflush` transaction per family that first removes whatever of ours is
there, then adds the desired rules. The kernel applies a transaction completely or not at all, so a
failed apply leaves the tables as they were, and running apply twice gives the same tables as once.

"Ours" is exact and needs no marker in the rules (a comment would change `iptables -S` from the seed's):
* every chain in `rules.OUR_CHAINS` (the ISTIO_* chains this program creates) is flushed and deleted;
* every rule in a built-in chain that jumps to one of them is deleted;
* every other rule in a built-in chain that equals a rule the options would add there (kubevirt and
  excluded-interface RETURNs, the TPROXY marks) is deleted. Equality is by `rule_key`, because the kernel
  prints rules in its own canonical form (`-m tcp` added, marks in hex, options reordered).

Pure module: the caller runs iptables-save and iptables-restore.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from pilotfish.iptables.rules import BUILTIN_CHAINS, OUR_CHAINS, FamilyRules

CLEANED_TABLES = ("mangle", "nat", "raw")  # the tables we ever write to
_FLAG_OPTIONS = frozenset({"--save-mark", "--restore-mark", "--syn", "--notrack"})
_PROTO_OPTIONS = frozenset({"--dport", "--sport", "--destination-port", "--source-port"})
_LONG_NAMES = {"--protocol": "-p", "--source": "-s", "--destination": "-d", "--in-interface": "-i",
               "--out-interface": "-o", "--jump": "-j", "--match": "-m", "--goto": "-g",
               "--destination-port": "--dport", "--source-port": "--sport", "--to-port": "--to-ports"}
_PROTOCOLS = {"6": "tcp", "17": "udp", "0": "all", "1": "icmp", "58": "ipv6-icmp"}
_DEFAULT_VALUES = {("CONNMARK", "--nfmask"): ("4294967295",), ("CONNMARK", "--ctmask"): ("4294967295",),
                   ("TPROXY", "--on-ip"): ("0.0.0.0", "::")}
Term = tuple[str, bool, str, str]  # (module, negated, option, value)


@dataclass(frozen=True)
class SavedRule:
    """A rule as `iptables-save` prints it: `line` is the whole `-A CHAIN ...` text."""

    table: str
    chain: str
    line: str
    args: tuple[str, ...]

    @property
    def target(self) -> str | None:
        for i in range(len(self.args) - 2, -1, -1):
            if self.args[i] in ("-j", "-g", "--jump", "--goto"):
                return self.args[i + 1]
        return None


@dataclass(frozen=True)
class SavedState:
    """The parsed output of `iptables-save` (or `ip6tables-save`)."""

    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)  # table -> chains in save order
    rules: tuple[SavedRule, ...] = ()

    def our_chains(self, table: str) -> tuple[str, ...]:
        return tuple(c for c in self.chains.get(table, ()) if c in OUR_CHAINS)

    def table_rules(self, table: str) -> tuple[SavedRule, ...]:
        return tuple(r for r in self.rules if r.table == table)


def parse_save(text: str) -> SavedState:
    """Parse iptables-save output (comments, counters and COMMIT lines are skipped)."""
    chains: dict[str, list[str]] = {}
    rules: list[SavedRule] = []
    table = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            table = line[1:].strip()
            chains.setdefault(table, [])
        elif line.startswith(":"):
            chains.setdefault(table, []).append(line[1:].split()[0])
        elif line.startswith("-A "):
            words = shlex.split(line)
            rules.append(SavedRule(table, words[1], line, tuple(words[2:])))
    return SavedState({t: tuple(c) for t, c in chains.items()}, tuple(rules))


def _number(text: str) -> str:
    """'0x539' and '1337' are the same mark; 'a/b' pairs are normalised part by part."""
    parts = text.split("/")
    out = []
    for part in parts:
        try:
            out.append(str(int(part, 0)))
        except ValueError:
            return text
    return "/".join(out)


def _address(text: str) -> str:
    try:
        return ipaddress.ip_network(text, strict=False).with_prefixlen
    except ValueError:
        return text


def rule_key(spec: Sequence[str]) -> tuple[Term, ...]:
    """A form of a rule spec (without `-A CHAIN`) that is equal for our text and the kernel's text."""
    terms: list[Term] = []
    module, negated, i = "", False, 0
    target = ""
    while i < len(spec):
        tok = _LONG_NAMES.get(spec[i], spec[i])
        value = spec[i + 1] if i + 1 < len(spec) else ""
        if tok == "!":
            negated, i = True, i + 1
            continue
        if tok == "-m":
            module = "" if value in ("tcp", "udp") else value
        elif tok in ("-j", "-g"):
            module, target = value, value
            terms.append(("", False, tok, value))
        elif tok == "-p":
            terms.append(("", negated, tok, _PROTOCOLS.get(value, value)))
        elif tok in ("-s", "-d"):
            terms.append(("", negated, tok, _address(value)))
        elif tok in ("-i", "-o"):
            terms.append(("", negated, tok, value))
        elif tok in _FLAG_OPTIONS:
            terms.append((module, negated, tok, ""))
            negated, i = False, i + 1
            continue
        else:
            terms.append(("" if tok in _PROTO_OPTIONS else module, negated, tok, _number(value)))
        negated, i = False, i + 2
    return tuple(sorted(_target_defaults(terms, target)))


def _target_defaults(terms: list[Term], target: str) -> list[Term]:
    """Drop target options printed with their default value; `--set-mark V` is `--set-xmark V/~0`."""
    out: list[Term] = []
    for module, neg, opt, value in terms:
        if module == target and value in _DEFAULT_VALUES.get((target, opt), ()):
            continue
        if module == "MARK" and opt == "--set-mark" and "/" not in value:
            opt, value = "--set-xmark", f"{value}/4294967295"
        out.append((module, neg, opt, value))
    return out


def plan_transaction(saved: SavedState, desired: FamilyRules, *, install: bool) -> str:
    """The restore input that removes our rules found in `saved` and, if `install`, adds `desired`.

    Empty when there is nothing to do. Within a table: delete our rules from the built-in chains, flush
    all our chains (so no reference between them is left), delete them, then create the desired ones.
    """
    ours_in_builtin = {(r.table, r.chain, rule_key(r.spec)) for r in desired.builtin_rules()}
    tables = {t for t in CLEANED_TABLES if saved.our_chains(t)}
    tables |= {r.table for r in saved.rules if r.table in CLEANED_TABLES and r.chain in BUILTIN_CHAINS
               and (r.target in OUR_CHAINS or (r.table, r.chain, rule_key(r.args)) in ours_in_builtin)}
    if install:
        tables |= set(desired.tables())
    out: list[str] = []
    for table in sorted(tables):
        removed = [f"-D {r.line[3:]}" for r in saved.table_rules(table) if r.chain in BUILTIN_CHAINS
                   and (r.target in OUR_CHAINS or (table, r.chain, rule_key(r.args)) in ours_in_builtin)]
        chains = saved.our_chains(table)
        lines = removed + [f"-F {c}" for c in chains] + [f"-X {c}" for c in chains]
        if install:
            lines += desired.table_lines(table)
        if lines:
            out += [f"* {table}", *lines, "COMMIT"]
    return "".join(line + "\n" for line in out)


def has_our_rules(saved: SavedState) -> bool:
    """Whether any of our chains exists (used to decide if an IPv6 cleanup is needed at all)."""
    return any(saved.our_chains(t) for t in CLEANED_TABLES)
