"""Log dialects: which fields and text formats the log parser understands, and how a team maps another.

:func:`propflow_ops.sources.logparse.parse_events` turns every dialect into one typed frame
(``level``, ``method``, ``path``, ``status``, ``latency_ms``, ``message``, ...). Where each
column comes from is a :class:`LogMapping`: for each column, the JSON field names to try in
order (dotted names reach into nested objects: ``http.status_code``), the unit of each
duration field, and regular expressions with named groups for plain-text lines.

Understood without any setting (:data:`DEFAULT_FIELDS`):

- JSON, flat or nested: ``level``/``levelname``/``severity``; ``status``/``status_code``/
  ``http.status_code``; ``latency_ms``/``duration_ms``/``response_time``/``elapsed`` (units from
  the name: ``*_ms`` and ``response_time``/``took`` are milliseconds, ``elapsed``/``duration``/
  ``request_time``/``*_s``/``*_seconds`` seconds, ``*_us`` microseconds; a string value may carry
  its own unit: ``"0.084s"``, ``"84ms"``); ``path``/``url``/
  ``route``/``request.path``; ``method``/``http.method``; ``message``/``msg``/``event``;
  ``exc_info``/``exception``/``stack_trace`` (an exception: the line is an error).
- JSON after a prefix: a timestamp (``2026-11-27T10:00:00.123Z {...}``) or a container
  runtime's ``stdout F``.
- logfmt (``level=error method=GET path=/x status=500 duration=0.08``), same field names.
- Text: Python ``logging`` lines (``2026-11-27 10:00:00,123 ERROR [name] message`` and the
  ``asctime - name - LEVEL - message`` variants), gunicorn's ``[ts] [pid] [LEVEL] message``,
  ``LEVEL: message`` (uvicorn), gunicorn/Apache/nginx access lines (common/combined format,
  optional trailing response time: decimal = seconds, integer = microseconds as gunicorn's
  ``%(D)s``, or with a ``ms``/``s``/``us`` suffix), uvicorn access lines, and Python
  tracebacks (``Traceback (most recent call last):``, indented frames, the exception line).

A mapping a team sets (notebook parameter ``log_mapping`` as JSON, or the ``[logs]``
section of ``propflow-ops.toml``) is a dict (see :func:`mapping_from_dict`)::

    {"fields": {"status": ["resp.code"], "latency_ms": ["timing.total"], "path": "req.uri"},
     "units": {"timing.total": "s"},
     "text_patterns": ["^(?P<ts>\\\\S+) (?P<level>\\\\w+) (?P<method>[A-Z]+) (?P<path>\\\\S+) (?P<status>\\\\d{3}) (?P<latency_ms>[\\\\d.]+)$"],
     "name": "acme-gateway"}

Its fields are tried before the built-in ones; its text patterns before the built-in formats.
Named groups a pattern may use: ``level``, ``logger``, ``method``, ``path``, ``status``,
``latency_ms`` (or ``latency`` with an optional ``unit`` group, or ``latency_s``/``latency_us``),
``message``, ``request_id``, ``error_type``, ``error_code``, ``provider``, ``client_id``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from propflow_ops.incident import BadInput

#: The frame's columns that come from a field of the line (``timestamp`` and ``stream`` come from CloudWatch).
CANONICAL = (
    "level",
    "event",
    "method",
    "path",
    "status",
    "latency_ms",
    "request_id",
    "message",
    "provider",
    "error_code",
    "error_type",
    "client_id",
)
#: Not a column: a field whose presence makes the line an error (an exception's text); its last line
#: gives ``error_type`` when the line has none.
EXCEPTION = "exception"

#: Built-in field names per column, tried in order (dotted = nested).
DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "level": ("level", "levelname", "severity", "log.level", "loglevel", "lvl", "level_name"),
    "event": ("event", "event_type", "event.action"),
    "method": (
        "method",
        "http.method",
        "request.method",
        "http_method",
        "http.request.method",
        "httpRequest.requestMethod",
        "req.method",
    ),
    "path": (
        "path",
        "route",
        "url",
        "uri",
        "http.path",
        "http.route",
        "http.url",
        "http.target",
        "request.path",
        "request.url",
        "request.uri",
        "url.path",
        "request_path",
        "request_uri",
        "httpRequest.requestUrl",
        "req.url",
        "endpoint",
    ),
    "status": (
        "status",
        "status_code",
        "http.status_code",
        "http.status",
        "response.status",
        "response.status_code",
        "http.response.status_code",
        "statusCode",
        "httpRequest.status",
        "http_status",
        "res.statusCode",
    ),
    "latency_ms": (
        "latency_ms",
        "duration_ms",
        "response_time_ms",
        "elapsed_ms",
        "request_time_ms",
        "took_ms",
        "response_time",
        "responseTime",
        "took",
        "http.duration_ms",
        "request.duration_ms",
        "duration",
        "elapsed",
        "request_time",
        "duration_s",
        "elapsed_s",
        "latency_s",
        "duration_seconds",
        "elapsed_seconds",
        "response_time_s",
        "http.duration",
        "duration_us",
        "latency_us",
        "latency",
        "httpRequest.latency",
    ),
    "request_id": (
        "request_id",
        "requestId",
        "req_id",
        "request.id",
        "http.request_id",
        "correlation_id",
        "trace_id",
    ),
    "message": ("message", "msg", "@message", "log", "text", "@m", "event"),
    "provider": ("provider", "notification.provider", "vendor"),
    "error_code": ("error_code", "error.code", "err.code", "errorCode"),
    "error_type": (
        "error_type",
        "error.type",
        "exc_type",
        "exception.type",
        "error.kind",
        "err.type",
        "errorType",
    ),
    "client_id": ("client_id", "clientId", "client.id"),
    EXCEPTION: (
        "exc_info",
        "exc_text",
        "exception",
        "stack_trace",
        "stacktrace",
        "traceback",
        "error.stack",
        "err.stack",
        "stack",
    ),
}

UNIT_FACTORS = {"ms": 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001, "ns": 1e-6}
_SECONDS_NAMES = {"duration", "elapsed", "request_time", "http.duration"}


def unit_of(name: str) -> str:
    """The unit a duration field's name implies: ``*_ms`` ms, ``*_s``/``*_seconds``/bare ``elapsed``/
    ``duration``/``request_time`` seconds, ``*_us`` microseconds, ``*_ns`` nanoseconds, else ms."""
    leaf = name.lower()
    for suffix, unit in (
        ("_ms", "ms"),
        ("_millis", "ms"),
        ("_us", "us"),
        ("_micros", "us"),
        ("_ns", "ns"),
        ("_seconds", "s"),
        ("_secs", "s"),
        ("_sec", "s"),
        ("_s", "s"),
    ):
        if leaf.endswith(suffix):
            return unit
    return "s" if leaf in _SECONDS_NAMES or leaf.rsplit(".", 1)[-1] in _SECONDS_NAMES else "ms"


_TEXT_GROUPS = {
    "ts",
    "level",
    "logger",
    "method",
    "path",
    "status",
    "latency_ms",
    "latency",
    "unit",
    "latency_s",
    "latency_us",
    "message",
    "request_id",
    "error_type",
    "error_code",
    "provider",
    "client_id",
    "event",
}


class LogMappingError(BadInput):
    """A log mapping that cannot be used (the message names the key): bad input, exit 2."""


@dataclass(frozen=True)
class LogMapping:
    """Where each column of the log frame comes from. Build with :func:`mapping_from_dict`."""

    fields: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    units: dict[str, str] = field(default_factory=dict)
    text_patterns: tuple[re.Pattern[str], ...] = ()
    name: str = ""

    def factor(self, source: str) -> float:
        return UNIT_FACTORS[self.units.get(source) or unit_of(source)]

    @property
    def custom(self) -> bool:
        return bool(self.name or self.units or self.text_patterns or self.fields != DEFAULT_FIELDS)

    def describe(self) -> dict[str, Any]:
        """The mapping as plain data (what a report shows)."""
        return {
            "name": self.name or ("custom" if self.custom else "built-in"),
            "fields": {k: list(v) for k, v in self.fields.items()},
            "units": dict(self.units),
            "text_patterns": [p.pattern for p in self.text_patterns],
        }


DEFAULT_MAPPING = LogMapping()

_KEYS = {"fields", "units", "text_patterns", "name"}


def mapping_from_dict(spec: Mapping[str, Any] | str | None) -> LogMapping:
    """A validated :class:`LogMapping` from a dict (the ``[logs]`` section of the team file), a JSON
    string (the notebook parameter ``log_mapping``) or nothing (the built-in mapping).

    Keys: ``fields`` ({column: field name or list of names}; columns are :data:`CANONICAL` and
    ``exception``), ``units`` ({field name: "ms"|"s"|"us"|"ns"}), ``text_patterns`` (a regex or a
    list of them, with named groups, see the module doc), ``name`` (shown as the dialect).
    Raises :class:`LogMappingError` naming the bad key.
    """
    if spec is None or spec == "" or spec == {}:
        return DEFAULT_MAPPING
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise LogMappingError(f"log_mapping: not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(spec, Mapping):
        raise LogMappingError(f"log_mapping: expected an object/table, got {type(spec).__name__}")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise LogMappingError(f"log_mapping: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    fields = {k: tuple(v) for k, v in DEFAULT_FIELDS.items()}
    given = spec.get("fields") or {}
    if not isinstance(given, Mapping):
        raise LogMappingError("log_mapping.fields: expected a table of column = field name(s)")
    for column, names in given.items():
        if column not in fields:
            raise LogMappingError(
                f"log_mapping.fields.{column}: not a column (known: {', '.join([*CANONICAL, EXCEPTION])})"
            )
        names = [names] if isinstance(names, str) else names
        if (
            not isinstance(names, (list, tuple))
            or not names
            or not all(
                isinstance(n, str) and n and not n.startswith(".") and not n.endswith(".") for n in names
            )
        ):
            raise LogMappingError(f"log_mapping.fields.{column}: expected a field name or a list of them")
        fields[column] = tuple(dict.fromkeys([*names, *fields[column]]))
    units = spec.get("units") or {}
    if not isinstance(units, Mapping):
        raise LogMappingError("log_mapping.units: expected a table of field name = unit")
    for name, unit in units.items():
        if unit not in UNIT_FACTORS:
            raise LogMappingError(f"log_mapping.units.{name}: {unit!r} is not a unit (ms, s, us, ns)")
        if name not in fields["latency_ms"]:
            fields["latency_ms"] = (name, *fields["latency_ms"])
    patterns = spec.get("text_patterns") or []
    patterns = [patterns] if isinstance(patterns, str) else patterns
    if not isinstance(patterns, (list, tuple)):
        raise LogMappingError("log_mapping.text_patterns: expected a regex or a list of them")
    compiled = []
    for i, p in enumerate(patterns):
        if not isinstance(p, str):
            raise LogMappingError(f"log_mapping.text_patterns[{i}]: expected a string")
        try:
            rx = re.compile(p)
        except re.error as exc:
            raise LogMappingError(f"log_mapping.text_patterns[{i}]: not a regex ({exc})") from None
        if not rx.groupindex:
            raise LogMappingError(
                f"log_mapping.text_patterns[{i}]: has no named group (e.g. (?P<status>\\d{{3}}))"
            )
        bad = sorted(set(rx.groupindex) - _TEXT_GROUPS)
        if bad:
            raise LogMappingError(
                f"log_mapping.text_patterns[{i}]: unknown group {bad[0]!r} "
                f"(known: {', '.join(sorted(_TEXT_GROUPS))})"
            )
        compiled.append(rx)
    name = spec.get("name") or ""
    if not isinstance(name, str):
        raise LogMappingError("log_mapping.name: expected a string")
    return LogMapping(fields=fields, units=dict(units), text_patterns=tuple(compiled), name=name or "custom")


# ---------------------------------------------------------------------------
# Values


def _get(obj: Mapping[str, Any], name: str) -> Any:
    if name in obj:
        return obj[name]
    if "." not in name:
        return None
    cur: Any = obj
    for part in name.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


_DURATION_TEXT = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)\s*(ms|s|us|µs|ns)?\s*$", re.I)


def duration_ms(value: Any, unit: str) -> float | None:
    """A duration in ``unit`` (or a string with its own unit suffix, ``"0.084s"``) in milliseconds."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        f = float(value) * UNIT_FACTORS[unit]
        return f if math.isfinite(f) else None
    if isinstance(value, str):
        m = _DURATION_TEXT.match(value)
        if not m:
            return None
        u = (m.group(2) or unit).lower()
        f = float(m.group(1)) * UNIT_FACTORS.get(u, UNIT_FACTORS[unit])
        return f if math.isfinite(f) else None
    return None


def canonical(obj: Mapping[str, Any], mapping: LogMapping = DEFAULT_MAPPING) -> dict[str, Any]:
    """One parsed JSON/logfmt object -> {column: value} (raw values; the caller types them)."""
    out: dict[str, Any] = {}
    for column, names in mapping.fields.items():
        for name in names:
            v = _get(obj, name)
            if v is None or v == "":
                continue
            if column == "latency_ms":
                v = duration_ms(v, mapping.units.get(name) or unit_of(name))
                if v is None:
                    continue
            elif column == "status" and isinstance(v, str):
                v = v.strip()
                if not v.isdigit():
                    continue
                v = int(v)
            elif column in ("path", "method") and not isinstance(v, str):
                continue  # ECS's "url": {"path": ...}: the nested field is further down the list
            elif column == "level" and isinstance(v, int) and not isinstance(v, bool) and v in _PINO_LEVELS:
                v = numeric_level(v)
            out[column] = v
            break
    return out


_PINO_LEVELS = {10, 20, 30, 40, 50, 60}


def numeric_level(v: float) -> str:
    """pino/bunyan numeric levels (10 trace .. 60 fatal) as names."""
    for limit, name in ((60, "CRITICAL"), (50, "ERROR"), (40, "WARNING"), (30, "INFO")):
        if v >= limit:
            return name
    return "DEBUG"


LEVEL_ALIASES = {
    "WARN": "WARNING",
    "ERR": "ERROR",
    "FATAL": "CRITICAL",
    "CRIT": "CRITICAL",
    "EMERG": "CRITICAL",
    "EMERGENCY": "CRITICAL",
    "ALERT": "CRITICAL",
    "SEVERE": "ERROR",
    "INFORMATION": "INFO",
    "NOTICE": "INFO",
    "TRACE": "DEBUG",
    "VERBOSE": "DEBUG",
    "E": "ERROR",
    "W": "WARNING",
    "I": "INFO",
    "D": "DEBUG",
    "F": "CRITICAL",
}


def normal_level(level: str) -> str:
    up = level.strip().upper()
    if up.isdigit() and int(up) in _PINO_LEVELS:
        return numeric_level(int(up))
    return LEVEL_ALIASES.get(up, up)


# ---------------------------------------------------------------------------
# Text lines

_LEVEL = r"(?P<level>DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL|TRACE|NOTICE)"
_TS = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z| ?[+-]\d\d:?\d\d| ?UTC)?"
#: A prefix before the line proper: a timestamp (awslogs/docker with timestamps, CRI "stdout F").
PREFIX = re.compile(
    rf"^(?:\[?{_TS}\]?\s+)(?:(?:stdout|stderr)\s+[FP]\s+)?(?:-\s+)?|^(?:stdout|stderr)\s+[FP]\s+"
)
_ACCESS = re.compile(
    r'^(?P<client>\S+) \S+ \S+ \[(?P<ts>[^\]]+)\] "(?P<method>[A-Z]{3,7}) (?P<path>\S+)(?: HTTP/[\d.]+)?" '
    r'(?P<status>\d{3}) (?:\d+|-)(?: "[^"]*" "[^"]*")?(?:\s+(?P<latency>\d+(?:\.\d+)?)(?P<unit>ms|s|us)?)?\s*$'
)
_UVICORN_ACCESS = re.compile(
    r"^(?:"
    + _LEVEL
    + r':\s+)?(?P<client>[\w.:\[\]\'(), -]+?) - "(?P<method>[A-Z]{3,7}) (?P<path>\S+) HTTP/[\d.]+" '
    r"(?P<status>\d{3})(?: (?P<message>.*))?$"
)
_UVICORN_WS = re.compile(
    r"^(?:" + _LEVEL + r':\s+)?(?P<client>.+?) - "WebSocket (?P<path>\S+)" (?P<message>\[\w+\].*)$'
)
_PYLOG = re.compile(
    r"^(?:\[\d+\]\s*)?\[?"
    + _LEVEL
    + r"\]?(?::|\s+-|\s)\s*(?:\[(?P<logger>[\w.\-]+)\]:?\s+|(?P<logger2>[\w.\-]+)(?::| -)\s+)?"
    r"(?P<message>.*)$",
    re.S,
)
_NAME_LEVEL = re.compile(r"^(?P<logger>[\w.\-]+)(?::| -)\s+" + _LEVEL + r"(?::| -)\s*(?P<message>.*)$", re.S)
_TRACEBACK_START = re.compile(
    r"^(?:Traceback \(most recent call last\)|Exception in ASGI application|"
    r"Exception in thread)"
)
_TRACEBACK_CONT = re.compile(
    r"^(?:\s+\S|During handling of the above exception|The above exception was|\^+$|\[SQL:)"
)
_EXC_LINE = re.compile(
    r"^(?P<error_type>(?:[A-Za-z_][\w]*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Killed|"
    r"Failure|Fault|Warning|Timeout|Refused|Denied))(?::\s*(?P<message>.*))?$",
    re.S,
)
_LOGFMT_START = re.compile(r"^[\w.@]+=")
_LOGFMT_PAIR = re.compile(r'([\w.@]+)=("(?:[^"\\]|\\.)*"|\S*)')
#: A request inside a message: ``GET /x 200 84ms``, ``"GET /x HTTP/1.1" 200``, ``GET /x -> 500 (12.5 ms)``.
REQUEST_IN_TEXT = (
    r'(?P<method>GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (?P<path>/[^\s"?]*)\S*(?: HTTP/[\d.]+)?"?'
    r"\s+(?:-> |returned |status[= ]|- )?(?P<status>[1-5]\d\d)\b"
    r"(?:[^\d\n]{0,24}(?P<latency>\d+(?:\.\d+)?)\s?(?P<unit>ms|s|us)\b)?"
)
_REQUEST_IN_TEXT = re.compile(REQUEST_IN_TEXT)


def _num(v: str | None) -> int | None:
    return int(v) if v and v.isdigit() else None


def _latency_from(groups: Mapping[str, str | None], default_unit: str) -> float | None:
    if groups.get("latency_ms"):
        return duration_ms(groups["latency_ms"], "ms")
    if groups.get("latency_s"):
        return duration_ms(groups["latency_s"], "s")
    if groups.get("latency_us"):
        return duration_ms(groups["latency_us"], "us")
    lat = groups.get("latency")
    if not lat:
        return None
    unit = groups.get("unit") or default_unit
    if not groups.get("unit") and default_unit == "auto":  # gunicorn: %(L)s decimal seconds, %(D)s integer us
        unit = "s" if "." in lat else "us"
    return duration_ms(lat, unit)


def _from_groups(groups: Mapping[str, str | None], fmt: str, default_unit: str = "ms") -> dict[str, Any]:
    out: dict[str, Any] = {"__fmt": fmt}
    for k in (
        "level",
        "method",
        "path",
        "message",
        "request_id",
        "error_type",
        "error_code",
        "provider",
        "client_id",
        "event",
    ):
        v = groups.get(k)
        if v:
            out[k] = normal_level(v) if k == "level" else v
    logger = groups.get("logger") or groups.get("logger2")
    if logger:
        out["__logger"] = logger
    status = _num(groups.get("status"))
    if status is not None:
        out["status"] = status
    lat = _latency_from(groups, default_unit)
    if lat is not None:
        out["latency_ms"] = lat
    return out


def _request_in_message(out: dict[str, Any]) -> None:
    msg = out.get("message")
    if "method" in out or not isinstance(msg, str) or len(msg) > 2000:
        return
    m = _REQUEST_IN_TEXT.search(msg)
    if m:
        out.update({k: v for k, v in _from_groups(m.groupdict(), out["__fmt"]).items() if k != "__fmt"})


def _traceback(text: str, out: dict[str, Any]) -> None:
    """Mark an exception: level ERROR, error_type from the last exception line."""
    out.setdefault("level", "ERROR")
    if "error_type" not in out:
        for ln in reversed(text.strip().splitlines()):
            m = _EXC_LINE.match(ln.strip())
            if m:
                out["error_type"] = m.group("error_type").rsplit(".", 1)[-1]
                break


def parse_logfmt(text: str) -> dict[str, Any] | None:
    pairs = _LOGFMT_PAIR.findall(text)
    if len(pairs) < 2:
        return None
    obj: dict[str, Any] = {}
    for k, v in pairs:
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            try:
                v = json.loads(v)
            except ValueError:
                v = v[1:-1]
        elif re.fullmatch(r"-?\d+", v):
            obj[k] = int(v)
            continue
        elif re.fullmatch(r"-?\d+\.\d+", v):
            obj[k] = float(v)
            continue
        obj[k] = v
    return obj


def parse_text(text: str, mapping: LogMapping = DEFAULT_MAPPING) -> dict[str, Any]:
    """A line that is not a JSON object -> {column: value, "__fmt": format}.

    ``__fmt`` is the format recognised (``text:<name>``), ``traceback`` for a line of a
    traceback, ``json`` for a JSON object behind a prefix (the caller parses it: ``__json``
    holds its text), or ``raw`` when nothing was recognised (the text is kept as ``message``).
    """
    line = text
    m = PREFIX.match(line)
    if m:
        line = line[m.end() :]
        if line.startswith("{"):
            return {"__fmt": "json+prefix", "__json": line}
    first = line.split("\n", 1)[0]
    for rx in mapping.text_patterns:
        cm = rx.match(line)
        if cm:
            out = _from_groups(cm.groupdict(), f"text:{mapping.name or 'custom'}")
            out.setdefault("message", text)
            return out
    if _TRACEBACK_START.match(first):
        out = {"__fmt": "traceback", "message": text}
        if "\n" in text.strip():  # the whole traceback in one event: one error; else its last line is
            _traceback(text, out)
        return out
    cm = _ACCESS.match(first)
    if cm:
        out = _from_groups(cm.groupdict(), "text:access", default_unit="auto")
        out["message"] = text
        return out
    cm = _UVICORN_ACCESS.match(first)
    if cm:
        out = _from_groups(cm.groupdict(), "text:uvicorn-access")
        out["message"] = text
        return out
    cm = _UVICORN_WS.match(first)
    if cm:
        out = _from_groups(cm.groupdict(), "text:uvicorn-ws")
        out["message"] = text
        out.setdefault("method", "GET")
        return out
    if _LOGFMT_START.match(first):
        obj = parse_logfmt(line)
        if obj is not None:
            out = canonical(obj, mapping)
            if out:
                out["__fmt"] = "logfmt"
                out.setdefault("message", text)
                if "level" in out:
                    out["level"] = normal_level(str(out["level"]))
                if any(_get(obj, n) for n in mapping.fields[EXCEPTION]):
                    _traceback(
                        str(next(_get(obj, n) for n in mapping.fields[EXCEPTION] if _get(obj, n))), out
                    )
                _request_in_message(out)
                return out
    cm = _PYLOG.match(line) or _NAME_LEVEL.match(line)
    if cm:
        out = _from_groups(cm.groupdict(), "text:python")
        msg = out.get("message", "")
        if "\n" in msg and "Traceback (most recent call last)" in msg:
            _traceback(msg, out)
        _request_in_message(out)
        out["message"] = msg or text
        return out
    if _TRACEBACK_CONT.match(first):
        return {"__fmt": "traceback", "message": text}
    cm = _EXC_LINE.match(first)
    if cm:
        out = {"__fmt": "traceback", "message": text}
        _traceback(text, out)
        return out
    out = {"__fmt": "raw", "message": text}
    cm = _REQUEST_IN_TEXT.search(first)
    if cm:
        out.update({k: v for k, v in _from_groups(cm.groupdict(), "raw").items() if k != "__fmt"})
        out["__fmt"] = "text:request"
    return out
