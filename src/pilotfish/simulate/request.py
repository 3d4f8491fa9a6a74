"""The request a trace simulates: who sends it, and what an HTTP client would put on the wire.

A request starts either in a pod's application container (`PodSource`: the connection then meets
the pod's iptables and its sidecar) or at the ingress gateway (`IngressSource`: from the host's
127.0.0.1:<port>, handed to the gateway pod's listener, no iptables on the way). Parsing the user's
URL and `-H` headers happens here, as data: mistakes come back as `RequestError` messages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import urlsplit


class Protocol(enum.StrEnum):
    """What the client speaks on the connection."""

    HTTP = "http"
    HTTPS = "https"
    """TLS originated by the app (Envoy sees only SNI and ALPN, never the HTTP inside)."""
    TCP = "tcp"
    """Opaque bytes (`tcp://host:port`)."""


DEFAULT_PORTS = {Protocol.HTTP: 80, Protocol.HTTPS: 443}


@dataclass(frozen=True, slots=True)
class PodSource:
    """The app container of a pod (`<pod>.<namespace>`)."""

    pod: str
    namespace: str

    @property
    def label(self) -> str:
        return f"{self.pod}.{self.namespace}"


@dataclass(frozen=True, slots=True)
class IngressSource:
    """A client on the host, connecting to the ingress gateway pod `<pod>.<namespace>` on `port`."""

    pod: str
    namespace: str
    port: int
    """The gateway pod's port the connection arrives on (its listener `0.0.0.0_<port>`)."""
    host_port: int | None = None
    """The host-side port (127.0.0.1:<host_port>) forwarded to `port`, when it differs."""

    @property
    def label(self) -> str:
        return f"{self.pod}.{self.namespace}"


Source = PodSource | IngressSource


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the client sends it."""

    source: Source
    protocol: Protocol
    host: str
    """The host of the URL (a name or an IP literal): what the client resolves and connects to."""
    port: int
    path: str = "/"
    query: str = ""
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    """Extra headers in the order given (names as typed; matching is case-insensitive)."""

    @property
    def authority(self) -> str:
        """The Host / :authority header: an explicit `Host:` header, else `host[:port]` as curl sends it."""
        for name, value in self.headers:
            if name.lower() == "host":
                return value
        default = DEFAULT_PORTS.get(self.protocol)
        return self.host if self.port == default else f"{self.host}:{self.port}"

    @property
    def path_and_query(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    @property
    def url(self) -> str:
        port = "" if DEFAULT_PORTS.get(self.protocol) == self.port else f":{self.port}"
        path = "" if self.protocol is Protocol.TCP else self.path_and_query
        return f"{self.protocol.value}://{self.host}{port}{path}"

    @property
    def line(self) -> str:
        """`GET http://reviews:9080/reviews/0`, or `TCP tcp://tcp-echo:9000` for a plain connection."""
        return f"TCP {self.url}" if self.protocol is Protocol.TCP else f"{self.method} {self.url}"

    def header(self, name: str) -> str | None:
        """A request header by case-insensitive name; several values are joined with `,` as Envoy does."""
        if name.lower() in (":authority", "host"):
            return self.authority
        if name.lower() == ":method":
            return self.method
        if name.lower() == ":scheme":
            return "https" if self.protocol is Protocol.HTTPS else "http"
        if name.lower() == ":path":
            return self.path_and_query
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ",".join(values) if values else None


class RequestError(ValueError):
    """A URL or header the user gave cannot be used (the message says why)."""


def parse_url(url: str) -> tuple[Protocol, str, int, str, str]:
    """`http://reviews:9080/reviews/0?x=1` -> (protocol, host, port, path, query).

    A URL without a scheme is taken as HTTP (`reviews:9080/x`, as curl does).
    """
    text = url.strip()
    if not text:
        raise RequestError("empty URL")
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise RequestError(f"invalid URL {url!r}: {exc}") from None
    try:
        protocol = Protocol(parts.scheme.lower())
    except ValueError:
        raise RequestError(f"URL {url!r}: scheme {parts.scheme!r} is not http, https or tcp") from None
    host = (parts.hostname or "").lower()
    if not host:
        raise RequestError(f"URL {url!r} has no host")
    if port is None:
        if protocol is Protocol.TCP:
            raise RequestError(f"URL {url!r}: a tcp:// URL needs a port")
        port = DEFAULT_PORTS[protocol]
    return protocol, host, port, parts.path or "/", parts.query


def parse_header(text: str) -> tuple[str, str]:
    """`'end-user: jason'` -> ("end-user", "jason"), as curl's -H takes it."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name or any(c.isspace() for c in name):
        raise RequestError(f"header {text!r} must look like 'name: value'")
    return name, value.strip()


def build_request(source: Source, url: str, method: str = "GET", headers: tuple[str, ...] = ()) -> Request:
    """A `Request` from the CLI's words; raises `RequestError` for bad input."""
    protocol, host, port, path, query = parse_url(url)
    parsed = tuple(parse_header(h) for h in headers)
    verb = method.strip().upper()
    if not verb.isalpha():
        raise RequestError(f"method {method!r} is not an HTTP method")
    return Request(source, protocol, host, port, path, query, verb, parsed)
