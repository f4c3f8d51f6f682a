"""The event contract: three streams in long format and their typed in-memory form.

A file holds one row per event: ``user_id, ts_ms, stream`` plus the fields of that row's stream
(columns of the other streams are empty for that row). A file may carry any subset of the streams;
the columns of every stream that occurs in it must be present. ``STREAM_FIELDS`` lists each stream's
fields and types, ``FIELD_RANGES`` the numeric ranges checked on read, ``LONG_SCHEMA`` the union
schema of long-format files.

In memory an :class:`EventLog` keeps one Arrow table per stream (``stream_schema``), sorted by
``(user_id, ts_ms)`` (stable, so equal timestamps keep file order). Categorical fields are
dictionary-encoded.

:class:`LogBuilder` validates batches of long-format rows against the contract and accumulates them
into an :class:`EventLog`; the readers and :meth:`EventLog.from_columns` both go through it, so an
in-memory log is checked exactly like a file. Every contract violation raises
:class:`~edgeintent.errors.DataError` with one line naming the source, the row and the column.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edgeintent.errors import DataError, shown

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

#: the last millisecond of the year 9999 (UTC): later timestamps have no calendar date
MAX_TS_MS = 253_402_300_799_999
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


#: Every column a long-format file may carry, with its type (common fields first, then each stream's).
ALL_FIELDS: dict[str, pa.DataType] = _all_fields()
#: The union schema used when writing long-format files.
LONG_SCHEMA = pa.schema([pa.field(n, t) for n, t in ALL_FIELDS.items()])


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
                raise DataError(f"{source}: unknown stream {shown(stream)} (expected one of {', '.join(STREAMS)})")
            n = len(cols["user_id"])
            data = {"user_id": cols["user_id"], "ts_ms": cols["ts_ms"], "stream": [stream] * n}
            for name in STREAM_FIELDS[stream]:
                if name not in cols:
                    raise DataError(f"{source}: stream {stream!r} is missing column {name!r}")
                data[name] = cols[name]
            tables.append(pa.table({k: pa.array(v, type=ALL_FIELDS[k]) for k, v in data.items()}))
        builder = LogBuilder(source)
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


class LogBuilder:
    """Validates batches of long-format rows and accumulates them per stream.

    ``add(table, offset, fmt)`` checks one batch (``offset`` is its first row's 0-based data-row number,
    ``fmt`` picks how rows are named in messages: ``csv`` / ``jsonl`` lines, otherwise rows);
    ``finish()`` returns the sorted :class:`EventLog` with its :class:`ReadReport`.
    """

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
        late = np.flatnonzero(ts > MAX_TS_MS)
        if late.size:
            raise DataError(f"{src}: {self._where(fmt, offset + int(late[0]))}: column 'ts_ms' is {ts[late[0]]}, "
                            f"after the year 9999 (at most {MAX_TS_MS})")  # fmt: skip
        stream = table.column("stream")
        known = pc.is_in(stream, value_set=pa.array(list(STREAMS))).to_numpy(zero_copy_only=False)
        if not known.all():
            row = int(np.flatnonzero(~known)[0])
            raise DataError(
                f"{src}: {self._where(fmt, offset + row)}: unknown stream {shown(stream[row].as_py())} "
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
                        f"{self.source}: {self._where(fmt, offset + i)}: column {name!r} has {shown(v)}, expected {typ}"
                    ) from None
            raise DataError(f"{self.source}: column {name!r} has type {col.type}, expected {typ}") from None
        if pa.types.is_integer(typ) and pa.types.is_floating(col.type):
            vals = col.to_numpy(zero_copy_only=False)
            bad = np.flatnonzero(np.isfinite(vals) & (vals != np.floor(vals)) | ~np.isfinite(vals))
            if bad.size:
                i = int(bad[0])
                raise DataError(
                    f"{self.source}: {self._where(fmt, offset + i)}: column {name!r} has {shown(vals[i])}, expected an integer"
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


def check_decisions(decisions: pa.Table, source: str) -> pa.Table:
    """Decision points as the feature layer needs them: integer ``user_id`` and ``t_ms`` (≥ 0) with no
    missing values, plus any other columns; returned with those two as int64. A DataError otherwise."""
    for name in ("user_id", "t_ms"):
        if name not in decisions.column_names:
            raise DataError(f"{source}: decision points need a {name!r} column (they have {', '.join(decisions.column_names) or 'none'})")
        if decisions.column_names.count(name) > 1:
            raise DataError(f"{source}: column {name!r} appears twice in the decision points")
        col = decisions.column(name)
        if not pa.types.is_integer(col.type):
            raise DataError(f"{source}: decision points' {name!r} has type {col.type}, expected an integer")
        if col.null_count:
            raise DataError(f"{source}: decision points' {name!r} has {col.null_count} missing values")
        try:
            col = col.cast(pa.int64())
        except pa.ArrowInvalid:
            raise DataError(f"{source}: decision points' {name!r} is out of the int64 range") from None
        decisions = decisions.set_column(decisions.column_names.index(name), name, col)
    t = decisions.column("t_ms").to_numpy()
    if t.size and (t.min() < 0 or t.max() > MAX_TS_MS):
        raise DataError(f"{source}: decision points' 't_ms' must lie in [0, {MAX_TS_MS}] (year 9999), got {int(t.min())}…{int(t.max())}")
    return decisions


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
