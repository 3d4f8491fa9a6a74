"""The local mesh's kubelet role: report each pod's status where the discovery server reads it.

`pilotfish up` knows, like a kubelet, whether each pod's containers run and are ready (the init step
finished, each app printed its listening line since it last started, the proxy's Envoy answered
`/ready`). It writes that as `pilotfish.io/v1alpha1 PodStatus` objects (`config.podstatus`: the Pod's
`status` block, Ready condition included) into one file of a directory in its run directory, and the
discovery server serves that directory next to the user's manifests. A pod whose app died is then
reported not ready, the model leaves its address out of EDS (as Kubernetes lists it under
`notReadyAddresses`), and it comes back once the restarted app is ready again. The directory is the
run's own: the user's manifests stay untouched.

The file is rewritten only when a report changes, atomically (a hidden temporary file renamed over
it, which the watcher never reads half-written), and its text has no timestamps: equal reports give
equal text, so equal mesh versions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

STATUS_DIR = "status"
"""The directory of status reports in a run directory (served by the discovery server)."""
STATUS_FILE = "pods.yaml"
HEADER = "# pilotfish up: the status of each pod of the local mesh (rewritten on every change)\n"


@dataclass(frozen=True, slots=True)
class PodReport:
    """What a kubelet would write into one pod's status."""

    name: str
    namespace: str
    started: bool
    """Its init step finished and its containers were started (phase Running; else Pending)."""
    unready: tuple[str, ...] = ()
    """Containers that are not ready (dead, restarting, or not yet listening)."""

    @property
    def ready(self) -> bool:
        return self.started and not self.unready


def render(reports: Sequence[PodReport]) -> str:
    """The status file: one PodStatus document per pod, in the order given (pure)."""
    documents = [_document(report) for report in reports]
    return HEADER + "---\n".join(documents)


def _document(report: PodReport) -> str:
    if report.ready:
        condition = '{type: Ready, status: "True"}'
    else:
        message = json.dumps(f"containers with unready status: [{' '.join(report.unready)}]")
        condition = f'{{type: Ready, status: "False", reason: ContainersNotReady, message: {message}}}'
    return (
        "apiVersion: pilotfish.io/v1alpha1\n"
        "kind: PodStatus\n"
        f"metadata: {{name: {json.dumps(report.name)}, namespace: {json.dumps(report.namespace)}}}\n"
        "status:\n"
        f"  phase: {'Running' if report.started else 'Pending'}\n"
        f"  conditions:\n  - {condition}\n"
    )


class StatusWriter:
    """Keeps `<directory>/pods.yaml` equal to the latest reports, writing only on change."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STATUS_FILE
        self._text: str | None = None

    def write(self, reports: Sequence[PodReport]) -> bool:
        """Write the reports if they differ from the last ones written; True when written."""
        text = render(reports)
        if text == self._text:
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{STATUS_FILE}.tmp"
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        tmp.replace(self.path)
        self._text = text
        return True
