"""PropFlow's log lines parsed fast into one typed frame, whatever their dialect (pure: no network).

The API writes one JSON object per line::

    {"ts", "level", "logger", "event", "method", "path", "status", "latency_ms",
     "request_id", "message", optional "provider", "error_code", "error_type", "client_id"}

and now and then a plain-text line (a traceback). :func:`parse_events` turns
CloudWatch events into a typed DataFrame (see :data:`COLUMNS`); other dialects
(python-json, logfmt, known text formats) go through the active log mapping
(:mod:`propflow_ops.sources.logmapping`, set with :func:`use_mapping`).

How the parse is fast (bench/bench_logs.py, bench/README-logs.md): the JSON
messages are joined, a few thousand at a time, into newline-delimited UTF-8
blocks that stream into one ``pyarrow.json.read_json`` call (multithreaded C++,
explicit schema, unknown fields ignored). Lines that do not start with ``{`` are
replaced by ``{}`` in the stream (so rows stay aligned) and their raw text is put
into ``message`` afterwards. String columns stay in Arrow memory (pandas ``str``
backed by pyarrow, no Python objects per value). If Arrow rejects the input (a
line that starts with ``{`` but is not valid JSON, a field of an unexpected
type), the work is redone block by block and only the offending blocks are
parsed line by line with :mod:`json`, so one bad line never loses the window.

This module shapes; it does not fetch (:mod:`propflow_ops.sources.logs`) or judge (no thresholds here).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress, count, repeat
from operator import itemgetter, not_
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from propflow_ops.sources import logmapping as lm
from propflow_ops.sources.logmapping import LogMapping, mapping_from_dict

__all__ = ["COLUMNS", "parse_events", "empty_frame", "use_mapping", "active_mapping"]

# Fields read from the JSON message (the mapping's canonical columns), in output order, with their Arrow types.
_NUMERIC_FIELDS = {"status": pa.int64(), "latency_ms": pa.float64()}
_JSON_FIELDS: tuple[tuple[str, pa.DataType], ...] = tuple(
    (name, _NUMERIC_FIELDS.get(name, pa.large_string())) for name in lm.CANONICAL
)
JSON_SCHEMA = pa.schema(list(_JSON_FIELDS))

#: Output columns of :func:`parse_events` / :func:`empty_frame`, in order.
COLUMNS = [
    "timestamp",
    "level",
    "event",
    "method",
    "path",
    "status",
    "latency_ms",
    "request_id",
    "message",
    "stream",
    "provider",
    "error_code",
    "error_type",
    "client_id",
    "format",
]

#: Values of the ``format`` column: how the line was understood.
#: ``json`` (a JSON object with at least one known field), ``json+prefix`` (JSON after a timestamp
#: or runtime prefix), ``logfmt``, ``text:<name>`` (a known text format: ``python``, ``access``,
#: ``uvicorn-access``, ``uvicorn-ws``, ``request``, or the mapping's name), ``traceback`` (a line of
#: a Python traceback), ``unknown`` (JSON with none of the known fields), ``raw`` (text in no known
#: format: kept as ``message``).
UNDERSTOOD_FORMATS_NOT = ("raw", "unknown")

# Events per block handed to the Arrow reader (a few MB of JSON).
_CHUNK_EVENTS = 8192
_BLOCK_SIZE = 4 << 20


def _str_dtype() -> pd.StringDtype:
    try:
        return pd.StringDtype("pyarrow", na_value=np.nan)  # pandas >= 2.3: the "str" dtype
    except TypeError:  # pragma: no cover - pandas 2.2
        return pd.StringDtype("pyarrow")


STR_DTYPE = _str_dtype()


def _types_mapper(t: pa.DataType) -> Any:
    if t == pa.int64():
        return pd.Int64Dtype()
    if t == pa.large_string() or t == pa.string():
        return STR_DTYPE
    return None


def _pool() -> pa.MemoryPool:
    """Arrow allocations go to the system allocator: it hands large blocks back to
    the OS when freed, so a notebook's RSS falls after the frame is dropped
    (mimalloc/jemalloc keep them cached) and it measured no slower here."""
    return pa.system_memory_pool()


# The mapping parse_events uses when it is given none (a notebook sets it once: use_mapping).
_ACTIVE: list[LogMapping] = [lm.DEFAULT_MAPPING]


def use_mapping(spec: LogMapping | dict[str, Any] | str | None) -> LogMapping:
    """Set the log mapping every later parse uses (a :class:`LogMapping`, the dict of the team file's
    ``[logs]`` section, the JSON of the ``log_mapping`` parameter, or empty for the built-in one).
    Raises :class:`LogMappingError` (a ValueError naming the key) on a bad mapping; returns it."""
    mapping = spec if isinstance(spec, LogMapping) else mapping_from_dict(spec)
    _ACTIVE[0] = mapping
    return mapping


def active_mapping() -> LogMapping:
    return _ACTIVE[0]


_CANON_TYPES: dict[str, pa.DataType] = {name: typ for name, typ in _JSON_FIELDS}
_CANON_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    *_JSON_FIELDS,
    (lm.EXCEPTION, pa.large_string()),
    ("__fmt", pa.large_string()),
)
_CANON_SCHEMA = pa.schema(list(_CANON_FIELDS))


@dataclass
class _Plan:
    """The Arrow schema a mapping reads and, per column, the (field path, unit factor) to coalesce."""

    schema: pa.Schema
    sources: dict[str, list[tuple[tuple[str, ...], float]]]


_PLANS: dict[tuple[int, frozenset[str]], tuple[LogMapping, _Plan]] = {}
#: How many lines, spread over the input, are read first to learn which fields the dialect uses.
SAMPLE_LINES = 2048


def _paths(obj: dict[str, Any], prefix: str = "", depth: int = 0, out: set[str] | None = None) -> set[str]:
    out = set() if out is None else out
    for k, v in obj.items():
        name = prefix + k
        out.add(name)
        if isinstance(v, dict) and depth < 3:
            _paths(v, name + ".", depth + 1, out)
    return out


def _fields_seen(events: Sequence[dict[str, Any]], mapping: LogMapping) -> frozenset[str]:
    """The field names (dotted when nested) of up to :data:`SAMPLE_LINES` lines spread over ``events``.

    The Arrow reader's cost grows with the width of its schema (80 alias fields made it ~4x slower than
    the 12 of our own dialect), so it is asked only for the fields this input uses. A field that no
    sampled line has is not read by the fast path (a dialect under ~0.05% of the lines may be missed)."""
    n = len(events)
    step = max(1, n // SAMPLE_LINES)
    seen: set[str] = set()
    for i in range(0, n, step):
        m = events[i].get("message") if isinstance(events[i], dict) else None
        if not isinstance(m, str):
            continue
        if not m.startswith("{"):
            pm = lm.PREFIX.match(m)
            if not pm or not m[pm.end() :].startswith("{"):
                continue
            m = m[pm.end() :]
        try:
            obj = json.loads(m)
        except ValueError:
            continue
        if isinstance(obj, dict):
            _paths(obj, out=seen)
    return frozenset(seen)


def _plan(mapping: LogMapping, present: frozenset[str] | None = None) -> _Plan:
    """The reader's schema for ``mapping``: our own 12 fields always, an alias only when ``present``
    (the sampled lines' fields) has it (every alias when ``present`` is None)."""
    key = (id(mapping), present if present is not None else frozenset({"*all*"}))
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is mapping:
        return hit[1]
    leaves: dict[tuple[str, ...], pa.DataType] = {}
    wanted: list[tuple[str, tuple[str, ...], float]] = []
    for column, names in mapping.fields.items():
        typ = _CANON_TYPES.get(column, pa.large_string())
        for name in names:
            if present is not None and name not in present and (name != column or column == lm.EXCEPTION):
                continue
            path = tuple(name.split("."))
            if path in leaves and leaves[path] != typ:
                continue  # one field read as two types: the careful path handles it
            leaves.setdefault(path, typ)
            wanted.append((column, path, mapping.factor(name) if column == "latency_ms" else 1.0))
    # A name that is a leaf and also the parent of another (``url`` and ``url.path``): keep the leaf;
    # the nested one is read by the careful path only.
    dropped = {p for p in leaves if any(p[:i] in leaves for i in range(1, len(p)))}
    tree: dict[str, Any] = {}
    for path, typ in leaves.items():
        if path in dropped:
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = typ

    def build(node: dict[str, Any]) -> list[pa.Field]:
        return [pa.field(k, pa.struct(build(v)) if isinstance(v, dict) else v) for k, v in node.items()]

    fields = build(tree)
    fields.append(pa.field("__fmt", pa.large_string()))
    sources: dict[str, list[tuple[tuple[str, ...], float]]] = {c: [] for c in _CANON_TYPES}
    sources[lm.EXCEPTION] = []
    for column, path, factor in wanted:
        if path not in dropped:
            sources.setdefault(column, []).append((path, factor))
    plan = _Plan(pa.schema(fields), sources)
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[key] = (mapping, plan)
    return plan


@dataclass
class _Block:
    """One block of events prepared for the Arrow reader."""

    data: bytes
    n: int
    timestamps: np.ndarray
    stream_codes: np.ndarray
    raw_idx: list[int]  # positions (within the block) of non-JSON lines
    original: list[str] | None = None  # the messages as received (careful path only)


@dataclass
class _Collected:
    """What the block generator saw besides the JSON: timestamps and streams."""

    timestamps: list[np.ndarray] = field(default_factory=list)
    stream_codes: list[np.ndarray] = field(default_factory=list)
    stream_names: dict[Any, int] = field(default_factory=dict)
    n: int = 0

    def add(self, block: _Block) -> None:
        self.timestamps.append(block.timestamps)
        self.stream_codes.append(block.stream_codes)
        self.n += block.n


_get_message = itemgetter("message")
_get_timestamp = itemgetter("timestamp")
_get_stream = itemgetter("logStreamName")


def _message_of(event: dict[str, Any]) -> str:
    m = event.get("message")
    return m if isinstance(m, str) else ("" if m is None else str(m))


def _typed(column: str, v: Any) -> Any:
    typ = _CANON_TYPES.get(column)
    if typ == pa.int64():
        return _as_int(v)
    if typ == pa.float64():
        return _as_float(v)
    return _as_str(v)


def _text_line(text: str, mapping: LogMapping) -> str:
    """A line that is not a JSON object, as a JSON line the reader keeps: its text parsed by
    :func:`logmapping.parse_text` under our own field names (the format under ``__fmt``), or the JSON behind
    a prefix marked ``json+prefix``."""
    parsed = lm.parse_text(text, mapping)
    rest = parsed.get("__json")
    if rest is not None:
        body = rest.rstrip()
        if body.endswith("}") and "\n" not in body and "\r" not in body:
            inner = body[1:].lstrip()
            return '{"__fmt":"json+prefix"' + ("," + inner if not inner.startswith("}") else "}")
        parsed = {"__fmt": "raw", "message": text}
    # Under our own field names (always in the reader's schema: a nested struct for these costs the
    # reader ~40% more on every line); a mapping that gives ``latency_ms`` another unit is undone here.
    out: dict[str, Any] = {"__fmt": parsed["__fmt"]}
    for k, v in parsed.items():
        if k in _CANON_TYPES:
            tv = _typed(k, v)
            if tv is not None:
                out[k] = tv / mapping.factor("latency_ms") if k == "latency_ms" else tv
    return json.dumps(out, ensure_ascii=False)


def _prepare(
    chunk: Sequence[dict[str, Any]], names: dict[Any, int], mapping: LogMapping, careful: bool = False
) -> _Block:
    n = len(chunk)
    try:
        msgs: list[str] = list(map(_get_message, chunk))
    except KeyError:
        msgs = [_message_of(e) for e in chunk]
    try:
        ts = np.fromiter(map(_get_timestamp, chunk), dtype=np.int64, count=n)
    except (KeyError, TypeError, ValueError):
        ts = np.array([int(e.get("timestamp") or 0) for e in chunk], dtype=np.int64)
    try:
        streams: list[Any] = list(map(_get_stream, chunk))
    except KeyError:
        streams = [e.get("logStreamName") for e in chunk]
    for name in set(streams):
        if name not in names:
            names[name] = len(names)
    codes = np.fromiter(map(names.__getitem__, streams), dtype=np.int32, count=n)
    try:  # all in C: positions of the lines that do not start with "{"
        raw_idx = list(compress(count(), map(not_, map(str.startswith, msgs, repeat("{")))))
    except TypeError:  # a non-str message
        msgs = [m if isinstance(m, str) else _message_of({"message": m}) for m in msgs]
        raw_idx = list(compress(count(), map(not_, map(str.startswith, msgs, repeat("{")))))
    lines = msgs
    if raw_idx:
        lines = msgs.copy()
        for i in raw_idx:
            lines[i] = _text_line(msgs[i], mapping)
    if careful:
        # Pretty-printed JSON or a trailing newline: newlines outside strings are
        # whitespace in JSON (inside strings they are invalid anyway).
        lines = [
            ln.replace("\r", " ").replace("\n", " ") if ("\n" in ln or "\r" in ln) else ln for ln in lines
        ]
    # The fast path does not look for embedded newlines: a message with one either
    # breaks the JSON (ArrowInvalid) or adds a row (count mismatch), and both send
    # the parse to the careful block-by-block path; a trailing one leaves an empty
    # line, which Arrow skips.
    text = "\n".join(lines)
    text += "\n"
    data = text.encode("utf-8", errors="replace")
    return _Block(data, n, ts, codes, raw_idx, msgs if careful else None)


def _blocks(
    events: Sequence[dict[str, Any]],
    names: dict[Any, int],
    mapping: LogMapping,
    careful: bool = False,
    size: int = _CHUNK_EVENTS,
) -> Iterator[_Block]:
    for start in range(0, len(events), size):
        yield _prepare(events[start : start + size], names, mapping, careful)


class _BlockStream:
    """A read-only file object over prepared blocks, for pyarrow.PythonFile.

    Reads may be short (one block at a time); Arrow's block iterator accepts that.
    """

    def __init__(self, blocks: Iterator[_Block], sink: _Collected) -> None:
        self._blocks = blocks
        self._sink = sink
        self._cur = b""
        self._pos = 0
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        while self._pos >= len(self._cur):
            block = next(self._blocks, None)
            if block is None:
                self._cur, self._pos = b"", 0
                return b""
            self._sink.add(block)
            self._cur, self._pos = block.data, 0
        if size is None or size < 0:
            size = len(self._cur) - self._pos
        if self._pos == 0 and len(self._cur) <= size:
            self._pos = len(self._cur)
            return self._cur
        out = self._cur[self._pos : self._pos + size]
        self._pos += len(out)
        return out

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def _read_json(source: Any, schema: pa.Schema) -> pa.Table:
    return pajson.read_json(
        source,
        read_options=pajson.ReadOptions(block_size=_BLOCK_SIZE, use_threads=True),
        parse_options=pajson.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="ignore", newlines_in_values=False
        ),
        memory_pool=_pool(),
    )


def _as_str(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str):
        try:
            return json.dumps(v)
        except (TypeError, ValueError):
            v = str(v)
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: "?" as in the fast path
        v = v.encode("utf-8", errors="replace").decode("utf-8")
    return v


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _as_int(v: Any) -> int | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f) or f != int(f):
        return None
    i = int(v) if isinstance(v, int) else int(f)
    return i if _INT64_MIN <= i <= _INT64_MAX else None  # beyond int64: missing, not a crash


def _as_float(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _field_path(table: pa.Table, path: tuple[str, ...]) -> Any:
    if path[0] not in table.column_names:
        return None
    arr: Any = table.column(path[0])
    for part in path[1:]:
        arr = pc.struct_field(arr, part)
    return arr


def _canonical_table(table: pa.Table, plan: _Plan, usage: dict[str, dict[str, int]]) -> pa.Table:
    """The reader's table (every alias as read) -> the canonical columns, coalesced in mapping order
    (durations converted to ms); ``usage`` counts, per column, the lines each field supplied."""
    pool = _pool()
    out: dict[str, Any] = {}
    n = table.num_rows
    for column, typ in _CANON_FIELDS:
        if column == "__fmt":
            out[column] = table.column("__fmt")
            continue
        parts = []
        for path, factor in plan.sources.get(column, []):
            arr = _field_path(table, path)
            if arr is None:
                continue
            present = len(arr) - arr.null_count
            if not present:
                continue
            used = usage.setdefault(column, {})
            used[".".join(path)] = used.get(".".join(path), 0) + present
            if factor != 1.0:
                arr = pc.multiply(arr, pa.scalar(factor), memory_pool=pool)
            parts.append(arr)
        if not parts:
            out[column] = pa.chunked_array([pa.nulls(n, type=typ)], type=typ)
        elif len(parts) == 1:
            out[column] = parts[0]
        else:
            out[column] = pc.coalesce(*parts, memory_pool=pool)
    return pa.table(out, schema=_CANON_SCHEMA)


def _parse_block_slow(block: _Block, mapping: LogMapping, usage: dict[str, dict[str, int]]) -> pa.Table:
    """Line-by-line json.loads for one block Arrow refused: bad lines become text lines."""
    cols: dict[str, list[Any]] = {name: [] for name, _ in _CANON_FIELDS}
    lines = block.data.decode("utf-8", errors="replace").split("\n")
    for i in range(block.n):
        text = lines[i]
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            original = block.original[i] if block.original is not None else text
            obj = json.loads(_text_line(original, mapping))
            if obj.get("__fmt") == "json+prefix":  # JSON behind a prefix that Arrow refused
                try:
                    inner = json.loads(
                        obj.get("__json") or lm.parse_text(original, mapping).get("__json") or ""
                    )
                except ValueError:
                    inner = None
                obj = inner if isinstance(inner, dict) else {"__fmt": "raw", "message": original}
                obj.setdefault("__fmt", "json+prefix")
        rec = lm.canonical(obj, mapping)
        if not obj.get("__fmt"):
            for column in rec:
                used = usage.setdefault(column, {})
                src = next(
                    (nm for nm in mapping.fields[column] if lm._get(obj, nm) not in (None, "")), column
                )
                used[src] = used.get(src, 0) + 1
        rec["__fmt"] = obj.get("__fmt") if isinstance(obj.get("__fmt"), str) else None
        for name, _typ in _CANON_FIELDS:
            cols[name].append(rec.get("__fmt") if name == "__fmt" else _typed(name, rec.get(name)))
    return pa.table(
        {name: pa.array(cols[name], type=typ, memory_pool=_pool()) for name, typ in _CANON_FIELDS},
        schema=_CANON_SCHEMA,
    )


def _parse_blockwise(
    events: Sequence[dict[str, Any]], mapping: LogMapping, usage: dict[str, dict[str, int]]
) -> tuple[pa.Table, _Collected]:
    plan = _plan(mapping, _fields_seen(events, mapping))
    tables: list[pa.Table] = []
    sink = _Collected()
    for block in _blocks(events, sink.stream_names, mapping, careful=True):
        mine: dict[str, dict[str, int]] = {}
        try:
            raw = _read_json(pa.BufferReader(block.data), plan.schema)
            if raw.num_rows != block.n:
                raise pa.ArrowInvalid("row count mismatch")
            table = _canonical_table(raw, plan, mine)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            mine = {}
            table = _parse_block_slow(block, mapping, mine)
        for column, used in mine.items():
            for src, k in used.items():
                usage.setdefault(column, {})[src] = usage.setdefault(column, {}).get(src, 0) + k
        sink.add(block)
        tables.append(table)
    return pa.concat_tables(tables), sink


_RE2_REQUEST = lm.REQUEST_IN_TEXT
_KNOWN = [name for name, _ in _JSON_FIELDS]


def _scatter(col: Any, mask: Any, values: Any) -> Any:
    """``col`` with the rows where ``mask`` is true replaced, in order, by ``values``."""
    return pc.replace_with_mask(
        col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col,
        mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask,
        values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values,
    )


def _finish(table: pa.Table) -> dict[str, Any]:
    """Typed canonical columns -> the frame's columns: levels named alike, exceptions made errors,
    requests found in messages, and each line's ``format``."""
    cols: dict[str, Any] = {name: table.column(name) for name in table.column_names}
    n = table.num_rows
    # Levels: "warn", "Error", "50" -> WARNING, ERROR, ERROR (one pass over the distinct values).
    level = cols["level"]
    if level.null_count < n:
        enc = pc.dictionary_encode(level).combine_chunks()
        values = enc.dictionary.to_pylist()
        normal = [lm.normal_level(v) if v is not None else None for v in values]
        if normal != values:
            cols["level"] = pc.take(pa.array(normal, type=pa.large_string()), enc.indices)
    # An exception field: the line is an exception; its last line gives error_type, its text the message.
    exc = cols.pop(lm.EXCEPTION)
    if exc.null_count < n:
        mask = pc.is_valid(exc)
        idx = pc.indices_nonzero(mask)
        texts = pc.take(exc, idx).to_pylist()
        types_now = pc.take(cols["error_type"], idx).to_pylist()
        msgs_now = pc.take(cols["message"], idx).to_pylist()
        types, msgs = [], []
        for text, et, msg in zip(texts, types_now, msgs_now, strict=True):
            probe: dict[str, Any] = {"level": "ERROR"}
            lm._traceback(str(text), probe)
            types.append(et or probe.get("error_type") or "Exception")
            msgs.append(msg if msg else str(text))
        cols["error_type"] = _scatter(cols["error_type"], mask, pa.array(types, type=pa.large_string()))
        cols["message"] = _scatter(cols["message"], mask, pa.array(msgs, type=pa.large_string()))
    # A request told only in the message ("GET /x 200 12ms"): method, path, status, latency from it.
    fmt = cols.pop("__fmt")
    need = pc.and_(pc.is_null(cols["method"]), pc.is_valid(cols["message"]))
    need = pc.and_(need, pc.is_null(fmt))
    if pc.any(need).as_py():
        idx = pc.indices_nonzero(need)
        found = pc.extract_regex(pc.take(cols["message"], idx), _RE2_REQUEST)
        if isinstance(found, pa.ChunkedArray):
            found = found.combine_chunks()
        ok = found.is_valid()
        if pc.any(ok).as_py():

            def grp(name: str) -> Any:
                child = pc.struct_field(found, name)
                return pc.if_else(pc.and_(ok, pc.not_equal(child, "")), child, pa.scalar(None, child.type))

            unit = grp("unit")
            factor = pc.if_else(pc.equal(unit, "s"), 1000.0, pc.if_else(pc.equal(unit, "us"), 0.001, 1.0))
            factor = pc.fill_null(factor, 1.0)
            got = {
                "method": grp("method").cast(pa.large_string()),
                "path": grp("path").cast(pa.large_string()),
                "status": grp("status").cast(pa.int64()),
                "latency_ms": pc.multiply(grp("latency").cast(pa.float64()), factor),
            }
            for name, values in got.items():
                mine = pc.take(cols[name], idx)
                cols[name] = _scatter(cols[name], need, pc.coalesce(mine, values))
            fmt = _scatter(
                fmt,
                need,
                pc.if_else(ok, pa.scalar("json:request-in-message"), pa.scalar(None, pa.large_string())),
            )
    # Format: JSON with none of the known fields is "unknown".
    known = None
    for name in _KNOWN:
        v = pc.is_valid(cols[name])
        known = v if known is None else pc.or_(known, v)
    json_fmt = pc.if_else(known, "json", "unknown") if known is not None else pa.scalar("json")
    cols["format"] = pc.coalesce(fmt, json_fmt).cast(pa.large_string())
    return cols


def _assemble(
    table: pa.Table,
    sink: _Collected,
    usage: dict[str, dict[str, int]] | None = None,
    mapping: LogMapping | None = None,
) -> pd.DataFrame:
    pool = _pool()
    ts_ms = np.concatenate(sink.timestamps) if sink.timestamps else np.empty(0, dtype=np.int64)
    ts = pa.array(ts_ms * 1_000_000, type=pa.timestamp("ns", tz="UTC"), memory_pool=pool)
    codes = np.concatenate(sink.stream_codes) if sink.stream_codes else np.empty(0, dtype=np.int32)
    names = list(sink.stream_names)
    stream_dict = pa.DictionaryArray.from_arrays(
        pa.array(codes, type=pa.int32()),
        pa.array([None if s is None else str(s) for s in names], type=pa.large_string()),
    )
    stream = pc.cast(stream_dict, pa.large_string(), memory_pool=pool)
    canon = _finish(table)
    columns: dict[str, Any] = {}
    for name in COLUMNS:
        if name == "timestamp":
            columns[name] = ts
        elif name == "stream":
            columns[name] = stream
        else:
            columns[name] = canon[name]
    out = pa.table(columns)
    df = out.to_pandas(types_mapper=_types_mapper, split_blocks=True, memory_pool=pool)
    mapping = mapping or active_mapping()
    df.attrs["log_fields"] = {
        c: dict(sorted(u.items(), key=lambda kv: -kv[1])) for c, u in (usage or {}).items()
    }
    df.attrs["mapping"] = mapping.name or "built-in"
    return df


def empty_frame() -> pd.DataFrame:
    """A frame with :func:`parse_events`' columns and dtypes and no rows."""
    table = pa.table({name: pa.array([], type=typ) for name, typ in _CANON_FIELDS}, schema=_CANON_SCHEMA)
    return _assemble(table, _Collected())


def parse_events(events: Sequence[dict[str, Any]], mapping: LogMapping | None = None) -> pd.DataFrame:
    """CloudWatch events (``timestamp`` ms, ``message``, ``logStreamName``) -> typed DataFrame.

    Columns (:data:`COLUMNS`): ``timestamp`` datetime64[ns, UTC] (the event's
    CloudWatch timestamp), ``level``/``event``/``method``/``path``/``request_id``/
    ``message``/``stream``/``provider``/``error_code``/``error_type``/``client_id``
    as pandas ``str`` (Arrow-backed, NaN when absent), ``status`` Int64,
    ``latency_ms`` float64 (milliseconds, whatever unit the line used), ``format`` (how the line
    was understood, see :data:`UNDERSTOOD_FORMATS_NOT`). Fields are read by ``mapping`` (default: the
    one :func:`use_mapping` set, else the built-in dialects of :mod:`propflow_ops.sources.logmapping`).
    Levels are upper-case names (``WARN`` -> ``WARNING``). A text line keeps its raw text in
    ``message``. Row order is the input order. ``df.attrs["log_fields"]`` says which field fed each
    column on how many lines; ``df.attrs["mapping"]`` the mapping's name.
    """
    mapping = mapping or active_mapping()
    if len(events) == 0:
        return empty_frame()
    plan = _plan(mapping, _fields_seen(events, mapping))
    sink = _Collected()
    usage: dict[str, dict[str, int]] = {}
    try:
        stream = _BlockStream(_blocks(events, sink.stream_names, mapping), sink)
        raw = _read_json(pa.PythonFile(stream, mode="r"), plan.schema)
        if raw.num_rows != sink.n or sink.n != len(events):
            raise pa.ArrowInvalid("row count mismatch")
        table = _canonical_table(raw, plan, usage)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        usage = {}
        table, sink = _parse_blockwise(events, mapping, usage)
    return _assemble(table, sink, usage, mapping)
