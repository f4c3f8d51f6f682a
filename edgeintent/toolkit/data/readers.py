"""Readers of long-format event files: CSV, JSONL and Parquet into a validated :class:`EventLog`.

Readers go batch by batch (CSV and JSONL blocks, Parquet row groups), validate each batch with the
global row number (:class:`~edgeintent.toolkit.data.schema.LogBuilder`), and keep only the compact
typed columns, so memory follows the typed data and not the raw text. Every contract violation, and
every parse error of the underlying reader, raises :class:`~edgeintent.errors.DataError` with one
line naming the file, the line (or row) and the column.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from edgeintent.errors import DataError, shown
from edgeintent.toolkit.data.schema import ALL_FIELDS, COMMON_FIELDS, LONG_SCHEMA, EventLog, LogBuilder

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def detect_format(path: str | Path) -> str:
    """The format of ``path`` from its suffix (csv / parquet / jsonl); any other suffix is a DataError."""
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
    builder = LogBuilder(str(path))
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
    names = _unique_names(path, pf.schema_arrow.names)
    _check_header(path, names)
    columns = [c for c in ALL_FIELDS if c in names]
    row = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
        # Parquet's reader does not check that strings are UTF-8 (a flipped byte passes through)
        bad = _non_utf8_column(batch)
        if bad is not None:
            name, col = bad
            first = next((i for i in range(len(col)) if not _valid_utf8(col, i)), 0)
            raise DataError(f"{path}: row {row + first + 1}: column {name!r} is not valid UTF-8")
        row += batch.num_rows
        yield batch


def _non_utf8_column(batch: pa.RecordBatch) -> tuple[str, pa.Array] | None:
    """The first string column (name, its strings) holding bytes that are not UTF-8, or None."""
    for name, col in zip(batch.schema.names, batch.columns):
        if pa.types.is_dictionary(col.type):
            col = col.dictionary
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            try:
                col.validate(full=True)
            except pa.ArrowInvalid:
                return name, col
    return None


def _valid_utf8(col: pa.Array, i: int) -> bool:
    try:
        col[i].as_py()
        return True
    except UnicodeDecodeError:
        return False


def _csv_batches(path: Path) -> Iterator[pa.RecordBatch]:
    with open(path, "rb") as fh:
        header = fh.readline().decode("utf-8", errors="replace").strip().lstrip("\ufeff")
    if not header:
        raise DataError(f"{path}: empty file (no header, no events)")
    try:
        columns = [h.strip() for h in next(csv.reader([header]))]
    except csv.Error as exc:
        raise DataError(f"{path}: line 1: not a CSV header ({exc})") from None
    names = _unique_names(path, columns)
    _check_header(path, names)
    # the header is parsed here (byte-order marks and spaces stripped) and handed to pyarrow, which
    # skips the file's own header line
    read = pacsv.ReadOptions(block_size=1 << 22, column_names=columns, skip_rows=1)
    convert = pacsv.ConvertOptions(
        column_types={k: v for k, v in ALL_FIELDS.items() if k in names},
        include_columns=[c for c in ALL_FIELDS if c in names],
        null_values=[""],  # so that "nan" is read as NaN and reported as such, not as an empty cell
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    yield from _read_blocks(
        path,
        lambda: pacsv.open_csv(path, read_options=read, convert_options=convert),
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
    _check_json_lines(path)
    # A row of one stream omits the other streams' keys: every row is read with the union schema, and a
    # key missing where it is needed is reported per row ("is empty or missing").
    parse = pajson.ParseOptions(explicit_schema=LONG_SCHEMA, unexpected_field_behavior="ignore")
    for batch in _read_blocks(
        path,
        lambda: pajson.open_json(path, read_options=pajson.ReadOptions(block_size=1 << 22), parse_options=parse),
        _jsonl_message,
    ):
        # pyarrow's JSON reader keeps invalid UTF-8 inside strings (its CSV reader refuses it)
        bad = _non_utf8_column(batch)
        if bad is not None:
            raise DataError(f"{path}: {_first_non_utf8_line(path)}: column {bad[0]!r} is not valid UTF-8")
        yield batch


def _first_non_utf8_line(path: Path) -> str:
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return f"line {line_no}"
    return "a line"


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
                    return f"line {line_no}: column {name!r} has {shown(v)}, expected {typ}"
    return f"not valid JSON lines ({_first_line(exc)})"


def _check_json_lines(path: Path, chunk: int = 1 << 26) -> None:
    """Every non-blank line is one JSON object: it starts with ``{`` and ends with ``}``. pyarrow reads
    JSON values separated by any whitespace, so a line ``null`` would otherwise become an empty row
    (and, first in a block, crash pyarrow 26's reader), and row numbers would stop being line numbers.
    Vectorised over the bytes (CRLF included); only lines with other surrounding whitespace are looked at
    one by one."""
    if path.stat().st_size == 0:
        return
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    n = buf.size
    line_no = 1
    start = 0
    while start < n:
        stop = min(start + chunk, n)
        nl = start + np.flatnonzero(buf[start:stop] == 10)
        if stop < n and not nl.size:  # a line longer than the chunk: look further
            chunk *= 2
            continue
        if stop == n and (not nl.size or nl[-1] != n - 1):
            nl = np.append(nl, n)  # the last line has no newline
        begins = np.concatenate(([start], nl[:-1] + 1))
        ends = nl.copy()  # one past the line's last byte, a CRLF's \r excluded
        crlf = (ends > begins) & (buf[np.maximum(ends - 1, 0)] == 13)
        ends[crlf] -= 1
        nonempty = ends > begins
        first = np.where(nonempty, buf[np.minimum(begins, n - 1)], 123)
        last = np.where(nonempty, buf[np.maximum(ends - 1, 0)], 125)
        suspect = np.flatnonzero((first != 123) | (last != 125))
        for i in suspect:
            text = bytes(buf[begins[i] : nl[i]]).strip()
            if text and not (text.startswith(b"{") and text.endswith(b"}")):
                raise DataError(f"{path}: line {line_no + int(i)}: not a JSON object ({shown(text.decode('utf-8', 'replace'))}); "
                                "expected one JSON object per line")  # fmt: skip
        line_no += len(nl)
        start = int(nl[-1]) + 1
    del buf


def _unique_names(path: Path, columns) -> set[str]:
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise DataError(f"{path}: column {shown(c)} appears twice in the header")
        seen.add(c)
    return seen


def _check_header(path: Path, names: set[str]) -> None:
    missing = [c for c in COMMON_FIELDS if c not in names]
    if missing:
        raise DataError(f"{path}: missing column {missing[0]!r} (every event file needs user_id, ts_ms, stream)")


_CSV_COL = re.compile(r"column #(\d+): .*CSV conversion error to (\w+): invalid value '([^']*)'")


def _csv_message(path: Path, exc: Exception) -> str:
    """pyarrow names the column but not the row: find the first offending line with the csv module."""
    try:
        return _csv_line_message(path, exc)
    except csv.Error as err:
        return f"not a readable CSV file ({err})"


def _csv_line_message(path: Path, exc: Exception) -> str:
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
                return f"line {line_no}: column {name!r} has {shown(row[col_idx])}, expected {typ}"
    return f"column {name!r}: invalid {typ} value {shown(m.group(3))}"


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
