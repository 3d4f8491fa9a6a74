"""The walk: one request, hop by hop, through iptables and every Envoy on its way, as Envoy would
match it, up to the application port it reaches or the first point where it fails.

The path of the seed (ingress gateway → productpage → reviews): the client resolves the name, the
pod's iptables sends the app's connection to 15001 (virtualOutbound), `use_original_dst` hands it
to the listener of the original destination (`0.0.0.0_9080`), a filter chain is chosen, the HTTP
connection manager picks a virtual host by Host header and a route by path and headers, the route
names a cluster (perhaps one of several weighted ones), the cluster's endpoints give a pod IP, and
Envoy's own connection leaves the pod (uid 1337 is not captured); at the destination pod iptables
redirects it to 15006 (virtualInbound), whose inbound chain routes it to the inbound cluster and so
to the app on 127.0.0.1:<port>. Every decision becomes a `Hop`; the end becomes an `Outcome` with
the status and response flags Envoy would log, and what to change when it fails.

Deterministic: where Envoy would balance (weighted clusters, endpoints) every candidate is listed
and one is followed (the heaviest, or the one chosen with `pick`; the first healthy endpoint).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pilotfish.iptables.options import OptionErrors
from pilotfish.model import names
from pilotfish.model.mesh import Mesh
from pilotfish.model.proxy import Proxy
from pilotfish.model.service import Workload
from pilotfish.pipeline import proxy_for_workload
from pilotfish.simulate import envoy, explain, lookup
from pilotfish.simulate.capture import APP_UID, Packet, Verdict, evaluate, rules_for
from pilotfish.simulate.request import IngressSource, PodSource, Protocol, Request
from pilotfish.simulate.result import (
    Candidate,
    Component,
    End,
    Hop,
    Outcome,
    ProxyLog,
    Status,
    Step,
    Trace,
)
from pilotfish.simulate.source import ConfigSource, ProxyConfig
from pilotfish.xds.protos import base_pb2, cluster_pb2, route_components_pb2, tls_pb2

MAX_ENVOYS = 8
"""A request passing more Envoys than this is looping (e.g. a passthrough back into the same pod)."""

_REDIRECT_CODES = {
    route_components_pb2.RedirectAction.MOVED_PERMANENTLY: 301,
    route_components_pb2.RedirectAction.FOUND: 302,
    route_components_pb2.RedirectAction.SEE_OTHER: 303,
    route_components_pb2.RedirectAction.TEMPORARY_REDIRECT: 307,
    route_components_pb2.RedirectAction.PERMANENT_REDIRECT: 308,
}
_HEALTHY = frozenset({0, 1})  # UNKNOWN (what Istio sends) and HEALTHY
_HTTP_ALPN = "http/1.1"
_TLS_ALPN = ("h2", "http/1.1")


@dataclass(frozen=True, slots=True)
class _Conn:
    """A TCP connection as it travels: its addresses and what the first bytes reveal."""

    src_ip: str
    dst_ip: str
    dst_port: int
    tls: bool = False
    sni: str = ""
    alpn: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Envoy:
    """One Envoy the request is in, and where its access log line goes."""

    pod: Workload
    config: ProxyConfig
    listener: str = ""
    direction: str = ""
    logs: bool = True
    """Whether the network filter handling the request has an access log."""

    @property
    def component(self) -> Component:
        return Component.GATEWAY if lookup.is_router(self.pod) else Component.SIDECAR


def simulate(
    mesh: Mesh,
    source: ConfigSource,
    request: Request,
    pick: str | None = None,
    hosts: Mapping[str, str] | None = None,
) -> Trace:
    """Walk `request` through the proxies' config from `source`; never raises for mesh problems.

    `hosts` are names the source pod resolves outside the mesh's registry (a live pod's hosts file,
    e.g. the local mesh's `external.example`); other such names get a stand-in address."""
    return _Walk(mesh, source, request, pick, hosts or {}).run()


class _Walk:
    def __init__(
        self,
        mesh: Mesh,
        source: ConfigSource,
        request: Request,
        pick: str | None,
        hosts: Mapping[str, str],
    ) -> None:
        self.mesh = mesh
        self.hosts = hosts
        self.source = source
        self.request = request
        self.pick = pick
        self.hops: list[Hop] = []
        self.logs: list[ProxyLog] = []
        self.notes: list[str] = []
        self.envoys = 0
        self.authority = request.authority
        self.path = request.path
        self.delayed = False
        self.delayed_by: tuple[str, str] | None = None
        """The Envoy (pod, listener) whose fault filter delays the request: only its log says DI."""

    # --- bookkeeping ---------------------------------------------------------------------------

    def run(self) -> Trace:
        source = self.request.source
        outcome = self._from_ingress(source) if isinstance(source, IngressSource) else self._from_pod(source)
        outcome = dataclasses.replace(outcome, logs=tuple(self.logs))
        return Trace(self.request, tuple(self.hops), outcome, tuple(self.notes))

    def _hop(
        self,
        step: Step,
        where: Workload | str,
        component: Component,
        name: str,
        detail: str,
        status: Status = Status.OK,
        origin: str = "",
        candidates: tuple[Candidate, ...] = (),
        to: str = "",
        brief: str = "",
    ) -> None:
        pod = where if isinstance(where, str) else where.proxy_id
        self.hops.append(Hop(step, pod, component, name, detail, status, origin, candidates, to, brief))

    def _log(self, at: _Envoy, cluster: str, flags: str, code: int | None) -> None:
        logged = at.logs or not self.mesh.mesh_config.access_log_file
        self.logs.append(
            ProxyLog(at.pod.proxy_id, at.direction, at.listener, cluster or "-", flags, code, logged)
        )

    def _fail(self, end: End, summary: str, fix: str, code: int | None = None, flags: str = "-") -> Outcome:
        return Outcome(end, summary, code, flags, fix=fix)

    def _proxy(self, pod: Workload) -> Proxy:
        return proxy_for_workload(self.mesh, pod)

    # --- where the request starts -------------------------------------------------------------

    def _from_pod(self, source: PodSource) -> Outcome:
        pod = self.mesh.workload(source.pod, source.namespace)
        assert pod is not None, f"unknown source pod {source.label}"
        request = self.request
        self._hop(
            Step.CLIENT, pod, Component.APP, request.line, self._client_detail(), brief=self._headers_brief()
        )
        resolved = lookup.resolve(self.mesh, request.host, pod.namespace)
        if resolved.external and request.host in self.hosts:
            resolved = lookup.Resolved(
                self.hosts[request.host], "the pod's hosts file: a host outside the mesh's registry"
            )
        self._hop(
            Step.DNS,
            pod,
            Component.APP,
            f"{request.host} → {resolved.address}",
            resolved.how,
            to=f"{resolved.address}:{request.port}",
        )
        if resolved.external:
            self.notes.append(
                f"{request.host} resolves outside the mesh; {resolved.address} stands in for it"
            )
        return self._app_connects(pod, self._client_conn(pod.ip, resolved.address, request.port))

    def _from_ingress(self, source: IngressSource) -> Outcome:
        gateway = self.mesh.workload(source.pod, source.namespace)
        assert gateway is not None, f"unknown gateway pod {source.label}"
        request = self.request
        self._hop(
            Step.CLIENT,
            "host",
            Component.HOST,
            request.line,
            self._client_detail(),
            brief=self._headers_brief(),
        )
        forwarded = f"127.0.0.1:{source.host_port} is forwarded to" if source.host_port else "connects to"
        self._hop(
            Step.CONNECT,
            "host",
            Component.NETWORK,
            f"{gateway.ip}:{source.port}",
            f"{forwarded} the gateway pod {gateway.proxy_id} port {source.port} (no iptables in a gateway)",
            to=f"{gateway.ip}:{source.port}",
        )
        conn = self._client_conn(gateway.ip, gateway.ip, source.port)
        return self._envoy(gateway, conn, gateway.ip, source.port, redirected=False)

    def _headers_brief(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in self.request.headers)

    def _client_detail(self) -> str:
        request = self.request
        if request.protocol is Protocol.TCP:
            return "a plain TCP connection (no HTTP)"
        shown = "".join(f" -H '{k}: {v}'" for k, v in request.headers)
        return f"Host: {request.authority}{shown}"

    def _client_conn(self, src: str, dst: str, port: int) -> _Conn:
        if self.request.protocol is Protocol.HTTPS:
            return _Conn(src, dst, port, True, self.request.host, _TLS_ALPN)
        return _Conn(src, dst, port)

    # --- iptables and the network -------------------------------------------------------------

    def _app_connects(self, pod: Workload, conn: _Conn) -> Outcome:
        verdict = self._outbound_iptables(pod, conn, APP_UID)
        if isinstance(verdict, Outcome):
            return verdict
        if verdict is not None and verdict.port is not None:
            return self._envoy(pod, conn, "127.0.0.1", verdict.port, redirected=True)
        return self._network(pod, conn, through_envoy=False)

    def _outbound_iptables(self, pod: Workload, conn: _Conn, uid: int) -> Verdict | Outcome | None:
        """The pod's OUTPUT decision for a connection it opens (None: the pod captures nothing)."""
        who = "Envoy (uid 1337)" if uid == names.PROXY_UID else "app"
        options = lookup.capture_of(self.mesh, pod)
        if options is None:
            if not lookup.is_router(pod) and uid == APP_UID:
                self._hop(
                    Step.IPTABLES,
                    pod,
                    Component.IPTABLES,
                    "not intercepted",
                    f"{pod.proxy_id} has no sidecar (or interception NONE): the {who}'s connection "
                    f"goes out as it is",
                )
            return None
        if isinstance(options, OptionErrors):
            return self._bad_capture(pod, options)
        local = lookup.is_loopback(conn.dst_ip) or conn.dst_ip == pod.ip
        packet = Packet(
            conn.src_ip, conn.dst_ip, conn.dst_port, uid, uid, out_iface="lo" if local else "eth0"
        )
        verdict = evaluate(rules_for(options), packet)
        self._iptables_hop(
            pod, verdict, conn, f"{who} → {conn.dst_ip}:{conn.dst_port} (out {packet.out_iface})"
        )
        return verdict

    def _bad_capture(self, pod: Workload, errors: OptionErrors) -> Outcome:
        text = "; ".join(errors.messages)
        self._hop(Step.IPTABLES, pod, Component.IPTABLES, "invalid capture annotations", text, Status.FAIL)
        return self._fail(
            End.CLOSED,
            f"{pod.proxy_id} cannot start: its init step rejects the capture options",
            f"fix the traffic.sidecar.istio.io annotations of {pod.proxy_id}: {text}",
        )

    def _iptables_hop(self, pod: Workload, verdict: Verdict, conn: _Conn, what: str) -> None:
        if verdict.port is not None:
            name, to = f"REDIRECT → :{verdict.port}", f"127.0.0.1:{verdict.port}"
        else:
            name = "DROP" if verdict.dropped else "RETURN: not captured"
            to = "" if verdict.dropped else f"{conn.dst_ip}:{conn.dst_port}"
        status = Status.FAIL if verdict.dropped else Status.OK
        detail = f"{what}: {verdict.describe()}"
        if verdict.unevaluated:
            detail += f" (not evaluated: {'; '.join(verdict.unevaluated)})"
        brief = verdict.trail[-1] if verdict.trail else "no rule matched: policy ACCEPT"
        self._hop(Step.IPTABLES, pod, Component.IPTABLES, name, detail, status, to=to, brief=brief)

    def _network(self, sender: Workload, conn: _Conn, through_envoy: bool) -> Outcome:
        """A connection that has left its pod's netfilter: local, to a pod, to a VIP, or outside."""
        target = f"{conn.dst_ip}:{conn.dst_port}"
        if lookup.is_loopback(conn.dst_ip) or conn.dst_ip == sender.ip:
            return self._deliver(sender, conn.dst_port, local=True)
        pod = lookup.pod_at(self.mesh, conn.dst_ip)
        if pod is not None:
            return self._arrive(pod, conn)
        if lookup.is_vip(self.mesh, conn.dst_ip):
            self._hop(
                Step.CONNECT,
                sender,
                Component.NETWORK,
                target,
                "a cluster IP reached without Envoy: only kube-proxy could balance it (not simulated)",
                Status.NOTE,
            )
            return Outcome(
                End.BYPASS,
                f"the connection to {target} bypasses the sidecar",
                reached=target,
                fix=self._bypass_fix(sender),
            )
        verb = "Envoy connects" if through_envoy else "the app connects directly"
        self._hop(Step.CONNECT, sender, Component.NETWORK, target, f"{verb} to an address outside the mesh")
        if through_envoy:
            return Outcome(
                End.LEFT_MESH, f"leaves the mesh to {target}", reached=target, response_flags=self._flags()
            )
        return Outcome(
            End.BYPASS,
            f"leaves the pod to {target} without passing Envoy",
            reached=target,
            fix=self._bypass_fix(sender),
        )

    def _bypass_fix(self, pod: Workload) -> str:
        if not lookup.has_sidecar(pod):
            return f"{pod.proxy_id} has no sidecar: enable injection for it if Envoy should route its traffic"
        return (
            f"the iptables rules of {pod.proxy_id} do not capture this connection (see the rule above): "
            "change its traffic.sidecar.istio.io annotations if Envoy should route it"
        )

    def _arrive(self, pod: Workload, conn: _Conn) -> Outcome:
        """A connection arriving at a pod's IP from the network."""
        if lookup.is_router(pod):
            return self._envoy(pod, conn, conn.dst_ip, conn.dst_port, redirected=False)
        options = lookup.capture_of(self.mesh, pod)
        if isinstance(options, OptionErrors):
            return self._bad_capture(pod, options)
        if options is None:
            return self._deliver(pod, conn.dst_port, local=False)
        packet = Packet(conn.src_ip, conn.dst_ip, conn.dst_port, in_iface="eth0")
        verdict = evaluate(rules_for(options), packet)
        self._iptables_hop(pod, verdict, conn, f"{conn.src_ip} → {conn.dst_ip}:{conn.dst_port} (in eth0)")
        if verdict.dropped:
            return self._fail(End.CLOSED, f"{pod.proxy_id} drops the connection", "check the pod's iptables")
        if verdict.port is not None:
            return self._envoy(pod, conn, pod.ip, verdict.port, redirected=True)
        return self._deliver(pod, conn.dst_port, local=False)

    def _deliver(self, pod: Workload, port: int, local: bool) -> Outcome:
        declared = lookup.app_port_name(pod, port)
        if declared is not None:
            detail = f"container port {declared + ' ' if declared else ''}{port} of {pod.name}"
            status = Status.OK
        else:
            detail = f"port {port} is no declared container port of {pod.name}: the app must listen on it"
            status = Status.NOTE
        if local:
            detail = "same pod, over loopback: " + detail
        self._hop(Step.APP, pod, Component.APP, f"{pod.name}:{port}", detail, status)
        return Outcome(
            End.DELIVERED,
            f"reaches {pod.proxy_id} port {port}; the app answers",
            reached=f"{pod.proxy_id}:{port}",
            response_flags=self._flags(),
        )

    def _flags(self, at: _Envoy | None = None) -> str:
        """The outcome's flags (DI when any proxy delays the request), or one Envoy's own flags."""
        if at is not None:
            return "DI" if self.delayed_by == (at.pod.proxy_id, at.listener) else "-"
        return "DI" if self.delayed else "-"

    # --- Envoy: listener and filter chain ------------------------------------------------------

    def _envoy(self, pod: Workload, conn: _Conn, local_ip: str, local_port: int, redirected: bool) -> Outcome:
        """A connection arriving at `pod`'s Envoy on local_ip:local_port (after REDIRECT, or directly)."""
        self.envoys += 1
        at = _Envoy(pod, self.source.proxy_config(pod))
        if self.envoys > MAX_ENVOYS:
            self._hop(
                Step.LISTENER,
                pod,
                at.component,
                "loop",
                f"more than {MAX_ENVOYS} Envoys on the path",
                Status.FAIL,
            )
            return self._fail(End.CLOSED, "the request loops between proxies", "check passthrough clusters")
        listeners = list(at.config.listeners.values())
        listener = envoy.find_listener(listeners, local_ip, local_port, bound_only=True)
        if listener is None:
            return self._no_listener(at, local_port)
        handed = envoy.uses_original_dst(listener)
        if handed:
            listener = self._hand_off(at, listener, listeners, conn)
        else:
            address, port = envoy.address_of(listener)
            self._hop(Step.LISTENER, pod, at.component, str(listener.name), f"bound to {address}:{port}")
        original = handed or envoy.restores_original_dst(listener) or not redirected
        dst_ip, dst_port = (conn.dst_ip, conn.dst_port) if original else (local_ip, local_port)
        direction = (
            "gateway"
            if lookup.is_router(pod)
            else ("inbound" if listener.traffic_direction == base_pb2.INBOUND else "outbound")
        )
        at = dataclasses.replace(at, listener=str(listener.name), direction=direction)
        return self._filter_chain(at, listener, conn, dst_ip, dst_port)

    def _hand_off(self, at: _Envoy, listener: Any, listeners: list[Any], conn: _Conn) -> Any:
        """`use_original_dst`: the listener of the original destination takes the connection, if any."""
        address, port = envoy.address_of(listener)
        original = f"{conn.dst_ip}:{conn.dst_port}"
        target = envoy.find_listener(listeners, conn.dst_ip, conn.dst_port, bound_only=False)
        if target is None or target is listener:
            detail = (
                f"{address}:{port}, use_original_dst: no listener for {original}, so its own chains decide"
            )
            self._hop(
                Step.LISTENER,
                at.pod,
                at.component,
                str(listener.name),
                detail,
                brief=f"no listener for {original}",
            )
            return listener
        detail = f"{address}:{port}, use_original_dst: the original destination {original} has listener "
        detail += str(target.name)
        self._hop(
            Step.LISTENER,
            at.pod,
            at.component,
            str(listener.name),
            detail,
            brief=f"use_original_dst → {target.name}",
        )
        address, port = envoy.address_of(target)
        kind = "exact address" if address == conn.dst_ip else "wildcard address"
        bound = "bound" if envoy.is_bound(target) else "not bound: reached only through use_original_dst"
        self._hop(
            Step.LISTENER,
            at.pod,
            at.component,
            str(target.name),
            f"{address}:{port} ({kind}, {bound})",
            brief=f"for {original}",
        )
        return target

    def _no_listener(self, at: _Envoy, port: int) -> Outcome:
        self._hop(
            Step.LISTENER,
            at.pod,
            at.component,
            f"port {port}: no listener",
            f"no listener of {at.pod.proxy_id} is bound to port {port}: the connection is refused",
            Status.FAIL,
        )
        if lookup.is_router(at.pod):
            fix = explain.gateway_listener_fix(at.pod.labels, port)
        else:
            fix = f"the sidecar of {at.pod.proxy_id} has no listener on port {port} (is its config served?)"
        return self._fail(End.CLOSED, f"connection refused: {at.pod.proxy_id} has no listener on {port}", fix)

    def _filter_chain(self, at: _Envoy, listener: Any, conn: _Conn, dst_ip: str, dst_port: int) -> Outcome:
        http = _HTTP_ALPN if self.request.protocol is Protocol.HTTP else ""
        seen = envoy.Connection(dst_ip, dst_port, conn.src_ip, 0, conn.sni, "raw_buffer", conn.alpn)
        detected = envoy.detect(listener, seen, conn.tls, http)
        choice = envoy.select_filter_chain(listener, detected)
        why = "; ".join(choice.reasons)
        if not choice.found:
            if choice.ambiguous:
                detail = (
                    f"chains {list(choice.ambiguous)} match equally ({why}): Envoy rejects such a listener"
                )
            else:
                detail = f"{dst_ip}:{dst_port}: {why or 'the listener has no filter chains'}"
            self._hop(
                Step.FILTER_CHAIN,
                at.pod,
                at.component,
                f"{at.listener}: no filter chain",
                detail,
                Status.FAIL,
            )
            return self._fail(
                End.CLOSED,
                f"{at.listener} has no filter chain for {dst_ip}:{dst_port}; Envoy closes the connection",
                self._no_chain_fix(at, listener, detected),
                flags="NR",
            )
        chain = choice.chain
        label = envoy.chain_label(chain, choice.index)
        detail = f"match {envoy.describe_chain_match(chain)}"
        detail += f" for {dst_ip}:{dst_port}" + (f" ({why})" if why else " (the only chain)")
        self._hop(
            Step.FILTER_CHAIN,
            at.pod,
            at.component,
            f"{at.listener} {label}",
            detail,
            brief=f"match {envoy.describe_chain_match(chain)}",
        )
        kind, config = envoy.network_filter(chain)
        if kind in ("tcp", "hcm"):
            at = dataclasses.replace(at, logs=bool(config.access_log))
        if chain.HasField("transport_socket"):
            decrypted = self._terminate_tls(at, chain, conn)
            if decrypted is None:
                return self._fail(
                    End.CLOSED,
                    f"{at.listener} expects TLS; the plaintext connection fails the handshake",
                    "connect with https:// (the Gateway server terminates TLS)",
                )
            conn = decrypted
        if kind == "tcp":
            return self._tcp_proxy(at, config, conn)
        if kind == "hcm":
            if self.request.protocol is Protocol.TCP or conn.tls:
                return self._protocol_error(at)
            return self._http(at, config, conn)
        self._hop(
            Step.NETWORK_FILTER,
            at.pod,
            at.component,
            kind or "(no filter)",
            "this network filter is not simulated",
            Status.FAIL,
        )
        return self._fail(End.CLOSED, f"filter {kind or '(none)'} is not simulated", "")

    def _terminate_tls(self, at: _Envoy, chain: Any, conn: _Conn) -> _Conn | None:
        """A chain with a transport socket terminates TLS: HTTP (or TCP) continues in the clear."""
        if not conn.tls:
            self._hop(
                Step.NETWORK_FILTER,
                at.pod,
                at.component,
                "TLS handshake",
                "the chain terminates TLS but the client speaks plaintext",
                Status.FAIL,
            )
            return None
        self._hop(
            Step.NETWORK_FILTER,
            at.pod,
            at.component,
            "TLS termination",
            f"server name {conn.sni or '(none)'}: Envoy decrypts; what follows is plaintext",
        )
        return dataclasses.replace(conn, tls=False, sni="", alpn=())

    @staticmethod
    def _no_chain_fix(at: _Envoy, listener: Any, seen: envoy.Connection) -> str:
        matches = ", ".join(envoy.describe_chain_match(c) for c in listener.filter_chains) or "none"
        what = f"{seen.dst_ip}:{seen.dst_port}, server name {seen.sni or '(none)'}, {seen.transport}"
        hint = (
            " (a TLS port: connect with https://)"
            if any(
                c.filter_chain_match.server_names or c.filter_chain_match.transport_protocol == "tls"
                for c in listener.filter_chains
            )
            and seen.transport != "tls"
            else ""
        )
        return f"listener {at.listener} has chains for {matches}; none takes {what}{hint}"

    def _protocol_error(self, at: _Envoy) -> Outcome:
        what = "TLS" if self.request.protocol is Protocol.HTTPS else "non-HTTP bytes"
        self._hop(
            Step.NETWORK_FILTER,
            at.pod,
            at.component,
            "http_connection_manager",
            f"the chain expects plaintext HTTP but the client sends {what}: the codec fails",
            Status.FAIL,
        )
        self._log(at, "", "DPE", 400)
        return Outcome(
            End.CLOSED,
            f"{at.listener} speaks HTTP; the {what} {'is' if what == 'TLS' else 'are'} rejected",
            400,
            "DPE",
            fix="declare the service port's protocol (port name tcp-/https-, or appProtocol) to match "
            "what the client sends",
        )

    # --- Envoy: TCP proxy ----------------------------------------------------------------------

    def _tcp_proxy(self, at: _Envoy, proxy: Any, conn: _Conn) -> Outcome:
        clusters = envoy.tcp_clusters(proxy)
        self._hop(
            Step.NETWORK_FILTER,
            at.pod,
            at.component,
            "tcp_proxy",
            f"stat_prefix {proxy.stat_prefix}: bytes go to {self._cluster_list(clusters)}",
        )
        chosen = self._choose(at, clusters)
        return self._upstream(at, chosen, conn, http=False, rule=None)

    @staticmethod
    def _cluster_list(clusters: list[tuple[str, int]]) -> str:
        if len(clusters) == 1:
            return f"cluster {clusters[0][0]}"
        return f"{len(clusters)} weighted clusters"

    # --- Envoy: HTTP ---------------------------------------------------------------------------

    def _http(self, at: _Envoy, manager: Any, conn: _Conn) -> Outcome:
        name, config = envoy.inline_or_rds(manager)
        how = "inline route config" if config is not None else "RDS"
        self._hop(
            Step.NETWORK_FILTER,
            at.pod,
            at.component,
            "http_connection_manager",
            f"stat_prefix {manager.stat_prefix}, routes from {how} {name!r}",
        )
        if config is None:
            config = at.config.routes.get(name)
        if config is None:
            self._hop(Step.ROUTE_CONFIG, at.pod, at.component, name, "not served (RDS)", Status.FAIL)
            self._log(at, "", "NR", 404)
            return self._fail(
                End.LOCAL_REPLY,
                f"route configuration {name} is missing",
                f"route {name} is not generated for {at.pod.proxy_id}",
                404,
                "NR",
            )
        path = (
            envoy.normalize_path(self.path)
            if manager.HasField("normalize_path") and manager.normalize_path.value
            else self.path
        )
        normalized = f"; path normalized to {path}" if path != self.path else ""
        self._hop(
            Step.ROUTE_CONFIG,
            at.pod,
            at.component,
            name,
            f"{len(config.virtual_hosts)} virtual hosts{normalized}",
        )
        request = envoy.RequestView(
            self.request.method,
            path,
            self.request.query,
            self.authority,
            "https" if self.request.protocol is Protocol.HTTPS else "http",
            self.request.headers,
        )
        return self._virtual_host(at, manager, config, request, conn)

    def _virtual_host(
        self, at: _Envoy, manager: Any, config: Any, request: envoy.RequestView, conn: _Conn
    ) -> Outcome:
        found = envoy.find_virtual_host(config, self.authority)
        if found.vhost is None:
            self._hop(
                Step.VIRTUAL_HOST,
                at.pod,
                at.component,
                f"Host {self.authority}: no virtual host",
                f"none of the {len(config.virtual_hosts)} virtual hosts of {config.name} has a domain "
                f"matching {found.host}",
                Status.FAIL,
            )
            self._log(at, "", "NR", 404)
            fix = explain.no_virtual_host_fix(str(config.name), found.host, lookup.is_router(at.pod))
            return self._fail(End.LOCAL_REPLY, f"no virtual host for Host {self.authority}", fix, 404, "NR")
        vhost = found.vhost
        self._hop(
            Step.VIRTUAL_HOST,
            at.pod,
            at.component,
            str(vhost.name),
            f"Host {self.authority}{self._compared(found.host)}: {found.kind} match on domain "
            f"{found.domain!r}",
            brief=f"domain {found.domain!r} ({found.kind})",
        )
        if (
            vhost.require_tls == route_components_pb2.VirtualHost.ALL
            and self.request.protocol is not Protocol.HTTPS
        ):
            self._log(at, "", "-", 301)
            return Outcome(
                End.LOCAL_REPLY,
                f"{vhost.name} requires TLS: 301 to https://{self.authority}{self.request.path_and_query}",
                301,
            )
        choice = envoy.find_route(vhost, request)
        if choice.route is None:
            rules = [
                r for r in (explain.rule_of(self.mesh, route) for route in vhost.routes) if r is not None
            ]
            self._hop(
                Step.ROUTE,
                at.pod,
                at.component,
                f"{vhost.name}: no route",
                "; ".join(choice.skipped) or "the virtual host has no routes",
                Status.FAIL,
            )
            self._log(at, "", "NR", 404)
            fix = explain.no_route_fix(str(vhost.name), request.method, request.path, rules)
            return self._fail(
                End.LOCAL_REPLY,
                f"no route for {request.method} {request.path} in {vhost.name}",
                fix,
                404,
                "NR",
            )
        return self._route(at, manager, vhost, choice, request, conn)

    def _compared(self, host: str) -> str:
        return "" if host == self.authority.lower() else f" (compared as {host}: the port is ignored)"

    def _route(
        self,
        at: _Envoy,
        manager: Any,
        vhost: Any,
        choice: envoy.RouteChoice,
        request: envoy.RequestView,
        conn: _Conn,
    ) -> Outcome:
        route = choice.route
        rule = explain.rule_of(self.mesh, route)
        origin = rule.text() if rule is not None else ""
        if not origin and str(route.name) == names.DEFAULT_ROUTE_NAME and at.direction != "inbound":
            origin = "default route (no VirtualService for this host)"
        skipped = len(choice.skipped)
        after = f" (after {skipped} route{'s' if skipped > 1 else ''} that do not match)" if skipped else ""
        detail = f"match {envoy.describe_route_match(route.match)}{after}"
        action = route.WhichOneof("action")
        if action == "direct_response":
            return self._direct_response(at, vhost, route, choice.index, detail, origin, rule)
        if action == "redirect":
            return self._redirect(at, route, choice.index, detail, origin)
        brief = f"match {envoy.describe_route_match(route.match)}"
        if rule is not None:
            brief += f" · VirtualService {rule.vs.namespace}/{rule.vs.name}"
        self._hop(
            Step.ROUTE,
            at.pod,
            at.component,
            envoy.route_label(route, choice.index),
            detail,
            origin=origin,
            brief=brief,
        )
        clusters = envoy.route_clusters(route)
        if not clusters:
            self._hop(Step.CLUSTER, at.pod, at.component, "(cluster_header)", "not simulated", Status.FAIL)
            return self._fail(End.LOCAL_REPLY, "the route picks its cluster from a header", "", 503, "NC")
        chosen = self._choose(at, clusters)
        fault = envoy.route_fault(route, vhost, manager)
        if fault is not None:
            aborted = self._fault(at, fault, chosen, rule)
            if aborted is not None:
                return aborted
        self._rewrite(route)
        return self._upstream(at, chosen, conn, http=True, rule=rule)

    def _direct_response(
        self,
        at: _Envoy,
        vhost: Any,
        route: Any,
        index: int,
        detail: str,
        origin: str,
        rule: explain.RuleRef | None,
    ) -> Outcome:
        status = int(route.direct_response.status)
        failed = status >= 400
        self._hop(
            Step.ROUTE,
            at.pod,
            at.component,
            envoy.route_label(route, index),
            f"{detail} → direct_response {status}",
            Status.FAIL if failed else Status.OK,
            origin,
        )
        self._log(at, "", "-", status)
        if str(vhost.name) == names.BLOCK_ALL_VHOST:
            fix = explain.registry_only_fix(
                self.mesh, self._proxy(at.pod), self.request.host, self.request.port
            )
            summary = (
                f"{self.request.host} is outside the registry and REGISTRY_ONLY answers {status} (block_all)"
            )
        elif rule is not None:
            fix = f"{rule.text()} answers {status} directly" if failed else ""
            summary = f"direct response {status} from {vhost.name}"
        else:
            fix = f"no VirtualService routes {self.authority} at this gateway" if failed else ""
            summary = f"direct response {status} from {vhost.name}"
        return Outcome(End.LOCAL_REPLY, summary, status, "-", fix=fix)

    def _redirect(self, at: _Envoy, route: Any, index: int, detail: str, origin: str) -> Outcome:
        redirect = route.redirect
        code = _REDIRECT_CODES.get(redirect.response_code, 301)
        host = str(redirect.host_redirect) or self.authority
        path = str(redirect.path_redirect) or self.path
        scheme = str(redirect.scheme_redirect) or (
            "https" if self.request.protocol is Protocol.HTTPS else "http"
        )
        location = f"{scheme}://{host}{path}"
        self._hop(
            Step.ROUTE,
            at.pod,
            at.component,
            envoy.route_label(route, index),
            f"{detail} → redirect {code} to {location}",
            origin=origin,
        )
        self._log(at, "", "-", code)
        return Outcome(End.LOCAL_REPLY, f"redirect {code} to {location}", code)

    def _fault(self, at: _Envoy, fault: Any, cluster: str, rule: explain.RuleRef | None) -> Outcome | None:
        origin = rule.text() if rule is not None else ""
        if fault.HasField("delay"):
            delay = fault.delay.fixed_delay.ToTimedelta().total_seconds()
            percent = (
                envoy.fraction_percent(fault.delay.percentage)
                if fault.delay.HasField("percentage")
                else 100.0
            )
            always = percent >= 100.0
            self._hop(
                Step.FAULT,
                at.pod,
                at.component,
                f"delay {delay:g}s",
                f"fault filter delays {percent:g}% of these requests by {delay:g}s (DI)"
                + ("" if always else "; the trace follows the undelayed ones"),
                Status.OK if always else Status.NOTE,
                origin,
            )
            self.delayed = self.delayed or always
            if always:
                self.delayed_by = (at.pod.proxy_id, at.listener)
        if fault.HasField("abort"):
            code = int(fault.abort.http_status)
            percent = (
                envoy.fraction_percent(fault.abort.percentage)
                if fault.abort.HasField("percentage")
                else 100.0
            )
            if percent >= 100.0:
                self._hop(
                    Step.FAULT,
                    at.pod,
                    at.component,
                    f"abort {code}",
                    f"fault filter answers {code} to every such request (FI)",
                    Status.FAIL,
                    origin,
                )
                flags = "DI,FI" if self.delayed else "FI"
                self._log(at, cluster, flags, code)
                fix = (
                    f"the fault is injected on purpose by {origin}"
                    if origin
                    else "remove the fault injection"
                )
                return Outcome(End.LOCAL_REPLY, f"fault injected: abort {code}", code, flags, fix=fix)
            self._hop(
                Step.FAULT,
                at.pod,
                at.component,
                f"abort {code}",
                f"fault filter answers {code} to {percent:g}% of these requests (FI); the trace follows "
                "the others",
                Status.NOTE,
                origin,
            )
        return None

    def _rewrite(self, route: Any) -> None:
        action = route.route
        if action.prefix_rewrite and route.match.WhichOneof("path_specifier") == "prefix":
            self.path = str(action.prefix_rewrite) + self.path[len(route.match.prefix) :]
        if action.host_rewrite_literal:
            self.authority = str(action.host_rewrite_literal)

    def _choose(self, at: _Envoy, clusters: list[tuple[str, int]]) -> str:
        """Weighted clusters: list them all, follow `--pick` or the heaviest."""
        if len(clusters) == 1:
            return clusters[0][0]
        total = sum(weight for _, weight in clusters) or 1
        picked = [name for name, _ in clusters if self.pick and _picks(self.pick, name)]
        if picked:
            chosen, why = picked[0], f"--pick {self.pick}"
        else:
            chosen = max(clusters, key=lambda c: c[1])[0]
            why = "the heaviest"
            if self.pick:
                self.notes.append(f"--pick {self.pick} names none of {', '.join(n for n, _ in clusters)}")
        candidates = tuple(
            Candidate(name, f"weight {weight} ({100 * weight / total:g}%)", weight, name == chosen)
            for name, weight in clusters
        )
        self._hop(
            Step.WEIGHTED,
            at.pod,
            at.component,
            chosen,
            f"{len(clusters)} weighted clusters; following {why}",
            candidates=candidates,
        )
        return chosen

    # --- Envoy: cluster, endpoints, upstream connection ------------------------------------------

    def _upstream(
        self, at: _Envoy, name: str, conn: _Conn, http: bool, rule: explain.RuleRef | None
    ) -> Outcome:
        code = 503 if http else None
        cluster = at.config.clusters.get(name)
        if cluster is None:
            where = f" named by {rule.destination_origin(name, self.mesh.domain_suffix)}" if rule else ""
            self._hop(Step.CLUSTER, at.pod, at.component, name, f"no such cluster in CDS{where}", Status.FAIL)
            self._log(at, "", "NC", code)
            fix = explain.missing_cluster_fix(self.mesh, self._proxy(at.pod), name, rule)
            end = End.LOCAL_REPLY if http else End.CLOSED
            return self._fail(end, f"cluster {name} not found", fix, code, "NC")
        kind = cluster_pb2.Cluster.DiscoveryType.Name(cluster.type)
        self._hop(
            Step.CLUSTER,
            at.pod,
            at.component,
            name,
            self._cluster_detail(cluster, kind),
            origin=explain.cluster_origin(self.mesh, cluster),
        )
        if kind == "ORIGINAL_DST":
            return self._original_dst(at, cluster, name, conn)
        endpoints = self._endpoints(at, cluster, kind)
        healthy = [e for e in endpoints if e[2] in _HEALTHY]
        if not healthy:
            what = "no endpoints" if not endpoints else f"none of {len(endpoints)} endpoints is healthy"
            self._hop(
                Step.ENDPOINTS,
                at.pod,
                at.component,
                f"{name}: {what}",
                "no healthy upstream host",
                Status.FAIL,
            )
            self._log(at, name, "UH", code)
            if name == names.BLACKHOLE_CLUSTER:
                fix = explain.blackhole_fix(
                    self.mesh, self._proxy(at.pod), self.request.host, self.request.port
                )
            else:
                fix = explain.no_endpoints_fix(self.mesh, self._proxy(at.pod), name)
            end = End.LOCAL_REPLY if http else End.CLOSED
            return self._fail(end, f"no healthy upstream host in {name}", fix, code, "UH")
        address, port, _health = healthy[0]
        candidates = tuple(self._endpoint_candidate(e, e is healthy[0]) for e in endpoints)
        self._hop(
            Step.ENDPOINTS,
            at.pod,
            at.component,
            f"{address}:{port}",
            f"{len(healthy)} healthy of {len(endpoints)}; following the first",
            candidates=candidates,
            to=f"{address}:{port}",
        )
        self._log(at, name, self._flags(at), None)
        return self._connect(at, cluster, conn, address, port)

    def _cluster_detail(self, cluster: Any, kind: str) -> str:
        if kind == "EDS":
            return f"EDS, endpoints from {cluster.eds_cluster_config.service_name or cluster.name}"
        if kind == "ORIGINAL_DST":
            return "ORIGINAL_DST: connects to the connection's original destination"
        if kind == "STATIC" and not cluster.load_assignment.endpoints:
            return "STATIC with no endpoints (a black hole)"
        return f"{kind}, endpoints in the cluster"

    def _endpoints(self, at: _Envoy, cluster: Any, kind: str) -> list[tuple[str, int, int]]:
        if kind == "EDS":
            service = str(cluster.eds_cluster_config.service_name or cluster.name)
            assignment = at.config.endpoints.get(service)
        else:
            assignment = cluster.load_assignment
        if assignment is None:
            return []
        found = []
        for group in assignment.endpoints:
            for lb in group.lb_endpoints:
                socket = lb.endpoint.address.socket_address
                found.append((str(socket.address), int(socket.port_value), int(lb.health_status)))
        return found

    def _endpoint_candidate(self, endpoint: tuple[str, int, int], chosen: bool) -> Candidate:
        address, port, health = endpoint
        pod = lookup.pod_at(self.mesh, address)
        state = "healthy" if health in _HEALTHY else "unhealthy"
        if pod is not None:
            version = pod.labels.get("version")
            who = pod.proxy_id + (f" (version={version})" if version else "")
            return Candidate(f"{address}:{port}", f"{who}, {state}", chosen=chosen)
        return Candidate(f"{address}:{port}", state, chosen=chosen)

    def _original_dst(self, at: _Envoy, cluster: Any, name: str, conn: _Conn) -> Outcome:
        target = f"{conn.dst_ip}:{conn.dst_port}"
        self._hop(
            Step.ENDPOINTS,
            at.pod,
            at.component,
            target,
            "the original destination of the connection",
            to=target,
        )
        self._log(at, name, self._flags(at), None)
        return self._connect(at, cluster, conn, conn.dst_ip, conn.dst_port)

    def _connect(self, at: _Envoy, cluster: Any, conn: _Conn, address: str, port: int) -> Outcome:
        """Envoy's own connection to the chosen host: through its pod's iptables, then the network."""
        source = at.pod.ip
        bind = cluster.upstream_bind_config.source_address
        if cluster.HasField("upstream_bind_config") and bind.address:
            source = str(bind.address)
        tls, sni, alpn = self._upstream_tls(cluster, conn)
        upstream = _Conn(source, address, port, tls, sni, alpn)
        if not lookup.is_ip(address):
            self._hop(
                Step.CONNECT,
                at.pod,
                Component.NETWORK,
                f"{address}:{port}",
                "Envoy resolves the name itself (DNS outside the mesh) and connects"
                + (" with TLS" if tls else ""),
                to=f"{address}:{port}",
            )
            return Outcome(
                End.LEFT_MESH,
                f"leaves the mesh to {address}:{port}",
                reached=f"{address}:{port}",
                response_flags=self._flags(),
            )
        if lookup.has_sidecar(at.pod):
            verdict = self._outbound_iptables(at.pod, upstream, names.PROXY_UID)
            if isinstance(verdict, Outcome):
                return verdict
            if verdict is not None and verdict.port is not None:
                return self._envoy(at.pod, upstream, "127.0.0.1", verdict.port, redirected=True)
        return self._network(at.pod, upstream, through_envoy=True)

    @staticmethod
    def _upstream_tls(cluster: Any, conn: _Conn) -> tuple[bool, str, tuple[str, ...]]:
        """TLS Envoy originates (cluster transport socket), else whatever the client sent through."""
        socket = cluster.transport_socket
        if cluster.HasField("transport_socket") and socket.name == "envoy.transport_sockets.tls":
            context = tls_pb2.UpstreamTlsContext()
            socket.typed_config.Unpack(context)
            return True, str(context.sni), tuple(str(a) for a in context.common_tls_context.alpn_protocols)
        return conn.tls, conn.sni, conn.alpn


def _picks(pick: str, cluster: str) -> bool:
    """`--pick` names a cluster, a subset (`v2`) or a host of the candidates."""
    if pick == cluster:
        return True
    key = names.ClusterKey.parse(cluster)
    return key is not None and pick in (key.subset, key.hostname, key.hostname.split(".")[0])
