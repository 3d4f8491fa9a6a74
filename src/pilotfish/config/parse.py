"""Manifest text -> validated `ConfigObject`s plus diagnostics (pure).

Every problem becomes one readable diagnostic with `file:line`, the object (`Kind namespace/name`)
and the field path. A field that Istio accepts but pilotfish does not implement is reported as
"not supported yet" (never dropped silently); a field Istio does not know is "unknown field", with a
did-you-mean suggestion when one is close.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pilotfish.config.diagnostics import (
    INVALID_DOCUMENT,
    SCHEMA,
    UNKNOWN_KIND,
    UNSUPPORTED,
    YAML_SYNTAX,
    Diagnostic,
    Origin,
    ResourceRef,
    error,
    warning,
)
from pilotfish.config.istio_fields import ISTIO_FIELDS
from pilotfish.config.k8s import ObjectMeta
from pilotfish.config.kinds import BY_GROUP_KIND, KNOWN_UNSUPPORTED, KindInfo, split_api_version
from pilotfish.config.meshconfig import ISTIO_MESH_FIELDS, MeshConfig
from pilotfish.config.objects import ConfigObject
from pilotfish.config.yamltext import Document, Path, parse_yaml

_TOP_LEVEL = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})


def parse_manifests(files: Iterable[tuple[str, str]]) -> tuple[list[ConfigObject], list[Diagnostic]]:
    """Parse `(file name, text)` pairs in order. Objects come back in input order."""
    objects: list[ConfigObject] = []
    diagnostics: list[Diagnostic] = []
    for file_problems, documents in _parse_files(files):
        diagnostics.extend(file_problems)
        for parsed in documents:
            diagnostics.extend(parsed.diagnostics)
            if parsed.obj is not None:
                objects.append(parsed.obj)
    return objects, diagnostics


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """One manifest document with its identity, whether or not it validated.

    The analyzers need every object the user wrote, including those the strict loader rejects (a
    field pilotfish does not implement yet must not hide a dangling reference elsewhere in the
    object): they read `document.data` and use `obj` when there is one.
    """

    document: Document
    group: str
    version: str
    kind: str
    name: str
    namespace: str
    """As written (`""` when the manifest gives none)."""
    index: int
    """Position among all documents of the input (file order, then document order)."""
    obj: ConfigObject | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef(self.kind, self.name, self.namespace)


def parse_documents(files: Iterable[tuple[str, str]]) -> tuple[list[ParsedDocument], list[Diagnostic]]:
    """Every document of the input (`kind: List` expanded), validated where possible.

    Returns the documents (each with its own diagnostics) and the problems that belong to no
    document (YAML syntax errors, which stop a whole file). `ConfigObject.order` counts valid
    objects only, exactly as `parse_manifests` numbers them.
    """
    documents: list[ParsedDocument] = []
    file_diagnostics: list[Diagnostic] = []
    for file_problems, parsed in _parse_files(files):
        file_diagnostics.extend(file_problems)
        documents.extend(parsed)
    return documents, file_diagnostics


def _parse_files(
    files: Iterable[tuple[str, str]],
) -> Iterable[tuple[list[Diagnostic], list[ParsedDocument]]]:
    """Per file: its YAML problems and its documents (numbered across all files)."""
    index = valid = 0
    for file, text in files:
        yaml_documents, problems = parse_yaml(text, file)
        parsed: list[ParsedDocument] = []
        for document in yaml_documents:
            for item in _expand_lists(document):
                obj, item_problems = parse_document(item, order=valid)
                valid += obj is not None
                parsed.append(_identify(item, index, obj, item_problems))
                index += 1
        yield problems, parsed


def _identify(
    document: Document, index: int, obj: ConfigObject | None, problems: list[Diagnostic]
) -> ParsedDocument:
    data = document.data if isinstance(document.data, dict) else {}
    api_version = data.get("apiVersion")
    group, version = split_api_version(api_version) if isinstance(api_version, str) else ("", "")
    meta = data.get("metadata")
    return ParsedDocument(
        document=document,
        group=group,
        version=version,
        kind=_str(data, "kind"),
        name=_str(meta, "name"),
        namespace=_str(meta, "namespace"),
        index=index,
        obj=obj,
        diagnostics=tuple(problems),
    )


def parse_document(document: Document, order: int = 0) -> tuple[ConfigObject | None, list[Diagnostic]]:
    """Validate one document into a `ConfigObject`; None (and errors) when it is not valid."""
    data = document.data
    if not isinstance(data, dict):
        return None, [
            error(INVALID_DOCUMENT, "a manifest document must be a mapping", origin=document.origin)
        ]
    api_version, kind = data.get("apiVersion"), data.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not api_version or not kind:
        return None, [error(INVALID_DOCUMENT, "missing apiVersion or kind", origin=document.origin)]
    group, version = split_api_version(api_version)
    info = BY_GROUP_KIND.get((group, kind))
    meta_raw = data.get("metadata", {})
    ref = ResourceRef(kind, _str(meta_raw, "name"), _str(meta_raw, "namespace"))
    if info is None:
        return None, [_unknown_kind(group, kind, ref, document.origin)]
    if info.namespaced and not ref.namespace:
        ref = ResourceRef(kind, ref.name, "default")  # kubectl's default namespace
    if version not in info.versions:
        versions = ", ".join(f"{group}/{v}" if group else v for v in info.versions)
        message = f"apiVersion {api_version!r} is not served for {kind} (use one of {versions})"
        return None, [
            error(INVALID_DOCUMENT, message, ref, document.origin_of(("apiVersion",)), "apiVersion")
        ]
    return _validate(document, info, version, ref, order)


def parse_mesh_config(document: Document) -> tuple[MeshConfig | None, list[Diagnostic]]:
    """Validate raw MeshConfig fields (the `mesh` key of Istio's ConfigMap, or a mesh config file)."""
    ref = ResourceRef("MeshConfig", "mesh")
    data = document.data if document.data is not None else {}
    return _validate_model(MeshConfig, data, document, ("",), ref, "MeshConfig")


def _validate(
    document: Document, info: KindInfo, version: str, ref: ResourceRef, order: int
) -> tuple[ConfigObject | None, list[Diagnostic]]:
    data = document.data
    meta, problems = _validate_model(ObjectMeta, data.get("metadata", {}), document, ("metadata",), ref, "")
    if meta is None:
        return None, problems
    if not meta.name:
        return None, [error(SCHEMA, "metadata.name is required", ref, document.origin, "metadata.name")]
    if info.spec_only:
        extra = sorted(set(data) - _TOP_LEVEL)
        if extra:
            path = (extra[0],)
            message = f"unknown top-level field {extra[0]!r}"
            return None, [error(SCHEMA, message, ref, document.origin_of(path), format_path(path))]
        spec, problems = _validate_model(
            info.model, data.get("spec", {}), document, ("spec",), ref, info.kind
        )
    else:
        body = {k: v for k, v in data.items() if k not in ("apiVersion", "kind", "metadata")}
        spec, problems = _validate_model(info.model, body, document, (), ref, "")
    if spec is None:
        return None, problems
    namespace = meta.namespace or ("default" if info.namespaced else "")
    obj = ConfigObject(
        group=info.group,
        version=version,
        kind=info.kind,
        name=meta.name,
        namespace=namespace,
        spec=spec,
        origin=document.origin,
        order=order,
        labels=meta.labels,
        annotations=meta.annotations,
        namespace_given=bool(meta.namespace) or not info.namespaced,
        document=document,
    )
    return obj, problems


def _validate_model(
    model: type[BaseModel], data: Any, document: Document, prefix: Path, ref: ResourceRef, kind: str
) -> tuple[Any, list[Diagnostic]]:
    try:
        return model.model_validate(data if data is not None else {}), []
    except ValidationError as exc:
        return None, _diagnostics_from(exc, data, document, prefix, ref, kind)


def _diagnostics_from(
    exc: ValidationError, data: Any, document: Document, prefix: Path, ref: ResourceRef, kind: str
) -> list[Diagnostic]:
    """One diagnostic per distinct field path (pydantic reports every branch of a union); a missing
    field whose misspelling is also present is reported once, as the misspelling."""
    seen: set[Path] = set()
    missing: dict[Path, Diagnostic] = {}
    result: list[Diagnostic] = []
    for err in exc.errors(include_url=False):
        loc = _data_path(data, tuple(err["loc"]), err["type"])
        if loc in seen:
            continue
        seen.add(loc)
        full = tuple(p for p in (*prefix, *loc) if p != "")
        where = document.origin_of(full)
        if err["type"] == "extra_forbidden":
            result.append(_extra_field(full, loc, ref, where, kind))
        elif err["type"] == "missing" and full:
            missing[full] = error(SCHEMA, f"field {full[-1]!r} is required", ref, where, format_path(full))
            result.append(missing[full])
        else:
            result.append(error(SCHEMA, _clean_message(err["msg"]), ref, where, format_path(full)))
    misspelt = {d.path.rsplit(".", 1)[0] + "." + s for d in result for s in _suggested(d.message)}
    return [d for d in result if not (d in missing.values() and d.path in misspelt)]


def _suggested(message: str) -> list[str]:
    """The field named by a "did you mean 'x'?" hint."""
    marker = "did you mean '"
    return [message.split(marker, 1)[1].split("'", 1)[0]] if marker in message else []


def _data_path(data: Any, loc: tuple[Any, ...], err_type: str) -> Path:
    """Drop pydantic's union/validator tags from an error location, keeping only real field keys."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif (err_type == "missing" and i == len(loc) - 1 and isinstance(part, str)) or (
            isinstance(node, dict) and err_type == "extra_forbidden" and isinstance(part, str)
        ):
            path.append(part)
    return tuple(path)


def _extra_field(full: Path, loc: Path, ref: ResourceRef, where: Origin, kind: str) -> Diagnostic:
    field = str(full[-1]) if full else ""
    dotted = ".".join(str(p) for p in loc if not isinstance(p, int))
    if kind in ISTIO_FIELDS and dotted in ISTIO_FIELDS[kind]:
        message = f"field {field!r} is valid Istio config but not supported by pilotfish yet"
        return error(UNSUPPORTED, message, ref, where, format_path(full))
    if kind == "MeshConfig" and field in ISTIO_MESH_FIELDS:
        message = f"MeshConfig field {field!r} is not supported by pilotfish yet"
        return error(UNSUPPORTED, message, ref, where, format_path(full))
    message = f"unknown field {field!r}" + _suggestion(kind, loc)
    return error(SCHEMA, message, ref, where, format_path(full))


def _suggestion(kind: str, loc: Path) -> str:
    names = [str(p) for p in loc if not isinstance(p, int)]
    if kind not in ISTIO_FIELDS or not names:
        return ""
    parent = ".".join(names[:-1])
    siblings = {
        p[len(parent) + 1 :] if parent else p
        for p in ISTIO_FIELDS[kind]
        if (p.startswith(parent + ".") if parent else True)
    }
    siblings = {s for s in siblings if "." not in s}
    close = difflib.get_close_matches(names[-1], sorted(siblings), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_kind(group: str, kind: str, ref: ResourceRef, origin: Origin) -> Diagnostic:
    if (group, kind) in KNOWN_UNSUPPORTED:
        return warning(
            UNSUPPORTED,
            f"kind {kind} ({group or 'core'}) is not supported by pilotfish yet; ignored",
            ref,
            origin,
        )
    known = ", ".join(sorted({k for _, k in BY_GROUP_KIND}))
    return error(
        UNKNOWN_KIND,
        f"unknown kind {kind!r} in group {group or 'core'!r} (pilotfish reads {known})",
        ref,
        origin,
    )


def _expand_lists(document: Document) -> Iterable[Document]:
    """`kind: List` (as kubectl prints) stands for its items."""
    data = document.data
    if not (isinstance(data, dict) and data.get("kind") == "List" and isinstance(data.get("items"), list)):
        yield document
        return
    for i, item in enumerate(data["items"]):
        prefix = ("items", i)
        lines = {k[2:]: v for k, v in document.lines.items() if k[:2] == prefix}
        yield Document(
            item, Origin(document.origin.file, document.lines.get(prefix, document.origin.line)), lines
        )


def _clean_message(message: str) -> str:
    for noise in ("Value error, ", "Assertion failed, "):
        if message.startswith(noise):
            return message[len(noise) :]
    return message


def format_path(path: Sequence[str | int]) -> str:
    """`("spec", "http", 0, "route")` -> `spec.http[0].route` (how diagnostics name a field)."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _str(data: Any, key: str) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def yaml_error(file: str, exc: yaml.YAMLError) -> Diagnostic:
    """For callers that parse YAML themselves (e.g. the ConfigMap `mesh` key)."""
    return error(YAML_SYNTAX, f"YAML error: {exc}", origin=Origin(file))
