"""Access logs from the mesh config: off by default; `accessLogFile: /dev/stdout` gives Envoy's stdout
logger with Istio 1.3's text format (the fields `pilotfish trace --verify` reads); JSON and file paths."""

from __future__ import annotations

from typing import Any

from pilotfish.config.meshconfig import MeshConfig
from pilotfish.xds.accesslog import TEXT_FORMAT_13, access_logs
from pilotfish.xds.protos import file_pb2, stream_pb2


def _mesh(**fields: Any) -> MeshConfig:
    return MeshConfig.model_validate(fields)


def test_off_without_an_access_log_file() -> None:
    assert access_logs(MeshConfig()) == []


def test_stdout_uses_the_stdout_logger_with_the_13_text_format() -> None:
    (log,) = access_logs(_mesh(accessLogFile="/dev/stdout"))
    assert log.name == "envoy.access_loggers.stdout"
    config = stream_pb2.StdoutAccessLog()
    assert log.typed_config.Unpack(config)
    text = config.log_format.text_format_source.inline_string
    assert text == TEXT_FORMAT_13
    for field in ("%RESPONSE_CODE%", "%RESPONSE_FLAGS%", "%UPSTREAM_CLUSTER%", '"%REQ(X-REQUEST-ID)%"'):
        assert field in text


def test_a_file_path_and_json_encoding() -> None:
    (log,) = access_logs(_mesh(accessLogFile="/var/log/a.log", accessLogEncoding="JSON"))
    assert log.name == "envoy.access_loggers.file"
    config = file_pb2.FileAccessLog()
    assert log.typed_config.Unpack(config)
    assert config.path == "/var/log/a.log"
    fields = dict(config.log_format.json_format)
    assert fields["upstream_cluster"] == "%UPSTREAM_CLUSTER%" and fields["request_id"] == "%REQ(X-REQUEST-ID)%"


def test_a_custom_text_format() -> None:
    (log,) = access_logs(_mesh(accessLogFile="/dev/stdout", accessLogFormat="%RESPONSE_CODE%\n"))
    config = stream_pb2.StdoutAccessLog()
    log.typed_config.Unpack(config)
    assert config.log_format.text_format_source.inline_string == "%RESPONSE_CODE%\n"
