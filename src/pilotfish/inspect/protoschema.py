"""Find the protobuf descriptor of an Envoy message by its full name, importing generated code on demand.

istioctl prints resources with Go's protobuf JSON encoders, which know each message's schema: fields come
out in .proto declaration order under their lowerCamel JSON names, while map keys and `Struct` contents are
left untouched. A config dump only carries snake_case keys in field-number order, so to print the way
istioctl does we need the schema. The `xds-protos` wheel has it; importing its modules registers their
descriptors in protobuf's default pool. Importing every module up front would cost seconds, so an `Any`
type URL is resolved by importing the generated modules of that message's package only when first seen.
This module reads no user data; the only side effect is Python's module import.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

from google.protobuf import descriptor_pool

# Modules every dump view needs; importing them registers the common Envoy types and their dependencies.
_CORE_MODULES = (
    "envoy.admin.v3.config_dump_pb2",
    "envoy.admin.v3.clusters_pb2",
    "envoy.config.bootstrap.v3.bootstrap_pb2",
    "envoy.config.listener.v3.listener_pb2",
    "envoy.config.cluster.v3.cluster_pb2",
    "envoy.config.route.v3.route_pb2",
    "envoy.config.endpoint.v3.endpoint_pb2",
    "envoy.extensions.transport_sockets.tls.v3.secret_pb2",
)

_core_loaded = False


def _load_core() -> None:
    global _core_loaded
    if _core_loaded:
        return
    for name in _CORE_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # pragma: no cover - depends on the installed xds-protos
            continue
    _core_loaded = True


def message_descriptor(full_name: str) -> Any | None:
    """The `Descriptor` of message `full_name` (e.g. `envoy.config.listener.v3.Listener`), or None."""
    _load_core()
    return _lookup(full_name)


@cache
def _lookup(full_name: str) -> Any | None:
    pool = descriptor_pool.Default()
    try:
        return pool.FindMessageTypeByName(full_name)
    except KeyError:
        pass
    package = full_name.rpartition(".")[0]
    # Nested messages ("pkg.Outer.Inner") live in the package of their outer message: walk up.
    while package:
        if _import_package(package):
            try:
                return pool.FindMessageTypeByName(full_name)
            except KeyError:
                return None
        package = package.rpartition(".")[0]
    return None


def _import_package(package: str) -> bool:
    """Import every generated `*_pb2` module of a Python package; False if there is no such package."""
    try:
        module = importlib.import_module(package)
    except ImportError:
        return False
    paths = getattr(module, "__path__", None)
    if paths is None:
        return False
    for info in pkgutil.iter_modules(paths):
        if info.name.endswith("_pb2"):
            try:
                importlib.import_module(f"{package}.{info.name}")
            except ImportError:  # pragma: no cover - a broken generated module
                continue
    return True


def type_name_from_url(type_url: str) -> str:
    """`type.googleapis.com/envoy.config.listener.v3.Listener` -> `envoy.config.listener.v3.Listener`."""
    return type_url.rpartition("/")[2]
