"""A deliberately simple, per-row re-implementation of the featurizers and the sample builder.

It reads the FeatureSpec and the events row by row in plain Python (dicts, ``bisect``, ``math``)
and shares no code with :mod:`edgeintent.toolkit.features` beyond the spec itself. Tests use it to
prove that the vectorised arrays are right on real data; ``benchmarks/featurize.py`` uses it as the
baseline of the speed ratio. It is also the readable description of what a phone must compute.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict

import numpy as np

from edgeintent.toolkit.data.schema import STREAMS, EventLog
from edgeintent.toolkit.features.spec import BROWSE_VIEWS, LABELS, FeatureSpec, LabelConfig

MASK64 = (1 << 64) - 1
TAN_22_5 = math.tan(math.pi / 8)


def fmix64(x: int) -> int:
    x &= MASK64
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & MASK64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & MASK64
    x ^= x >> 33
    return x


def _rows(log: EventLog, stream: str) -> list[dict]:
    t = log.stream(stream)
    cols = {name: t.column(name).to_pylist() for name in t.column_names}
    return [{k: cols[k][i] for k in cols} for i in range(t.num_rows)]


def event_features(stream: str, row: dict, prev_ts: int | None, spec: FeatureSpec) -> list[int]:
    """Ids of one event, given the timestamp of the same user's previous event in the stream."""
    out = []
    for f in spec.features[stream]:
        if f.kind == "vocab":
            value = row[f.source]
            out.append(f.vocab.index(value) + 2 if value in f.vocab else 1)
        elif f.kind == "bucket":
            if f.source == "gap_ms":
                v = None if prev_ts is None else float(row["ts_ms"] - prev_ts)
            elif f.source == "distance":
                dx, dy = row["x1"] - row["x0"], row["y1"] - row["y0"]
                v = math.sqrt(dx * dx + dy * dy)
            elif f.source == "speed":
                v = math.sqrt(row["vx"] * row["vx"] + row["vy"] * row["vy"])
            elif f.source == "abs_vx":
                v = abs(row["vx"])
            elif f.source == "abs_vy":
                v = abs(row["vy"])
            else:
                v = float(row[f.source])
            out.append(1 if v is None else 2 + bisect.bisect_right(list(f.edges), v))
        elif f.kind == "hash":
            out.append(2 + fmix64(row[f.source] + f.seed) % f.size)
        elif f.kind == "sector":
            dx, dy = row["x1"] - row["x0"], row["y1"] - row["y0"]
            if math.sqrt(dx * dx + dy * dy) < f.min_distance:
                out.append(1)
                continue
            if abs(dy) <= TAN_22_5 * abs(dx):
                sector = 0 if dx >= 0 else 4
            elif abs(dx) <= TAN_22_5 * abs(dy):
                sector = 2 if dy < 0 else 6
            elif dx >= 0:
                sector = 1 if dy < 0 else 7
            else:
                sector = 3 if dy < 0 else 5
            out.append(2 + sector)
        elif f.kind == "cell":
            x, y = (row["x0"], row["y0"]) if f.source == "start" else (row["x1"], row["y1"])
            out.append(2 + 3 * min(int(y * 3), 2) + min(int(x * 3), 2))
        elif f.kind == "hour":
            out.append(2 + ((row["ts_ms"] + spec.utc_offset_ms) // 3_600_000) % 24)
        else:
            raise ValueError(f.kind)
    return out


def featurize_events(log: EventLog, spec: FeatureSpec, stream: str) -> tuple[list[dict], list[list[int]]]:
    """Rows of one stream (sorted by user, ts) and their ids."""
    rows = _rows(log, stream)
    ids = []
    prev_user, prev_ts = None, None
    for row in rows:
        prev = prev_ts if row["user_id"] == prev_user else None
        ids.append(event_features(stream, row, prev, spec))
        prev_user, prev_ts = row["user_id"], row["ts_ms"]
    return rows, ids


def build_samples(log: EventLog, spec: FeatureSpec, decisions: list[tuple[int, int]]) -> dict:
    """Per decision point (user, t): windows, lengths and labels, one Python loop at a time."""
    per_user: dict[str, dict[int, list[tuple[int, list[int]]]]] = {}
    for s in spec.streams:
        rows, ids = featurize_events(log, spec, s)
        by_user: dict[int, list[tuple[int, list[int]]]] = defaultdict(list)
        for row, i in zip(rows, ids):
            by_user[row["user_id"]].append((row["ts_ms"], i))
        per_user[s] = by_user

    buys: dict[int, list[int]] = defaultdict(list)
    carts: dict[int, list[int]] = defaultdict(list)
    views: dict[int, list[int]] = defaultdict(list)
    anything: dict[int, list[int]] = defaultdict(list)
    end = 0
    for s in STREAMS:
        for row in _rows(log, s):
            anything[row["user_id"]].append(row["ts_ms"])
            end = max(end, row["ts_ms"])
            if s == "cloud":
                by_action = {"buy": buys, "cart": carts, "view": views}.get(row["action"])
                if by_action is not None:
                    by_action[row["user_id"]].append(row["ts_ms"])

    lab: LabelConfig = spec.labels
    out: dict = {"x": {s: [] for s in spec.streams}, "length": {s: [] for s in spec.streams}}
    out.update({k: [] for k in LABELS}, observed_rt=[])
    for user, t in decisions:
        for s in spec.streams:
            before = [ids for ts, ids in per_user[s].get(user, []) if ts < t]
            window = before[-spec.max_len[s] :]
            n_feat = len(spec.features[s])
            padded = window + [[0] * n_feat] * (spec.max_len[s] - len(window))
            out["x"][s].append(padded)
            out["length"][s].append(len(window))
        after_buy = [ts - t for ts in buys.get(user, []) if ts > t]
        after_any = [ts - t for ts in anything.get(user, []) if ts > t]
        first_buy = min(after_buy) if after_buy else None
        first_any = min(after_any) if after_any else None
        rt = first_buy is not None and first_buy <= lab.rt_horizon_ms
        out["buy_rt"].append(int(rt))
        out["buy_long"].append(int(first_buy is not None and first_buy <= lab.long_horizon_ms))
        out["stay"].append(int(first_any is not None and first_any <= lab.stay_horizon_ms))
        out["observed_rt"].append(bool(rt or t + lab.rt_horizon_ms <= end))
        first_cart = min((ts - t for ts in carts.get(user, []) if ts > t), default=None)
        engage = rt or (first_cart is not None and first_cart <= lab.rt_horizon_ms)
        n_views = sum(1 for ts in views.get(user, []) if t < ts <= t + lab.rt_horizon_ms)
        out["engage_rt"].append(int(engage))
        out["browse_rt"].append(int(engage or n_views >= BROWSE_VIEWS))
        out["buy_skips_cart_rt"].append(int(rt and (first_cart is None or first_cart > first_buy)))
    return {
        "x": {s: np.asarray(v, dtype=np.int32) for s, v in out["x"].items()},
        "length": {s: np.asarray(v, dtype=np.int32) for s, v in out["length"].items()},
        "labels": {k: np.asarray(out[k], dtype=np.int8) for k in LABELS},
        "observed_rt": np.asarray(out["observed_rt"], dtype=bool),
    }
