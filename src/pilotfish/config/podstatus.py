"""`pilotfish.io/v1alpha1 PodStatus`: the status of one pod, reported by whoever runs it.

In Kubernetes the kubelet probes each container and writes the pod's `status.conditions` through the
Pod's status subresource; the endpoints controller then lists a pod whose `Ready` condition is not
"True" under the Endpoints' `notReadyAddresses` instead of `addresses`, and Istio (1.3 as modern
without `publishNotReadyAddresses`) sends only ready addresses in EDS. pilotfish reads manifests, not
an API server, and most of its pods exist only as Deployment replicas the model names
(`model.allocate`): there is no Pod object to carry a status. So the status subresource becomes a
small object of its own, addressed exactly like the pod and holding exactly the Pod's `status` block:

    apiVersion: pilotfish.io/v1alpha1
    kind: PodStatus
    metadata: {name: reviews-v1-5f7c9d8b4-x2k9p, namespace: default}
    status:
      phase: Running
      conditions:
      - {type: Ready, status: "False", reason: ContainersNotReady,
         message: "containers with unready status: [reviews]"}

Why this shape and not another:
- The user's manifests stay the desired state; status is written elsewhere by whoever runs the pods
  (the local mesh's sandbox writes one file of these into its run directory, as a kubelet would),
  and the discovery server reads both. A status change changes no pod, service or config, so it is
  an endpoint-only update (`model.build.WORKLOAD_KINDS`): EDS is pushed, nothing else.
- A `Pod` carrying only a status cannot stand in for it: it would be a second Pod of the same name
  (a duplicate) without the spec a Pod requires, and Deployment replicas have no Pod at all.
- Writing `Endpoints` objects instead would move the endpoints controller's job (selectors, named
  target ports) out of the model into whoever reports status, and replace what the model computes.
- A single list of not-ready pods is not Kubernetes' shape; per-pod conditions are what
  `kubectl get pod -o yaml` shows, and what the readiness rule (`config.k8s.pod_ready`) reads.

Rules (`model.build`): a pod is ready when its `Ready` condition is "True" and its phase, if given,
is Running; a pod with no reported status counts as ready (nothing probes a plain manifests
directory). A PodStatus takes precedence over the status written in a Pod object itself. A PodStatus
naming a pod the manifests do not have is ignored (the status of a pod that is gone; its reporter
drops it on its next write). Explicit `Endpoints` objects are used as written, as Kubernetes leaves
the Endpoints of a service without selector alone.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from pilotfish.config.k8s import PodCondition, check_phase, pod_ready
from pilotfish.config.types import Strict


class ReportedStatus(Strict):
    """The Pod `status` fields a status report carries (the rest of a kubelet's status is not read)."""

    phase: str = ""
    conditions: list[PodCondition] = Field(default_factory=list)
    reason: str = ""
    message: str = ""

    @field_validator("phase")
    @classmethod
    def _phase(cls, value: str) -> str:
        return check_phase(value)

    @property
    def ready(self) -> bool:
        return pod_ready(self.phase, self.conditions)


class PodStatusReport(Strict):
    """The whole object but apiVersion/kind/metadata (a Kubernetes-style kind: `status` at the top)."""

    status: ReportedStatus
