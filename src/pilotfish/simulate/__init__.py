"""`pilotfish trace`'s engine: a request walked through iptables and the Envoy config of every proxy
on its path, the way Envoy would match it (pure; no IO).

    simulate(mesh, OfflineSource(mesh), build_request(PodSource(pod, ns), url, method, headers))
        -> Trace(hops, outcome)   # render_text / render_json / render_dot

Modules: `request` (what the client sends), `capture` (the pod's iptables decision), `envoy`
(Envoy's matching rules on v3 messages), `source` (where each proxy's config comes from: generated
offline, or later a live config dump), `lookup` (names, addresses, pods), `explain` (the Istio
object and `file:line` behind matched config; what to change on failure), `walk` (the walk itself),
`result` (the data), `render` and `dot` (text, JSON, Graphviz).
"""
