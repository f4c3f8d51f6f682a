"""Adapter for the HMOG touch data set (Sitová et al., IEEE TIFS 2016) -> the **gesture** stream.

Layout: ``ROOT/SUBJECT/SUBJECT_session_N/{Activity,StrokeEvent,ScrollEvent}.csv`` (headerless). Columns, from
the release's ``data_description.pdf``:

- StrokeEvent (one row per fling): Systime, Begin_time, End_time, ActivityID, Start_action_type, Start_X,
  Start_Y, Start_pressure, Start_size, End_action_type, End_X, End_Y, End_pressure, End_size, Speed_X, Speed_Y,
  Phone_orientation
- ScrollEvent (one row per ``onScroll`` callback, many per finger-down): Systime, BeginTime, CurrentTime,
  ActivityID, ScrollID, Start_action_type, Start_X, Start_Y, Start_pressure, Start_size, Current_action_type,
  Current_X, Current_Y, Current_pressure, Current_size, Distance_X, Distance_Y, Phone_orientation
- Activity (one row per task segment): ID, SubjectID, Session_number, Start_time, End_time,
  Relative_Start_time, Relative_End_time, Gesture_scenario (1 sitting, 2 walking), TaskID, ContentID

Mapping (the simulator uses the same units):

- StrokeEvent row -> ``kind="swipe"``; a scroll trajectory -> one ``kind="scroll"`` from its first and last rows.
  A trajectory is one finger-down: rows sharing (ActivityID, ScrollID, BeginTime). ScrollID alone is not enough:
  in the real files one ScrollID is reused for several finger-downs (different BeginTime).
- Samsung Galaxy S4, 1080 x 1920 px portrait: ``x = X/1080, y = Y/1920`` in portrait, ``x = X/1920,
  y = Y/1080`` in landscape (orientation 1 or 3), clipped to [0, 1]. ``vx, vy`` in screen widths / heights per
  second (Speed_X, Speed_Y for flings; displacement / duration for scrolls). ``duration_ms`` = End_time -
  Begin_time (flings), last CurrentTime - BeginTime (scrolls). ``pressure``, ``size`` at the gesture start.
  ``page="app"`` (the task is the label, never a feature). ``orientation`` as given.
- ``user_id = subject * 100 + session``: a session is one sitting of one task; windows stay inside it.

Timestamps: Begin/End/Current times are milliseconds on the phone's uptime clock, Systime is the wall clock
(unix ms) at logging time. Each session has one offset between the two clocks, taken from Activity.csv
(``Start_time - Relative_Start_time``; the median over the session's activities; if Activity.csv is unusable, the
median of ``Systime - End_time`` over the session's gestures). ``ts_ms = Begin_time + offset`` is the gesture's
start on the wall clock. Using one offset per session keeps gestures in their true relative order (per-row
``Systime`` carries logging jitter of tens of ms and is written at the gesture's *end*).

Malformed rows — wrong column count (truncated or merged lines), unparsable numbers, NaN/inf, impossible values
(unknown orientation or action type, end before begin, coordinates far off-screen, absurd speeds), gestures whose
ActivityID is not in the session's Activity.csv — are skipped and counted per file kind in ``meta``. In the
real release these are the last, half-written lines of StrokeEvent files that were cut at a 4 KiB buffer
boundary (the rest of the session's flings were never written); such sessions (and those with an empty
StrokeEvent.csv) are listed in ``meta["stroke_log_truncated_users"]`` so that statistics that depend on the
swipe count (e.g. the swipe / scroll share) can leave them out.

Decision points: right after every ``stride``-th gesture of each activity (``t_ms = ts_ms + 1``), labelled with
the activity's task (reading / writing / map) and whether the subject was walking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from edgeintent.errors import DataError
from edgeintent.toolkit.data.dataset import Dataset
from edgeintent.toolkit.data.schema import EventLog

SCREEN_W_PX = 1080.0
SCREEN_H_PX = 1920.0
PAGE = "app"

STROKE_COLUMNS: tuple[str, ...] = (
    "systime", "begin_time", "end_time", "activity_id", "start_action", "start_x", "start_y", "start_pressure",
    "start_size", "end_action", "end_x", "end_y", "end_pressure", "end_size", "speed_x", "speed_y", "orientation",
)  # fmt: skip
SCROLL_COLUMNS: tuple[str, ...] = (
    "systime", "begin_time", "current_time", "activity_id", "scroll_id", "start_action", "start_x", "start_y",
    "start_pressure", "start_size", "current_action", "current_x", "current_y", "current_pressure",
    "current_size", "distance_x", "distance_y", "orientation",
)  # fmt: skip
ACTIVITY_COLUMNS: tuple[str, ...] = (
    "activity_id", "subject", "session", "start_time", "end_time", "rel_start_time", "rel_end_time",
    "scenario", "task_id", "content_id",
)  # fmt: skip
FILE_KINDS: dict[str, tuple[str, ...]] = {
    "Activity": ACTIVITY_COLUMNS,
    "StrokeEvent": STROKE_COLUMNS,
    "ScrollEvent": SCROLL_COLUMNS,
}

#: TaskID 1..24 cycles through these six (task, walking) conditions.
TASK_CONDITIONS: tuple[tuple[str, bool], ...] = (
    ("reading", False), ("reading", True), ("writing", False),
    ("writing", True), ("map", False), ("map", True),
)  # fmt: skip
TASKS: tuple[str, ...] = ("reading", "writing", "map")

ORIENTATIONS = (0, 1, 3)  # portrait, rotated 90 deg ccw, rotated 90 deg cw
#: Android MotionEvent actions: a fling starts with DOWN (0) and ends with UP (1); a scroll row is a MOVE (2).
ACTION_DOWN, ACTION_UP, ACTION_MOVE = 0, 1, 2
#: Plausibility limits: beyond these a row is corrupt, not merely noisy (noise within them is clipped).
MAX_OFFSCREEN = 0.25  # in screen units, beyond [0, 1]
MAX_GESTURE_MS = 10 * 60 * 1000
MAX_SPEED_PX_S = 100_000.0
MAX_PRESSURE = 100.0
MAX_SIZE = 100.0
MIN_EPOCH_MS, MAX_EPOCH_MS = 946_684_800_000, 4_102_444_800_000  # 2000-01-01 .. 2100-01-01
#: StrokeEvent files whose size is a multiple of this (or 0) were cut at a buffer flush: flings are missing.
FLUSH_BLOCK_BYTES = 4096
MAX_CLOCK_DRIFT_MS = 60_000  # |Systime - (relative time + session offset)| beyond this: corrupt row

_SESSION_DIR = re.compile(r"^(\d+)_session_(\d+)$")


@dataclass(frozen=True)
class _Session:
    subject: int
    session: int
    path: Path


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def load_hmog(path: str | Path, stride: int = 10) -> Dataset:
    """Read an HMOG root folder (or one subject's folder) into a gesture-stream :class:`Dataset`."""
    if stride < 1:
        raise DataError(f"hmog: stride must be a positive integer, got {stride}")
    root = Path(path)
    sessions = find_sessions(root)
    bad = {k: 0 for k in FILE_KINDS}
    empty_files = {k: 0 for k in FILE_KINDS}
    missing_files = {k: 0 for k in FILE_KINDS}
    dup_activities = 0
    truncated_strokes: list[int] = []
    dropped_trajectories = 0

    act_parts, stroke_parts, scroll_parts = [], [], []
    for s in sessions:
        tables: dict[str, dict[str, np.ndarray]] = {}
        for kind, names in FILE_KINDS.items():
            f = s.path / f"{kind}.csv"
            if not f.is_file():
                missing_files[kind] += 1
                tables[kind] = _empty(names)
                continue
            size = f.stat().st_size
            if kind == "StrokeEvent" and (size == 0 or size % FLUSH_BLOCK_BYTES == 0):
                truncated_strokes.append(s.subject * 100 + s.session)
            if size == 0:
                empty_files[kind] += 1
                tables[kind] = _empty(names)
                continue
            cols, n_bad = read_headerless_csv(f, names)
            bad[kind] += n_bad
            tables[kind] = cols
        act, n_bad, n_dup = _clean_activities(tables["Activity"], s)
        bad["Activity"] += n_bad
        dup_activities += n_dup
        offset = _clock_offset(act, tables["StrokeEvent"], tables["ScrollEvent"])
        if offset is None:
            # nothing usable to anchor the clock: every gesture row of this session is unusable
            bad["StrokeEvent"] += len(tables["StrokeEvent"]["systime"])
            bad["ScrollEvent"] += len(tables["ScrollEvent"]["systime"])
            continue
        act_parts.append(act)
        st, n_bad = _strokes(tables["StrokeEvent"], act, offset, s)
        bad["StrokeEvent"] += n_bad
        stroke_parts.append(st)
        sc, n_bad, n_groups_dropped = _scrolls(tables["ScrollEvent"], act, offset, s)
        bad["ScrollEvent"] += n_bad
        dropped_trajectories += n_groups_dropped
        scroll_parts.append(sc)

    gestures = _concat([*stroke_parts, *scroll_parts])
    if gestures is None or len(gestures["ts_ms"]) == 0:
        raise DataError(f"{root}: no usable gestures in {len(sessions)} HMOG session folder(s)")
    # Order (user, ts, kind, file order) so that EventLog's stable sort keeps this order, and the
    # per-activity gesture rank used for decision points matches the log.
    order = np.lexsort((gestures["_seq"], gestures["_kind_rank"], gestures["ts_ms"], gestures["user_id"]))
    gestures = {k: v[order] for k, v in gestures.items()}
    public = {k: v for k, v in gestures.items() if not k.startswith("_")}
    log = EventLog.from_columns({"gesture": public}, source=str(root))

    activities = _concat(act_parts)
    decisions = _decision_points(gestures, activities, stride)

    notes = [
        f"malformed rows skipped: StrokeEvent {bad['StrokeEvent']}, ScrollEvent {bad['ScrollEvent']}, "
        f"Activity {bad['Activity']}",
        "a gesture's user_id is subject*100 + session; page is the constant 'app' (the task is the label)",
        "coordinates normalised by 1080 x 1920 px (Samsung Galaxy S4; swapped in landscape) and clipped to [0, 1]",
        "scroll trajectories are grouped by (ActivityID, ScrollID, BeginTime): ScrollID alone is reused "
        "across finger-downs in the real files",
        "a fling is the end of a scroll trajectory (same BeginTime), so one finger-down can appear once as "
        "'scroll' and once as 'swipe' with the same ts_ms (scroll first)",
    ]
    if truncated_strokes:
        notes.append(
            f"{len(truncated_strokes)} sessions have a StrokeEvent.csv that is empty or cut at a multiple of "
            f"{FLUSH_BLOCK_BYTES} bytes (the logger's unflushed buffer was lost): their later flings are missing; "
            "their user_ids are in meta['stroke_log_truncated_users']"
        )
    if dup_activities:
        notes.append(f"{dup_activities} duplicate Activity rows (same ID) merged, keeping the latest end time")
    if dropped_trajectories:
        notes.append(f"{dropped_trajectories} scroll trajectories dropped (start point or orientation changed inside)")
    for label, counts in (("empty", empty_files), ("missing", missing_files)):
        if any(counts.values()):
            notes.append(f"{label} files: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    kinds, kind_counts = np.unique(gestures["kind"], return_counts=True)
    meta = {
        "source": str(root),
        "stream": "gesture",
        "subjects": sorted({s.subject for s in sessions}),
        "sessions": len(sessions),
        "events": int(len(gestures["ts_ms"])),
        "kinds": {str(k): int(c) for k, c in zip(kinds, kind_counts)},
        "malformed_rows": dict(bad),
        "duplicate_activity_rows": dup_activities,
        "stroke_log_truncated_users": sorted(truncated_strokes),
        "stride": stride,
        "screen_px": [int(SCREEN_W_PX), int(SCREEN_H_PX)],
        "notes": notes,
        "citation": "Sitová et al., HMOG: New Behavioral Biometric Features for Continuous Authentication of "
        "Smartphone Users, IEEE TIFS 2016",
    }
    return Dataset(name=f"hmog:{root}", events=log, decisions=decisions, utc_offset_ms=0, meta=meta)


def find_sessions(path: Path) -> list[_Session]:
    """Session folders under an HMOG root (SUBJECT/SUBJECT_session_N) or under one subject folder."""
    if not path.exists():
        raise DataError(f"{path}: no such folder")
    if not path.is_dir():
        raise DataError(f"{path}: expected the HMOG folder (SUBJECT/SUBJECT_session_N/...), got a file")

    def sessions_in(d: Path) -> list[_Session]:
        out = []
        for child in d.iterdir():
            m = _SESSION_DIR.match(child.name)
            if m and child.is_dir():
                out.append(_Session(int(m.group(1)), int(m.group(2)), child))
        return out

    found = sessions_in(path)
    if not found:
        for sub in path.iterdir():
            if sub.is_dir() and sub.name.isdigit():
                found.extend(sessions_in(sub))
    if not found:
        raise DataError(f"{path}: no HMOG session folders (expected SUBJECT/SUBJECT_session_N/ or SUBJECT_session_N/)")
    return sorted(found, key=lambda s: (s.subject, s.session))


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def read_headerless_csv(path: Path, names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], int]:
    """Read a headerless numeric CSV as float64 columns; rows of the wrong width or with bad numbers are skipped.

    Returns the columns and the number of skipped rows. (Every HMOG value fits float64 exactly: the largest,
    ActivityID ~2e14, is below 2**53.)
    """
    n_bad = 0

    def on_invalid(row: pacsv.InvalidRow) -> str:
        nonlocal n_bad
        n_bad += 1
        return "skip"

    read = pacsv.ReadOptions(column_names=list(names), use_threads=False)
    parse = pacsv.ParseOptions(invalid_row_handler=on_invalid)
    convert = pacsv.ConvertOptions(column_types={c: pa.float64() for c in names})
    try:
        table = pacsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid:
        # a row of the right width with an unparsable number: re-read as text and coerce column by column
        n_bad = 0
        convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in names})
        try:
            table = pacsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid as exc:
            raise DataError(f"{path}: unreadable CSV ({str(exc).splitlines()[0]})") from None
        cols = {c: _coerce_float(table.column(c)) for c in names}
        ok = np.logical_and.reduce([~np.isnan(v) | _is_nan_text(table.column(c)) for c, v in cols.items()])
        n_bad += int(np.count_nonzero(~ok))
        return {c: v[ok] for c, v in cols.items()}, n_bad
    cols = {c: table.column(c).to_numpy() for c in names}
    # empty cells become nulls -> NaN; they are rejected with the other non-finite values downstream
    return {c: np.asarray(v, dtype=np.float64) for c, v in cols.items()}, n_bad


def _coerce_float(col: pa.ChunkedArray) -> np.ndarray:
    out = np.full(len(col), np.nan)
    for i, v in enumerate(col.to_pylist()):
        try:
            out[i] = float(v) if v not in (None, "") else np.nan
        except ValueError:
            pass
    return out


def _is_nan_text(col: pa.ChunkedArray) -> np.ndarray:
    # literal "nan" cells parsed fine; they are rejected later as non-finite, not here
    return np.array([isinstance(v, str) and v.strip().lower() == "nan" for v in col.to_pylist()])


def _empty(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {c: np.empty(0, np.float64) for c in names}


# ---------------------------------------------------------------------------------------------
# Cleaning and mapping
# ---------------------------------------------------------------------------------------------


def _finite_rows(cols: dict[str, np.ndarray]) -> np.ndarray:
    return np.logical_and.reduce([np.isfinite(v) for v in cols.values()])


def _is_int(v: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(v) & (v == np.round(v))


def _clean_activities(a: dict[str, np.ndarray], s: _Session) -> tuple[dict[str, np.ndarray], int, int]:
    """Valid activity rows of one session, one per ID. Returns (columns, malformed count, duplicate count)."""
    n = len(a["activity_id"])
    ok = _finite_rows(a) if n else np.zeros(0, bool)
    ok &= _is_int(a["activity_id"]) & _is_int(a["task_id"]) & (a["activity_id"] > 0)
    ok &= (a["subject"] == s.subject) & (a["session"] == s.session)
    ok &= (a["task_id"] >= 1) & (a["task_id"] <= 24) & np.isin(a["scenario"], (1, 2))
    ok &= (a["start_time"] <= a["end_time"]) & (a["rel_start_time"] <= a["rel_end_time"])
    ok &= (a["start_time"] >= MIN_EPOCH_MS) & (a["start_time"] <= MAX_EPOCH_MS) & (a["rel_start_time"] >= 0)
    # the scenario column and the TaskID must agree on sitting / walking
    with np.errstate(invalid="ignore"):
        walking_from_task = ((np.nan_to_num(a["task_id"]).astype(np.int64) - 1) % 6) % 2 == 1
    ok &= walking_from_task == (a["scenario"] == 2)
    n_bad = int(np.count_nonzero(~ok))
    a = {k: v[ok] for k, v in a.items()}
    # duplicates: same ID, same start, different end -> keep the latest end (the row logged last)
    order = np.lexsort((a["end_time"], a["activity_id"]))
    a = {k: v[order] for k, v in a.items()}
    ids = a["activity_id"]
    last = np.ones(len(ids), bool)
    if len(ids) > 1:
        last[:-1] = ids[1:] != ids[:-1]
    n_dup = int(np.count_nonzero(~last))
    a = {k: v[last] for k, v in a.items()}
    cond = (a["task_id"].astype(np.int64) - 1) % 6
    a["task_idx"] = cond // 2  # index into TASKS
    a["walking"] = cond % 2 == 1
    a["subject_id"] = np.full(len(ids[last]), s.subject, np.int64)
    a["session_id"] = np.full(len(ids[last]), s.session, np.int64)
    return a, n_bad, n_dup


def _clock_offset(act: dict[str, np.ndarray], st: dict[str, np.ndarray], sc: dict[str, np.ndarray]) -> float | None:
    """Wall clock minus uptime clock for one session, in ms (see the module docstring)."""
    if len(act["start_time"]):
        return float(np.median(act["start_time"] - act["rel_start_time"]))
    diffs = np.concatenate([st["systime"] - st["end_time"], sc["systime"] - sc["current_time"]])
    diffs = diffs[np.isfinite(diffs)]
    return float(np.median(diffs)) if diffs.size else None


def _normalise(x_px: np.ndarray, y_px: np.ndarray, landscape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    wx = np.where(landscape, SCREEN_H_PX, SCREEN_W_PX)
    wy = np.where(landscape, SCREEN_W_PX, SCREEN_H_PX)
    return x_px / wx, y_px / wy


def _onscreen(v: np.ndarray) -> np.ndarray:
    return (v >= -MAX_OFFSCREEN) & (v <= 1.0 + MAX_OFFSCREEN)


def _common_ok(c: dict[str, np.ndarray], rel_end: np.ndarray, act: dict[str, np.ndarray], offset: float) -> np.ndarray:
    """Checks shared by fling and scroll rows."""
    ok = _finite_rows(c) if len(c["systime"]) else np.zeros(0, bool)
    ok &= np.isin(c["orientation"], ORIENTATIONS)
    ok &= (c["begin_time"] >= 0) & (c["begin_time"] <= rel_end) & (rel_end - c["begin_time"] <= MAX_GESTURE_MS)
    ok &= (c["systime"] >= MIN_EPOCH_MS) & (c["systime"] <= MAX_EPOCH_MS)
    with np.errstate(invalid="ignore"):
        ok &= np.abs(c["systime"] - (rel_end + offset)) <= MAX_CLOCK_DRIFT_MS
    ok &= np.isin(c["activity_id"], act["activity_id"])
    ok &= (c["start_pressure"] >= 0) & (c["start_pressure"] <= MAX_PRESSURE)
    ok &= (c["start_size"] >= 0) & (c["start_size"] <= MAX_SIZE)
    return ok


def _strokes(c: dict[str, np.ndarray], act: dict[str, np.ndarray], offset: float, s: _Session) -> tuple[dict, int]:
    n = len(c["systime"])
    landscape = c["orientation"] != 0
    x0, y0 = _normalise(c["start_x"], c["start_y"], landscape)
    x1, y1 = _normalise(c["end_x"], c["end_y"], landscape)
    vx, vy = _normalise(c["speed_x"], c["speed_y"], landscape)
    ok = _common_ok(c, c["end_time"], act, offset)
    ok &= (c["start_action"] == ACTION_DOWN) & (c["end_action"] == ACTION_UP)
    ok &= _onscreen(x0) & _onscreen(y0) & _onscreen(x1) & _onscreen(y1)
    ok &= (np.abs(c["speed_x"]) <= MAX_SPEED_PX_S) & (np.abs(c["speed_y"]) <= MAX_SPEED_PX_S)
    k = ok
    out = _gesture_columns(
        s=s,
        kind="swipe",
        ts_ms=np.round(c["begin_time"][k] + offset),
        x0=x0[k], y0=y0[k], x1=x1[k], y1=y1[k],
        duration_ms=c["end_time"][k] - c["begin_time"][k],
        vx=vx[k], vy=vy[k],
        pressure=c["start_pressure"][k], size=c["start_size"][k],
        orientation=c["orientation"][k],
        activity_id=c["activity_id"][k],
        seq=np.flatnonzero(k),
    )  # fmt: skip
    return out, int(n - np.count_nonzero(ok))


def _scrolls(c: dict[str, np.ndarray], act: dict[str, np.ndarray], offset: float, s: _Session) -> tuple[dict, int, int]:
    """One scroll gesture per finger-down trajectory. Returns (columns, malformed rows, dropped trajectories)."""
    n = len(c["systime"])
    landscape = c["orientation"] != 0
    sx, sy = _normalise(c["start_x"], c["start_y"], landscape)
    cx, cy = _normalise(c["current_x"], c["current_y"], landscape)
    ok = _common_ok(c, c["current_time"], act, offset)
    ok &= (c["start_action"] == ACTION_DOWN) & (c["current_action"] == ACTION_MOVE) & _is_int(c["scroll_id"])
    ok &= _onscreen(sx) & _onscreen(sy) & _onscreen(cx) & _onscreen(cy)
    n_bad = int(n - np.count_nonzero(ok))
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return _gesture_columns(s, "scroll", *([np.empty(0)] * 12), seq=np.empty(0, np.int64)), n_bad, 0
    # group rows by trajectory; within a trajectory order by CurrentTime, then file order
    key_act, key_sid, key_begin = c["activity_id"][idx], c["scroll_id"][idx], c["begin_time"][idx]
    order = np.lexsort((idx, c["current_time"][idx], key_begin, key_sid, key_act))
    idx = idx[order]
    a, sid, b = c["activity_id"][idx], c["scroll_id"][idx], c["begin_time"][idx]
    new = np.ones(idx.size, bool)
    new[1:] = (a[1:] != a[:-1]) | (sid[1:] != sid[:-1]) | (b[1:] != b[:-1])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], idx.size) - 1
    first, last = idx[starts], idx[ends]
    # a trajectory must keep one start point and one orientation; otherwise it is two glued together
    grp = np.cumsum(new) - 1
    same_start = np.ones(starts.size, bool)
    for col in ("start_x", "start_y", "orientation"):
        v = c[col][idx]
        np.logical_and.at(same_start, grp, v == v[starts][grp])
    dropped = int(np.count_nonzero(~same_start))
    first, last = first[same_start], last[same_start]

    x0, y0 = np.clip(sx[first], 0, 1), np.clip(sy[first], 0, 1)
    x1, y1 = np.clip(cx[last], 0, 1), np.clip(cy[last], 0, 1)
    duration = c["current_time"][last] - c["begin_time"][first]
    with np.errstate(divide="ignore", invalid="ignore"):
        secs = duration / 1000.0
        vx = np.where(duration > 0, (x1 - x0) / secs, 0.0)
        vy = np.where(duration > 0, (y1 - y0) / secs, 0.0)
    out = _gesture_columns(
        s=s,
        kind="scroll",
        ts_ms=np.round(c["begin_time"][first] + offset),
        x0=x0, y0=y0, x1=x1, y1=y1,
        duration_ms=duration, vx=vx, vy=vy,
        pressure=c["start_pressure"][first], size=c["start_size"][first],
        orientation=c["orientation"][first],
        activity_id=c["activity_id"][first],
        seq=first,
    )  # fmt: skip
    return out, n_bad, dropped


def _gesture_columns(
    s: _Session,
    kind: str,
    ts_ms: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    x1: np.ndarray,
    y1: np.ndarray,
    duration_ms: np.ndarray,
    vx: np.ndarray,
    vy: np.ndarray,
    pressure: np.ndarray,
    size: np.ndarray,
    orientation: np.ndarray,
    activity_id: np.ndarray,
    seq: np.ndarray,
) -> dict[str, np.ndarray]:
    n = len(ts_ms)
    return {
        "user_id": np.full(n, s.subject * 100 + s.session, np.int64),
        "ts_ms": np.asarray(ts_ms).astype(np.int64),
        "kind": np.full(n, kind, dtype=object),
        "x0": np.clip(x0, 0.0, 1.0),
        "y0": np.clip(y0, 0.0, 1.0),
        "x1": np.clip(x1, 0.0, 1.0),
        "y1": np.clip(y1, 0.0, 1.0),
        "duration_ms": np.asarray(duration_ms, np.float64),
        "vx": np.asarray(vx, np.float64),
        "vy": np.asarray(vy, np.float64),
        "pressure": np.asarray(pressure, np.float64),
        "size": np.asarray(size, np.float64),
        "page": np.full(n, PAGE, dtype=object),
        "orientation": np.asarray(orientation).astype(np.int64),
        "_activity_id": np.asarray(activity_id).astype(np.int64),
        "_kind_rank": np.full(n, 0 if kind == "scroll" else 1, np.int8),
        "_seq": np.asarray(seq, np.int64),
    }


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray] | None:
    parts = [p for p in parts if p]
    if not parts:
        return None
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ---------------------------------------------------------------------------------------------
# Decision points
# ---------------------------------------------------------------------------------------------


def _decision_points(g: dict[str, np.ndarray], act: dict[str, np.ndarray] | None, stride: int) -> pa.Table:
    """Right after every ``stride``-th gesture of each activity; ``g`` is sorted by (user_id, ts_ms, ...)."""
    schema = pa.schema(
        [
            ("user_id", pa.int64()), ("t_ms", pa.int64()), ("subject", pa.int64()), ("session", pa.int64()),
            ("activity_id", pa.int64()), ("task", pa.string()), ("walking", pa.bool_()),
        ]
    )  # fmt: skip
    if act is None or len(act["activity_id"]) == 0:
        return schema.empty_table()
    aid = g["_activity_id"]
    # rank of each gesture inside its activity, in log order
    order = np.argsort(aid, kind="stable")
    sorted_aid = aid[order]
    start = np.ones(aid.size, bool)
    start[1:] = sorted_aid[1:] != sorted_aid[:-1]
    pos = np.arange(aid.size) - np.maximum.accumulate(np.where(start, np.arange(aid.size), 0))
    rank = np.empty(aid.size, np.int64)
    rank[order] = pos
    pick = np.flatnonzero((rank + 1) % stride == 0)
    act_ids = act["activity_id"].astype(np.int64)
    a_order = np.argsort(act_ids)
    where = a_order[np.searchsorted(act_ids, aid[pick], sorter=a_order)]
    table = pa.table(
        {
            "user_id": g["user_id"][pick],
            "t_ms": g["ts_ms"][pick] + 1,
            "subject": act["subject_id"][where],
            "session": act["session_id"][where],
            "activity_id": aid[pick],
            "task": pa.array(np.asarray(TASKS, dtype=object)[act["task_idx"][where].astype(np.int64)], pa.string()),
            "walking": act["walking"][where],
        },
        schema=schema,
    )
    return table.sort_by([("user_id", "ascending"), ("t_ms", "ascending")])
