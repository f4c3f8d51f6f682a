"""Adapter for the Alibaba Tianchi *UserBehavior* log (Zhu et al., KDD 2018) -> the **cloud** stream.

The file is a headerless CSV, one behaviour per line::

    user_id, item_id, category_id, behavior_type, timestamp

with ``behavior_type`` in ``{pv, fav, cart, buy}`` and ``timestamp`` in unix seconds. The official file has
about 100M rows, so it is read as a stream of Arrow batches (``pyarrow.csv.open_csv``); only the typed columns
are kept (the behaviour as a dictionary-encoded string), never the raw text.

Mapping to the event contract (``schema.STREAM_FIELDS["cloud"]``):

=============  ==========================================================
``user_id``    ``user_id``
``ts_ms``      ``timestamp * 1000``
``action``     pv -> view, fav -> fav, cart -> cart, buy -> buy
``item_id``    ``item_id``
``category_id`` ``category_id``
``price``      0.0 (the data set has no price; said so in ``meta["notes"]``)
=============  ==========================================================

Users are in China: ``utc_offset_ms`` is +8 h, for hour-of-day features. Decision points are left to the
feature layer's default rule (``decisions=None``).

Any malformed line (wrong number of columns, a non-integer id or timestamp, an empty cell, an unknown
behaviour type, a negative timestamp) raises :class:`~edgeintent.errors.DataError` with one line naming the
file, the line and the column. Timestamps outside the official window are kept and counted.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.compute as pc

from edgeintent.errors import DataError, shown
from edgeintent.toolkit.data.dataset import Dataset
from edgeintent.toolkit.data.schema import EventLog, ReadReport, count_out_of_order, stream_schema

FILE_NAME = "UserBehavior_sample.csv"
COLUMNS: tuple[str, ...] = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
ACTION_MAP: dict[str, str] = {"pv": "view", "fav": "fav", "cart": "cart", "buy": "buy"}
#: China Standard Time, no daylight saving.
UTC_OFFSET_MS = 8 * 3600 * 1000
#: The official window, 2017-11-25 00:00 .. 2017-12-04 00:00 China time (end exclusive), in unix seconds.
WINDOW_START_S = 1511539200
WINDOW_END_S = 1512316800

_INT_COLUMNS = ("user_id", "item_id", "category_id", "timestamp")
_DICT = pa.dictionary(pa.int32(), pa.string())


def resolve_taobao_path(path: str | Path) -> Path:
    """The CSV itself, or the one ``*.csv`` in a folder (``UserBehavior_sample.csv`` preferred)."""
    p = Path(path)
    if p.is_dir():
        if (p / FILE_NAME).is_file():
            return p / FILE_NAME
        found = sorted(q for q in p.glob("*.csv") if q.is_file())
        if len(found) == 1:
            return found[0]
        if not found:
            raise DataError(f"{p}: no {FILE_NAME} (or other .csv file) in this folder")
        raise DataError(f"{p}: several .csv files and no {FILE_NAME}; pass the file itself")
    if not p.exists():
        raise DataError(f"{p}: no such file")
    return p


def load_taobao(path: str | Path, block_size: int = 1 << 24) -> Dataset:
    """Read the UserBehavior CSV (file or its folder) into a cloud-stream :class:`Dataset`."""
    csv_path = resolve_taobao_path(path)
    if csv_path.stat().st_size == 0:
        raise DataError(f"{csv_path}: empty file (no events)")
    cols = _read_columns(csv_path, block_size)
    n = len(cols["user_id"])
    if n == 0:
        raise DataError(f"{csv_path}: no events")

    user = cols["user_id"]
    ts_ms = cols["timestamp"]  # seconds for now; scaled in place below (range checked per batch)
    outside = int(np.count_nonzero((ts_ms < WINDOW_START_S) | (ts_ms >= WINDOW_END_S)))
    ts_ms *= 1000
    codes = _action_codes(cols.pop("behavior_type"))
    per_code = np.bincount(codes, minlength=len(ACTION_MAP))
    counts = {a: int(c) for a, c in zip(ACTION_MAP.values(), per_code)}

    # Stable sort by (user_id, ts_ms) (equal timestamps keep file order), one column at a time so that the
    # peak memory is the typed columns plus one index array, not two copies of the table. The official
    # file is grouped by user, so the common case is "already sorted" and costs one pass.
    same_user = user[1:] == user[:-1]
    ordered = bool(np.all((user[1:] > user[:-1]) | (same_user & (ts_ms[1:] >= ts_ms[:-1]))))
    out_of_order = 0 if ordered else count_out_of_order(user, ts_ms)
    n_users = int(np.count_nonzero(~same_user)) + 1 if ordered else int(np.unique(user).size)
    del same_user
    columns = {
        "user_id": user,
        "ts_ms": ts_ms,
        "codes": codes,
        "item_id": cols["item_id"],
        "category_id": cols["category_id"],
    }
    del cols, user, ts_ms, codes
    if not ordered:
        order = np.lexsort((columns["ts_ms"], columns["user_id"]))
        for k in list(columns):
            columns[k] = columns[k][order]
        del order
    action = pa.DictionaryArray.from_arrays(
        pa.array(columns.pop("codes"), pa.int32()), pa.array(list(ACTION_MAP.values()), pa.string())
    )
    table = pa.table(
        {
            "user_id": pa.array(columns.pop("user_id"), pa.int64()),
            "ts_ms": pa.array(columns.pop("ts_ms"), pa.int64()),
            "action": action,
            "item_id": pa.array(columns.pop("item_id"), pa.int64()),
            "category_id": pa.array(columns.pop("category_id"), pa.int64()),
            "price": pa.array(np.zeros(n, np.float64)),
        },
        schema=stream_schema("cloud"),
    )

    notes = [
        "price is not in the UserBehavior data set: every event has price = 0.0",
        f"{outside} of {n} events have timestamps outside the official window "
        "2017-11-25 .. 2017-12-03 (China time); kept",
    ]
    if out_of_order:
        notes.append(f"{out_of_order} rows had timestamps earlier than the user's previous row; sorted")
    report = ReadReport(
        source=str(csv_path), rows=n, per_stream={"cloud": n}, out_of_order=out_of_order, notes=list(notes)
    )
    log = EventLog({"cloud": table}, report)
    meta = {
        "source": str(csv_path),
        "stream": "cloud",
        "events": n,
        "users": n_users,
        "actions": counts,
        "outside_window": outside,
        "notes": notes,
        "citation": "Zhu et al., Learning Tree-based Deep Model for Recommender Systems, KDD 2018 "
        "(Tianchi UserBehavior)",
    }
    return Dataset(name=f"taobao:{csv_path}", events=log, decisions=None, utc_offset_ms=UTC_OFFSET_MS, meta=meta)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _read_columns(path: Path, block_size: int) -> dict[str, np.ndarray | pa.ChunkedArray]:
    """Stream the file batch by batch; validate each batch; keep typed columns only."""
    convert = pacsv.ConvertOptions(
        column_types={c: (_DICT if c == "behavior_type" else pa.int64()) for c in COLUMNS},
        null_values=[""],
        strings_can_be_null=True,
    )
    read = pacsv.ReadOptions(column_names=list(COLUMNS), block_size=block_size)
    # Empty lines become all-null rows (reported with their line number) instead of silently shifting numbers.
    parse = pacsv.ParseOptions(ignore_empty_lines=False)
    ints: dict[str, list[np.ndarray]] = {c: [] for c in _INT_COLUMNS}
    behaviours: list[pa.Array] = []
    offset = 0  # data rows before this batch; line number = offset + row + 1 (no header)
    try:
        reader = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        for batch in reader:
            _check_batch(path, batch, offset)
            for c in _INT_COLUMNS:
                ints[c].append(batch.column(c).to_numpy())
            behaviours.append(batch.column("behavior_type"))
            offset += batch.num_rows
    except (pa.ArrowInvalid, UnicodeDecodeError):
        # pyarrow names neither the line nor (always) the column: find the first bad line ourselves.
        raise DataError(_first_bad_line(path)) from None
    out: dict[str, np.ndarray | pa.ChunkedArray] = {
        c: (np.concatenate(v) if v else np.empty(0, np.int64)) for c, v in ints.items()
    }
    out["behavior_type"] = pa.chunked_array(behaviours, type=_DICT) if behaviours else pa.chunked_array([], _DICT)
    return out


def _check_batch(path: Path, batch: pa.RecordBatch, offset: int) -> None:
    for c in COLUMNS:
        col = batch.column(c)
        if col.null_count:
            i = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{path}: line {offset + i + 1}: column {c!r} is empty")
    beh = batch.column("behavior_type")
    known = pc.is_in(beh.dictionary, value_set=pa.array(list(ACTION_MAP))).to_numpy(zero_copy_only=False)
    if not known.all():
        ok_idx = pa.array(np.flatnonzero(known).astype(np.int32))
        bad_rows = np.flatnonzero(~pc.is_in(beh.indices, value_set=ok_idx).to_numpy(zero_copy_only=False))
        i = int(bad_rows[0])
        raise DataError(
            f"{path}: line {offset + i + 1}: column 'behavior_type' has {shown(beh[i].as_py())}, "
            f"expected one of {', '.join(ACTION_MAP)}"
        )
    ts = batch.column("timestamp").to_numpy()
    neg = np.flatnonzero(ts < 0)
    if neg.size:
        i = int(neg[0])
        raise DataError(f"{path}: line {offset + i + 1}: column 'timestamp' is negative ({ts[i]})")
    # ts * 1000 must fit in int64
    big = np.flatnonzero(ts > np.iinfo(np.int64).max // 1000)
    if big.size:
        i = int(big[0])
        raise DataError(f"{path}: line {offset + i + 1}: column 'timestamp' is out of range ({ts[i]})")


def _first_bad_line(path: Path) -> str:
    """Slow path, only after pyarrow refused the file: the first line that breaks the format, as one line."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        for line_no, row in enumerate(csv.reader(fh), start=1):
            if len(row) != len(COLUMNS):
                return f"{path}: line {line_no}: expected {len(COLUMNS)} columns ({', '.join(COLUMNS)}), got {len(row)}"
            for name, value in zip(COLUMNS, row):
                if value == "":
                    return f"{path}: line {line_no}: column {name!r} is empty"
                if name in _INT_COLUMNS:
                    try:
                        v = int(value)
                    except ValueError:
                        return f"{path}: line {line_no}: column {name!r} has {shown(value)}, expected an integer"
                    if not -(2**63) <= v < 2**63:
                        return f"{path}: line {line_no}: column {name!r} has {shown(value)}, out of int64 range"
                elif value not in ACTION_MAP:
                    expected = ", ".join(ACTION_MAP)
                    return f"{path}: line {line_no}: column {name!r} has {shown(value)}, expected one of {expected}"
    return f"{path}: not a valid UserBehavior CSV (could not locate the bad line)"


def _action_codes(behaviour: pa.ChunkedArray) -> np.ndarray:
    """pv/fav/cart/buy -> codes 0..3 into ``ACTION_MAP.values()``, via each chunk's dictionary (no per-row strings)."""
    parts = []
    for chunk in behaviour.chunks:
        # position of each dictionary entry in ACTION_MAP (all known: checked per batch)
        pos = pc.index_in(chunk.dictionary, value_set=pa.array(list(ACTION_MAP))).to_numpy(zero_copy_only=False)
        parts.append(pos.astype(np.int32)[chunk.indices.to_numpy(zero_copy_only=False)])
    return np.concatenate(parts) if parts else np.empty(0, np.int32)
