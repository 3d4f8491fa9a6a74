"""JSON and YAML text in the exact shapes istioctl prints.

istioctl has three JSON printers and one YAML printer, and the conformance outputs depend on each:

* `json.MarshalIndent(messages, "", "    ")` (listener/route/cluster/endpoint/eds `-o json`): ordinary
  4-space indentation, with Go's string escaping (`<`, `>`, `&` become `\\u003c`, `\\u003e`, `\\u0026`).
* legacy `jsonpb.Marshaler{Indent: "    "}` (`bootstrap -o json`): like the above, except that a
  `google.protobuf.Struct` is indented one or two levels deeper than its key and an empty message prints
  as `{`, a blank line and `}` — quirks of that encoder which the golden files record.
* `protojson` multiline (`ecds -o json`): ordinary indentation without HTML escaping.
* YAML is `sigs.k8s.io/yaml.JSONToYAML` of the JSON: go-yaml v2 output, keys sorted in go-yaml's
  "natural" order, strings that would read back as another type double-quoted.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal
from typing import Any

import yaml

from pilotfish.inspect.protojson import StructObject

INDENT = "    "


# ---------------------------------------------------------------- JSON


def go_json(value: Any, *, indent: str = INDENT, html_escape: bool = True) -> str:
    """`json.MarshalIndent(value, "", indent)` of an already-canonical JSON value."""
    parts: list[str] = []
    _emit(value, 0, indent, html_escape, parts)
    return "".join(parts)


def _emit(value: Any, level: int, indent: str, html: bool, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        out.append("{")
        for position, (key, item) in enumerate(value.items()):
            out.append(("," if position else "") + "\n" + indent * (level + 1))
            out.append(go_string(str(key), html) + ": ")
            _emit(item, level + 1, indent, html, out)
        out.append("\n" + indent * level + "}")
    elif isinstance(value, list):
        if not value:
            out.append("[]")
            return
        out.append("[")
        for position, item in enumerate(value):
            out.append(("," if position else "") + "\n" + indent * (level + 1))
            _emit(item, level + 1, indent, html, out)
        out.append("\n" + indent * level + "]")
    else:
        out.append(go_scalar(value, html))


def jsonpb_indent(value: Any, *, indent: str = INDENT) -> str:
    """Legacy Go `jsonpb` with `Indent` set, quirks included (see the module docstring)."""
    parts: list[str] = []
    _emit_pb(value, 0, indent, parts)
    return "".join(parts)


def _emit_pb(value: Any, level: int, indent: str, out: list[str]) -> None:
    """`level` is the indentation of the line on which `value` starts."""
    if isinstance(value, StructObject):
        _emit_pb_struct(value, level, indent, out)
    elif isinstance(value, dict):
        out.append("{\n")
        for position, (key, item) in enumerate(value.items()):
            out.append((",\n" if position else "") + indent * (level + 1) + go_string(str(key), True) + ": ")
            _emit_pb(item, level + 1, indent, out)
        out.append("\n" + indent * level + "}")
    elif isinstance(value, list):
        out.append("[")
        for position, item in enumerate(value):
            out.append(("," if position else "") + "\n" + indent * (level + 1))
            _emit_pb(item, level + 1, indent, out)
        out.append("\n" + indent * level + "]")
    else:
        out.append(go_scalar(value, True))


def _emit_pb_struct(value: dict[str, Any], level: int, indent: str, out: list[str]) -> None:
    """A Struct whose key sits at `level`: members at level+2, closing brace at level+1."""
    out.append("{")
    for position, (key, item) in enumerate(value.items()):
        out.append(("," if position else "") + "\n" + indent * (level + 2) + go_string(str(key), True) + ": ")
        _emit_pb_value(item, level + 2, indent, out)
    out.append("\n" + indent * (level + 1) + "}")


def _emit_pb_value(value: Any, level: int, indent: str, out: list[str]) -> None:
    """A `google.protobuf.Value` starting on a line at `level` (inside a Struct or ListValue)."""
    if isinstance(value, dict):
        _emit_pb_struct(value, level + 1, indent, out)
    elif isinstance(value, list):
        out.append("[")
        for position, item in enumerate(value):
            out.append(("," if position else "") + "\n" + indent * (level + 3))
            _emit_pb_value(item, level + 3, indent, out)
        out.append("\n" + indent * (level + 2) + "]")
    else:
        out.append(go_scalar(value, True))


def go_scalar(value: Any, html: bool) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    return go_string(str(value), html)


def go_float(value: float) -> str:
    """Go's encoding/json float64 format: positional, or exponent outside [1e-6, 1e21)."""
    if math.isnan(value) or math.isinf(value):
        return go_string("NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity"), True)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        sign = exponent[0]
        digits = exponent[1:].lstrip("0") or "0"
        return f"{mantissa.removesuffix('.0')}e{sign}{digits}"
    return format(Decimal(repr(value)).normalize(), "f")


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def go_string(text: str, html: bool) -> str:
    """A JSON string literal the way Go's encoding/json writes it."""
    out = ['"']
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif html and char in _HTML:
            out.append(_HTML[char])
        elif ord(char) < 0x20 or char in "\u2028\u2029":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


# ---------------------------------------------------------------- YAML


class _GoYamlDumper(yaml.SafeDumper):
    """A PyYAML dumper tuned to match go-yaml v2's choices (both descend from libyaml's emitter)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


# go-yaml resolves no `=` (value) or `!`, `&`, `*` (yaml) tags: drop those PyYAML resolvers.
_GoYamlDumper.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:value", "tag:yaml.org,2002:yaml")
    ]
    for first, resolvers in yaml.SafeDumper.yaml_implicit_resolvers.items()
}


_GO_YAML_BOOLS = frozenset({"y", "Y", "n", "N"})  # YAML 1.1 booleans go-yaml knows and PyYAML does not


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style: str | None = None
    if "\n" in data:
        style = "|"
    elif _resolves_to_other_type(dumper, data) or data in _GO_YAML_BOOLS:
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _resolves_to_other_type(dumper: yaml.SafeDumper, data: str) -> bool:
    """Whether the plain scalar would read back as a number, bool, null or timestamp."""
    tag = dumper.resolve(yaml.ScalarNode, data, (True, False))  # type: ignore[no-untyped-call]
    return bool(tag != "tag:yaml.org,2002:str")


def _represent_float(dumper: yaml.SafeDumper, data: float) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:float", go_yaml_float(data))


def _represent_mapping(dumper: yaml.SafeDumper, data: dict[Any, Any]) -> yaml.MappingNode:
    order = functools.cmp_to_key(_go_yaml_key_cmp)
    items = sorted(data.items(), key=lambda item: order(str(item[0])))
    return dumper.represent_mapping("tag:yaml.org,2002:map", items)


_GoYamlDumper.add_representer(str, _represent_str)
_GoYamlDumper.add_representer(float, _represent_float)
_GoYamlDumper.add_representer(dict, _represent_mapping)
_GoYamlDumper.add_representer(StructObject, _represent_mapping)


def go_yaml(value: Any) -> str:
    """`yaml.JSONToYAML` of `value`'s JSON, as istioctl's `-o yaml` prints it."""
    text = yaml.dump(
        value,
        Dumper=_GoYamlDumper,
        default_flow_style=False,
        allow_unicode=True,
        sort_keys=False,
        width=80,
        indent=2,
    )
    return str(text)


def go_yaml_float(value: float) -> str:
    """go-yaml v2 writes floats with `strconv.FormatFloat(f, 'g', -1, 64)`."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    if value == 0:
        return "0"
    digits, exponent = _shortest_digits(value)
    if exponent < -4 or exponent >= 21:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        sign = "-" if value < 0 else ""
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return format(Decimal(repr(value)).normalize(), "f")


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |value| and its decimal exponent (d.ddd x 10^exp)."""
    _, digit_tuple, exp = Decimal(repr(abs(value))).normalize().as_tuple()
    assert isinstance(exp, int)
    digits = "".join(str(d) for d in digit_tuple)
    return digits, exp + len(digits) - 1


def _go_yaml_key_cmp(a: str, b: str) -> int:
    """go-yaml v2's key order: letters after other runes, embedded numbers compared numerically."""
    return -1 if _go_yaml_key_less(a, b) else (1 if _go_yaml_key_less(b, a) else 0)


def _go_yaml_key_less(a: str, b: str) -> bool:
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        a_letter, b_letter = a[i].isalpha(), b[i].isalpha()
        if a_letter and b_letter:
            return a[i] < b[i]
        if a_letter or b_letter:
            return b_letter
        a_num = b_num = 0
        if a[i] == "0" or b[i] == "0":
            # inside a number that has a non-zero digit before i, leading zeros are significant
            j = i - 1
            while j >= 0 and a[j].isdecimal():
                if a[j] != "0":
                    a_num = b_num = 1
                    break
                j -= 1
        a_num, a_end = _number_at(a, i, a_num)
        b_num, b_end = _number_at(b, i, b_num)
        if a_num != b_num:
            return a_num < b_num
        if a_end != b_end:
            return a_end < b_end
        return a[i] < b[i]
    return len(a) < len(b)


def _number_at(text: str, start: int, seed: int) -> tuple[int, int]:
    end = start
    value = seed
    while end < len(text) and text[end].isdecimal():
        value = value * 10 + int(text[end])
        end += 1
    return value, end


# ---------------------------------------------------------------- whole outputs


def resources_output(resources: Any, output: str) -> str:
    """istioctl's `-o json` / `-o yaml` of a list (or object) of canonical resources, newline-terminated.

    JSON is `json.MarshalIndent(..., "    ")`; YAML is its `JSONToYAML`, and istioctl's `Fprintln` adds a
    newline after YAML's own, so YAML output ends with an empty line.
    """
    if output == "yaml":
        return go_yaml(resources) + "\n"
    return go_json(resources) + "\n"
