"""Real Envoy 1.40 sidecars for the convergence tier, each started by `pilotfish agent sidecar`.

The agent is what starts Envoy in the local mesh too: its bootstrap (`pilotfish.agent.bootstrap`,
node metadata from the pod's labels and service account), one worker, no drain. Here each agent runs
in a network namespace of its own (`unshare --net`), so the sidecars' listeners (15001, 15006, 15090,
15021) never meet each other's or the host's; the discovery socket and the Envoy admin socket are
files in the work directory, which every namespace reaches. The namespace has no interface but its
(down) loopback: nothing is sent anywhere. Sidecars alternate SotW and delta ADS, like the fleet.

That needs root and `unshare`; without them no sidecar starts (`available()` says why).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.server import ROOT, stop


def available() -> str:
    """Empty when sidecars can run here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "needs root (each sidecar runs in its own network namespace)"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux)"
    return ""


def agent_argv(workload: Mapping[str, Any], index: int, work: Path, xds_sock: Path) -> list[str]:
    """`unshare --net python -m pilotfish agent sidecar ...` for one pod of `/debug/registryz`."""
    labels = sorted(workload.get("labels", {}).items())
    return [
        *("unshare", "--net", sys.executable, "-m", "pilotfish", "agent", "sidecar"),
        *("--discovery", f"unix:{xds_sock}", "--pod", workload["name"]),
        *("--namespace", workload["namespace"], "--ip", workload["ip"]),
        *(arg for key, value in labels for arg in ("--label", f"{key}={value}")),
        *("--service-account", workload.get("service_account") or "default"),
        *("--admin", f"unix:{work / f'admin-{index}.sock'}", "--run-dir", str(work)),
        *("--xds", "delta" if index % 2 == 1 else "sotw", "--concurrency", "1"),
        *("--drain-duration", "0", "--log-level", "error"),
    ]


@contextlib.contextmanager
def sidecars(workloads: Sequence[Mapping[str, Any]], work: Path, xds_sock: Path) -> Iterator[None]:
    """One agent-run sidecar per workload until the block ends; each is stopped by its pid (SIGTERM,
    then SIGKILL; the agent's Envoy dies with it). Their output goes to `work/agent-<i>.log`."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    agents: list[subprocess.Popen[bytes]] = []
    try:
        for index, workload in enumerate(workloads):
            with (work / f"agent-{index}.log").open("wb") as log:
                argv = agent_argv(workload, index, work, xds_sock)
                agents.append(
                    subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
                )
        yield
    finally:
        stop(agents)
