"""The event contract: three streams in long format, typed columnar storage, readers, writers, validation.

A file holds one row per event: ``user_id, ts_ms, stream`` plus the fields of that row's stream
(columns of the other streams are empty for that row). A file may carry any subset of the streams;
the columns of every stream that occurs in it must be present.

In memory an :class:`EventLog` keeps one Arrow table per stream, sorted by ``(user_id, ts_ms)``
(stable, so equal timestamps keep file order). Categorical fields are dictionary-encoded.

Readers go batch by batch (CSV and JSONL blocks, Parquet row groups), validate each batch with the
global row number, and keep only the compact typed columns, so memory follows the typed data and not
the raw text. Every contract violation raises :class:`~edgeintent.errors.DataError` with one line
naming the file, the row and the column.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from edgeintent.errors import DataError

STREAMS: tuple[str, ...] = ("gesture", "click", "cloud")

COMMON_FIELDS: dict[str, pa.DataType] = {
    "user_id": pa.int64(),
    "ts_ms": pa.int64(),
    "stream": pa.string(),
}

#: The fields each stream carries, in file order. Strings are categorical.
STREAM_FIELDS: dict[str, dict[str, pa.DataType]] = {
    "gesture": {
        "kind": pa.string(),  # swipe / scroll / tap / pinch
        "x0": pa.float64(),  # screen-normalised 0..1
        "y0": pa.float64(),
        "x1": pa.float64(),
        "y1": pa.float64(),
        "duration_ms": pa.float64(),
        "vx": pa.float64(),  # screen widths per second
        "vy": pa.float64(),  # screen heights per second
        "pressure": pa.float64(),
        "size": pa.float64(),
        "page": pa.string(),
        "orientation": pa.int64(),  # 0 portrait, 1 / 3 landscape (Android Surface.ROTATION_*)
    },
    "click": {"widget": pa.string(), "page": pa.string()},
    "cloud": {
        "action": pa.string(),  # view / fav / cart / buy
        "item_id": pa.int64(),
        "category_id": pa.int64(),
        "price": pa.float64(),
    },
}

#: Inclusive numeric ranges checked on read (NaN and inf are always rejected).
FIELD_RANGES: dict[str, tuple[float, float]] = {
    "x0": (0.0, 1.0),
    "y0": (0.0, 1.0),
    "x1": (0.0, 1.0),
    "y1": (0.0, 1.0),
    "duration_ms": (0.0, np.inf),
    "pressure": (0.0, np.inf),
    "size": (0.0, np.inf),
    "price": (0.0, np.inf),
    "ts_ms": (0.0, np.inf),
}


def _all_fields() -> dict[str, pa.DataType]:
    out = dict(COMMON_FIELDS)
    for fields in STREAM_FIELDS.values():
        for name, typ in fields.items():
            out.setdefault(name, typ)
    return out


ALL_FIELDS: dict[str, pa.DataType] = _all_fields()
#: The union schema used when writing long-format files.
LONG_SCHEMA = pa.schema([pa.field(n, t) for n, t in ALL_FIELDS.items()])

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def stream_schema(stream: str) -> pa.Schema:
    """Schema of one stream's in-memory table (categoricals dictionary-encoded)."""
    fields = [pa.field("user_id", pa.int64()), pa.field("ts_ms", pa.int64())]
    for name, typ in STREAM_FIELDS[stream].items():
        if pa.types.is_string(typ):
            typ = pa.dictionary(pa.int32(), pa.string())
        fields.append(pa.field(name, typ))
    return pa.schema(fields)


@dataclass
class ReadReport:
    """What reading a source found, beyond the events themselves."""

    source: str
    rows: int = 0
    per_stream: dict[str, int] = field(default_factory=dict)
    out_of_order: int = 0  # rows whose ts_ms is earlier than the user's previous row in file order
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "rows": self.rows,
            "per_stream": dict(self.per_stream),
            "out_of_order_sorted": self.out_of_order,
            "notes": list(self.notes),
        }


@dataclass
class EventLog:
    """Events of one or more streams, each an Arrow table sorted by (user_id, ts_ms)."""

    streams: dict[str, pa.Table]
    report: ReadReport = field(default_factory=lambda: ReadReport(source="<memory>"))

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_columns(cls, columns: dict[str, dict[str, np.ndarray | list]], source: str = "<memory>") -> EventLog:
        """Build from per-stream column dicts (``{"cloud": {"user_id": ..., "ts_ms": ..., ...}}``).

        Values are validated exactly like a file and sorted by (user_id, ts_ms).
        """
        tables = []
        for stream, cols in columns.items():
            if stream not in STREAM_FIELDS:
                raise DataError(f"{source}: unknown stream {stream!r} (expected one of {', '.join(STREAMS)})")
            n = len(cols["user_id"])
            data = {"user_id": cols["user_id"], "ts_ms": cols["ts_ms"], "stream": [stream] * n}
            for name in STREAM_FIELDS[stream]:
                if name not in cols:
                    raise DataError(f"{source}: stream {stream!r} is missing column {name!r}")
                data[name] = cols[name]
            tables.append(pa.table({k: pa.array(v, type=ALL_FIELDS[k]) for k, v in data.items()}))
        builder = _LogBuilder(source)
        offset = 0
        for t in tables:
            builder.add(t, offset, fmt="memory")
            offset += t.num_rows
        return builder.finish()

    # -- access -------------------------------------------------------------------------------
    def stream(self, name: str) -> pa.Table:
        if name not in self.streams:
            return stream_schema(name).empty_table()
        return self.streams[name]

    def present(self) -> list[str]:
        return [s for s in STREAMS if s in self.streams and self.streams[s].num_rows > 0]

    @property
    def n_events(self) -> int:
        return sum(t.num_rows for t in self.streams.values())

    def users(self) -> np.ndarray:
        parts = [t.column("user_id").to_numpy() for t in self.streams.values()]
        return np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)

    def time_span(self) -> tuple[int, int] | None:
        mins = [pc.min(t.column("ts_ms")).as_py() for t in self.streams.values() if t.num_rows]
        maxs = [pc.max(t.column("ts_ms")).as_py() for t in self.streams.values() if t.num_rows]
        return (min(mins), max(maxs)) if mins else None

    def filter_users(self, user_ids: np.ndarray) -> EventLog:
        keep = pa.array(np.asarray(user_ids, dtype=np.int64))
        streams = {s: t.filter(pc.is_in(t.column("user_id"), value_set=keep)) for s, t in self.streams.items()}
        return EventLog(streams, ReadReport(source=self.report.source, notes=["filtered by user"]))

    def to_long_table(self) -> pa.Table:
        """All streams merged into the long union schema, sorted by (user_id, ts_ms, stream order)."""
        parts = []
        for rank, s in enumerate(STREAMS):
            t = self.streams.get(s)
            if t is None or t.num_rows == 0:
                continue
            n = t.num_rows
            cols = {}
            for name, typ in ALL_FIELDS.items():
                if name == "stream":
                    cols[name] = pa.array([s] * n, pa.string())
                elif name in t.column_names:
                    col = t.column(name)
                    if pa.types.is_dictionary(col.type):
                        col = col.cast(pa.string())
                    cols[name] = col
                else:
                    cols[name] = pa.nulls(n, typ)
            cols["_rank"] = pa.array(np.full(n, rank, np.int8))
            parts.append(pa.table(cols))
        if not parts:
            return LONG_SCHEMA.empty_table()
        table = pa.concat_tables(parts)
        table = table.sort_by([("user_id", "ascending"), ("ts_ms", "ascending"), ("_rank", "ascending")])
        return table.drop_columns(["_rank"])


def concat_logs(logs: Iterable[EventLog], source: str = "<memory>") -> EventLog:
    """Concatenate logs whose users are disjoint or whose order does not matter (re-sorted)."""
    per: dict[str, list[pa.Table]] = {}
    for log in logs:
        for s, t in log.streams.items():
            per.setdefault(s, []).append(t)
    streams = {}
    for s, ts in per.items():
        t = pa.concat_tables(ts, promote_options="permissive")
        streams[s] = _sort(t.unify_dictionaries().combine_chunks())
    return EventLog(streams, ReadReport(source=source, rows=sum(t.num_rows for t in streams.values())))


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def detect_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv, .parquet or .jsonl")
    return FORMATS[suffix]


def read_events(path: str | Path, batch_rows: int = 1 << 18) -> EventLog:
    """Read a long-format event file (CSV, Parquet or JSONL), validating every row."""
    path = Path(path)
    fmt = detect_format(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected an event file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (no header, no events)")
    builder = _LogBuilder(str(path))
    offset = 0
    for batch in _iter_batches(path, fmt, batch_rows):
        builder.add(pa.Table.from_batches([batch]), offset, fmt)
        offset += batch.num_rows
    if offset == 0:
        raise DataError(f"{path}: no events (the file has a header but no rows)")
    return builder.finish()


def _iter_batches(path: Path, fmt: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        if fmt == "parquet":
            yield from _parquet_batches(path, batch_rows)
        elif fmt == "csv":
            yield from _csv_batches(path)
        else:
            yield from _jsonl_batches(path)
    except DataError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: {_arrow_message(exc, fmt)}") from None


def _parquet_batches(path: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
    names = set(pf.schema_arrow.names)
    _check_header(path, names)
    columns = [c for c in ALL_FIELDS if c in names]
    yield from pf.iter_batches(batch_size=batch_rows, columns=columns)


def _csv_batches(path: Path) -> Iterator[pa.RecordBatch]:
    with open(path, "rb") as fh:
        header = fh.readline().decode("utf-8", errors="replace").strip().lstrip("\ufeff")
    if not header:
        raise DataError(f"{path}: empty file (no header, no events)")
    names = {h.strip() for h in next(csv.reader([header]))}
    _check_header(path, names)
    convert = pacsv.ConvertOptions(
        column_types={k: v for k, v in ALL_FIELDS.items() if k in names},
        include_columns=[c for c in ALL_FIELDS if c in names],
        null_values=[""],  # so that "nan" is read as NaN and reported as such, not as an empty cell
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    yield from _read_blocks(
        path,
        lambda: pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 22), convert_options=convert),
        _csv_message,
    )


def _read_blocks(path: Path, open_reader, explain) -> Iterator[pa.RecordBatch]:
    """Iterate a pyarrow streaming reader; a parse error becomes one DataError line from ``explain``."""
    try:
        reader = open_reader()
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            yield batch
    except pa.ArrowInvalid as exc:
        raise DataError(f"{path}: {explain(path, exc)}") from None


def _jsonl_batches(path: Path) -> Iterator[pa.RecordBatch]:
    with open(path, "rb") as fh:
        first = fh.readline().strip()
    if not first:
        raise DataError(f"{path}: empty first line; expected one JSON object per line")
    # A row of one stream omits the other streams' keys: every row is read with the union schema, and a
    # key missing where it is needed is reported per row ("is empty or missing").
    parse = pajson.ParseOptions(explicit_schema=LONG_SCHEMA, unexpected_field_behavior="ignore")
    yield from _read_blocks(
        path,
        lambda: pajson.open_json(path, read_options=pajson.ReadOptions(block_size=1 << 22), parse_options=parse),
        _jsonl_message,
    )


_JSON_TYPES = {"int64": (int,), "double": (int, float), "string": (str,)}


def _jsonl_message(path: Path, exc: Exception) -> str:
    """pyarrow's JSON errors count rows per block: find the first offending line with the json module."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                return f"line {line_no}: not valid JSON ({err.msg})"
            if not isinstance(obj, dict):
                return f"line {line_no}: not a JSON object"
            for name, typ in ALL_FIELDS.items():
                v = obj.get(name)
                if v is None:
                    continue
                ok = _JSON_TYPES[str(typ)]
                if isinstance(v, bool) or not isinstance(v, ok):
                    return f"line {line_no}: column {name!r} has {v!r}, expected {typ}"
    return f"not valid JSON lines ({_first_line(exc)})"


def _check_header(path: Path, names: set[str]) -> None:
    missing = [c for c in COMMON_FIELDS if c not in names]
    if missing:
        raise DataError(f"{path}: missing column {missing[0]!r} (every event file needs user_id, ts_ms, stream)")


_CSV_COL = re.compile(r"column #(\d+): .*CSV conversion error to (\w+): invalid value '([^']*)'")


def _csv_message(path: Path, exc: Exception) -> str:
    """pyarrow names the column but not the row: find the first offending line with the csv module."""
    m = _CSV_COL.search(str(exc))
    if not m:
        return _first_line(exc)
    col_idx, typ = int(m.group(1)), m.group(2)
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
        name = header[col_idx] if col_idx < len(header) else f"#{col_idx + 1}"
        parse = int if typ.startswith(("int", "uint")) else float
        for line_no, row in enumerate(reader, start=2):
            if col_idx >= len(row) or row[col_idx] == "":
                continue
            try:
                parse(row[col_idx])
            except ValueError:
                return f"line {line_no}: column {name!r} has {row[col_idx]!r}, expected {typ}"
    return f"column {name!r}: invalid {typ} value {m.group(3)!r}"


def _arrow_message(exc: Exception, fmt: str) -> str:
    text = _first_line(exc)
    if fmt == "parquet":
        return f"not a readable Parquet file ({text})"
    if fmt == "jsonl":
        return f"not valid JSON lines ({text})"
    return text


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


class _LogBuilder:
    """Validates batches of long-format rows and accumulates them per stream."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.parts: dict[str, list[pa.Table]] = {s: [] for s in STREAMS}
        self.report = ReadReport(source=source)
        self.present_columns: set[str] | None = None

    def _where(self, fmt: str, row: int) -> str:
        # row is 0-based within the data rows
        if fmt == "csv":
            return f"line {row + 2}"
        if fmt == "jsonl":
            return f"line {row + 1}"
        return f"row {row + 1}"

    def add(self, table: pa.Table, offset: int, fmt: str) -> None:
        src = self.source
        names = set(table.column_names)
        for name in COMMON_FIELDS:
            col = table.column(name) if name in names else None
            if col is None:
                raise DataError(f"{src}: missing column {name!r} (every event file needs user_id, ts_ms, stream)")
            if col.null_count:
                row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
                raise DataError(f"{src}: {self._where(fmt, offset + row)}: column {name!r} is empty or missing")
        for name in COMMON_FIELDS:
            col = table.column(name)
            if not col.type.equals(COMMON_FIELDS[name]):
                table = self._cast(table, name, COMMON_FIELDS[name], offset, fmt)
        ts = table.column("ts_ms").to_numpy()
        neg = np.flatnonzero(ts < 0)
        if neg.size:
            raise DataError(f"{src}: {self._where(fmt, offset + int(neg[0]))}: column 'ts_ms' is negative ({ts[neg[0]]})")
        stream = table.column("stream")
        known = pc.is_in(stream, value_set=pa.array(list(STREAMS))).to_numpy(zero_copy_only=False)
        if not known.all():
            row = int(np.flatnonzero(~known)[0])
            raise DataError(
                f"{src}: {self._where(fmt, offset + row)}: unknown stream {stream[row].as_py()!r} "
                f"(expected one of {', '.join(STREAMS)})"
            )
        row_index = np.arange(offset, offset + table.num_rows, dtype=np.int64)
        for s in STREAMS:
            mask = pc.equal(stream, s)
            sub = table.filter(mask)
            if sub.num_rows == 0:
                continue
            rows = row_index[mask.to_numpy(zero_copy_only=False)]
            self.parts[s].append(self._stream_part(sub, s, rows, fmt))
            self.report.per_stream[s] = self.report.per_stream.get(s, 0) + sub.num_rows
        self.report.rows += table.num_rows

    def _cast(self, table: pa.Table, name: str, typ: pa.DataType, offset: int, fmt: str) -> pa.Table:
        col = table.column(name)
        try:
            casted = col.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            # find the first offending row for the message
            for i, v in enumerate(col.to_pylist()):
                if v is None:
                    continue
                try:
                    pa.array([v]).cast(typ)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                    raise DataError(
                        f"{self.source}: {self._where(fmt, offset + i)}: column {name!r} has {v!r}, expected {typ}"
                    ) from None
            raise DataError(f"{self.source}: column {name!r} has type {col.type}, expected {typ}") from None
        if pa.types.is_integer(typ) and pa.types.is_floating(col.type):
            vals = col.to_numpy(zero_copy_only=False)
            bad = np.flatnonzero(np.isfinite(vals) & (vals != np.floor(vals)) | ~np.isfinite(vals))
            if bad.size:
                i = int(bad[0])
                raise DataError(
                    f"{self.source}: {self._where(fmt, offset + i)}: column {name!r} has {vals[i]!r}, expected an integer"
                )
        return table.set_column(table.column_names.index(name), name, casted)

    def _stream_part(self, sub: pa.Table, stream: str, rows: np.ndarray, fmt: str) -> pa.Table:
        src = self.source
        cols: dict[str, pa.Array] = {
            "user_id": sub.column("user_id").combine_chunks(),
            "ts_ms": sub.column("ts_ms").combine_chunks(),
        }
        for name, typ in STREAM_FIELDS[stream].items():
            if name not in sub.column_names:
                raise DataError(
                    f"{src}: missing column {name!r} (rows of stream {stream!r} need "
                    f"{', '.join(STREAM_FIELDS[stream])})"
                )
            col = sub.column(name).combine_chunks()
            if col.null_count:
                i = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
                raise DataError(
                    f"{src}: {self._where(fmt, int(rows[i]))}: column {name!r} is empty or missing for a {stream} event"
                )
            if not col.type.equals(typ):
                col = self._cast(pa.table({name: col}), name, typ, 0, fmt).column(name).combine_chunks()
            if pa.types.is_floating(typ):
                vals = col.to_numpy(zero_copy_only=False)
                bad = np.flatnonzero(~np.isfinite(vals))
                if bad.size:
                    i = int(bad[0])
                    raise DataError(f"{src}: {self._where(fmt, int(rows[i]))}: column {name!r} is {vals[i]} (NaN/inf)")
            if name in FIELD_RANGES:
                lo, hi = FIELD_RANGES[name]
                vals = col.to_numpy(zero_copy_only=False)
                bad = np.flatnonzero((vals < lo) | (vals > hi))
                if bad.size:
                    i = int(bad[0])
                    raise DataError(
                        f"{src}: {self._where(fmt, int(rows[i]))}: column {name!r} is {vals[i]}, outside [{lo}, {hi}]"
                    )
            if pa.types.is_string(typ):
                col = col.dictionary_encode()
            cols[name] = col
        cols["_row"] = pa.array(rows)
        return pa.table(cols)

    def finish(self) -> EventLog:
        streams = {}
        out_of_order = 0
        for s in STREAMS:
            if not self.parts[s]:
                continue
            t = pa.concat_tables(self.parts[s], promote_options="permissive").unify_dictionaries().combine_chunks()
            file_order = np.argsort(t.column("_row").to_numpy(), kind="stable")
            out_of_order += count_out_of_order(
                t.column("user_id").to_numpy()[file_order], t.column("ts_ms").to_numpy()[file_order]
            )
            streams[s] = _sort(t, by_row=True).drop_columns(["_row"])
        self.report.out_of_order = out_of_order
        if out_of_order:
            self.report.notes.append(f"{out_of_order} rows had timestamps earlier than the user's previous row; sorted")
        return EventLog(streams, self.report)


def count_out_of_order(user: np.ndarray, ts: np.ndarray) -> int:
    """Rows whose ts_ms is earlier than the same user's previous row; the arrays are in file order."""
    if user.size < 2:
        return 0
    order = np.argsort(user, kind="stable")  # group by user, keeping file order within a user
    u, s = user[order], ts[order]
    return int(np.count_nonzero((u[1:] == u[:-1]) & (s[1:] < s[:-1])))


def _sort(t: pa.Table, by_row: bool = False) -> pa.Table:
    keys = [("user_id", "ascending"), ("ts_ms", "ascending")]
    if by_row:
        keys.append(("_row", "ascending"))
    idx = pc.sort_indices(t, sort_keys=keys)  # stable
    return t.take(idx)


# ---------------------------------------------------------------------------------------------
# Writing (atomic: temp file in the same directory, then rename)
# ---------------------------------------------------------------------------------------------


class EventWriter:
    """Append logs to a long-format file; the file appears only when the writer closes cleanly."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.fmt = detect_format(self.path)
        if self.path.parent and not self.path.parent.exists():
            raise DataError(f"{self.path}: directory {self.path.parent} does not exist")
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent or ".")
        os.close(fd)
        self.tmp = Path(tmp)
        self._writer = None
        self._fh = None
        self.rows = 0

    def write(self, log: EventLog) -> None:
        table = log.to_long_table()
        self.rows += table.num_rows
        if self.fmt == "parquet":
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.tmp, LONG_SCHEMA, compression="zstd")
            self._writer.write_table(table, row_group_size=1 << 18)
        elif self.fmt == "csv":
            if self._writer is None:
                self._writer = pacsv.CSVWriter(self.tmp, LONG_SCHEMA)
            self._writer.write_table(table)
        else:
            if self._fh is None:
                self._fh = open(self.tmp, "w", encoding="utf-8")
            for batch in table.to_batches(max_chunksize=1 << 16):
                for row in batch.to_pylist():
                    self._fh.write(json.dumps({k: v for k, v in row.items() if v is not None}) + "\n")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        elif self.fmt == "csv" and self.rows == 0:
            pacsv.write_csv(LONG_SCHEMA.empty_table(), self.tmp)
        if self._fh is not None:
            self._fh.close()
        os.chmod(self.tmp, default_mode())
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._fh is not None:
            self._fh.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_events(log: EventLog, path: str | Path) -> Path:
    with EventWriter(path) as w:
        w.write(log)
    return Path(path)


def default_mode(base: int = 0o666) -> int:
    """``base`` under the process umask: the mode ``open`` would give (``mkstemp`` gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it is renamed over ``path``, on error removed.

    Readers never see half a file, and a failed write never destroys the previous one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_mode())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to ``path`` through a temp file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes to ``path`` through a temp file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
