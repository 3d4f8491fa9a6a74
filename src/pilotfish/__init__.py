"""pilotfish: a service-mesh control plane in Python.

Kubernetes Services/Pods plus Istio networking config (Gateway, VirtualService, DestinationRule,
ServiceEntry, Sidecar) become Envoy listeners, routes, clusters and endpoints, served to real Envoy
proxies over gRPC ADS. See ARCHITECTURE.md in the design folder for the map:

    sources -> config -> model.Mesh -> xds (per proxy) -> server (ADS) -> Envoy

The pure core (config, model, xds, iptables rule building, agent bootstrap, inspect rendering,
simulate, analyze) does no IO; the IO shell (sources, server, agent process handling, iptables
apply, sandbox, cli) drives it.
"""

__version__ = "0.1.0"
