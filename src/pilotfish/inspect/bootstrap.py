"""`proxy-config bootstrap`: the BootstrapConfigDump as JSON/YAML, or modern istioctl's version summary.

The summary reads the node metadata Istio's agent writes (`ISTIO_VERSION`, `ISTIO_PROXY_SHA`, whose part
after a `:` is the sha) and Envoy's own `user_agent_build_version`, rendered `major.minor.patch` followed by
`-<build.label>`, `/<revision.status>`, `/<build.type>`, `/<ssl.version>` when present.
"""

from __future__ import annotations

from pilotfish.inspect.configdump import ConfigDump, JsonObject, get, get_obj
from pilotfish.inspect.protojson import normalize
from pilotfish.inspect.tabwriter import tabulate

BOOTSTRAP_CONFIG_DUMP_TYPE = "envoy.admin.v3.BootstrapConfigDump"


def summary(dump: ConfigDump) -> str:
    node = get_obj(get_obj(dump.bootstrap(), "bootstrap"), "node")
    metadata = get_obj(node, "metadata")
    rows: list[list[str]] = []
    istio_version = metadata.get("ISTIO_VERSION")
    if isinstance(istio_version, str) and istio_version:
        rows.append(["Istio Version:", istio_version])
    sha = metadata.get("ISTIO_PROXY_SHA")
    if isinstance(sha, str) and sha:
        parts = sha.split(":")
        rows.append(["Istio Proxy Version:", parts[1] if len(parts) > 1 else sha])
    rows.append(["Envoy Version:", envoy_version(node)])
    return tabulate(rows, padding=1)


def envoy_version(node: JsonObject) -> str:
    build = get_obj(node, "user_agent_build_version")
    version = get_obj(build, "version")
    labels = get_obj(build, "metadata")
    text = ".".join(str(get(version, key, 0)) for key in ("major_number", "minor_number", "patch"))
    label = labels.get("build.label")
    if label is not None:
        text += f"-{label}"
    for key in ("revision.status", "build.type", "ssl.version"):
        if key in labels:
            text += f"/{labels[key]}"
    return text


def dump_object(dump: ConfigDump) -> JsonObject:
    return normalize(dump.bootstrap(), BOOTSTRAP_CONFIG_DUMP_TYPE)
