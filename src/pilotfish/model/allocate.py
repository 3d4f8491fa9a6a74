"""Deterministic pod names and IP addresses for objects that do not carry them.

Manifests rarely give pod names or IPs: Kubernetes would. pilotfish makes them up the same way every
time, so goldens, the local mesh and the CLI agree, and an unrelated edit does not renumber pods:

- Deployment pods are named like Kubernetes names them, `<deployment>-<template hash>-<suffix>`,
  with the template hash (10 chars) derived from the pod template and the suffix (5 chars) from the
  replica index, both in Kubernetes' consonant-and-digit alphabet.
- Addresses come from a hash of the object's identity inside a range, probing forward on collision,
  taken in sorted order so the result depends only on the set of objects.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable
from typing import Any

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' SafeEncodeString alphabet

POD_RANGE = ipaddress.IPv4Network("10.44.0.0/16")
SERVICE_RANGE = ipaddress.IPv4Network("10.96.0.0/16")
_RESERVED_PREFIX = 256
"""The first /24 of each range is left for infrastructure (bridge, DNS, the kubernetes service)."""


def _encode(digest: bytes, length: int) -> str:
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(length):
        number, index = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[index])
    return "".join(chars)


def template_hash(namespace: str, deployment: str, template: Any) -> str:
    """A 10-character hash of a pod template, like Kubernetes' pod-template-hash label."""
    text = json.dumps([namespace, deployment, template], sort_keys=True, default=str)
    return _encode(hashlib.sha256(text.encode()).digest(), 10)


def pod_name(deployment: str, template_id: str, index: int) -> str:
    """`productpage-v1-8554d58bff-d7j8d`."""
    suffix = _encode(hashlib.sha256(f"{deployment}-{template_id}-{index}".encode()).digest(), 5)
    return f"{deployment}-{template_id}-{suffix}"


def allocate_addresses(
    keys: Iterable[str], network: ipaddress.IPv4Network, taken: Iterable[str] = ()
) -> dict[str, str]:
    """Give every key an address of `network` (outside its first /24), avoiding `taken`.

    Deterministic: each key starts at a hash-chosen slot and probes forward; keys are placed in
    sorted order.
    """
    used = {str(a) for a in taken}
    size = network.num_addresses - _RESERVED_PREFIX - 1  # keep the broadcast-like last address free
    base = int(network.network_address) + _RESERVED_PREFIX
    result: dict[str, str] = {}
    for key in sorted(set(keys)):
        slot = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % size
        for step in range(size):
            candidate = str(ipaddress.ip_address(base + (slot + step) % size))
            if candidate not in used and not candidate.endswith(".0"):
                used.add(candidate)
                result[key] = candidate
                break
        else:
            raise ValueError(f"address range {network} is exhausted")
    return result
