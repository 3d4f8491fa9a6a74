"""Entry point of the `pilotfish` command.

Commands are listed explicitly in `COMMANDS` (ARCHITECTURE.md principle 5): adding a command means
writing its module and adding one line here, never registering it as an import side effect.
"""

from __future__ import annotations

import importlib

import click

import pilotfish

# (command name, "module:attribute") - imported lazily so `pilotfish iptables` does not pay for grpc.
COMMANDS: list[tuple[str, str]] = [
    ("iptables", "pilotfish.cli.iptables:iptables"),
    ("proxy-config", "pilotfish.cli.proxy_config:proxy_config"),
    ("agent", "pilotfish.cli.agent:agent"),
    ("analyze", "pilotfish.cli.analyze:analyze"),
    ("trace", "pilotfish.cli.trace:trace"),
    ("discovery", "pilotfish.cli.discovery:discovery"),
    ("proxy-status", "pilotfish.cli.proxy_status:proxy_status"),
    ("up", "pilotfish.cli.sandbox:up"),
    ("down", "pilotfish.cli.sandbox:down"),
    ("logs", "pilotfish.cli.sandbox:logs"),
]


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, _ in COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for name, target in COMMANDS:
            if name == cmd_name:
                module_name, attr = target.split(":")
                command = getattr(importlib.import_module(module_name), attr)
                assert isinstance(command, click.Command)
                return command
        return None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(pilotfish.__version__, prog_name="pilotfish")
def cli() -> None:
    """pilotfish: a service-mesh control plane (Istio config in, Envoy xDS out)."""


def main() -> None:
    cli(prog_name="pilotfish")
