"""Which istioctl's output to reproduce.

The seed shows istioctl 1.3 tables (`ADDRESS PORT TYPE`, `NOTE:` above routes, no DESTINATION RULE);
modern istioctl (1.2x) prints listeners per filter chain (`MATCH DESTINATION`), routes per route, and
adds views (`all`, `eds`, `secret`, `ecds`). Every view takes the profile as an argument, never as global
state, so one process can print both (tests compare them side by side).
"""

from __future__ import annotations

from typing import Literal, get_args

Profile = Literal["1.3", "modern"]
PROFILES: tuple[Profile, ...] = get_args(Profile)
DEFAULT_PROFILE: Profile = "1.3"

OutputFormat = Literal["short", "json", "yaml"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)


def parse_profile(value: str) -> Profile:
    """Validate a user-given profile name."""
    for profile in PROFILES:
        if value == profile:
            return profile
    raise ValueError(f"unknown behaviour profile {value!r}; expected one of {', '.join(PROFILES)}")
