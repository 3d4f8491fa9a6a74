"""`pilotfish analyze`: coded diagnostics for config mistakes, printed like `istioctl analyze`.

    Error [IST0101] (VirtualService default/reviews samples/x.yaml:12) Referenced host+subset in
    destinationrule not found: "reviews+v4". Fix: ...

Exit codes follow istioctl: 0 when no finding reaches `--failure-threshold` (Error by default, so
warnings and infos alone exit 0), 79 when one does, 2 for usage errors. Reading files happens here;
the analysis itself is the pure `pilotfish.analyze`. The input side is one function
(`_context_from_files`); with no paths it reads the manifests the running local mesh was started
from (the state file's directories), which is what that mesh's discovery server serves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from pilotfish.analyze.analyzers import ALL, UnknownAnalyzer, run, select
from pilotfish.analyze.context import AnalysisContext, context_from_texts
from pilotfish.analyze.messages import BY_CODE
from pilotfish.config.diagnostics import Diagnostic, Level
from pilotfish.sources.manifests import read_manifests

EXIT_FOUND_ISSUES = 79
"""istioctl's exit code when analysis finds issues at or above the failure threshold."""
_RANK = {Level.INFO: 0, Level.WARNING: 1, Level.ERROR: 2}
_LEVEL_NAMES = ("Error", "Warning", "Info")


def _level(name: str) -> Level:
    return Level(name.lower())


def level_title(level: Level) -> str:
    return level.value.capitalize()


def format_text(diagnostic: Diagnostic) -> str:
    """`<Level> [<code>] (<Kind> <namespace>/<name> <file>:<line>) <message>`, as istioctl prints."""
    where = " ".join(str(x) for x in (diagnostic.resource, diagnostic.origin) if x is not None)
    place = f" ({where})" if where else ""
    return f"{level_title(diagnostic.level)} [{diagnostic.code}]{place} {diagnostic.message}"


def as_record(diagnostic: Diagnostic) -> dict[str, Any]:
    """The JSON/YAML form of one finding."""
    message_type = BY_CODE.get(diagnostic.code)
    return {
        "code": diagnostic.code,
        "name": message_type.name if message_type is not None else "",
        "level": level_title(diagnostic.level),
        "resource": str(diagnostic.resource) if diagnostic.resource is not None else None,
        "origin": str(diagnostic.origin) if diagnostic.origin is not None else None,
        "path": diagnostic.path,
        "message": diagnostic.message,
    }


def _context_from_files(paths: Sequence[Path], mesh_config: Path | None) -> AnalysisContext:
    texts, problems = read_manifests(paths)
    mesh_text = None
    if mesh_config is not None:
        mesh_texts, more = read_manifests([mesh_config])
        problems.extend(more)
        mesh_text = mesh_texts[0] if mesh_texts else None
    return context_from_texts(texts, mesh_text, read_problems=problems)


def _running_mesh_inputs() -> list[Path]:
    """With no paths: the manifests the running local mesh (`pilotfish up`) was started from. The
    discovery server follows edits of those files live, so this is the config the proxies are served."""
    from pilotfish.sandbox.state import NoRunningMesh, running_mesh

    try:
        return [Path(d) for d in running_mesh().dirs]
    except NoRunningMesh as exc:
        raise click.UsageError(
            f"give manifest files or directories to analyze (PATHS or --manifests DIR); {exc}"
        ) from None


def _print_analyzers() -> None:
    width = max(len(a.name) for a in ALL)
    for analyzer in ALL:
        click.echo(f"{analyzer.name:<{width}}  {analyzer.description}")


@click.command("analyze")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--manifests",
    "manifest_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A manifest file or directory (repeatable); same as giving it as an argument.",
)
@click.option(
    "--mesh-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="MeshConfig YAML to analyze with (as istioctl's --meshConfigFile).",
)
@click.option(
    "-o", "--output", "output", type=click.Choice(["text", "json", "yaml"]), default="text", show_default=True
)
@click.option(
    "--analyzer",
    "analyzer_names",
    multiple=True,
    metavar="NAME",
    help="Run only this analyzer, or a family such as 'virtualservice' (repeatable). See -L.",
)
@click.option(
    "--failure-threshold",
    type=click.Choice(_LEVEL_NAMES, case_sensitive=False),
    default="Error",
    show_default=True,
    help="Exit with code 79 when a finding is at least this severe.",
)
@click.option(
    "--output-threshold",
    type=click.Choice(_LEVEL_NAMES, case_sensitive=False),
    default="Info",
    show_default=True,
    help="Print only findings at least this severe.",
)
@click.option("-L", "--list-analyzers", is_flag=True, help="List the analyzers and exit.")
def analyze(
    paths: tuple[Path, ...],
    manifest_dirs: tuple[Path, ...],
    mesh_config: Path | None,
    output: str,
    analyzer_names: tuple[str, ...],
    failure_threshold: str,
    output_threshold: str,
    list_analyzers: bool,
) -> None:
    """Find mistakes in mesh config (Istio's analyzer codes where they exist).

    PATHS are manifest files or directories (read recursively), e.g. `pilotfish analyze samples/bookinfo`.
    Without PATHS: the manifests of the running local mesh (`pilotfish up`), as its discovery server
    serves them.
    """
    if list_analyzers:
        _print_analyzers()
        return
    inputs = [*paths, *manifest_dirs]
    what = ", ".join(str(p) for p in inputs)
    if not inputs:
        inputs = _running_mesh_inputs()
        what = f"the running mesh ({', '.join(str(p) for p in inputs)})"
    try:
        analyzers = select(analyzer_names) if analyzer_names else ALL
    except UnknownAnalyzer as exc:
        message = f"unknown analyzer {exc} (list them with -L)"
        raise click.BadParameter(message, param_hint="--analyzer") from None
    context = _context_from_files(inputs, mesh_config)
    findings = run(context, analyzers)
    shown = [d for d in findings if _RANK[d.level] >= _RANK[_level(output_threshold)]]
    _print(shown, output, what)
    if any(_RANK[d.level] >= _RANK[_level(failure_threshold)] for d in findings):
        click.get_current_context().exit(EXIT_FOUND_ISSUES)


def _print(findings: list[Diagnostic], output: str, what: str) -> None:
    if output == "json":
        click.echo(json.dumps([as_record(d) for d in findings], indent=2))
    elif output == "yaml":
        records = [as_record(d) for d in findings]
        click.echo(yaml.safe_dump(records, sort_keys=False, allow_unicode=True), nl=False)
    elif findings:
        for diagnostic in findings:
            click.echo(format_text(diagnostic))
    else:
        click.echo(f"\u2714 No validation issues found when analyzing {what}.", err=True)
