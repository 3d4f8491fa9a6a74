"""Where `proxy-config` gets an Envoy's config: a saved file, a live admin API, or the offline pipeline.

All three give the same two documents (`/config_dump?include_eds` and `/clusters?format=json`) to the pure
renderers in `pilotfish.inspect`, so a table printed from a live Envoy and one printed from manifests can
be compared line by line. `select_source` is the single place that maps command-line flags to a source;
with no flag, a pod name is looked up in the running local mesh (`pilotfish up`).
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import click

from pilotfish import pipeline
from pilotfish.inspect.configdump import (
    ClustersStatus,
    ConfigDump,
    ConfigDumpError,
    clusters_status_from_eds,
    parse_json_document,
)

ADMIN_TIMEOUT_SECONDS = 10.0
CONFIG_DUMP_PATH = "/config_dump?include_eds"
CLUSTERS_PATH = "/clusters?format=json"


class SourceError(Exception):
    """The config could not be obtained (unreadable file, unreachable admin, missing feature)."""


class DumpSource(Protocol):
    """Something that can produce a proxy's config dump and cluster status."""

    def describe(self) -> str: ...

    def config_dump(self) -> ConfigDump: ...

    def clusters_status(self) -> ClustersStatus: ...


def split_pod(pod: str | None, namespace: str | None) -> tuple[str, str]:
    """`name.namespace` -> (name, namespace); `-n` or `default` when the pod has no suffix."""
    if pod and "." in pod:
        name, _, suffix = pod.rpartition(".")
        return name, suffix
    return pod or "", namespace or "default"


def select_source(
    *,
    files: Sequence[str],
    admin: str | None,
    manifests: Sequence[str],
    pod: str | None,
    namespace: str | None,
) -> DumpSource:
    """The one source the flags ask for; exactly one of -f, --admin, --manifests must be given."""
    chosen = [
        flag
        for flag, given in (("-f/--file", files), ("--admin", admin), ("--manifests", manifests))
        if given
    ]
    if len(chosen) > 1:
        raise SourceError(f"use only one of {', '.join(chosen)}")
    if files:
        return FileSource(tuple(files))
    if admin:
        return AdminSource(admin)
    if manifests:
        if not pod:
            raise SourceError("--manifests needs the pod to show: proxy-config <kind> <pod>[.<namespace>]")
        name, ns = split_pod(pod, namespace)
        return ManifestSource(tuple(manifests), name, ns)
    if pod:
        return AdminSource(running_mesh_admin(pod, namespace))
    raise SourceError(
        "say where the proxy's config comes from: -f/--file <saved config_dump.json>, "
        "--admin <URL or unix:/path/to/admin.sock>, or --manifests <file-or-dir>"
    )


def running_mesh_admin(pod: str, namespace: str | None) -> str:
    """The admin socket of `pod` in the local mesh that `pilotfish up` runs (its state file)."""
    from pilotfish.sandbox.state import admin_address

    try:
        return admin_address(pod, namespace)
    except LookupError as exc:
        raise SourceError(
            f"{exc.args[0] if exc.args else exc}; or say where the proxy's config comes from: "
            "-f/--file <saved config_dump.json>, --admin <URL or unix:/path/to/admin.sock>, "
            "or --manifests <file-or-dir>"
        ) from None


# ---------------------------------------------------------------- files


@dataclass
class FileSource:
    """Saved admin output: a config dump, optionally a `/clusters?format=json` document too.

    Each file is recognised by its content, so `-f config_dump.json -f clusters.json` works in any order.
    """

    paths: tuple[str, ...]
    _dump: ConfigDump | None = field(default=None, init=False)
    _clusters: ClustersStatus | None = field(default=None, init=False)
    _loaded: bool = field(default=False, init=False)

    def describe(self) -> str:
        return ", ".join(self.paths)

    def _load(self) -> None:
        if self._loaded:
            return
        for path in self.paths:
            try:
                text = Path(path).read_bytes()
            except OSError as exc:
                raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
            document = _parse(text, path)
            if "configs" in document:
                self._dump = ConfigDump.from_json(document, path)
            elif "cluster_statuses" in document or "clusterStatuses" in document:
                self._clusters = ClustersStatus.from_json(document, path)
            else:
                raise SourceError(
                    f'{path}: neither an Envoy config dump (no "configs") nor /clusters?format=json output'
                )
        self._loaded = True

    def config_dump(self) -> ConfigDump:
        self._load()
        if self._dump is None:
            raise SourceError(f'no config dump among {self.describe()} (a file with a "configs" list)')
        return self._dump

    def clusters_status(self) -> ClustersStatus:
        self._load()
        if self._clusters is not None:
            return self._clusters
        dump = self.config_dump()
        if not dump.has_endpoints():
            raise SourceError(
                f"{self.describe()}: endpoints need /clusters?format=json output or a dump saved with "
                "/config_dump?include_eds"
            )
        return clusters_status_from_eds(dump)


def _parse(text: bytes, what: str) -> dict[str, Any]:
    try:
        return parse_json_document(text, what)
    except ConfigDumpError as exc:
        raise SourceError(str(exc)) from exc


# ---------------------------------------------------------------- live admin API


@dataclass
class AdminSource:
    """A running Envoy's admin API: `http://host:port`, `host:port`, or `unix:/path/admin.sock`."""

    address: str
    _dump: ConfigDump | None = field(default=None, init=False)

    def describe(self) -> str:
        return self.address

    def config_dump(self) -> ConfigDump:
        if self._dump is None:
            text = admin_get(self.address, CONFIG_DUMP_PATH)
            try:
                self._dump = ConfigDump.from_text(text, f"config dump from {self.address}")
            except ConfigDumpError as exc:
                raise SourceError(str(exc)) from exc
        return self._dump

    def clusters_status(self) -> ClustersStatus:
        text = admin_get(self.address, CLUSTERS_PATH)
        try:
            return ClustersStatus.from_text(text, f"clusters from {self.address}")
        except ConfigDumpError as exc:
            raise SourceError(str(exc)) from exc


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket, for Envoy admin bound to `pipe`."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def admin_connection(address: str, timeout: float = ADMIN_TIMEOUT_SECONDS) -> http.client.HTTPConnection:
    if address.startswith("unix:"):
        path = address[len("unix:") :]
        path = path[2:] if path.startswith("//") else path
        if not path:
            raise SourceError(f"--admin {address}: no socket path after unix:")
        return _UnixHTTPConnection(path, timeout)
    url = urlsplit(address if "://" in address else f"http://{address}")
    if url.scheme != "http" or not url.hostname:
        raise SourceError(f"--admin {address}: expected http://host:port, host:port or unix:/path/to/socket")
    try:
        port = url.port or 80
    except ValueError as exc:
        raise SourceError(f"--admin {address}: {exc}") from exc
    return http.client.HTTPConnection(url.hostname, port, timeout=timeout)


def admin_get(address: str, path: str) -> bytes:
    """GET `path` from an Envoy admin API; any failure is a SourceError naming the address."""
    connection = admin_connection(address)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise SourceError(f"cannot reach Envoy admin at {address}: {reason}") from exc
    finally:
        connection.close()
    if response.status != 200:
        snippet = body[:200].decode("utf-8", "replace").strip()
        raise SourceError(f"Envoy admin at {address} answered {response.status} for {path}: {snippet}")
    return body


# ---------------------------------------------------------------- offline pipeline


def offline_dumps(paths: list[str], pod: str, namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the core pipeline would send the pod, as Envoy's admin API would show it. Input errors
    become one SourceError listing them (file:line each); warnings go to stderr and do not stop."""
    mesh, diagnostics = pipeline.load_mesh([Path(p) for p in paths])
    for diagnostic in diagnostics:
        if not diagnostic.is_error:
            click.echo(str(diagnostic), err=True)
    if mesh is None:
        errors = [str(d) for d in diagnostics if d.is_error]
        raise SourceError("\n".join(errors) or f"cannot build the mesh from {', '.join(paths)}")
    return pipeline.offline_dumps(mesh, pod, namespace)


@dataclass
class ManifestSource:
    """What pilotfish would send the pod, built offline from manifests by the core pipeline."""

    paths: tuple[str, ...]
    pod: str
    namespace: str
    _documents: tuple[ConfigDump, ClustersStatus] | None = field(default=None, init=False)

    def describe(self) -> str:
        return f"{self.pod}.{self.namespace} from {', '.join(self.paths)}"

    def _load(self) -> tuple[ConfigDump, ClustersStatus]:
        if self._documents is None:
            try:
                config_dump, clusters = offline_dumps(list(self.paths), self.pod, self.namespace)
            except (ValueError, LookupError, OSError) as exc:
                raise SourceError(str(exc).strip("'\"")) from exc
            try:
                self._documents = (
                    ConfigDump.from_json(config_dump, "offline config dump"),
                    ClustersStatus.from_json(clusters, "offline clusters"),
                )
            except ConfigDumpError as exc:
                raise SourceError(str(exc)) from exc
        return self._documents

    def config_dump(self) -> ConfigDump:
        return self._load()[0]

    def clusters_status(self) -> ClustersStatus:
        return self._load()[1]
