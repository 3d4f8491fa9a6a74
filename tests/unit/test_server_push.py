"""Debounce timing (fake clock) and the directory watcher."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pilotfish.cli.discovery import parse_duration
from pilotfish.server.push import Burst, DebouncedTrigger, Debouncer
from pilotfish.sources.files import DirectoryWatcher, scan
from pilotfish.sources.manifests import manifest_files


@pytest.mark.parametrize(
    ("events", "deadline"),
    [
        ([], None),
        ([0.0], 0.1),  # quiet period after a single event
        ([0.0, 0.05, 0.09], 0.19),  # each event restarts the quiet period
        ([i * 0.05 for i in range(400)], 10.0),  # a steady stream is cut at max delay after the first
    ],
    ids=["idle", "single", "burst", "never-quiet"],
)
def test_debouncer_deadline(events: list[float], deadline: float | None) -> None:
    debouncer = Debouncer(quiet=0.1, max_delay=10.0)
    for at in events:
        debouncer.event(at)
    got = debouncer.deadline()
    assert got == deadline if deadline is None else got == pytest.approx(deadline)


def test_debouncer_fire_merges_and_resets() -> None:
    debouncer = Debouncer(quiet=0.1, max_delay=10.0)
    debouncer.event(1.0)
    debouncer.event(1.05)
    assert not debouncer.ready(1.1)
    assert debouncer.ready(1.16)
    burst = debouncer.fire(1.16)
    assert burst == Burst(first=1.0, last=1.05, count=2, fired=1.16)
    assert burst.waited == pytest.approx(0.16)
    assert not debouncer.pending and debouncer.deadline() is None
    debouncer.event(2.0)
    assert debouncer.fire(2.1).count == 1


def test_debouncer_rejects_negative_times() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        Debouncer(quiet=-1)


async def test_trigger_runs_once_per_burst() -> None:
    bursts: list[Burst] = []
    done = asyncio.Event()

    async def action(burst: Burst) -> None:
        bursts.append(burst)
        done.set()

    trigger = DebouncedTrigger(action, quiet=0.02, max_delay=1.0)
    task = asyncio.create_task(trigger.run())
    try:
        for _ in range(5):
            trigger.notify()
        await asyncio.wait_for(done.wait(), 5)
    finally:
        task.cancel()
    assert [b.count for b in bursts] == [5]


async def test_trigger_survives_a_failing_action(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0
    second = asyncio.Event()

    async def action(_: Burst) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        second.set()

    trigger = DebouncedTrigger(action, quiet=0.0, max_delay=1.0)
    task = asyncio.create_task(trigger.run())
    try:
        trigger.notify()
        await asyncio.sleep(0.05)
        trigger.notify()
        await asyncio.wait_for(second.wait(), 5)
    finally:
        task.cancel()
    assert calls == 2
    assert "push: rebuild failed" in caplog.text


def test_watcher_sees_writes_renames_and_deletes(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a: 1\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text("ignored\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.yaml").write_text("b: 1\n")
    watcher = DirectoryWatcher(tmp_path)
    assert watcher.files() == [tmp_path / "a.yaml", sub / "b.yaml"]
    assert not watcher.changed()
    (tmp_path / "a.yaml").write_text("a: 22\n")  # size changes
    assert watcher.changed()
    assert not watcher.changed()
    tmp = tmp_path / ".a.yaml.tmp"
    tmp.write_text("a: 33\n")
    os.replace(tmp, tmp_path / "a.yaml")  # same size, new inode (editor save by rename)
    assert watcher.changed()
    (sub / "b.yaml").unlink()
    assert watcher.changed()
    assert watcher.files() == [tmp_path / "a.yaml"]
    assert watcher.unchanged_since([tmp_path / "a.yaml"])
    (tmp_path / "c.yaml").write_text("c: 1\n")
    assert not watcher.unchanged_since([tmp_path / "a.yaml"])


def test_watcher_of_several_directories_reads_them_in_order(tmp_path: Path) -> None:
    user, status = tmp_path / "z-user", tmp_path / "a-status"
    for directory, names in ((user, ["b.yaml", "a.yaml"]), (status, ["pods.yaml"])):
        directory.mkdir()
        for name in names:
            (directory / name).write_text("x: 1\n")
    watcher = DirectoryWatcher([user, status])
    files, _ = manifest_files([user, status])
    assert watcher.files() == files == [user / "a.yaml", user / "b.yaml", status / "pods.yaml"]
    assert not watcher.changed()
    tmp = status / ".pods.yaml.tmp"
    tmp.write_text("x: 2\n")
    os.replace(tmp, status / "pods.yaml")  # how the sandbox writes its status reports
    assert watcher.changed()
    assert watcher.unchanged_since(files)
    (user / "a.yaml").unlink()
    assert watcher.changed() and watcher.files() == [user / "b.yaml", status / "pods.yaml"]


def test_scan_finds_exactly_what_the_pipeline_reads(tmp_path: Path) -> None:
    for rel in (
        "a.yaml",
        "b.yml",
        "c.json",
        "d.txt",
        ".e.yaml",
        "f.yaml~",
        "sub/g.yaml",
        ".hid/h.yaml",
        "sub/.i.yaml",
        "sub/deeper/j.json",
    ):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x: 1\n")
    files, _ = manifest_files([tmp_path])
    assert sorted(scan(tmp_path)) == files
    assert len(files) == 5


def test_scan_skips_non_manifests_and_editor_leftovers(tmp_path: Path) -> None:
    for name in ("readme.md", ".a.yaml.swp", "a.yaml~", ".hidden.yaml"):
        (tmp_path / name).write_text("x")
    assert scan(tmp_path) == {}


@pytest.mark.parametrize(
    ("text", "seconds"), [("100ms", 0.1), ("1s", 1.0), ("1.5s", 1.5), ("2m", 120.0), ("3", 3.0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")
