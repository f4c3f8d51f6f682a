"""Raw-event golden cases: the raw events behind golden decision points, with the ids Python makes of them.

The golden set (:mod:`~edgeintent.toolkit.golden`) holds model inputs; this holds what comes
before them on a phone: raw events pushed one at a time into a featurizer. A phone-side featurizer
(the C kit, or an app's own port) replays these events and must produce exactly ``x`` / ``len`` /
``age`` of each case. Stored in the bundle as ``golden_events.npz`` (arrays, no pickle):

- ``case`` (kind of each case) and ``t_ms`` (its decision time); every case is its own user;
- per stream ``s``: ``ev_<s>_case`` (the case of each event), ``ev_<s>_ts_ms`` and one
  ``ev_<s>_<field>`` per field of the event contract (string fields as int32 codes into
  ``ev_<s>_<field>_values``), events in push order (by case, then time);
- per stream: ``x_<s>`` (cases, max_len, features) int32, ``len_<s>`` int32, ``age_<s>`` int64:
  what :func:`~edgeintent.toolkit.features.build_samples` makes of those events.

Cases (:func:`build_golden_events`):

- ``recorded``: decision points of the validation users, with the user's last ``max_len + 1``
  events before t (the extra one gives the first windowed event its gap) and up to ``AFTER_T`` events
  at or after t (which must be left out);
- edge cases: ``empty``, ``length1``, ``event_at_t`` (events at t−1, t, t and t+1), ``over_max_len``
  (2·max_len + 5 events), ``long_gaps`` (30 days apart), ``same_ts`` (gap 0), ``unseen_categories``,
  ``bucket_edges_<stream>_<feature>`` (every value exactly on an edge, one case per bucket feature),
  ``cells_and_sectors`` (grid lines, sector borders, ``min_distance`` exactly), ``extremes_early`` / ``extremes_late``
  (huge and zero values, the widest item ids; from ts 0, and up to the last millisecond of the year 9999) and ``hour_boundary`` (local hour and
  midnight boundaries in the spec's UTC offset, and a decision exactly on one).

:func:`expected_windows` recomputes the ids from the raw events alone, so a test may change the
spec and rebuild the expectation.
"""

from __future__ import annotations

import io
import math
import zipfile

import numpy as np
import pyarrow as pa

from edgeintent.errors import BundleError
from edgeintent.toolkit.data.schema import MAX_TS_MS, STREAM_FIELDS, EventLog
from edgeintent.toolkit.features import FeatureSpec, Samples, build_samples
from edgeintent.toolkit.features.spec import DAY_MS

GOLDEN_EVENTS = "golden_events.npz"
#: events at or after t in a recorded case (a featurizer must leave them out)
AFTER_T = 2
HOUR_MS = 3_600_000

_DEFAULTS = {
    "gesture": {"kind": "swipe", "x0": 0.2, "y0": 0.5, "x1": 0.8, "y1": 0.4, "duration_ms": 120.0, "vx": 1.5,
                "vy": -0.3, "pressure": 0.5, "size": 0.1, "page": "home", "orientation": 0},
    "click": {"widget": "buy_button", "page": "home"},
    "cloud": {"action": "view", "item_id": 1, "category_id": 2, "price": 10.0},
}  # fmt: skip


def _windows_of(table: pa.Table, users: np.ndarray, ts: np.ndarray, user: int, t: int, before: int, after: int) -> list[dict]:
    """The user's last ``before`` events with ts < t and first ``after`` with ts ≥ t, as dicts (``users``
    and ``ts``: the table's columns, sorted by user then time)."""
    lo, hi = np.searchsorted(users, user, "left"), np.searchsorted(users, user, "right")
    cut = lo + int(np.searchsorted(ts[lo:hi], t, "left"))
    idx = np.arange(max(lo, cut - before), min(hi, cut + after))
    rows = table.take(pa.array(idx, pa.int64())).to_pylist()
    return [{k: v for k, v in r.items() if k != "user_id"} for r in rows]


def _edge_cases(spec: FeatureSpec, template: dict[str, dict], t0: int) -> list[tuple[str, int, dict[str, list[dict]]]]:
    """(kind, t, stream → events) of every edge case, events in time order."""
    streams = spec.streams
    out: list[tuple[str, int, dict[str, list[dict]]]] = []

    def ev(s: str, ts: int, **kw) -> dict:
        return {**template[s], "ts_ms": int(ts), **kw}

    def every(fn) -> dict[str, list[dict]]:
        return {s: fn(s) for s in streams}

    out.append(("empty", t0, {}))
    out.append(("length1", t0, every(lambda s: [ev(s, t0 - 1000)])))
    out.append(("event_at_t", t0, every(lambda s: [ev(s, t0 - 5000), ev(s, t0 - 1), ev(s, t0), ev(s, t0), ev(s, t0 + 1)])))
    out.append(("over_max_len", t0, every(lambda s: [ev(s, t0 - 1000 * (2 * spec.max_len[s] + 5 - i))
                                                      for i in range(2 * spec.max_len[s] + 5)])))  # fmt: skip
    out.append(("long_gaps", t0, every(lambda s: [ev(s, t0 - 45 * DAY_MS - 30 * DAY_MS * (3 - i)) for i in range(4)])))
    out.append(("same_ts", t0, every(lambda s: [ev(s, t0 - 7000), ev(s, t0 - 7000), ev(s, t0 - 7000), ev(s, t0 - 10)])))
    unseen = {"gesture": {"kind": "__unseen_kind__", "page": "__unseen_page__", "orientation": 7},
              "click": {"widget": "__unseen_widget__", "page": ""},
              "cloud": {"action": "__unseen_action__"}}  # fmt: skip
    out.append(("unseen_categories", t0, every(lambda s: [ev(s, t0 - 2000, **unseen[s]), ev(s, t0 - 1000, **unseen[s])])))

    # values exactly on bucket edges (and one ulp either side), one case per bucket feature
    for s in streams:
        for f in spec.features[s]:
            if f.kind != "bucket" or not f.edges:
                continue
            vals = [v for e in f.edges for v in (math.nextafter(e, -math.inf), e, math.nextafter(e, math.inf))]
            if f.source == "gap_ms":
                gaps = sorted({g for e in f.edges for g in (math.floor(e), math.ceil(e)) if 0 <= g <= DAY_MS})
                ts = t0 - 1000 - sum(gaps)
                events = [ev(s, ts)]
                for g in gaps:
                    ts += g
                    events.append(ev(s, ts))
            else:
                vals = [v for v in vals if v >= 0.0 and (f.source not in ("distance",) or v <= 1.0)]
                events = [ev(s, t0 - 1000 * (len(vals) - i), **_on_value(f.source, v)) for i, v in enumerate(vals)]
            for lo in range(0, len(events), spec.max_len[s]):  # several cases if the edges outnumber max_len
                chunk = events[lo : lo + spec.max_len[s]]
                out.append((f"bucket_edges_{s}_{f.name}", int(chunk[-1]["ts_ms"]) + 1, {s: chunk}))

    if "gesture" in streams:
        md = next(f.min_distance for f in spec.features["gesture"] if f.kind == "sector")
        pts = [(0.0, 0.0, 1 / 3, 2 / 3), (1 / 3, 2 / 3, 1.0, 1.0), (2 / 3, 1 / 3, 0.0, 1.0), (0.5, 0.5, 0.5, 0.5),
               (0.0, 0.5, md, 0.5), (md, 0.5, 0.0, 0.5), (0.5, 0.0, 0.5, md), (0.2, 0.2, 0.2 + md / 2, 0.2),
               (0.1, 0.1, 0.6, 0.6), (0.6, 0.1, 0.1, 0.6), (0.1, 0.6, 0.6, 0.1), (0.6, 0.6, 0.1, 0.1),
               (0.0, 0.0, 1.0, math.tan(math.pi / 8)), (0.0, 0.0, math.tan(math.pi / 8), 1.0),
               (1.0, 1.0, 0.0, 1.0 - math.tan(math.pi / 8)), (0.5, 0.5, 0.5, 0.0)]  # fmt: skip
        pts = pts[: spec.max_len["gesture"]]
        out.append(("cells_and_sectors", t0, {"gesture": [ev("gesture", t0 - 1000 * (len(pts) - i), x0=a, y0=b, x1=c, y1=d)
                                                          for i, (a, b, c, d) in enumerate(pts)]}))  # fmt: skip

    extremes = {
        "gesture": [dict(vx=1e300, vy=-1e300), dict(vx=5e-324, vy=0.0, duration_ms=0.0, pressure=0.0, size=0.0),
                    dict(duration_ms=1e12, pressure=1e6, size=1e6, x0=1.0, y0=1.0, x1=0.0, y1=0.0),
                    dict(orientation=-(2**63)), dict(orientation=2**63 - 1)],
        "click": [dict(widget="ü" * 40), dict(page="x" * 64)],
        "cloud": [dict(item_id=-(2**63), category_id=-1, price=0.0), dict(item_id=2**63 - 1, category_id=0, price=1e15),
                  dict(item_id=0, category_id=2**63 - 1, price=5e-324)],
    }  # fmt: skip
    # from ts 0 (a local time before 1970 under a negative offset) ...
    out.append(("extremes_early", 10 * HOUR_MS, every(lambda s: [ev(s, i * 1000, **kw) for i, kw in enumerate(extremes[s])])))
    # ... to the last millisecond of the year 9999
    out.append(("extremes_late", MAX_TS_MS, every(lambda s: [ev(s, MAX_TS_MS - 10 + i, **kw) for i, kw in enumerate(extremes[s])])))

    local_midnight = (t0 // DAY_MS) * DAY_MS - spec.utc_offset_ms  # a UTC instant that is local midnight
    marks = [local_midnight - HOUR_MS - 1, local_midnight - HOUR_MS, local_midnight - 1, local_midnight,
             local_midnight + 1, local_midnight + HOUR_MS - 1, local_midnight + HOUR_MS]  # fmt: skip
    marks = [m for m in marks if m >= 0][-min(len(marks), min(spec.max_len.values())):]
    out.append(("hour_boundary", local_midnight + HOUR_MS, every(lambda s: [ev(s, m) for m in marks])))
    return out


def _on_value(source: str, v: float) -> dict:
    """Raw fields that give the derived value ``v`` exactly for a bucket feature's ``source``."""
    if source == "distance":
        return {"x0": 0.0, "y0": 0.0, "x1": v, "y1": 0.0}  # sqrt(v·v) is v exactly
    if source == "speed":
        return {"vx": v, "vy": 0.0}
    if source == "abs_vx":
        return {"vx": -v}
    if source == "abs_vy":
        return {"vy": -v}
    return {source: v}  # duration_ms, pressure, size, price


def build_golden_events(events: EventLog, spec: FeatureSpec, samples: Samples, idx: np.ndarray, rows: int,
                        seed: int) -> dict[str, np.ndarray]:  # fmt: skip
    """Raw-event golden cases (see the module docstring): ``rows`` recorded decision points drawn
    from ``samples[idx]`` plus the edge cases, and the ids :func:`build_samples` makes of them."""
    rng = np.random.default_rng(seed + 1)
    pick = np.sort(rng.choice(idx, size=min(rows, len(idx)), replace=False))
    cases: list[tuple[str, int, dict[str, list[dict]]]] = []
    tables = {s: events.stream(s) for s in spec.streams}
    cols = {s: (tab.column("user_id").to_numpy(), tab.column("ts_ms").to_numpy()) for s, tab in tables.items()}
    for i in pick:
        user, t = int(samples.user_id[i]), int(samples.t_ms[i])
        per = {s: _windows_of(tables[s], *cols[s], user, t, spec.max_len[s] + 1, AFTER_T) for s in spec.streams}
        cases.append(("recorded", t, per))
    template = {}
    for s in spec.streams:
        first = next((c[2][s][0] for c in cases if c[2].get(s)), None)
        template[s] = {k: (first or _DEFAULTS[s])[k] for k in STREAM_FIELDS[s]}
    t0 = int(np.median(samples.t_ms[pick])) if len(pick) else 1_700_000_000_000
    cases += _edge_cases(spec, template, max(t0, 400 * DAY_MS))
    arrays = with_expected(case_arrays(spec, cases), spec)
    recorded = np.flatnonzero(arrays["case"] == "recorded")
    for s in spec.streams:  # the recorded cases must give exactly what training saw (a bug otherwise)
        if s in samples.x and not np.array_equal(arrays[f"x_{s}"][recorded], samples.x[s][pick]):
            raise AssertionError(f"raw golden events of stream {s} do not reproduce the training windows")
    return arrays


def with_expected(arrays: dict[str, np.ndarray], spec: FeatureSpec) -> dict[str, np.ndarray]:
    """The raw golden events with ``x_`` / ``len_`` / ``age_`` (re)computed under ``spec``."""
    got = expected_windows(arrays, spec)
    out = {k: v for k, v in arrays.items() if not k.startswith(("x_", "len_", "age_"))}
    for s in spec.streams:
        out[f"x_{s}"], out[f"len_{s}"], out[f"age_{s}"] = got.x[s], got.length[s], got.age_ms[s].astype(np.int64)
    return out


def case_arrays(spec: FeatureSpec, cases: list[tuple[str, int, dict[str, list[dict]]]]) -> dict[str, np.ndarray]:
    """The raw-event arrays (no ids yet) of ``(kind, t_ms, stream → event dicts in time order)`` cases."""
    out: dict[str, np.ndarray] = {"case": np.array([c[0] for c in cases], dtype="U64"),
                                  "t_ms": np.array([c[1] for c in cases], dtype=np.int64)}  # fmt: skip
    for s in spec.streams:
        evs = [(ci, e) for ci, c in enumerate(cases) for e in c[2].get(s, [])]
        out[f"ev_{s}_case"] = np.array([ci for ci, _ in evs], dtype=np.int64)
        out[f"ev_{s}_ts_ms"] = np.array([e["ts_ms"] for _, e in evs], dtype=np.int64)
        for name, typ in STREAM_FIELDS[s].items():
            vals = [e[name] for _, e in evs]
            if pa.types.is_string(typ):  # codes into the distinct values (fixed-width strings per event would be large)
                values, codes = np.unique(np.array(vals, dtype=str), return_inverse=True)
                out[f"ev_{s}_{name}"], out[f"ev_{s}_{name}_values"] = codes.astype(np.int32), values
            else:
                out[f"ev_{s}_{name}"] = np.array(vals, dtype=np.float64 if pa.types.is_floating(typ) else np.int64)
    return out


def event_field(arrays: dict[str, np.ndarray], stream: str, name: str) -> np.ndarray:
    """One field of a stream's raw golden events (strings decoded)."""
    values = arrays.get(f"ev_{stream}_{name}_values")
    col = arrays[f"ev_{stream}_{name}"]
    return col if values is None else values[col]


def event_streams(arrays: dict[str, np.ndarray]) -> list[str]:
    return [s for s in STREAM_FIELDS if f"ev_{s}_case" in arrays]


def expected_windows(arrays: dict[str, np.ndarray], spec: FeatureSpec) -> Samples:
    """What :func:`build_samples` makes of the raw golden events under ``spec`` (one user per case)."""
    columns = {}
    for s in event_streams(arrays):
        if len(arrays[f"ev_{s}_case"]):
            cols = {"user_id": arrays[f"ev_{s}_case"], "ts_ms": arrays[f"ev_{s}_ts_ms"]}
            cols |= {name: event_field(arrays, s, name).tolist() for name in STREAM_FIELDS[s]}
            columns[s] = cols
    log = EventLog.from_columns(columns, source="golden events")
    n = len(arrays["case"])
    decisions = pa.table({"user_id": np.arange(n, dtype=np.int64), "t_ms": arrays["t_ms"]})
    return build_samples(log, spec, decisions, streams=spec.streams)


def has_golden_events(bundle) -> bool:
    """Whether a loaded bundle holds raw golden cases (bundles trained before they were recorded do not)."""
    return GOLDEN_EVENTS in bundle.manifest["files"]


def load_golden_events(bundle) -> dict[str, np.ndarray]:
    """The raw golden cases of a loaded (verified) bundle."""
    if GOLDEN_EVENTS not in bundle.manifest["files"]:
        raise BundleError(f"{bundle.path}: no {GOLDEN_EVENTS} (raw-event golden cases); retrain the bundle with this edgeintent")
    try:
        with np.load(io.BytesIO(bundle.file(GOLDEN_EVENTS).read_bytes()), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise BundleError(f"{bundle.path}: {GOLDEN_EVENTS} is not a readable .npz without pickle ({exc})") from None
