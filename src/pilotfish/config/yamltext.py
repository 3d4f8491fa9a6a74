"""YAML text -> plain Python documents that can say the line of every field.

PyYAML's C composer gives nodes with marks; we construct the values ourselves so that each field
path (`("spec", "http", 0, "route")`) can be mapped to the 1-based line it was written on. Schema
errors can then point at `file:line` of the offending field, not just of the document.

Field lines are only needed when something is wrong, and recording them for every field of every
document was most of the cost of loading a large mesh. So a document records only its own first
line; the field lines of a file are computed on first use, by composing its text again with
recording on (`Document.lines`), once for all documents of that file.

Duplicate mapping keys are reported (PyYAML silently keeps the last one, which hides typos).
Pure: takes text, returns data and diagnostics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import yaml

from pilotfish.config.diagnostics import YAML_SYNTAX, Diagnostic, Origin, error

try:
    _CLoader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _CLoader = yaml.SafeLoader

Path = tuple[str | int, ...]
_STR_TAG = "tag:yaml.org,2002:str"
Lines = dict[Path, int]


class Document:
    """One YAML document: its data, where it starts, and (on demand) the line of each field path."""

    __slots__ = ("_line_source", "_lines", "data", "origin")

    def __init__(
        self,
        data: Any,
        origin: Origin,
        lines: Lines | None = None,
        line_source: Callable[[], Lines] | None = None,
    ) -> None:
        self.data = data
        self.origin = origin
        self._lines = lines
        self._line_source = line_source

    @property
    def lines(self) -> Lines:
        """Field path -> line, computed on first use when the document was parsed without them."""
        if self._lines is None:
            self._lines = self._line_source() if self._line_source is not None else {}
            self._line_source = None
        return self._lines

    def line_of(self, path: Path) -> int:
        """The line of the deepest known prefix of `path` (the field itself if it exists)."""
        lines = self.lines
        for end in range(len(path), -1, -1):
            line = lines.get(path[:end])
            if line is not None:
                return line
        return self.origin.line

    def origin_of(self, path: Path) -> Origin:
        return Origin(self.origin.file, self.line_of(path))


def _plain_scalar_tag(value: str) -> str:
    """PyYAML's implicit resolution of a plain scalar (`BaseResolver.resolve` without path
    resolvers, which pilotfish does not use)."""
    table = _CLoader.yaml_implicit_resolvers
    for tag, regexp in table.get(value[:1], []) + table.get(None, []):
        if regexp.match(value):
            return str(tag)
    return _STR_TAG


_PLAIN_TAGS: dict[str, str] = {}
"""Plain scalar -> its tag (a bounded memo: the answer only depends on the text)."""
_NEEDS_FLATTEN = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})


class _Loader(_CLoader):  # type: ignore[misc]
    """The C loader with cheaper scalar resolution: manifests repeat the same short scalars
    (`http`, `8080`, `v1`, ...) thousands of times, and resolving one means trying PyYAML's
    regular expressions in Python; the answer only depends on the text, so it is remembered.
    Quoted scalars are always strings. Path resolvers are not used, so their per-node hooks are
    skipped. `merges` says whether the document seen so far has `<<` or `=` keys, which are the
    only reason to flatten mappings."""

    merges = False

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is not yaml.ScalarNode:
            return super().resolve(kind, value, implicit)
        if not implicit[0]:
            return _STR_TAG
        tag = _PLAIN_TAGS.get(value)
        if tag is None:
            tag = _plain_scalar_tag(value)
            if len(value) <= 64 and len(_PLAIN_TAGS) < 100_000:
                _PLAIN_TAGS[value] = tag
        if tag in _NEEDS_FLATTEN:
            self.merges = True
        return tag

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


_PLAIN_SCALARS = {
    tag: yaml.constructor.SafeConstructor.yaml_constructors[tag]
    for tag in (
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
    )
}
"""Scalar tags whose SafeConstructor function is a plain function of the node (no state)."""


class _Builder:
    """Turns composed nodes into Python values, noting duplicate keys; `build_with_lines` also
    records the line of every field path (and where each duplicate is)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.constructor = yaml.constructor.SafeConstructor()
        self.duplicates = False
        self.diagnostics: list[Diagnostic] = []
        self.merges = True
        """Whether the document being built may have merge keys (else mappings are not flattened)."""

    def _scalar(self, node: yaml.Node) -> Any:
        """Strings, numbers, booleans and nulls directly (what `construct_object` would call, minus
        its bookkeeping, which dominated parsing); anything else through `construct_object`."""
        tag = node.tag
        if tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
            return node.value
        plain = _PLAIN_SCALARS.get(tag)
        if plain is not None and isinstance(node, yaml.ScalarNode):
            return plain(self.constructor, node)
        return self.constructor.construct_object(node, deep=True)

    def build(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in self._pairs(node):
                key = self._key(key_node)
                self.duplicates = self.duplicates or key in result
                result[key] = self.build(value_node)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item) for item in node.value]
        return self._scalar(node)

    def build_with_lines(self, node: yaml.Node, path: Path, lines: Lines) -> Any:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in self._pairs(node):
                key = self._key(key_node)
                line = key_node.start_mark.line + 1
                if key in result:
                    self.duplicates = True
                    where = Origin(self.file, line)
                    self.diagnostics.append(error(YAML_SYNTAX, f"duplicate key {key!r}", origin=where))
                lines[(*path, key)] = line
                result[key] = self.build_with_lines(value_node, (*path, key), lines)
                lines[(*path, key)] = line
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build_with_lines(item, (*path, i), lines) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _pairs(self, node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
        if self.merges:
            self.constructor.flatten_mapping(node)  # resolves `<<` merge keys
        pairs: list[tuple[yaml.Node, yaml.Node]] = node.value
        return pairs

    def _key(self, key_node: yaml.Node) -> Any:
        key = self._scalar(key_node)
        if not isinstance(key, str | int | bool | float) and key is not None:
            key = str(key)
        return key


def parse_yaml(text: str, file: str) -> tuple[list[Document], list[Diagnostic]]:
    """Parse a (multi-document) YAML text. Syntax errors stop the file: nothing of it is used."""
    try:
        documents, builder = _build_all(text, file, with_lines=False)
        if builder.duplicates:  # rare: parse again with lines, to say where each duplicate is
            return [], _build_all(text, file, with_lines=True)[1].diagnostics
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        return [], [error(YAML_SYNTAX, f"YAML syntax error: {problem}", origin=Origin(file, line))]
    except yaml.YAMLError as exc:
        return [], [error(YAML_SYNTAX, f"YAML error: {exc}", origin=Origin(file, 0))]
    return documents, []


def _build_all(text: str, file: str, with_lines: bool) -> tuple[list[Document], _Builder]:
    """The non-empty documents of `text`. Without `with_lines`, each document gets its field lines
    from one shared re-parse of the file, when first asked for them."""
    builder = _Builder(file)
    documents: list[Document] = []
    file_lines = None if with_lines else _FileLines(text, file)
    for node, merges in _compose_all(text):
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
            continue  # an empty document (only comments, or a trailing ---)
        builder.merges = merges
        origin = Origin(file, node.start_mark.line + 1)
        if file_lines is None:
            lines: Lines = {}
            data = builder.build_with_lines(node, (), lines)
            documents.append(Document(data, origin, lines))
        else:
            data = builder.build(node)
            documents.append(Document(data, origin, line_source=file_lines.source(len(documents))))
    return documents, builder


class _FileLines:
    """The field lines of every document of one file, computed together on first use."""

    __slots__ = ("_by_document", "file", "text")

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self._by_document: list[Lines] | None = None

    def source(self, index: int) -> Callable[[], Lines]:
        return lambda: self.lines(index)

    def lines(self, index: int) -> Lines:
        if self._by_document is None:
            documents, _ = _build_all(self.text, self.file, with_lines=True)
            self._by_document = [d.lines for d in documents]
            self.text = ""  # not needed any more
        return self._by_document[index]


def _compose_all(text: str) -> Iterator[tuple[yaml.Node | None, bool]]:
    """Each document's root node, and whether it has merge keys."""
    loader = _Loader(text)
    try:
        while loader.check_node():
            loader.merges = False
            node = loader.get_node()
            yield node, loader.merges
    finally:
        loader.dispose()
