"""Building blocks shared by the strict config models: the base model, durations, ports, regexes.

All models are strict (no coercion of "80" into 80), reject unknown fields, and are frozen. Field
names are snake_case in Python and camelCase in YAML, as in Istio and Kubernetes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator
from pydantic.alias_generators import to_camel


class Strict(BaseModel):
    """Base of every config model: strict types, unknown fields rejected, immutable, camelCase."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=False,
        hide_input_in_errors=True,
    )


class Lenient(BaseModel):
    """Base for Kubernetes objects we only partly use: known fields typed, other fields kept as-is."""

    model_config = ConfigDict(
        extra="allow",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=False,
        hide_input_in_errors=True,
    )


# --- durations ------------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NANOS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


@dataclass(frozen=True, slots=True, order=True)
class Duration:
    """A non-negative duration, kept in nanoseconds. Istio accepts Go duration syntax (`1m30s`, `250ms`)."""

    nanos: int

    @property
    def seconds(self) -> float:
        return self.nanos / 1e9

    def split(self) -> tuple[int, int]:
        """(seconds, nanos) as protobuf's Duration wants them."""
        return divmod(self.nanos, 10**9)

    def __str__(self) -> str:
        seconds, nanos = self.split()
        return f"{seconds}s" if not nanos else f"{self.nanos / 1e9:.9f}".rstrip("0") + "s"


def parse_duration(value: Any) -> Duration:
    """Parse `10s`, `0.5s`, `1m30s`, `250ms`; reject anything else with an example of the syntax."""
    if not isinstance(value, str):
        raise ValueError("must be a duration string such as '5s', '250ms' or '1m30s'")
    text = value.strip()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_NANOS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"{value!r} is not a duration; use e.g. '5s', '250ms' or '1m30s'")
    return Duration(round(total))


def _positive_duration(value: Duration) -> Duration:
    if value.nanos < 1_000_000:
        raise ValueError("must be at least 1ms")
    return value


DurationField = Annotated[Duration, PlainValidator(parse_duration)]
"""Any non-negative duration (0s allowed)."""
PositiveDuration = Annotated[Duration, PlainValidator(parse_duration), AfterValidator(_positive_duration)]
"""A duration of at least 1ms, as Istio's CRDs require for timeouts and intervals."""

# --- numbers --------------------------------------------------------------------------------------

PortNumber = Annotated[int, Field(ge=1, le=65535)]
Weight = Annotated[int, Field(ge=0, le=100)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Percent = Annotated[float, Field(ge=0.0, le=100.0)]
UInt32 = Annotated[int, Field(ge=0, le=2**32 - 1)]


# --- regexes --------------------------------------------------------------------------------------


def _valid_regex(value: str) -> str:
    """Envoy uses RE2; Python's `re` accepts a superset of RE2's syntax, so a pattern `re` rejects
    is certainly invalid for Envoy too. RE2-only rejections (backreferences, lookaround) are
    caught explicitly because Envoy would NACK them."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    if re.search(r"\(\?[=!<]|\\[1-9]", value):
        raise ValueError(f"regular expression {value!r} uses lookaround or backreferences, which RE2 lacks")
    return value


Regex = Annotated[str, AfterValidator(_valid_regex)]

Labels = dict[str, str]

Lax = Field(strict=False)
"""Marks enum fields: strict mode would only accept enum instances, YAML gives their string values."""
