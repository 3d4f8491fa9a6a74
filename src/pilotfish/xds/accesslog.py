"""Access logs on listeners, from mesh `accessLogFile` / `accessLogEncoding` / `accessLogFormat`.

`/dev/stdout` uses Envoy's stdout logger rather than a file logger: a file logger re-opens
/dev/stdout with its own offset and overwrites Envoy's log when stdout is a file
(envoy-runtime-notes.md, access-log gotcha).
"""

from __future__ import annotations

from google.protobuf import struct_pb2

from pilotfish.config.meshconfig import AccessLogEncoding, MeshConfig
from pilotfish.xds.protos import accesslog_pb2, file_pb2, pack, stream_pb2, substitution_format_string_pb2

# Istio 1.3's text format (EnvoyTextLogFormat13) without the mixer status field.
TEXT_FORMAT_13 = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    '%RESPONSE_CODE% %RESPONSE_FLAGS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% '
    '%BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" '
    '"%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" '
    "%UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% "
    "%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)

JSON_FIELDS = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "route_name": "%ROUTE_NAME%",
}


def access_logs(mesh_config: MeshConfig) -> list[accesslog_pb2.AccessLog]:
    """The access log list for a listener's filters; empty when access logging is off."""
    path = mesh_config.access_log_file
    if not path:
        return []
    log_format = substitution_format_string_pb2.SubstitutionFormatString()
    if mesh_config.access_log_encoding is AccessLogEncoding.JSON:
        fields = struct_pb2.Struct()
        fields.update(JSON_FIELDS)
        log_format.json_format.CopyFrom(fields)
    else:
        log_format.text_format_source.inline_string = mesh_config.access_log_format or TEXT_FORMAT_13
    if path == "/dev/stdout":
        config = pack(stream_pb2.StdoutAccessLog(log_format=log_format))
        return [accesslog_pb2.AccessLog(name="envoy.access_loggers.stdout", typed_config=config)]
    config = pack(file_pb2.FileAccessLog(path=path, log_format=log_format))
    return [accesslog_pb2.AccessLog(name="envoy.access_loggers.file", typed_config=config)]
