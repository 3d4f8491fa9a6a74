"""--verify's pure half: reading access-log lines back (the format turned around), following one
request from proxy to proxy through the lines, and comparing them with the trace."""

from __future__ import annotations

import pytest

from pilotfish.config.meshconfig import MeshConfig
from pilotfish.simulate.logline import NEEDED, LogFormat, log_format
from pilotfish.simulate.request import PodSource, build_request
from pilotfish.simulate.result import Trace
from pilotfish.simulate.verify import Observed, Sent, Start, compare, correlate, render_verification
from pilotfish.simulate.walk import simulate
from pilotfish.xds.accesslog import JSON_FIELDS, TEXT_FORMAT_13
from tests.unit.simulate.conftest import scenario_mesh, scenario_source

TEXT = LogFormat.from_text(TEXT_FORMAT_13)
PP, REVIEWS, DETAILS = "10.44.225.21", "10.44.36.239", "10.44.78.119"
PODS = {PP: "productpage.default", REVIEWS: "reviews.default", DETAILS: "details.default"}


def line(code: str, flags: str, request_id: str, upstream_host: str, cluster: str, upstream_local: str,
         downstream_local: str, downstream_remote: str, path: str = "/reviews/0") -> str:
    return (f'[2026-11-27T23:05:08.964Z] "GET {path} HTTP/1.1" {code} {flags} "-" 0 775 24 23 "-" '
            f'"curl/7.88.1" "{request_id}" "reviews:9080" "{upstream_host}" {cluster} {upstream_local} '
            f"{downstream_local} {downstream_remote} - default")


OUT = line("200", "-", "id-1", f"{REVIEWS}:9080", "outbound|9080||reviews.default.svc.cluster.local",
           f"{PP}:36492", "10.96.36.33:9080", f"{PP}:34500")
IN = line("200", "-", "id-1", "127.0.0.1:9080", "inbound|9080|http|reviews.default.svc.cluster.local",
          "127.0.0.1:44680", f"{REVIEWS}:9080", f"{PP}:36492")
# reviews calls details while answering: same x-request-id, another path, not a hop of our request
SUB_OUT = line("200", "-", "id-1", f"{DETAILS}:9080", "outbound|9080||details.default.svc.cluster.local",
               f"{REVIEWS}:40000", "10.96.218.2:9080", f"{REVIEWS}:41000", "/details/0")
SUB_IN = line("200", "-", "id-1", "127.0.0.1:9080", "inbound|9080|http|details.default.svc.cluster.local",
              "127.0.0.1:44676", f"{DETAILS}:9080", f"{REVIEWS}:40000", "/details/0")


def observed(pod: str, text: str) -> Observed:
    parsed = TEXT.parse(text)
    assert parsed is not None, text
    return Observed(pod, parsed)


def test_the_13_text_format_reads_back() -> None:
    parsed = TEXT.parse(OUT + "\n")
    assert parsed is not None
    assert (parsed.code, parsed.flags, parsed.cluster, parsed.request_id) == (
        200, "-", "outbound|9080||reviews.default.svc.cluster.local", "id-1")
    assert parsed.get("%REQ(:METHOD)%") == "GET" and parsed.get("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%") == "/reviews/0"
    assert not TEXT.missing(NEEDED)


@pytest.mark.parametrize("text", [
    "2026-11-27 23:04:57,413 pilotfish-agent INFO started envoy (pid 4307)",
    "[2026-11-27 23:04:57.413][12][warning][config] gRPC config stream closed",
    "",
])
def test_other_lines_of_the_proxy_log_are_not_access_log_lines(text: str) -> None:
    assert TEXT.parse(text) is None


def test_no_answer_reads_as_dashes() -> None:
    text = ('[2026-11-27T23:09:10.840Z] "- - HTTP/1.1" 400 DPE "-" 0 11 0 - "-" "-" "-" "-" "-" - - '
            "10.96.36.33:9080 10.44.1.116:55812 - -")
    parsed = TEXT.parse(text)
    assert parsed is not None and (parsed.code, parsed.flags, parsed.cluster, parsed.request_id) == (
        400, "DPE", "-", "")


def test_json_encoding_and_custom_formats() -> None:
    fmt = LogFormat.from_json(JSON_FIELDS)
    parsed = fmt.parse('{"response_code": 503, "response_flags": "UH", "upstream_cluster": "c", "request_id": null}')
    assert parsed is not None and (parsed.code, parsed.flags, parsed.cluster, parsed.request_id) == (503, "UH", "c", "")
    assert fmt.parse("not json") is None
    custom = LogFormat.from_text("%RESPONSE_CODE% %REQ(X-REQUEST-ID):8%\n")
    assert custom.missing(NEEDED) == ["%RESPONSE_FLAGS%", "%UPSTREAM_CLUSTER%", "%UPSTREAM_HOST%",
                                      "%DOWNSTREAM_LOCAL_ADDRESS%", "%DOWNSTREAM_REMOTE_ADDRESS%"]
    assert custom.parse("404 abcdefgh") is not None


def test_log_format_follows_the_mesh_config() -> None:
    assert log_format(MeshConfig()) is None
    assert log_format(MeshConfig.model_validate({"accessLogFile": "/dev/stdout"})) == TEXT
    json_format = log_format(MeshConfig.model_validate({"accessLogFile": "/x", "accessLogEncoding": "JSON"}))
    assert json_format is not None and json_format.json_keys


def test_correlate_follows_the_request_not_the_apps_calls() -> None:
    lines = [observed("productpage.default", OUT), observed("reviews.default", SUB_OUT),
             observed("details.default", SUB_IN), observed("reviews.default", IN)]
    chain = correlate(lines, Start("productpage.default", client=f"{PP}:34500"), PODS)
    assert [o.line.text for o in chain] == [OUT, IN]


def test_correlate_through_x_forwarded_for_and_by_request_id() -> None:
    gateway = line("200", "-", "id-2", f"{PP}:9080", "outbound|9080||productpage.default.svc.cluster.local",
                   "10.44.10.80:45918", "10.44.10.80:80", "10.44.10.80:35356", "/productpage")
    inbound = line("200", "-", "id-2", "127.0.0.1:9080", "inbound|9080|http|productpage.default.svc.cluster.local",
                   "127.0.0.1:44666", f"{PP}:9080", "10.44.10.80:0", "/productpage")
    other = inbound.replace("id-2", "id-3")
    lines = [observed("gw", gateway), observed("productpage.default", other),
             observed("productpage.default", inbound)]
    chain = correlate(lines, Start("gw", request_id="id-2"), {**PODS, "10.44.10.80": "gw"})
    assert [o.line.text for o in chain] == [gateway, inbound]
    assert correlate(lines, Start("gw", request_id="id-9"), PODS) == []


def _trace(scenario: str, url: str, *headers: str) -> Trace:
    mesh = scenario_mesh(scenario)
    page = next(w for w in mesh.workloads if w.deployment == "productpage-v1")
    request = build_request(PodSource(page.name, page.namespace), url, "GET", headers)
    return simulate(mesh, scenario_source(scenario), request)


def _observe(trace: Trace, overrides: dict[int, tuple[str, str, str]]) -> list[Observed]:
    """Lines as the trace predicts them, with (cluster, flags, code) replaced at some positions."""
    result = []
    for index, log in enumerate(trace.outcome.logs):
        cluster, flags, code = overrides.get(index, (log.upstream_cluster, log.response_flags,
                                                     str(log.response_code or 200)))
        text = line(code, flags, "id", "-", cluster, "-", "-", "-")
        result.append(observed(log.pod, text))
    return result


SENT = Sent("from productpage", "id", "ua", status=200)


def test_compare_agrees_with_what_the_trace_predicts() -> None:
    trace = _trace("test-v2", "http://reviews:9080/reviews/0", "end-user: jason")
    verification = compare(trace, _observe(trace, {}), SENT)
    assert verification.ok and verification.agreeing == 2 and verification.repick is None
    text = render_verification(verification)
    assert "AGREE: 2 of 2 proxies" in text and "log: [2026" in text


def test_compare_names_each_field_that_differs() -> None:
    trace = _trace("test-v2", "http://reviews:9080/reviews/0", "end-user: jason")
    wrong = _observe(trace, {0: ("outbound|9080|v1|reviews.default.svc.cluster.local", "UF", "503")})
    verification = compare(trace, wrong, Sent("from productpage", "id", "ua", status=503))
    assert not verification.ok and verification.repick is None  # v1 is not a weighted alternative
    text = render_verification(verification)
    assert "predicted outbound|9080|v2|reviews.default.svc.cluster.local, Envoy logged outbound|9080|v1|" in text
    assert "response_flags   predicted -, Envoy logged UF" in text
    assert "DISAGREE: 1 of 2 proxies" in text


def test_a_missing_or_extra_line_disagrees() -> None:
    trace = _trace("bookinfo", "http://reviews:9080/reviews/0")
    lines = _observe(trace, {})
    assert not compare(trace, lines[:1], SENT).ok
    assert "no access-log line found" in render_verification(compare(trace, lines[:1], SENT))
    extra = compare(trace, [*lines, lines[0]], SENT)
    assert not extra.ok and "predicts no further proxy" in render_verification(extra)


def test_a_local_reply_checks_the_code_and_the_client_status() -> None:
    trace = _trace("v4", "http://reviews:9080/reviews/0")
    lines = _observe(trace, {})
    assert compare(trace, lines, Sent("x", "id", "ua", status=503)).ok
    assert not compare(trace, lines, Sent("x", "id", "ua", status=200)).ok
    wrong_code = _observe(trace, {0: ("-", "NC", "500")})
    assert not compare(trace, wrong_code, Sent("x", "id", "ua", status=503)).ok


def test_another_weighted_cluster_asks_for_a_repick() -> None:
    trace = _trace("50-v3", "http://reviews:9080/reviews/0")
    assert trace.outcome.logs[0].upstream_cluster.startswith("outbound|9080|v1|")
    v3 = "outbound|9080|v3|reviews.default.svc.cluster.local"
    verification = compare(trace, _observe(trace, {0: (v3, "-", "200")}), SENT)
    assert verification.repick == v3 and not verification.ok


def test_the_balancer_may_pick_another_pod_after_the_first_hop() -> None:
    trace = _trace("bookinfo", "http://reviews:9080/reviews/0")
    lines = _observe(trace, {})
    moved = [lines[0], Observed("reviews-v3-other.default", lines[1].line)]
    verification = compare(trace, moved, SENT)
    assert verification.ok and "the balancer picked reviews-v3-other.default" in render_verification(verification)
    first_moved = [Observed("sleep.default", lines[0].line), lines[1]]
    assert not compare(trace, first_moved, SENT).ok
