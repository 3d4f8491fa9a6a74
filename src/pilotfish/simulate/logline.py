"""Reading Envoy access-log lines back: the format the mesh config gave the proxies, turned around.

`pilotfish trace --verify` compares a prediction with what the proxies logged. The parser is derived
from the format itself (mesh `accessLogFormat`, else Istio 1.3's text format; or the JSON encoding),
so a line is read by the same `%COMMAND%`s that wrote it: every command becomes a field, literal
text must match exactly. Values Envoy prints as `-` (nothing known) read as "".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pilotfish.config.meshconfig import AccessLogEncoding, MeshConfig
from pilotfish.xds.accesslog import JSON_FIELDS, TEXT_FORMAT_13

CODE = "%RESPONSE_CODE%"
FLAGS = "%RESPONSE_FLAGS%"
CLUSTER = "%UPSTREAM_CLUSTER%"
REQUEST_ID = "%REQ(X-REQUEST-ID)%"
USER_AGENT = "%REQ(USER-AGENT)%"
UPSTREAM_HOST = "%UPSTREAM_HOST%"
UPSTREAM_LOCAL = "%UPSTREAM_LOCAL_ADDRESS%"
DOWNSTREAM_LOCAL = "%DOWNSTREAM_LOCAL_ADDRESS%"
DOWNSTREAM_REMOTE = "%DOWNSTREAM_REMOTE_ADDRESS%"

NEEDED = (CODE, FLAGS, CLUSTER, UPSTREAM_HOST, DOWNSTREAM_LOCAL, DOWNSTREAM_REMOTE)
"""What verification compares (code, flags, cluster) and follows from proxy to proxy (addresses)."""
CORRELATION = (REQUEST_ID, USER_AGENT)
"""Either one finds the first proxy's line of an HTTP request."""

_COMMAND = re.compile(r"%[A-Z_0-9]+(?:\([^)]*\))?(?::\d+)?%")


@dataclass(frozen=True, slots=True)
class LogLine:
    """One access-log line: its fields by format command (`%RESPONSE_CODE%`...), and the text."""

    fields: Mapping[str, str]
    text: str

    def get(self, command: str) -> str:
        value = self.fields.get(command, "")
        return "" if value == "-" else value

    @property
    def code(self) -> int | None:
        value = self.get(CODE)
        return int(value) if value.isdigit() and value != "0" else None

    @property
    def flags(self) -> str:
        """`%RESPONSE_FLAGS%` as logged (`-` when none)."""
        return self.get(FLAGS) or "-"

    @property
    def cluster(self) -> str:
        """`%UPSTREAM_CLUSTER%` as logged (`-` when none)."""
        return self.get(CLUSTER) or "-"

    @property
    def request_id(self) -> str:
        return self.get(REQUEST_ID)


@dataclass(frozen=True)
class LogFormat:
    """A parser for one access-log format."""

    commands: tuple[str, ...]
    """The commands a line carries, in format order."""
    pattern: re.Pattern[str] | None = None
    """Text formats: the whole-line regular expression (group i+1 = commands[i])."""
    json_keys: Mapping[str, str] = field(default_factory=dict)
    """JSON formats: key -> command."""

    @classmethod
    def from_text(cls, text_format: str) -> LogFormat:
        commands: list[str] = []
        parts: list[str] = []
        position = 0
        for match in _COMMAND.finditer(text_format):
            parts.append(re.escape(text_format[position : match.start()]))
            quoted = text_format[: match.start()].count('"') % 2 == 1
            parts.append(r'([^"]*?)' if quoted else r"(\S*?)")
            commands.append(_base(match.group(0)))
            position = match.end()
        parts.append(re.escape(text_format[position:].rstrip("\n")))
        return cls(tuple(commands), re.compile("".join(parts)))

    @classmethod
    def from_json(cls, keys: Mapping[str, str]) -> LogFormat:
        by_key = {key: _base(command) for key, command in keys.items()}
        return cls(tuple(by_key.values()), json_keys=by_key)

    def missing(self, commands: tuple[str, ...]) -> list[str]:
        return [c for c in commands if c not in self.commands]

    def parse(self, text: str) -> LogLine | None:
        """The line's fields, or None when it is not an access-log line of this format (Envoy's own
        log lines, the agent's lines and lines of another format share the file)."""
        line = text.rstrip("\n")
        if self.pattern is not None:
            match = self.pattern.fullmatch(line)
            if match is None:
                return None
            return LogLine(dict(zip(self.commands, match.groups(), strict=True)), line)
        if not line.startswith("{"):
            return None
        try:
            document = json.loads(line)
        except ValueError:
            return None
        if not isinstance(document, dict):
            return None
        fields = {command: _text(document.get(key)) for key, command in self.json_keys.items()}
        return LogLine(fields, line)


def _base(command: str) -> str:
    """`%REQ(X-REQUEST-ID):36%` -> `%REQ(X-REQUEST-ID)%` (a length limit does not change the field)."""
    return re.sub(r":\d+%$", "%", command)


def _text(value: object) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value)


def log_format(mesh_config: MeshConfig) -> LogFormat | None:
    """The format the mesh's proxies write; None when access logging is off."""
    if not mesh_config.access_log_file:
        return None
    if mesh_config.access_log_encoding is AccessLogEncoding.JSON:
        return LogFormat.from_json(JSON_FIELDS)
    return LogFormat.from_text(mesh_config.access_log_format or TEXT_FORMAT_13)
