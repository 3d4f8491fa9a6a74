"""Protobuf wire encoding for the bulk of a big mesh's config: resource bytes without messages.

A 1,000-service sidecar config is a thousand clusters, load assignments and virtual hosts that
differ only in a few strings (names, addresses, domains). Building each as a message and then
serializing it costs tens of microseconds of Python per resource; splicing those few strings into
bytes taken from one serialized example costs a couple. The bytes are the message's canonical
encoding (deterministic serialization: fields in number order, proto3 defaults left out), so a
resource built either way has the same bytes, hence the same version (a unit test holds every
template to that).

- `Template`: one message, built by the ordinary code path with markers (`hole`, `int_hole`) where
  the per-resource values go; `render(*values)` gives the encoding with the values in place (the
  lengths of the enclosing messages are recomputed; a proto3 value equal to its default is left
  out, as the serializer would).
- `field`, `strings`, `around`: compose messages from encoded parts (protobuf's encoding of a
  message is the concatenation of its fields' encodings, in field-number order, and a repeated
  field is its elements' encodings one after the other).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_INT_MARKER = 4_000_000_000
"""Integer holes are marked with this value plus their index (uint32 fields only, never a real value here)."""
_MARKER = "\x00pilotfish-hole-{}\x00"
_PREFIX = b"\x00pilotfish-hole-"


def hole(index: int) -> str:
    """The marker for string hole `index` (set it as the whole value of a string field)."""
    return _MARKER.format(index)


def int_hole(index: int) -> int:
    """The marker for integer hole `index` (set it as the value of an unsigned integer field)."""
    return _INT_MARKER + index


def varint(value: int) -> bytes:
    """Base-128 varint of a non-negative integer."""
    if value < 0x80:
        return _SMALL[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [bytes([n]) for n in range(0x80)]


class _Lengths(dict[int, bytes]):
    """Varints of lengths, memoized (`_LENGTHS[n]` costs a lookup; `varint(n)` a call): a template
    encodes a length per nested message."""

    def __missing__(self, length: int) -> bytes:
        encoded = varint(length)
        if length < 0x4000:
            self[length] = encoded
        return encoded


_LENGTHS = _Lengths()


def key(number: int, wire_type: int = _LEN) -> bytes:
    """A field's key (tag): field number and wire type."""
    return varint(number << 3 | wire_type)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes or message) with its encoded payload."""
    return key(number) + varint(len(payload)) + payload


def strings(number: int, values: Sequence[str]) -> bytes:
    """A repeated string field (every element, even an empty one, is encoded)."""
    return _repeated(key(number), values)


def around(message: Message, number: int) -> tuple[bytes, bytes]:
    """`message`'s encoding split where field `number` goes: the fields before it and after it,
    for a caller that encodes field `number` itself (e.g. the virtual hosts of a route config).
    The field must not be set in `message`."""
    data = message.SerializeToString(deterministic=True)
    position = 0
    while position < len(data):
        tag, start = _read_varint(data, position)
        if tag >> 3 == number:
            raise ValueError(f"field {number} is set in the {message.DESCRIPTOR.name} template")
        if tag >> 3 > number:
            break
        position = _skip(data, start, tag & 7)
    return data[:position], data[position:]


# --- templates ---------------------------------------------------------------------------------------


class _Kind(enum.Enum):
    STRING = "string"
    REPEATED = "repeated string"
    INTEGER = "integer"


@dataclass(frozen=True, slots=True)
class _Hole:
    key: bytes
    index: int
    kind: _Kind
    implicit: bool
    """Proto3 implicit presence: a default value (0, "") is left out."""


@dataclass(frozen=True, slots=True)
class _Nested:
    key: bytes
    parts: tuple[bytes | _Hole | _Nested, ...]


class Template:
    """The canonical encoding of `message` with holes where it carries markers (`hole(i)` in string
    fields, `int_hole(i)` in unsigned integer fields, at any depth, map entries included); one
    marker may appear several times. `render(v0, v1, ...)` fills hole i with value i: a str, a
    sequence of str for a repeated string field, or an int.

    The template is compiled into a Python function of straight-line byte concatenations (the way
    `dataclasses` compiles `__init__`): walking a parsed template per render would cost as much as
    the message it replaces. The function's source holds only byte literals and local names.
    """

    __slots__ = ("holes", "render", "source")

    def __init__(self, message: Message) -> None:
        data = message.SerializeToString(deterministic=True)
        holes: dict[int, _Hole] = {}
        parts = _split(data, message.DESCRIPTOR, holes)
        self.holes = len(holes)
        if set(holes) != set(range(self.holes)):
            raise ValueError(f"{message.DESCRIPTOR.name} template: holes {sorted(holes)} are not 0..n-1")
        self.source = _source(parts, holes)
        namespace: dict[str, Any] = {"_v": varint, "_l": _LENGTHS, "_r": _repeated}
        exec(self.source, namespace)  # generated from byte literals only, see _source
        self.render: Callable[..., bytes] = namespace.pop("render")  # no cycle through its globals


def _source(parts: tuple[bytes | _Hole | _Nested, ...], holes: dict[int, _Hole]) -> str:
    """`def render(v0, ...)`: each string value encoded once, one local per nested message
    (innermost first), then the result. A proto3 field with implicit presence is left out when its
    value is the default (0, "")."""
    lines = [f"    s{i} = v{i}.encode()\n" for i, h in sorted(holes.items()) if h.kind is _Kind.STRING]
    result = _expression(parts, lines)
    arguments = ", ".join(f"v{i}" for i in range(len(holes)))
    return f"def render({arguments}):\n" + "".join(lines) + f"    return {result}\n"


def _expression(parts: tuple[bytes | _Hole | _Nested, ...], lines: list[str]) -> str:
    """The expression for these parts; nested messages become locals assigned in `lines`."""
    terms = []
    for part in parts:
        if isinstance(part, bytes):
            terms.append(repr(part))
        elif isinstance(part, _Hole):
            terms.append(_hole_expression(part))
        else:
            payload = _expression(part.parts, lines)
            local = f"n{len(lines)}"
            lines.append(f"    {local} = {payload}\n")
            terms.append(f"{part.key!r} + _l[len({local})] + {local}")
    return " + ".join(terms) or "b''"


def _hole_expression(hole_: _Hole) -> str:
    key_, i = hole_.key, hole_.index
    if hole_.kind is _Kind.REPEATED:
        return f"_r({key_!r}, v{i})"
    value = f"_v(v{i})" if hole_.kind is _Kind.INTEGER else f"_l[len(s{i})] + s{i}"
    present = f"v{i}" if hole_.kind is _Kind.INTEGER else f"s{i}"
    return f"({key_!r} + {value} if {present} else b'')" if hole_.implicit else f"{key_!r} + {value}"


def _repeated(key_: bytes, values: Sequence[str]) -> bytes:
    """The elements of a repeated string field. Most are short ASCII names (domains, say): then key,
    length and value are one character each per byte, and the field is built as one str and
    encoded once; a value that is not ASCII, or a length that takes more than one byte, shows as a
    non-ASCII character in the result, and the field is built byte by byte instead."""
    if len(key_) == 1:
        tag = chr(key_[0])
        try:
            text = "".join([f"{tag}{chr(len(v))}{v}" for v in values])
        except ValueError:  # chr() of a length beyond the Unicode range
            text = "\u0100"
        if text.isascii():
            return text.encode()
    return b"".join(key_ + varint(len(d)) + d for d in (v.encode() for v in values))


def _split(
    data: bytes, descriptor: Descriptor, holes: dict[int, _Hole]
) -> tuple[bytes | _Hole | _Nested, ...]:
    """Parse one message's encoding into static runs, holes and nested messages holding holes."""
    parts: list[bytes | _Hole | _Nested] = []
    static = bytearray()
    position = 0
    while position < len(data):
        tag, start = _read_varint(data, position)
        number, wire_type = tag >> 3, tag & 7
        end = _skip(data, start, wire_type)
        descriptor_field = descriptor.fields_by_number.get(number)
        found = _hole_at(data, start, tag, descriptor_field, holes)
        if found is None:
            static += data[position:end]
        else:
            if static:
                parts.append(bytes(static))
                static = bytearray()
            parts.append(found)
        position = end
    if static:
        parts.append(bytes(static))
    return tuple(parts)


def _hole_at(
    data: bytes, start: int, tag: int, descriptor_field: FieldDescriptor | None, holes: dict[int, _Hole]
) -> _Hole | _Nested | None:
    """The hole (or nested message with holes) that the field starting at data[start] is, if any."""
    if descriptor_field is None:
        raise ValueError(f"template: field {tag >> 3} is unknown")
    wire_type = tag & 7
    implicit = not descriptor_field.has_presence and not descriptor_field.is_repeated
    if wire_type == _VARINT:
        value, _ = _read_varint(data, start)
        if not _INT_MARKER <= value < _INT_MARKER + 1000:
            return None
        return _add(holes, _Hole(varint(tag), value - _INT_MARKER, _Kind.INTEGER, implicit))
    if wire_type != _LEN:
        return None
    length, payload_start = _read_varint(data, start)
    payload = data[payload_start : payload_start + length]
    if descriptor_field.message_type is not None:
        parts = _split(payload, descriptor_field.message_type, holes)
        return _Nested(varint(tag), parts) if any(type(p) is not bytes for p in parts) else None
    if not payload.startswith(_PREFIX):
        if _PREFIX in payload:
            raise ValueError("template: a hole marker must be the whole value of a string field")
        return None
    kind = _Kind.REPEATED if descriptor_field.is_repeated else _Kind.STRING
    return _add(holes, _Hole(varint(tag), int(payload[len(_PREFIX) : -1]), kind, implicit))


def _add(holes: dict[int, _Hole], found: _Hole) -> _Hole:
    """Record a hole; a marker used twice must be used the same way."""
    known = holes.setdefault(found.index, found)
    if known.kind is not found.kind:
        raise ValueError(f"template: hole {found.index} is used as {known.kind.value} and {found.kind.value}")
    return found


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def _skip(data: bytes, position: int, wire_type: int) -> int:
    """The end of a field's value that starts at `position`."""
    if wire_type == _VARINT:
        return _read_varint(data, position)[1]
    if wire_type == _I64:
        return position + 8
    if wire_type == _I32:
        return position + 4
    if wire_type == _LEN:
        length, start = _read_varint(data, position)
        return start + length
    raise ValueError(f"unsupported wire type {wire_type}")
