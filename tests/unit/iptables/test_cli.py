from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

import pytest
from click.testing import CliRunner

from pilotfish.cli import iptables as cli_module
from pilotfish.cli.main import COMMANDS, cli
from pilotfish.iptables.apply import RunResult
from pilotfish.iptables.options import INJECTOR_ARGS

SEED = list(INJECTOR_ARGS["1.3"])


class FakeRunner:
    """Stands in for SubprocessRunner: records every command, all succeed, the tables are empty."""

    calls: ClassVar[list[tuple[str, ...]]] = []

    def run(self, argv: Sequence[str], stdin: str | None = None) -> RunResult:
        FakeRunner.calls.append(tuple(argv))
        return RunResult(0)


@pytest.fixture(autouse=True)
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, ...]]]:
    FakeRunner.calls = []
    monkeypatch.setattr(cli_module, "SubprocessRunner", FakeRunner)
    monkeypatch.setattr(cli_module, "_separate_netns", lambda: True)
    yield FakeRunner.calls


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["iptables", *args], env={})
    return result.exit_code, result.stdout, result.stderr


def test_listed_in_commands_with_istios_flags() -> None:
    assert ("iptables", "pilotfish.cli.iptables:iptables") in COMMANDS
    code, out, _ = _invoke("--help")
    assert code == 0
    for flag in ("-p, --envoy-port", "-z, --inbound-capture-port", "-u, --proxy-uid", "-g, --proxy-gid",
                 "-m, --istio-inbound-interception-mode", "-b, --istio-inbound-ports",
                 "-d, --istio-local-exclude", "-i, --istio-service-cidr", "-x, --istio-service-exclude-cidr",
                 "-o, --istio-local-outbound", "-q, --istio-outbound-ports", "-k, --kube-virt-interfaces",
                 "--dry-run", "--cleanup", "--profile"):
        assert flag in out


INVALID_SETS = [
    ["-p", "70000"], ["-z", "abc"], ["-u", "root"], ["-g", "1337,x"], ["-m", "redirekt"], ["-b", "22-80"],
    ["-d", "-1"], ["-o", "0"], ["-i", "300.0.0.0/8"], ["-x", "*"], ["-k", "eth0 eth1"], ["-q", "80"],
    ["--profile", "2.0"], ["-t", "0x539"], ["-r", "main"],
]


@pytest.mark.parametrize("bad", INVALID_SETS, ids=[" ".join(b) for b in INVALID_SETS])
def test_invalid_options_exit_2_with_a_clear_message_and_run_nothing(bad: list[str],
                                                                     fake: list[tuple[str, ...]]) -> None:
    code, out, err = _invoke(*SEED, *bad, "--no-ipv6")
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pilotfish iptables: {bad[0]}")
    assert fake == [] and out == ""


def test_apply_runs_one_restore_per_family(fake: list[tuple[str, ...]]) -> None:
    code, _, err = _invoke(*SEED, "--no-ipv6")
    assert code == 0, err
    assert fake == [("iptables-save",), ("ip6tables-save",), ("iptables-restore", "--noflush"),
                    ("iptables-save",)]
    assert "profile 1.3 applied (IPv4)" in err


def test_dry_run_prints_the_transaction_and_only_reads(fake: list[tuple[str, ...]]) -> None:
    code, out, _ = _invoke(*SEED, "--no-ipv6", "--dry-run")
    assert code == 0
    assert out.startswith("# iptables-restore --noflush\n* nat\n-N ISTIO_REDIRECT\n")
    assert "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN\n" in out
    assert fake == [("iptables-save",), ("ip6tables-save",)]


def test_cleanup_dry_run_lists_the_route_teardown() -> None:
    code, out, _ = _invoke("--cleanup", "--dry-run", "--no-ipv6")
    assert code == 0
    assert "# ip -f inet rule del fwmark 1337 lookup 133" in out


def test_refuses_the_hosts_namespace(monkeypatch: pytest.MonkeyPatch, fake: list[tuple[str, ...]]) -> None:
    monkeypatch.setattr(cli_module, "_separate_netns", lambda: False)
    code, _, err = _invoke(*SEED, "--no-ipv6")
    assert code == 2 and "refusing" in err and fake == []


def test_redirect_dns_reads_resolv_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_module, "_resolv_conf_servers", lambda: "127.0.0.53")
    code, out, _ = _invoke("--profile", "modern", *SEED, "--redirect-dns", "--no-ipv6", "--dry-run")
    assert code == 0
    assert "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -d 127.0.0.53/32 -j REDIRECT --to-port 15053" in out


def test_failed_restore_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    class Failing(FakeRunner):
        def run(self, argv: Sequence[str], stdin: str | None = None) -> RunResult:
            super().run(argv, stdin)
            return RunResult(1, "", "iptables-restore v1.8.9: line 2 failed") if stdin else RunResult(0)

    monkeypatch.setattr(cli_module, "SubprocessRunner", Failing)
    code, _, err = _invoke(*SEED, "--no-ipv6")
    assert code == 1 and "line 2 failed" in err and "left as they were" in err
