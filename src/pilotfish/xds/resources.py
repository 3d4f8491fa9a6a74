"""xDS resources as the generators hand them to the server: named, typed, serialized once.

A `Resource` wraps one Envoy v3 message. Its `Any` encoding and its content version are computed
lazily and cached on the object, so a resource shared by many proxies (the usual case for clusters
and ClusterLoadAssignments) is serialized once per mesh version, not once per proxy or per push.

`ProxyResources` is everything one proxy should have, per type URL, in generation order. The server
compares two `ProxyResources` by resource versions to decide what to push (SotW: the whole type when
anything in it changed; delta: only the changed and removed names).

Envoy type URLs and the push order CDS -> EDS -> LDS -> RDS (make before break) are defined here and
nowhere else.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf import any_pb2
from google.protobuf.message import Message

from pilotfish.xds import wire


class TypeUrl(enum.StrEnum):
    CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
    ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
    SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

    @property
    def short(self) -> str:
        """CDS, EDS, LDS, RDS, SDS: the names used in logs, metrics and proxy-status."""
        return _SHORT[self]


_SHORT = {
    TypeUrl.CLUSTER: "CDS",
    TypeUrl.ENDPOINT: "EDS",
    TypeUrl.LISTENER: "LDS",
    TypeUrl.ROUTE: "RDS",
    TypeUrl.SECRET: "SDS",
}

PUSH_ORDER: tuple[TypeUrl, ...] = (TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.LISTENER, TypeUrl.ROUTE)
"""Istio's and Envoy's make-before-break order (perf-and-peers.md §A5)."""

WILDCARD_TYPES: frozenset[TypeUrl] = frozenset({TypeUrl.CLUSTER, TypeUrl.LISTENER})
"""Envoy always subscribes to these as wildcard; the others are requested by name."""


class Resource:
    """One named xDS resource. Treat as immutable: the message must not be mutated after creation.

    Built from a message (`Resource(name, message)`), or from its canonical encoding
    (`Resource.encoded`, what `xds.wire` builds for the bulk of a big mesh): then the message is
    parsed only when something reads it (debug views, the CLI), and a push never needs it.
    """

    __slots__ = ("_any", "_message", "_type", "_value", "_version", "name")

    def __init__(self, name: str, message: Message) -> None:
        self.name = name
        self._message: Message | None = message
        self._type: type[Message] = type(message)
        self._value: bytes | None = None
        self._any: bytes | None = None
        self._version: str | None = None

    @classmethod
    def encoded(cls, name: str, message_type: type[Message], value: bytes) -> Resource:
        """A resource given as the canonical (deterministic) encoding of a `message_type`."""
        resource = cls.__new__(cls)
        resource.name = name
        resource._message = None
        resource._type = message_type
        resource._value = value
        resource._any = None
        resource._version = None
        return resource

    @property
    def message(self) -> Message:
        if self._message is None:
            assert self._value is not None
            self._message = self._type.FromString(self._value)
        return self._message

    @property
    def value(self) -> bytes:
        """The message's deterministic encoding (computed once)."""
        if self._value is None:
            assert self._message is not None
            self._value = self._message.SerializeToString(deterministic=True)
        return self._value

    @property
    def any_bytes(self) -> bytes:
        """The message packed as `google.protobuf.Any`, encoded (once): what responses carry."""
        if self._any is None:
            value = self.value
            self._any = _any_head(self._type) + wire.varint(len(value)) + value
        return self._any

    @property
    def any(self) -> any_pb2.Any:
        """The message packed as `google.protobuf.Any`."""
        return any_pb2.Any.FromString(self.any_bytes)

    @property
    def version(self) -> str:
        """A content hash: equal bytes give equal versions, across proxies and mesh versions."""
        if self._version is None:
            self._version = hashlib.blake2b(self.value, digest_size=8).hexdigest()
        return self._version

    @property
    def size(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:
        return f"Resource({self.name!r}, {self._type.DESCRIPTOR.name})"


_ANY_HEADS: dict[type, bytes] = {}
"""Message class -> the start of its `Any` encoding: the type URL field and the value's key (a memo:
the descriptor lookup costs more than the packing)."""


def _any_head(message_type: type[Message]) -> bytes:
    head = _ANY_HEADS.get(message_type)
    if head is None:
        url = "type.googleapis.com/" + message_type.DESCRIPTOR.full_name
        head = _ANY_HEADS[message_type] = wire.field(1, url.encode()) + wire.key(2)
    return head


class Versioned(Protocol):
    """Anything with a resource name and a content version (a `Resource`, or the server's record
    of what a client holds)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...


def content_version(resources: Iterable[Versioned]) -> str:
    """A hash of names and content versions, in order: a SotW `version_info` for these resources
    (equal content, equal version, across proxies, pushes and server restarts)."""
    return pairs_version((r.name, r.version) for r in resources)


def pairs_version(pairs: Iterable[tuple[str, str]]) -> str:
    """`content_version` of (name, version) pairs."""
    digest = hashlib.blake2b(digest_size=8)
    _hash_into(digest, pairs)
    return digest.hexdigest()


def _hash_into(digest: Any, pairs: Iterable[tuple[str, str]]) -> None:
    """Feeds `<name>\\0<version>\\n` per resource (one update: per-resource calls cost more)."""
    digest.update("".join(f"{name}\0{version}\n" for name, version in pairs).encode())


@dataclass(frozen=True, slots=True)
class ResourceSet:
    """The resources of one type for one proxy, by name, in generation order.

    Sets are shared: every proxy of one shape gets the same set object for its endpoints and
    routes, and a set of its own for clusters built on a shared `base` (the outbound clusters) plus
    its own entries (inbound). So what is derived from a set (its content version, its name ->
    version map, the serialization of its resources) is computed once per set and cached here.
    """

    type_url: TypeUrl
    by_name: Mapping[str, Resource] = field(default_factory=dict)
    base: ResourceSet | None = field(default=None, repr=False, compare=False)
    """The shared set these resources start with (`own` are added after it)."""
    own: tuple[Resource, ...] = field(default=(), repr=False, compare=False)
    _derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def of(
        cls, type_url: TypeUrl, resources: Iterable[Resource], base: ResourceSet | None = None
    ) -> ResourceSet:
        by_name: dict[str, Resource] = dict(base.by_name) if base is not None else {}
        own = []
        for resource in resources:
            if resource.name not in by_name:  # first wins, like Istio's de-duplication
                by_name[resource.name] = resource
                own.append(resource)
        return cls(type_url, by_name, base, tuple(own) if base is not None else ())

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    def names(self) -> list[str]:
        return list(self.by_name)

    def versions(self) -> Mapping[str, str]:
        """name -> content version: what delta xDS compares (computed once per set; read only)."""
        versions: dict[str, str] | None = self._derived.get("versions")
        if versions is None:
            if self.base is not None:
                versions = dict(self.base.versions())
                versions.update((r.name, r.version) for r in self.own)
            else:
                versions = {name: resource.version for name, resource in self.by_name.items()}
            self._derived["versions"] = versions
        return versions

    def content_version(self) -> str:
        """`content_version(self)`, computed once per set (and on top of the base's hash state)."""
        return str(self._digest().hexdigest())

    def _digest(self) -> Any:
        digest = self._derived.get("digest")
        if digest is None:
            if self.base is not None:
                digest = self.base._digest().copy()
                _hash_into(digest, ((r.name, r.version) for r in self.own))
            else:
                digest = hashlib.blake2b(digest_size=8)
                _hash_into(digest, ((r.name, r.version) for r in self.by_name.values()))
            self._derived["digest"] = digest
        return digest

    def prepare(self) -> None:
        """Serialize and hash every resource now (what a push needs), once per set."""
        if "prepared" in self._derived:
            return
        self.content_version()
        for resource in self.own if self.base is not None else self.by_name.values():
            resource.any_bytes  # noqa: B018  (serializes once, cached on the resource)
        self._derived["prepared"] = True

    def subset(self, names: Iterable[str]) -> list[Resource]:
        """The named resources that exist, in request order (RDS/EDS are requested by name)."""
        return [self.by_name[n] for n in names if n in self.by_name]


@dataclass(frozen=True, slots=True)
class ProxyResources:
    """Everything generated for one proxy: one `ResourceSet` per type URL in `PUSH_ORDER`."""

    clusters: ResourceSet
    endpoints: ResourceSet
    listeners: ResourceSet
    routes: ResourceSet

    def of(self, type_url: TypeUrl) -> ResourceSet:
        return {
            TypeUrl.CLUSTER: self.clusters,
            TypeUrl.ENDPOINT: self.endpoints,
            TypeUrl.LISTENER: self.listeners,
            TypeUrl.ROUTE: self.routes,
        }.get(type_url, ResourceSet(type_url))

    def __iter__(self) -> Iterator[ResourceSet]:
        return iter((self.clusters, self.endpoints, self.listeners, self.routes))
