"""Hostname matching with wildcards, as Istio's `host.Name` does it.

`*.example.com` matches `a.example.com` and `a.b.example.com`, but not `example.com`; `*` matches
everything. `matches(a, b)` is symmetric when either side is a wildcard (does one include the
other); `more_specific` orders candidates for "the most specific rule wins".
"""

from __future__ import annotations


def is_wildcard(host: str) -> bool:
    return host.startswith("*")


def covers(pattern: str, host: str) -> bool:
    """Whether `pattern` (possibly a wildcard) includes `host` (possibly a wildcard too)."""
    if pattern == "*" or pattern == host:
        return True
    if not is_wildcard(pattern):
        return False
    suffix = pattern[1:]  # ".example.com"
    target = host[1:] if is_wildcard(host) else host
    return target.endswith(suffix)


def matches(a: str, b: str) -> bool:
    """Istio's `Name.Matches`: either includes the other."""
    return covers(a, b) or covers(b, a)


def specificity(pattern: str) -> tuple[int, int]:
    """Sort key: exact names first, then longer wildcards (more specific) before shorter ones."""
    return (1, -len(pattern)) if is_wildcard(pattern) else (0, -len(pattern))


def most_specific(patterns: list[str], host: str) -> str | None:
    """The pattern that covers `host` most specifically, or None."""
    candidates = [p for p in patterns if covers(p, host)]
    return min(candidates, key=specificity) if candidates else None
