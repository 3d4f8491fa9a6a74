"""httpbin, the fortio-like load client and the external echo server, as real processes on loopback."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.samples.conftest import SAMPLES, AppProcess, Launcher, RefusingPort

LOAD = SAMPLES / "loadclient" / "load.py"


@pytest.fixture(scope="module")
def httpbin(module_launcher: Launcher) -> Iterator[AppProcess]:
    yield module_launcher.start(SAMPLES / "httpbin" / "httpbin.py", "httpbin-test")


def as_dict(value: object) -> dict[str, Any]:
    assert isinstance(value, dict), value
    return value


def load(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LOAD), *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


# ---------------------------------------------------------------------------------------------
# httpbin


def test_httpbin_get_headers_ip(httpbin: AppProcess) -> None:
    got = as_dict(httpbin.get("/get?a=1&b=2&b=3", headers={"x-test-header": "yes"}).json())
    assert got["args"] == {"a": "1", "b": ["2", "3"]}
    assert got["headers"]["X-Test-Header"] == "yes"
    assert got["origin"] == "127.0.0.1"
    assert got["url"] == f"http://127.0.0.1:{httpbin.port}/get?a=1&b=2&b=3"
    headers = as_dict(httpbin.get("/headers", headers={"End-User": "jason"}).json())
    assert headers["headers"]["End-User"] == "jason"
    assert as_dict(httpbin.get("/ip").json()) == {"origin": "127.0.0.1"}
    forwarded = as_dict(httpbin.get("/ip", headers={"X-Forwarded-For": "10.44.0.11, 10.44.0.10"}).json())
    assert forwarded == {"origin": "10.44.0.11"}
    assert as_dict(httpbin.get("/user-agent", headers={"User-Agent": "curl/8"}).json()) == {
        "user-agent": "curl/8"
    }


def test_httpbin_status(httpbin: AppProcess) -> None:
    assert httpbin.get("/status/418").status == 418
    assert httpbin.get("/status/503", method="POST").status == 503
    assert {httpbin.get("/status/200,503").status for _ in range(30)} <= {200, 503}
    assert httpbin.get("/status/abc").status == 400
    assert httpbin.get("/status/999").status == 400


def test_httpbin_delay_and_anything(httpbin: AppProcess) -> None:
    delayed = httpbin.get("/delay/0.1?x=1")
    assert delayed.status == 200 and as_dict(delayed.json())["args"] == {"x": "1"}
    anything = as_dict(
        httpbin.get(
            "/anything/deep/path",
            method="PUT",
            body=b'{"k": [1]}',
            headers={"Content-Type": "application/json"},
        ).json()
    )
    assert anything["method"] == "PUT" and anything["json"] == {"k": [1]}
    assert anything["url"].endswith("/anything/deep/path")
    form = as_dict(
        httpbin.get(
            "/anything",
            method="POST",
            body=b"a=1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ).json()
    )
    assert form["form"] == {"a": "1"} and form["data"] == ""
    assert httpbin.get("/health").text == "ok\n"
    assert httpbin.get("/no/such/thing").status == 404
    assert httpbin.get("/delay/zzz").status == 400


def test_httpbin_keeps_connections_alive_and_logs_host(httpbin: AppProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", httpbin.port, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/get", headers={"Host": "httpbin-shadow:8000"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
        assert resp.will_close is False
    finally:
        conn.close()
    log = httpbin.wait_for_log("host=httpbin-shadow:8000", count=3)
    assert log.count('"GET /get" 200 ') >= 3 and log.count("host=httpbin-shadow:8000") == 3


# ---------------------------------------------------------------------------------------------
# The load client


def test_load_prints_the_status_histogram(httpbin: AppProcess) -> None:
    out = load("-c", "2", "-n", "20", f"http://127.0.0.1:{httpbin.port}/status/200")
    assert out.returncode == 0, out.stderr
    assert "Code 200 : 20 (100.0 %)" in out.stdout
    assert "Sockets used: 2 (for perfect keepalive, would be 2)" in out.stdout
    for p in ("50", "75", "90", "99", "99.9"):
        assert f"# target {p}% " in out.stdout
    assert "All done 20 calls" in out.stdout


def test_load_json_summary_with_mixed_codes(httpbin: AppProcess) -> None:
    out = load("-c", "3", "-n", "30", "--json", f"http://127.0.0.1:{httpbin.port}/status/200,503")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert set(summary["codes"]) <= {"200", "503"}
    assert sum(summary["codes"].values()) == 30
    assert summary["connections"] == 3 and summary["requests"] == 30 and summary["errors"] == 0
    assert summary["sockets_used"] == 3
    lat = summary["latency_seconds"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]


def test_load_accepts_fortio_syntax_and_headers(httpbin: AppProcess) -> None:
    out = load(
        "load", "-c", "1", "-qps", "200", "-n", "4", "-loglevel", "Warning", "-H", "end-user: jason",
        f"http://127.0.0.1:{httpbin.port}/headers",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Code 200 : 4 (100.0 %)" in out.stdout
    curl = load("curl", "-H", "end-user: jason", f"http://127.0.0.1:{httpbin.port}/headers")
    assert curl.returncode == 0, curl.stderr
    assert curl.stdout.startswith("HTTP/1.1 200\n")
    assert '"End-User": "jason"' in curl.stdout


def test_load_counts_refused_connections_as_code_minus_one(refusing_port: RefusingPort) -> None:
    out = load("-c", "2", "-n", "4", "--json", f"http://127.0.0.1:{refusing_port.port}/")
    summary = json.loads(out.stdout)
    assert summary["codes"] == {"-1": 4} and summary["errors"] == 4
    assert load("curl", f"http://127.0.0.1:{refusing_port.port}/").returncode == 1


def test_load_rejects_bad_arguments() -> None:
    assert load("-c", "0", "http://127.0.0.1:1/").returncode == 2
    bad_url = load("https://example.invalid/")
    assert bad_url.returncode == 2 and "only http://" in bad_url.stderr
    bad_header = load("-H", "no-colon", "http://127.0.0.1:1/")
    assert bad_header.returncode == 2 and "Name: value" in bad_header.stderr


def test_load_serve_keeps_a_pod_alive(launcher: Launcher) -> None:
    idle = launcher.start(LOAD, "fortio-test", args=("serve", "0"))
    assert idle.get("/health").text == "ok\n"


# ---------------------------------------------------------------------------------------------
# The external echo host


def test_external_echo(launcher: Launcher) -> None:
    echo = launcher.start(SAMPLES / "external" / "echo.py", "external-test")
    doc = as_dict(
        echo.get("/some/path?q=1", method="POST", body=b"hello", headers={"Host": "external.example"}).json()
    )
    assert doc["server"] == "external" and doc["pod"] == "external-test"
    assert doc["method"] == "POST" and doc["path"] == "/some/path?q=1" and doc["body"] == "hello"
    assert doc["host"] == "external.example" and doc["headers"]["host"] == "external.example"
    teapot = echo.get("/status/418")
    assert teapot.status == 418 and as_dict(teapot.json())["path"] == "/status/418"
    assert echo.get("/health").text == "ok\n"
    assert "host=external.example" in echo.wait_for_log("host=external.example")
