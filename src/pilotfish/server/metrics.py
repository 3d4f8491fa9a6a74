"""Prometheus metrics of the discovery server, with Istio's names where Istio has one.

Istio exposes counters without the `_total` suffix (`pilot_xds_pushes{type="cds"}`), and its
dashboards query those names; prometheus-client always appends `_total` to counters. `render()`
therefore writes the text format itself from the registry's samples, keeping counter names as
declared. Each server instance has its own registry, so tests can run several in one process.
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Istio's buckets (pilot/pkg/xds/monitoring.go): 4 MB is gRPC's default limit, 10 MB strains, 40 MB max.
CONFIG_SIZE_BUCKETS = (1.0, 10_000.0, 1_000_000.0, 4_000_000.0, 10_000_000.0, 40_000_000.0)
CONVERGENCE_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0)
DEBOUNCE_BUCKETS = (0.01, 0.1, 0.2, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.xds = Gauge("pilot_xds", "Number of endpoints connected to this pilot using XDS.", registry=r)
        self.pushes = Counter(
            "pilot_xds_pushes", "Pilot build and send errors for lds, rds, cds and eds.", ["type"], registry=r
        )
        self.convergence = Histogram(
            "pilot_proxy_convergence_time",
            "Delay in seconds between config change and a proxy receiving all required configuration.",
            buckets=CONVERGENCE_BUCKETS,
            registry=r,
        )
        self.ack_convergence = Histogram(
            "pilotfish_proxy_ack_convergence_time",
            "Delay in seconds between config change and a proxy ACKing everything pushed for it.",
            buckets=CONVERGENCE_BUCKETS,
            registry=r,
        )
        self.rejects = Counter(
            "pilot_total_xds_rejects",
            "Total number of XDS responses from pilot rejected by proxy.",
            ["type"],
            registry=r,
        )
        self.config_size = Histogram(
            "pilot_xds_config_size_bytes",
            "Distribution of configuration sizes pushed to clients",
            ["type"],
            buckets=CONFIG_SIZE_BUCKETS,
            registry=r,
        )
        self.debounce_time = Histogram(
            "pilot_debounce_time",
            "Delay in seconds between the first config enters debouncing and the merged"
            " push request is pushed into the push queue.",
            buckets=DEBOUNCE_BUCKETS,
            registry=r,
        )
        self.push_triggers = Counter(
            "pilot_push_triggers",
            "Total number of times a push was triggered, labeled by reason for the push.",
            ["type"],
            registry=r,
        )
        self.expired_nonce = Counter(
            "pilot_xds_expired_nonce",
            "Total number of XDS requests with an expired nonce.",
            ["type"],
            registry=r,
        )
        self.send_time = Histogram(
            "pilot_xds_send_time",
            "Total time in seconds Pilot takes to send generated configuration.",
            buckets=CONVERGENCE_BUCKETS,
            registry=r,
        )
        self.inbound_updates = Counter(
            "pilot_inbound_updates", "Total number of updates received by pilot.", ["type"], registry=r
        )
        self.oversized = Counter(
            "pilotfish_xds_oversized_responses",
            "Responses not sent because they exceed the gRPC send limit.",
            ["type"],
            registry=r,
        )
        self.config_errors = Gauge(
            "pilotfish_config_errors",
            "Error diagnostics in the current input (last good mesh kept).",
            registry=r,
        )


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: float) -> str:
    """Go's float formatting as Prometheus clients print it: `1`, `0.25`, `+Inf`, `NaN`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def render(registry: CollectorRegistry) -> bytes:
    """Prometheus text format; counters keep their declared name (no `_total`), like Istio's."""
    lines: list[str] = []
    for metric in registry.collect():
        mtype = "untyped" if metric.type == "unknown" else metric.type
        lines.append(f"# HELP {metric.name} {metric.documentation}")
        lines.append(f"# TYPE {metric.name} {mtype}")
        for sample in metric.samples:
            if sample.name.endswith("_created"):
                continue
            name = metric.name if sample.name == metric.name + "_total" else sample.name
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(sample.labels.items()))
            text = _number(sample.value)
            lines.append(f"{name}{{{labels}}} {text}" if labels else f"{name} {text}")
    return ("\n".join(lines) + "\n").encode()
