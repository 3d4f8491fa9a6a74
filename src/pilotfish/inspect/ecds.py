"""`proxy-config ecds` (modern istioctl): extension configs Envoy received over ECDS.

The summary sorts the TypedExtensionConfigs by their typed config's type URL, then by name, and prints
`ECDS NAME TYPE` with the `type.googleapis.com/` prefix removed; `-o json|yaml` prints the whole
EcdsConfigDump in dump order (protojson, so without Go's HTML escaping).
"""

from __future__ import annotations

from pilotfish.inspect.configdump import ConfigDump, JsonObject, get, get_list, get_obj
from pilotfish.inspect.protojson import normalize
from pilotfish.inspect.tabwriter import tabulate

ECDS_CONFIG_DUMP_TYPE = "envoy.admin.v3.EcdsConfigDump"
_TYPE_URL_PREFIX = "type.googleapis.com/"


def summary(dump: ConfigDump) -> str:
    configs: list[tuple[str, str]] = []
    for item in get_list(dump.ecds_section(), "ecds_filters"):
        extension = get_obj(item, "ecds_filter")
        type_url = str(get(get_obj(extension, "typed_config"), "@type", ""))
        configs.append((type_url, str(get(extension, "name", ""))))
    configs.sort()
    rows = [["ECDS NAME", "TYPE"]]
    rows += [[name, type_url.removeprefix(_TYPE_URL_PREFIX)] for type_url, name in configs]
    return tabulate(rows, padding=5)


def dump_object(dump: ConfigDump) -> JsonObject:
    return normalize(dump.ecds_section(), ECDS_CONFIG_DUMP_TYPE)
