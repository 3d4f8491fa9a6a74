"""The parts the views stand on: Go tabwriter layout, Go's JSON/YAML printers, canonical proto JSON."""

from __future__ import annotations

import pytest

from pilotfish.certificates import CertificateError, der_certificate, pem_certificates
from pilotfish.inspect.configdump import ConfigDump, ConfigDumpError, go_atoi
from pilotfish.inspect.protojson import StructObject, lower_camel, normalize
from pilotfish.inspect.render import go_float, go_json, go_yaml, go_yaml_float, jsonpb_indent
from pilotfish.inspect.routes import _istioctl_route_order, render_config_path
from pilotfish.inspect.tabwriter import format_text, tabulate

# ---------------------------------------------------------------- tabwriter


def test_columns_are_widest_cell_plus_padding() -> None:
    assert tabulate([["A", "BB", "last"], ["CCC", "D", "x"]], padding=2) == "A    BB  last\nCCC  D   x\n"


def test_last_cell_is_never_padded_and_empty_cells_still_count() -> None:
    assert tabulate([["name", ""], ["n", ""]], padding=5) == "name     \nn        \n"


def test_column_blocks_end_at_a_line_with_fewer_cells() -> None:
    # Go's tabwriter sizes a column per block of consecutive lines that have a cell in it.
    text = "a\tb\tc\nlonger\tb\tc\nno tabs here\nx\ty\tz\n"
    assert format_text(text, padding=1) == "a      b c\nlonger b c\nno tabs here\nx y z\n"


def test_text_without_trailing_newline() -> None:
    assert format_text("a\tb\nccc\td", padding=1) == "a   b\nccc d"
    assert format_text("", padding=1) == ""


# ---------------------------------------------------------------- JSON printers


def test_go_json_escapes_like_encoding_json() -> None:
    assert (
        go_json({"k": 'a<b>&"\\\n\t\x01\u2028é'})
        == '{\n    "k": "a\\u003cb\\u003e\\u0026\\"\\\\\\n\\t\\u0001\\u2028é"\n}'
    )
    assert go_json({"k": "<&>"}, html_escape=False) == '{\n    "k": "<&>"\n}'


def test_go_json_layout_and_scalars() -> None:
    assert go_json([]) == "[]"
    assert go_json({"a": {}, "b": [], "c": [1, True, None, 0.5]}) == (
        '{\n    "a": {},\n    "b": [],\n    "c": [\n        1,\n        true,\n'
        "        null,\n        0.5\n    ]\n}"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (100.0, "100"),
        (0.1, "0.1"),
        (1e21, "1e+21"),
        (1.5e-7, "1.5e-7"),
        (123456789.25, "123456789.25"),
        (-0.0, "-0"),
    ],
)
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


def test_jsonpb_indent_struct_quirk() -> None:
    value = {
        "node": {"metadata": StructObject({"A": "1", "nested": {"b": [1, {"c": 2}]}}), "id": "x"},
        "e": {},
    }
    # A Struct's members sit two levels below its key and its brace one level below; an empty message
    # prints as "{", a blank line, "}".
    assert jsonpb_indent(value, indent="  ").split("\n") == [
        "{",
        '  "node": {',
        '    "metadata": {',
        '        "A": "1",',
        '        "nested": {',
        '              "b": [',
        "                    1,",
        "                    {",
        '                          "c": 2',
        "                        }",
        "                  ]",
        "            }",
        "      },",
        '    "id": "x"',
        "  },",
        '  "e": {',
        "",
        "  }",
        "}",
    ]


# ---------------------------------------------------------------- YAML


def test_go_yaml_quoting_and_key_order() -> None:
    value = {
        "b": "1605",
        "a": "*",
        "@type": "t",
        "c": "2022-12-08T11:03:53.361Z",
        "d": "x/10",
        "e": "",
        "f": "y",
    }
    assert go_yaml(value) == (
        '\'@type\': t\na: \'*\'\nb: "1605"\nc: "2022-12-08T11:03:53.361Z"\nd: x/10\ne: ""\nf: "y"\n'
    )


def test_go_yaml_natural_key_order_and_layout() -> None:
    assert go_yaml({"a10": 1, "a9": 2, "a_": 3, "list": [{"x": {}}, []]}) == (
        "a_: 3\na9: 2\na10: 1\nlist:\n- x: {}\n- []\n"
    )
    assert go_yaml({"text": "one\ntwo"}) == "text: |-\n  one\n  two\n"


@pytest.mark.parametrize(("value", "text"), [(0.5, "0.5"), (1e21, "1e+21"), (1e-05, "1e-05"), (12.0, "12")])
def test_go_yaml_float(value: float, text: str) -> None:
    assert go_yaml_float(value) == text


# ---------------------------------------------------------------- canonical proto JSON


def test_normalize_orders_fields_renames_and_keeps_data_keys() -> None:
    route = {
        "decorator": {"operation": "x"},
        "match": {"prefix": "/", "case_sensitive": True},
        "name": "default",
        "typed_per_filter_config": {
            "z.filter": {"@type": "type.googleapis.com/google.protobuf.Empty"},
            "a.filter": {},
        },
        "metadata": {"filter_metadata": {"istio": {"config": "c", "snake_key": 1, "z": 1, "a": 2}}},
        "route": {"cluster": "c", "host_rewrite_literal": "h", "timeout": "0s"},
    }
    result = normalize(route, "envoy.config.route.v3.Route")
    assert list(result) == ["name", "match", "route", "metadata", "decorator", "typedPerFilterConfig"]
    assert result["match"] == {"prefix": "/", "caseSensitive": True}
    assert list(result["typedPerFilterConfig"]) == ["a.filter", "z.filter"]  # map keys sorted, not renamed
    assert list(result["metadata"]["filterMetadata"]["istio"]) == ["a", "config", "snake_key", "z"]
    assert isinstance(result["metadata"]["filterMetadata"]["istio"], StructObject)
    assert result["route"] == {"cluster": "c", "timeout": "0s", "hostRewriteLiteral": "h"}


def test_normalize_scalars_like_protojson() -> None:
    cluster = {
        "name": "c",
        "type": 0,
        "alt_stat_name": "",
        "lb_policy": "ROUND_ROBIN",
        "respect_dns_ttl": False,
    }
    cluster["per_connection_buffer_limit_bytes"] = 0  # a UInt32Value: present, so printed even when 0
    assert normalize(cluster, "envoy.config.cluster.v3.Cluster") == {
        "name": "c",
        "type": "STATIC",
        "perConnectionBufferLimitBytes": 0,
    }
    retry = {"num_retries": 2, "host_selection_retry_max_attempts": 5, "retry_on": ""}
    assert normalize(retry, "envoy.config.route.v3.RetryPolicy") == {
        "numRetries": 2,
        "hostSelectionRetryMaxAttempts": "5",
    }


def test_normalize_accepts_camel_case_input_and_unknown_types() -> None:
    listener = {"name": "l", "trafficDirection": "OUTBOUND", "filterChains": [{"filters": [{"name": "f"}]}]}
    assert normalize(listener, "envoy.config.listener.v3.Listener") == {
        "name": "l",
        "filterChains": [{"filters": [{"name": "f"}]}],
        "trafficDirection": "OUTBOUND",
    }
    opaque = {
        "@type": "type.googleapis.com/istio.mixer.v1.config.client.ServiceConfig",
        "disable_check_calls": True,
        "mixer_attributes": {"attributes": {"destination.service.host": {"string_value": "x"}}},
    }
    assert normalize({"name": "mixer", "typed_config": opaque}, "envoy.config.listener.v3.Filter") == {
        "name": "mixer",
        "typedConfig": {
            "@type": "type.googleapis.com/istio.mixer.v1.config.client.ServiceConfig",
            "disableCheckCalls": True,
            "mixerAttributes": {"attributes": {"destination.service.host": {"stringValue": "x"}}},
        },
    }


def test_normalize_resolves_any_packages_lazily() -> None:
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
        "HttpConnectionManager",
        "stat_prefix": "s",
        "rds": {"route_config_name": "9080"},
        "codec_type": "AUTO",
    }
    result = normalize(
        {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm},
        "envoy.config.listener.v3.Filter",
    )
    assert result["typedConfig"] == {
        "@type": hcm["@type"],
        "statPrefix": "s",
        "rds": {"routeConfigName": "9080"},
    }


def test_lower_camel() -> None:
    assert lower_camel("route_config_name") == "routeConfigName"
    assert lower_camel("name") == "name"


# ---------------------------------------------------------------- small rules


def test_route_order_is_istioctls_insertion_sort() -> None:
    names = ["15010", "http.80", "9080", "80", "inbound|9080||", "443"]
    ordered = [r["name"] for r in _istioctl_route_order([{"name": n} for n in names])]
    assert ordered == ["15010", "http.80", "80", "9080", "inbound|9080||", "443"]


def test_render_config_path() -> None:
    assert (
        render_config_path("/apis/networking.istio.io/v1alpha3/namespaces/default/virtual-service/vs")
        == "vs.default"
    )
    assert render_config_path("/apis/networking.istio.io/v1/namespaces/ns/destination-rule") == ""
    assert render_config_path("/apis/other/x") == "<unknown>"


def test_go_atoi() -> None:
    assert [go_atoi(t) for t in ("80", "+1", "-2", "8_0", " 8", "", "http.80", "٣")] == [
        80,
        1,
        -2,
        None,
        None,
        None,
        None,
        None,
    ]


def test_config_dump_shape_errors() -> None:
    with pytest.raises(ConfigDumpError, match="is empty"):
        ConfigDump.from_text("  \n")
    with pytest.raises(ConfigDumpError, match="not valid JSON"):
        ConfigDump.from_text("{")
    with pytest.raises(ConfigDumpError, match='no "configs" list'):
        ConfigDump.from_text('{"x": 1}')


def test_tolerates_missing_sections_and_v2_listener_dumps() -> None:
    dump = ConfigDump.from_json(
        {
            "configs": [
                {
                    "@type": "type.googleapis.com/envoy.admin.v2alpha.ListenersConfigDump",
                    "dynamic_active_listeners": [{"listener": {"name": "a"}}],
                    "dynamic_warming_listeners": [{"listener": {"name": "w"}}],
                }
            ]
        }
    )
    assert [listener["name"] for listener in dump.listeners()] == ["a"]
    assert dump.clusters() == [] and dump.route_configs() == [] and dump.endpoint_configs() == []


def test_certificate_errors() -> None:
    with pytest.raises(CertificateError, match="no PEM CERTIFICATE block"):
        pem_certificates(b"no pem here")
    with pytest.raises(CertificateError, match="not a readable certificate"):
        pem_certificates(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertificateError, match="not a DER certificate"):
        der_certificate(b"\x30\x03\x02\x01")
