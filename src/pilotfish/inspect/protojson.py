"""Turn config-dump JSON into the canonical proto3 JSON that istioctl prints.

Envoy's admin API writes snake_case keys in field-number order and omits defaults; istioctl re-marshals
each resource with Go's protobuf JSON encoder, so its output has lowerCamel names, .proto declaration
order, sorted map keys, int64 values as strings and enum names, and it drops zero-valued proto3 scalars.
Map keys and `google.protobuf.Struct` contents (metadata, TypedStruct values) are data, not field names,
and keep their spelling. `normalize` applies those rules guided by the message descriptors; for a type we
have no schema for (e.g. Istio's own filter configs) it falls back to converting snake_case keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pilotfish.inspect.protoschema import message_descriptor, type_name_from_url

JsonObject = dict[str, Any]

# Well-known types whose JSON form is not an object of their fields.
_VERBATIM_WKT = frozenset(
    {
        "google.protobuf.Duration",
        "google.protobuf.Timestamp",
        "google.protobuf.FieldMask",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
        "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.Int32Value",
        "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue",
        "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
    }
)
_STRUCT = "google.protobuf.Struct"
_ANY = "google.protobuf.Any"

# FieldDescriptor.TYPE_* numbers.
_TYPE_ENUM = 14
_TYPE_MESSAGE = 11
_INT64_TYPES = frozenset({3, 4, 6, 16, 18})  # INT64, UINT64, FIXED64, SFIXED64, SINT64
_SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")


class StructObject(dict[str, Any]):
    """A `google.protobuf.Struct` value: keys are data. Go's legacy jsonpb indents these differently."""


def normalize(obj: Mapping[str, Any], type_name: str) -> JsonObject:
    """The canonical JSON object of message `type_name` given its config-dump JSON `obj`."""
    result = _message(obj, type_name)
    assert isinstance(result, dict)
    return result


def lower_camel(name: str) -> str:
    """protoc's JSON name for a field: `route_config_name` -> `routeConfigName`."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _message(obj: Mapping[str, Any], type_name: str) -> Any:
    if type_name == _STRUCT:
        return _struct(obj)
    if type_name in _VERBATIM_WKT:
        return _verbatim(obj)
    if type_name == _ANY:
        return _any(obj)
    descriptor = message_descriptor(type_name)
    if descriptor is None:
        return _schemaless(obj)
    return _with_descriptor(obj, descriptor)


def _with_descriptor(obj: Mapping[str, Any], descriptor: Any) -> JsonObject:
    out: JsonObject = {}
    used: set[str] = {"@type"}
    for field in descriptor.fields:
        key = field.name if field.name in obj else field.json_name
        if key not in obj:
            continue
        used.add(key)
        value = obj[key]
        if value is None:
            continue
        rendered = _field(field, value)
        if rendered is not _OMIT:
            out[field.json_name] = rendered
    for key, value in obj.items():
        if key not in used:  # a field newer than our schema: keep it rather than silently drop it
            out[_guess_json_name(key)] = _schemaless_value(value)
    return out


_OMIT = object()


def _field(field: Any, value: Any) -> Any:
    message_type = field.message_type
    if message_type is not None and message_type.GetOptions().map_entry:
        if not isinstance(value, Mapping) or not value:
            return _OMIT
        value_field = message_type.fields_by_name["value"]
        return {str(k): _single(value_field, value[k]) for k in _sorted_map_keys(value)}
    if field.is_repeated:
        if not isinstance(value, list) or not value:
            return _OMIT
        return [_single(field, item) for item in value]
    if message_type is None and not field.has_presence and _is_default_scalar(field, value):
        return _OMIT
    return _single(field, value)


def _single(field: Any, value: Any) -> Any:
    if field.type == _TYPE_MESSAGE:
        if isinstance(value, Mapping):
            return _message(value, field.message_type.full_name)
        return _verbatim(value)  # wrappers, Duration, Timestamp: already a JSON scalar
    if field.type == _TYPE_ENUM and isinstance(value, int) and not isinstance(value, bool):
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    if field.type in _INT64_TYPES and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _is_default_scalar(field: Any, value: Any) -> bool:
    if field.type == _TYPE_ENUM:
        first = field.enum_type.values_by_number.get(0)
        return value == 0 or (first is not None and value == first.name)
    if isinstance(value, bool):
        return value is False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str):
        # int64 zero arrives as "0"; an empty string or empty bytes is the default too
        return value == "" or (field.type in _INT64_TYPES and value == "0")
    return False


def _sorted_map_keys(value: Mapping[Any, Any]) -> list[Any]:
    """Go encoders sort map keys: numerically for integer keys, bytewise for strings."""
    keys = list(value)
    try:
        return sorted(keys, key=lambda k: int(k))
    except (TypeError, ValueError):
        return sorted(keys, key=str)


def _any(obj: Mapping[str, Any]) -> JsonObject:
    type_url = obj.get("@type")
    if not isinstance(type_url, str):
        return {}
    inner = type_name_from_url(type_url)
    rest = {k: v for k, v in obj.items() if k != "@type"}
    if inner == _STRUCT or inner in _VERBATIM_WKT:
        value = rest.get("value")
        rendered = _struct(value) if inner == _STRUCT and isinstance(value, Mapping) else _verbatim(value)
        return {"@type": type_url, "value": rendered}
    body = _message(rest, inner)
    return {"@type": type_url, **(body if isinstance(body, dict) else {})}


def _struct(obj: Mapping[str, Any]) -> StructObject:
    return StructObject({key: _struct_value(obj[key]) for key in sorted(obj)})


def _struct_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _struct(value)
    if isinstance(value, list):
        return [_struct_value(item) for item in value]
    return value


def _verbatim(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _verbatim(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_verbatim(item) for item in value]
    return value


def _schemaless(obj: Mapping[str, Any]) -> JsonObject:
    if "@type" in obj:
        return _any(obj)
    return {_guess_json_name(key): _schemaless_value(value) for key, value in obj.items()}


def _schemaless_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _schemaless(value)
    if isinstance(value, list):
        return [_schemaless_value(item) for item in value]
    return value


def _guess_json_name(key: str) -> str:
    """Without a schema, only keys shaped like proto field names (`snake_case`) are converted."""
    return lower_camel(key) if _SNAKE.match(key) else key
