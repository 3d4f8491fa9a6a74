"""Regenerate src/pilotfish/config/istio_fields.py from Istio's CRD schemas.

The loader uses the list of every field Istio's CRDs accept to tell a typo ("unknown field") from a
valid Istio field pilotfish does not implement ("not supported yet"). Run after updating the CRDs:

    .venv/bin/python scripts/gen_istio_fields.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CRDS = REPO / "tests/data/conformance/crds/crd-all.gen.yaml"
OUT = REPO / "src/pilotfish/config/istio_fields.py"
KINDS = ("VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "Sidecar")


def walk(schema: dict[str, Any], prefix: str, out: set[str]) -> None:
    if schema.get("type") == "array" and "items" in schema:
        walk(schema["items"], prefix, out)
        return
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        out.add(path)
        walk(sub, path, out)
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in schema.get(key) or []:
            walk(sub, prefix, out)


def main() -> None:
    fields: dict[str, set[str]] = {}
    for doc in yaml.load_all(CRDS.read_text(), Loader=yaml.CSafeLoader):
        if not doc or doc["spec"]["group"] != "networking.istio.io":
            continue
        kind = doc["spec"]["names"]["kind"]
        if kind not in KINDS:
            continue
        for version in doc["spec"]["versions"]:
            spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
            walk(spec, "", fields.setdefault(kind, set()))
    lines = [
        '"""Every spec field path of the Istio networking kinds, from Istio\'s CRD schemas (generated).',
        "",
        "Do not edit: regenerate with `scripts/gen_istio_fields.py`. List elements share their list's path.",
        '"""',
        "",
        "ISTIO_FIELDS: dict[str, frozenset[str]] = {",
    ]
    for kind in KINDS:
        lines.append(f"    {kind!r}: frozenset(")
        lines.append("        {")
        lines.extend(f"            {p!r}," for p in sorted(fields[kind]))
        lines.append("        }")
        lines.append("    ),")
    lines.append("}")
    OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
