"""YAML text -> plain Python documents that remember the line of every field.

PyYAML's C composer gives nodes with marks; we construct the values ourselves so that each field
path (`("spec", "http", 0, "route")`) maps to the 1-based line it was written on. Schema errors can
then point at `file:line` of the offending field, not just of the document.

Duplicate mapping keys are reported (PyYAML silently keeps the last one, which hides typos).
Pure: takes text, returns data and diagnostics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from pilotfish.config.diagnostics import YAML_SYNTAX, Diagnostic, Origin, error

try:
    _Loader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

Path = tuple[str | int, ...]


@dataclass(slots=True)
class Document:
    """One YAML document: its data, where it starts, and the line of each field path."""

    data: Any
    origin: Origin
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int:
        """The line of the deepest known prefix of `path` (the field itself if it exists)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return self.origin.line

    def origin_of(self, path: Path) -> Origin:
        return Origin(self.origin.file, self.line_of(path))


class _Builder:
    """Turns composed nodes into Python values, recording lines and duplicate keys."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.constructor = yaml.constructor.SafeConstructor()
        self.diagnostics: list[Diagnostic] = []

    def build(self, node: yaml.Node, path: Path, lines: dict[Path, int]) -> Any:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, lines)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), lines) for i, item in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: Path, lines: dict[Path, int]) -> dict[Any, Any]:
        self.constructor.flatten_mapping(node)  # resolves `<<` merge keys
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | bool | float) and key is not None:
                key = str(key)
            line = key_node.start_mark.line + 1
            if key in result:
                where = Origin(self.file, line)
                self.diagnostics.append(error(YAML_SYNTAX, f"duplicate key {key!r}", origin=where))
            lines[(*path, key)] = line
            result[key] = self.build(value_node, (*path, key), lines)
            lines[(*path, key)] = line
        return result


def parse_yaml(text: str, file: str) -> tuple[list[Document], list[Diagnostic]]:
    """Parse a (multi-document) YAML text. Syntax errors stop the file: nothing of it is used."""
    builder = _Builder(file)
    documents: list[Document] = []
    try:
        for node in _compose_all(text):
            if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
                continue  # an empty document (only comments, or a trailing ---)
            lines: dict[Path, int] = {}
            data = builder.build(node, (), lines)
            documents.append(Document(data, Origin(file, node.start_mark.line + 1), lines))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        return [], [error(YAML_SYNTAX, f"YAML syntax error: {problem}", origin=Origin(file, line))]
    except yaml.YAMLError as exc:
        return [], [error(YAML_SYNTAX, f"YAML error: {exc}", origin=Origin(file, 0))]
    if builder.diagnostics:
        return [], builder.diagnostics
    return documents, []


def _compose_all(text: str) -> Iterator[yaml.Node | None]:
    loader = _Loader(text)
    try:
        while loader.check_node():
            yield loader.get_node()
    finally:
        loader.dispose()
