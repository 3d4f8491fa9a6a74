"""Watch directories of manifests by polling: the simplest thing that works everywhere.

Every `interval` the directory tree is scanned and each manifest's (inode, size, mtime) compared with
the previous scan; any difference is one change event. Polling needs no inotify, behaves the same for
editors that write in place and editors that write a temporary file and rename it, and costs a few
`stat` calls per tick for a directory of manifests. A half-written file is simply a change: it fails
to parse, the rebuild reports it, and the last good mesh keeps being served until the file is whole.

Which files are manifests is decided by `sources.manifests` (hidden files and editor leftovers are
skipped), so the watcher and the pipeline always agree on the input. Several directories (the user's
manifests, and e.g. the local mesh's pod status reports) are one input: their files in the order the
directories were given, each directory's sorted, exactly as `sources.manifests.manifest_files` lists them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pilotfish.sources.manifests import MANIFEST_SUFFIXES

DEFAULT_INTERVAL = 0.1


@dataclass(frozen=True, slots=True)
class FileStamp:
    inode: int
    size: int
    mtime_ns: int


def scan(directory: Path) -> dict[Path, FileStamp]:
    """Every manifest under `directory` with its stamp.

    Which files count is `sources.manifests`' rule (the pipeline reads exactly these; a unit test
    holds the two together). Walks with `os.scandir`, whose entries carry their stat, because this
    runs every `interval`: about 20x cheaper than `Path.rglob` plus a `stat` per file.
    """
    found: dict[Path, FileStamp] = {}
    pending = [str(directory)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    pending.append(entry.path)
                elif (
                    entry.is_file()
                    and entry.name.endswith(MANIFEST_SUFFIXES)
                    and not entry.name.endswith("~")
                ):
                    st = entry.stat()
                    found[Path(entry.path)] = FileStamp(st.st_ino, st.st_size, st.st_mtime_ns)
            except FileNotFoundError:  # deleted between listing and stat
                continue
    return found


Stamps = tuple[dict[Path, FileStamp], ...]


class DirectoryWatcher:
    """Polls `directories`; `changed()` says whether anything differs since the last call."""

    def __init__(self, directories: Path | Sequence[Path], interval: float = DEFAULT_INTERVAL) -> None:
        self.directories = (directories,) if isinstance(directories, Path) else tuple(directories)
        self.interval = interval
        self._stamps = self._scan()

    def _scan(self) -> Stamps:
        return tuple(scan(directory) for directory in self.directories)

    def files(self) -> list[Path]:
        """The manifests as of the last scan, in the order the pipeline reads them in: directory by
        directory, each sorted."""
        return [file for stamps in self._stamps for file in sorted(stamps)]

    def changed(self) -> bool:
        stamps = self._scan()
        if stamps == self._stamps:
            return False
        self._stamps = stamps
        return True

    def unchanged_since(self, files: list[Path]) -> bool:
        """True when a fresh scan still shows exactly these files with the stamps we last saw.

        Used after a (slow) load: if a file changed while it was being read, the result may mix old
        and new content, so it is discarded and the next scan triggers a new load.
        """
        return self._scan() == self._stamps and files == self.files()

    async def run(self, on_change: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.changed():
                on_change()
