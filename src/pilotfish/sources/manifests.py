"""Read manifest files and directories (the IO half of loading; parsing is `config.parse`).

A directory is read recursively: every `*.yaml`, `*.yml` and `*.json` file, in sorted path order, so
the object order (Istio's "creation time" ordering) is stable. Hidden files and editor leftovers
(`.#x.yaml`, `x.yaml~`, `*.swp`) are skipped: a half-saved file should not be half-applied.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from pilotfish.config.diagnostics import INVALID_DOCUMENT, Diagnostic, Origin, error

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def manifest_files(paths: Iterable[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Expand files and directories into the manifest files they stand for."""
    files: list[Path] = []
    diagnostics: list[Diagnostic] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if _is_manifest(p, path)))
        elif path.is_file():
            files.append(path)
        else:
            diagnostics.append(error(INVALID_DOCUMENT, "no such file or directory", origin=Origin(str(path))))
    return files, diagnostics


def read_manifests(paths: Sequence[Path]) -> tuple[list[tuple[str, str]], list[Diagnostic]]:
    """(file name, text) of every manifest file under `paths`."""
    files, diagnostics = manifest_files(paths)
    texts: list[tuple[str, str]] = []
    for file in files:
        try:
            texts.append((str(file), file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            diagnostics.append(error(INVALID_DOCUMENT, f"cannot read: {exc}", origin=Origin(str(file))))
    return texts, diagnostics


def content_version(texts: Iterable[tuple[str, str]]) -> str:
    """A short hash of all inputs: equal inputs give equal mesh versions."""
    digest = hashlib.blake2b(digest_size=6)
    for name, text in texts:
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _is_manifest(path: Path, root: Path) -> bool:
    relative = path.relative_to(root)
    if any(part.startswith(".") for part in relative.parts):
        return False
    return path.is_file() and path.suffix in MANIFEST_SUFFIXES and not path.name.endswith("~")
