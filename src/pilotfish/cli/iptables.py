"""`pilotfish iptables`: the init step of a meshed pod (Istio's proxy_init / istio-iptables).

Flags and their environment variables are istio-iptables' (istio-reference.md §1.2), so the injector's
argument list works unchanged. Every value is checked before anything runs: bad input gives one line per
problem and exit code 2, with the tables untouched. IO lives here and in `iptables.apply`; the rules come
from the pure `iptables.rules`.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from pilotfish.iptables.apply import (
    IptablesError,
    Runner,
    RunResult,
    SubprocessRunner,
    apply,
    cleanup,
    detect_ipv6,
    plan,
)
from pilotfish.iptables.options import PROFILES, CaptureOptions, OptionErrors, parse_options
from pilotfish.iptables.rules import FAMILIES, Family, RuleSet, build_rules

EXIT_USAGE = 2
EXIT_FAILED = 1


def _proxy_uid() -> int:
    """The uid of $ENVOY_USER (default istio-proxy) when such a user exists, else 1337 (as Istio does)."""
    try:
        return pwd.getpwnam(os.environ.get("ENVOY_USER", "istio-proxy")).pw_uid
    except KeyError:
        return 1337


def _resolv_conf_servers(path: Path = Path("/etc/resolv.conf")) -> str:
    """The nameservers of resolv.conf, as istio-iptables finds them for --redirect-dns."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ""
    return ",".join(w[1] for w in (line.split() for line in lines) if len(w) > 1 and w[0] == "nameserver")


def _separate_netns() -> bool:
    """Whether we are positively not in the host's network namespace (so capturing its TCP is safe).

    True when our namespace differs from pid 1's or, where pid 1's cannot be read (some sandboxes deny
    it even to root), when it is one of the named namespaces of `ip netns` (/run/netns). Otherwise False:
    in doubt, refuse.
    """
    try:
        ours = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return False
    try:
        return ours != os.stat("/proc/1/ns/net").st_ino
    except OSError:
        pass
    try:
        named = list(Path("/run/netns").iterdir())
    except OSError:
        return False
    for path in named:
        try:
            if path.stat().st_ino == ours:
                return True
        except OSError:
            continue
    return False


def _print_plan(ruleset: RuleSet, transactions: dict[Family, str], *, install: bool) -> None:
    commands = ruleset.setup if install else ruleset.teardown
    for family in FAMILIES:
        if transactions.get(family):
            click.echo(f"# {'ip6tables' if family == 6 else 'iptables'}-restore --noflush")
            click.echo(transactions[family], nl=False)
    for command in commands:
        click.echo("# " + " ".join(command.argv))


@click.command("iptables", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-p", "--envoy-port", envvar="ENVOY_PORT", help="Envoy port all outbound TCP goes to (15001).")
@click.option("-z", "--inbound-capture-port", envvar="INBOUND_CAPTURE_PORT",
              help="Port inbound TCP goes to (15006).")
@click.option("-e", "--inbound-tunnel-port", envvar="INBOUND_TUNNEL_PORT",
              help="Tunnel port never captured (modern; 15008).")
@click.option("-u", "--proxy-uid", envvar="PROXY_UID", help="Uid(s) whose traffic is not captured.")
@click.option("-g", "--proxy-gid", envvar="PROXY_GID",
              help="Gid(s) whose traffic is not captured (default: -u).")
@click.option("-m", "--istio-inbound-interception-mode", "mode", envvar="ISTIO_INBOUND_INTERCEPTION_MODE",
              help="REDIRECT or TPROXY.")
@click.option("-t", "--istio-inbound-tproxy-mark", "tproxy_mark", envvar="ISTIO_INBOUND_TPROXY_MARK",
              help="TPROXY packet mark (1337).")
@click.option("-r", "--istio-inbound-tproxy-route-table", "tproxy_route_table",
              envvar="ISTIO_INBOUND_TPROXY_ROUTE_TABLE", help="TPROXY routing table (133).")
@click.option("-b", "--istio-inbound-ports", "inbound_ports", envvar="ISTIO_INBOUND_PORTS",
              help="Inbound ports to capture: list, '*' for all, empty for none.")
@click.option("-d", "--istio-local-exclude-ports", "exclude_inbound_ports",
              envvar="ISTIO_LOCAL_EXCLUDE_PORTS", help="Inbound ports not captured (with -b '*').")
@click.option("-o", "--istio-local-outbound-ports-exclude", "exclude_outbound_ports",
              envvar="ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE", help="Outbound ports not captured.")
@click.option("-q", "--istio-outbound-ports", "include_outbound_ports", envvar="ISTIO_OUTBOUND_PORTS",
              help="Outbound ports always captured (modern).")
@click.option("-i", "--istio-service-cidr", "include_cidrs", envvar="ISTIO_SERVICE_CIDR",
              help="Outbound CIDRs to capture: list, '*' for all, empty for none.")
@click.option("-x", "--istio-service-exclude-cidr", "exclude_cidrs", envvar="ISTIO_SERVICE_EXCLUDE_CIDR",
              help="Outbound CIDRs not captured.")
@click.option("-k", "--kube-virt-interfaces", "kubevirt_interfaces", envvar="KUBE_VIRT_INTERFACES",
              help="Interfaces whose inbound traffic is treated as outbound.")
@click.option("-c", "--istio-exclude-interfaces", "exclude_interfaces", envvar="ISTIO_EXCLUDE_INTERFACES",
              help="Interfaces never captured (modern).")
@click.option("--redirect-dns", is_flag=True, envvar="REDIRECT_DNS",
              help="Capture DNS to the agent (modern).")
@click.option("--capture-all-dns", is_flag=True, envvar="CAPTURE_ALL_DNS",
              help="Capture DNS to any server (modern).")
@click.option("--dns-servers", help="Nameservers to capture with --redirect-dns (default: /etc/resolv.conf).")
@click.option("--drop-invalid", is_flag=True, envvar="DROP_INVALID",
              help="Drop packets in INVALID conntrack state (modern).")
@click.option("--outbound-owner-groups", "owner_groups_include", envvar="ISTIO_OUTBOUND_OWNER_GROUPS",
              help="Only capture traffic of these groups (modern; '*').")
@click.option("--outbound-owner-groups-exclude", "owner_groups_exclude",
              envvar="ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE",
              help="Never capture traffic of these groups (modern).")
@click.option("--ipv4-loopback-cidr", envvar="ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR",
              help="Loopback range of the host (modern; 127.0.0.1/32).")
@click.option("--profile", default="1.3", show_default=True,
              help=f"Rule set to reproduce: {' or '.join(PROFILES)}.")
@click.option("--ipv6/--no-ipv6", default=None,
              help="Program ip6tables too (default: when an interface has a global IPv6 address).")
@click.option("-n", "--dry-run", is_flag=True, help="Print what would be applied; change nothing.")
@click.option("--cleanup", "--cleanup-only", "cleanup_only", is_flag=True,
              help="Remove our chains, rules and routes instead.")
@click.option("--allow-init-netns", is_flag=True,
              help="Run even where the namespace may be the host's (e.g. a Kubernetes init container).")
@click.pass_context
def iptables(ctx: click.Context, /, profile: str, ipv6: bool | None, dry_run: bool, cleanup_only: bool,
             allow_init_netns: bool, redirect_dns: bool, dns_servers: str | None, **raw: Any) -> None:
    """Send the pod's TCP traffic through its Envoy (run inside the pod's network namespace).

    Capturing the host's own TCP would cut it off from everything not listening on 15001, so outside
    `--dry-run` the command only runs where it can tell the namespace is not the host's (see
    `_separate_netns`), unless `--allow-init-netns` is given.
    """
    runner = SubprocessRunner()
    if redirect_dns and dns_servers is None:
        dns_servers = _resolv_conf_servers()
    result = parse_options(profile=profile, ipv6=detect_ipv6(runner) if ipv6 is None else ipv6,
                           redirect_dns=redirect_dns, dns_servers=dns_servers, default_uid=_proxy_uid(),
                           **raw)
    if isinstance(result, OptionErrors):
        for message in result.messages:
            click.echo(f"pilotfish iptables: {message}", err=True)
        ctx.exit(EXIT_USAGE)
    assert isinstance(result, CaptureOptions)
    if not dry_run and not allow_init_netns and not _separate_netns():
        click.echo("pilotfish iptables: refusing to change what may be the host's network namespace; run it "
                   "in the pod's namespace (ip netns exec POD ...) or pass --allow-init-netns", err=True)
        ctx.exit(EXIT_USAGE)
    ruleset = build_rules(result)
    try:
        if dry_run:
            _print_plan(ruleset, plan(ruleset, _ReadOnly(runner), install=not cleanup_only),
                        install=not cleanup_only)
            return
        outcome = cleanup(ruleset, runner) if cleanup_only else apply(ruleset, runner)
    except IptablesError as exc:
        click.echo(f"pilotfish iptables: {exc}", err=True)
        ctx.exit(EXIT_FAILED)
    done = [f"IPv{f}" for f, text in outcome.transactions.items() if text]
    verb = "removed" if cleanup_only else "applied"
    click.echo(f"pilotfish iptables: profile {result.profile} {verb}"
               f" ({', '.join(done) if done else 'nothing to change'})", err=True)


class _ReadOnly:
    """For --dry-run: reads the tables (iptables-save) but refuses to run anything else."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    def run(self, argv: Sequence[str], stdin: str | None = None) -> RunResult:
        if list(argv) in (["iptables-save"], ["ip6tables-save"]) and stdin is None:
            return self._runner.run(argv)
        return RunResult(1, "", f"dry run: {' '.join(argv)} not run")
