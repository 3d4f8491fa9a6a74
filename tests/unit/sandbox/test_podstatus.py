"""The sandbox's pod status reports: valid `PodStatus` input that the model reads as the pods' readiness,
written atomically and only on change, in the run's own directory that the discovery server serves
after the user's DIRs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pilotfish.config.parse import parse_manifests
from pilotfish.sandbox.components import discovery_argv
from pilotfish.sandbox.podstatus import PodReport, StatusWriter, render
from pilotfish.sandbox.runtime import Sandbox
from pilotfish.sandbox.state import MeshState
from pilotfish.sources.files import DirectoryWatcher

REPORTS = [
    PodReport("details-v1-abc-0", "default", True),
    PodReport("reviews-v1-abc-0", "default", True, ("reviews",)),
    PodReport("reviews-v2-abc-0", "default", False, ("reviews", "proxy")),
]


def test_reports_are_podstatus_objects_the_model_reads() -> None:
    text = render(REPORTS)
    objects, problems = parse_manifests([("pods.yaml", text)])
    assert not problems, [str(p) for p in problems]
    assert [(o.kind, o.namespace, o.name) for o in objects] == [
        ("PodStatus", "default", r.name) for r in REPORTS
    ]
    assert [o.spec.status.ready for o in objects] == [True, False, False]
    assert [o.spec.status.phase for o in objects] == ["Running", "Running", "Pending"]
    unready = objects[1].spec.status.conditions[0]
    assert (unready.type, unready.status, unready.reason) == ("Ready", "False", "ContainersNotReady")
    assert unready.message == "containers with unready status: [reviews]"
    assert render(REPORTS) == text, "no timestamps: equal reports, equal text, equal mesh versions"
    assert parse_manifests([("pods.yaml", render([]))]) == ([], [])


def test_the_writer_replaces_the_file_only_on_change(tmp_path: Path) -> None:
    directory = tmp_path / "status"
    writer = StatusWriter(directory)
    assert writer.write(REPORTS)
    inode = writer.path.stat().st_ino
    assert not writer.write(list(REPORTS))
    assert writer.path.stat().st_ino == inode
    assert writer.write(REPORTS[:1])
    assert writer.path.stat().st_ino != inode, "a new file renamed over the old: never read half-written"
    assert os.listdir(directory) == ["pods.yaml"]
    assert writer.path.stat().st_mode & 0o777 == 0o644
    assert DirectoryWatcher(directory).files() == [writer.path]


def test_up_serves_every_dir_then_its_status_reports(tmp_path: Path) -> None:
    from pilotfish.sandbox.plan import Settings

    one, two = tmp_path / "bookinfo", tmp_path / "extra"
    settings = Settings(prefix="pfu-", run_dir=str(tmp_path / "run"))
    sandbox = Sandbox([one, two], settings)
    assert sandbox.served_dirs == [one, two, tmp_path / "run" / "status"]
    assert sandbox.status.path == tmp_path / "run" / "status" / "pods.yaml"
    argv = discovery_argv(settings, [str(d) for d in sandbox.served_dirs], "/x/xds.sock", "127.0.0.1:1")
    manifests = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--manifests"]
    assert manifests == [str(one), str(two), str(tmp_path / "run" / "status")]
    assert not (tmp_path / "run").exists(), "nothing is written before `up`"


def test_the_state_file_names_the_status_directory() -> None:
    state = MeshState("pf-", "r", 1, ["/a", "/b"], "/run/pilotfish/pf-", "", "", "", "pf-node",
                      status_dir="/run/pilotfish/pf-/status")
    assert MeshState.from_json(state.to_json()).status_dir == "/run/pilotfish/pf-/status"
    older = json.loads(state.to_json())
    del older["status_dir"]
    assert MeshState.from_json(json.dumps(older)).status_dir == "", "a state file of an older `up` reads"
