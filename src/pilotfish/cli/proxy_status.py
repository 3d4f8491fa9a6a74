"""`pilotfish proxy-status`: istioctl's sync table from the discovery server, or one proxy's config diff."""

from __future__ import annotations

import http.client
import json
import socket
import sys
import urllib.parse
from typing import Any

import click

from pilotfish.inspect.profile import DEFAULT_PROFILE, PROFILES, parse_profile
from pilotfish.inspect.sync_status import config_diff, matching, nack_lines, status_table
from pilotfish.model.names import split_pod_ref

TIMEOUT = 5.0


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def http_get(base: str, path: str, timeout: float = TIMEOUT) -> bytes:
    """GET `path` from `http://host:port` (or `host:port`) or `unix:/socket/path`; OSError on failure."""
    if base.startswith("unix:"):
        conn: http.client.HTTPConnection = _UnixHTTPConnection(base.removeprefix("unix:"), timeout)
    else:
        url = urllib.parse.urlsplit(base if "://" in base else f"http://{base}")
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as err:
        raise OSError(f"cannot reach {base}{path}: {err}") from None
    finally:
        conn.close()
    if response.status != 200:
        detail = body.decode(errors="replace").strip().splitlines()[:1]
        raise OSError(f"{base}{path} answered {response.status}" + (f": {detail[0]}" if detail else ""))
    return body


def get_json(base: str, path: str) -> Any:
    body = http_get(base, path)
    try:
        return json.loads(body)
    except ValueError:
        raise OSError(f"{base}{path} did not return JSON") from None


DEFAULT_DISCOVERY_HTTP = "127.0.0.1:15014"


def running_mesh_discovery() -> str | None:
    """The discovery server of the local mesh `pilotfish up` runs (prefix: $PILOTFISH_PREFIX or pf-)."""
    from pilotfish.sandbox.state import NoRunningMesh, discovery_http_address

    try:
        return discovery_http_address() or None
    except NoRunningMesh:
        return None


def running_mesh_admin(proxy_id: str) -> str | None:
    """That pod's Envoy admin socket in the local mesh, so `proxy-status <pod>` diffs without --admin."""
    from pilotfish.sandbox.state import admin_address

    try:
        return admin_address(proxy_id)
    except LookupError:
        return None


@click.command("proxy-status")
@click.argument("pod", required=False)
@click.option("-n", "--namespace", default=None, help="Namespace of POD when it has no '.<ns>' suffix.")
@click.option(
    "--discovery-http",
    default=None,
    help="Debug HTTP address of `pilotfish discovery` (host:port or URL). Default: the running local mesh's "
    f"(`pilotfish up`), else {DEFAULT_DISCOVERY_HTTP}.",
)
@click.option(
    "--profile",
    type=click.Choice(PROFILES),
    default=DEFAULT_PROFILE,
    show_default=True,
    help="Table format: istioctl 1.3, or modern istioctl (CLUSTER/ECDS/ISTIOD columns).",
)
@click.option(
    "--admin",
    default=None,
    help="With POD: that Envoy's admin address (URL, host:port or unix:PATH) to diff against.",
)
def proxy_status(
    pod: str | None, namespace: str | None, discovery_http: str | None, profile: str, admin: str | None
) -> None:
    """Sync status of every connected proxy; with POD, the diff between what was sent and what Envoy holds."""
    local_mesh = discovery_http is None and running_mesh_discovery() is not None
    discovery_http = discovery_http or running_mesh_discovery() or DEFAULT_DISCOVERY_HTTP
    try:
        entries = get_json(discovery_http, "/debug/syncz")
    except OSError as err:
        raise click.ClickException(f"cannot read sync status from the discovery server: {err}") from None
    if not isinstance(entries, list):
        raise click.ClickException(f"{discovery_http}/debug/syncz returned no list of proxies")
    if pod is None:
        click.echo(status_table(entries, parse_profile(profile)), nl=False)
        return
    ref = pod if namespace is None or "." in pod else f"{pod}.{namespace}"
    selected = matching(entries, ref)
    if not selected:
        raise click.ClickException(
            f"proxy {ref} is not connected to the discovery server at {discovery_http}"
        )
    if admin is None and local_mesh:
        admin = running_mesh_admin(str(selected[0].get("proxy", "")))
    if admin is None:
        click.echo(status_table(selected, parse_profile(profile)), nl=False)
        for entry in selected:
            for line in nack_lines(entry):
                click.echo(line)
        click.echo(
            "(pass --admin ADDRESS of this Envoy to compare its configuration with the server's)", err=True
        )
        return
    proxy_id = str(selected[0].get("proxy", ""))
    pod_name, ns = split_pod_ref(proxy_id)
    query = urllib.parse.urlencode({"proxyID": f"{pod_name}.{ns}"})
    try:
        pilot_dump = get_json(discovery_http, f"/debug/config_dump?{query}")
        envoy_dump = get_json(admin, "/config_dump")
    except OSError as err:
        raise click.ClickException(str(err)) from None
    text, all_match = config_diff(pilot_dump, envoy_dump)
    click.echo(text, nl=False)
    for line in nack_lines(selected[0]):
        click.echo(line)
    if not all_match:
        sys.exit(1)
