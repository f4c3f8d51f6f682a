"""Constants the behaviour simulator is calibrated to, measured on the real data sets.

Pure functions over an :class:`~edgeintent.toolkit.data.schema.EventLog`; ``main()`` loads HMOG (gestures) and the
Taobao sample (cloud behaviours) and prints both as JSON::

    python -m edgeintent.toolkit.data.calibration [--hmog PATH] [--taobao PATH] [--out FILE]

Statistics (the simulator's calibration constants in ``simulator/parameters.py`` cite this command):

- ``gesture_marginals``: per gesture kind, its count and share, and for ``duration_ms``, ``distance``
  (Euclidean, screen units, (x0, y0) -> (x1, y1)) and ``speed`` (``sqrt(vx**2 + vy**2)``, screen units / s):
  ``log_mean`` and ``log_std`` of ``log(value)`` over values > 0 (natural log, population std, ddof=0),
  ``n_positive`` (how many values were > 0), and the 10 / 50 / 90 % quantiles ``q10, q50, q90`` over *all*
  values (numpy's default linear interpolation).
- ``gesture_marginals_portrait``: the same over portrait gestures only (``orientation == 0``).
- ``gesture_shape`` (and ``gesture_shape_portrait``): per kind, orientation shares, corr(log duration,
  log distance), log-normal fit of ``size``.
- ``fling_pairing``: how often a swipe (fling) and a scroll are the same finger-down (same user and start).
- ``cloud_action_mix``: share of each action in the cloud stream.

HMOG sessions whose StrokeEvent log was cut at a buffer boundary (see ``hmog.py``) lost some flings. The
per-kind distributions use every recorded gesture; the kind mix (``kind_share_complete_sessions``) and
``fling_pairing`` use only the sessions with a complete log, since the others would bias the swipe share down.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edgeintent.toolkit.data.schema import EventLog

GESTURE_MEASURES: tuple[str, ...] = ("duration_ms", "distance", "speed")
QUANTILES: tuple[float, ...] = (0.10, 0.50, 0.90)


def _strings(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.cast(pa.string())
    return np.asarray(col.to_pylist(), dtype=object)


def summarize(values: np.ndarray) -> dict[str, float | int | None]:
    """log-normal fit over the positive values plus quantiles over all values (see module docstring)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    pos = v[v > 0]
    logs = np.log(pos)
    out: dict[str, float | int | None] = {
        "log_mean": float(logs.mean()) if pos.size else None,
        "log_std": float(logs.std()) if pos.size else None,
        "n_positive": int(pos.size),
    }
    for q in QUANTILES:
        out[f"q{round(q * 100)}"] = float(np.quantile(v, q)) if v.size else None
    return out


def _gestures(log: EventLog, orientation: int | None) -> pa.Table:
    g = log.stream("gesture")
    if orientation is not None and g.num_rows:
        g = g.filter(pc.equal(g.column("orientation"), orientation))
    return g


def gesture_marginals(log: EventLog, orientation: int | None = None) -> dict:
    """Counts, shares and per-kind duration / distance / speed statistics of the gesture stream.

    ``orientation`` (0 portrait, 1 / 3 landscape) restricts the figures to gestures made in that orientation.
    """
    g = _gestures(log, orientation)
    n = g.num_rows
    kinds = _strings(g.column("kind")) if n else np.empty(0, dtype=object)
    cols = {c: g.column(c).to_numpy() for c in ("x0", "y0", "x1", "y1", "duration_ms", "vx", "vy")}
    measures = {
        "duration_ms": cols["duration_ms"],
        "distance": np.hypot(cols["x1"] - cols["x0"], cols["y1"] - cols["y0"]),
        "speed": np.hypot(cols["vx"], cols["vy"]),
    }
    per_kind: dict[str, dict] = {}
    for kind in sorted(set(kinds.tolist())):
        m = kinds == kind
        entry: dict = {"count": int(m.sum()), "share": float(m.sum() / n)}
        for name in GESTURE_MEASURES:
            entry[name] = summarize(measures[name][m])
        per_kind[kind] = entry
    return {
        "n_events": int(n),
        "share": {k: v["share"] for k, v in per_kind.items()},
        "kinds": per_kind,
    }


def gesture_shape(log: EventLog, orientation: int | None = None) -> dict:
    """Per kind: orientation shares, corr(log duration, log distance), and log-mean / log-std of ``size``.

    The correlation uses gestures with duration > 0 and distance > 0 (Pearson on the logs); the size fit uses
    size > 0 (population std).
    """
    g = _gestures(log, orientation)
    if g.num_rows == 0:
        return {}
    kinds = _strings(g.column("kind"))
    c = {n: g.column(n).to_numpy() for n in ("x0", "y0", "x1", "y1", "duration_ms", "size", "orientation")}
    dist = np.hypot(c["x1"] - c["x0"], c["y1"] - c["y0"])
    out: dict = {}
    for kind in sorted(set(kinds.tolist())):
        m = kinds == kind
        ori, counts = np.unique(c["orientation"][m], return_counts=True)
        both = m & (c["duration_ms"] > 0) & (dist > 0)
        corr = None
        if np.count_nonzero(both) >= 3:
            ld, lx = np.log(c["duration_ms"][both]), np.log(dist[both])
            if ld.std() > 0 and lx.std() > 0:
                corr = float(np.corrcoef(ld, lx)[0, 1])
        size = c["size"][m & (c["size"] > 0)]
        out[kind] = {
            "orientation_share": {str(int(o)): float(k / m.sum()) for o, k in zip(ori, counts)},
            "log_duration_log_distance_corr": corr,
            "size_log_mean": float(np.log(size).mean()) if size.size else None,
            "size_log_std": float(np.log(size).std()) if size.size else None,
        }
    return out


def fling_pairing(log: EventLog) -> dict:
    """How swipes (flings) and scrolls overlap: in HMOG a fling is the end of a scroll trajectory.

    ``swipes_with_scroll``: share of swipes with a scroll of the same user starting at the same ts_ms;
    ``scrolls_ending_in_swipe``: share of scrolls with such a swipe.
    """
    g = log.stream("gesture")
    if g.num_rows == 0:
        return {"swipes_with_scroll": None, "scrolls_ending_in_swipe": None}
    kinds = _strings(g.column("kind"))
    key = np.stack([g.column("user_id").to_numpy(), g.column("ts_ms").to_numpy()], axis=1)
    sw = {tuple(r) for r in key[kinds == "swipe"].tolist()}
    sc = {tuple(r) for r in key[kinds == "scroll"].tolist()}
    both = sw & sc
    n_sw = int(np.count_nonzero(kinds == "swipe"))
    n_sc = int(np.count_nonzero(kinds == "scroll"))
    with_scroll = np.array([tuple(r) in both for r in key[kinds == "swipe"].tolist()], dtype=bool)
    ending = np.array([tuple(r) in both for r in key[kinds == "scroll"].tolist()], dtype=bool)
    return {
        "swipes_with_scroll": float(with_scroll.mean()) if n_sw else None,
        "scrolls_ending_in_swipe": float(ending.mean()) if n_sc else None,
    }


def cloud_action_mix(log: EventLog) -> dict:
    """Share of each action in the cloud stream (plus the event count)."""
    c = log.stream("cloud")
    n = c.num_rows
    actions = _strings(c.column("action")) if n else np.empty(0, dtype=object)
    values, counts = np.unique(actions, return_counts=True) if n else (np.empty(0), np.empty(0))
    return {
        "n_events": int(n),
        "share": {str(a): float(k / n) for a, k in zip(values, counts)},
        "count": {str(a): int(k) for a, k in zip(values, counts)},
    }


def calibrate(hmog: str | Path | None = None, taobao: str | Path | None = None) -> dict:
    """Load the real data sets and compute all calibration figures (``None``: the shared-data default path)."""
    from edgeintent.toolkit.data.hmog import load_hmog
    from edgeintent.toolkit.data.taobao import load_taobao
    from edgeintent.toolkit.data.dataset import DEFAULT_SHARED_DATA

    hmog_path = Path(hmog) if hmog is not None else DEFAULT_SHARED_DATA / "hmog"
    taobao_path = Path(taobao) if taobao is not None else DEFAULT_SHARED_DATA / "taobao_userbehavior"
    out: dict = {}
    ds = load_hmog(hmog_path)
    # Sessions whose StrokeEvent log was cut short are missing flings. The flings they do have are real,
    # so the per-kind distributions use every session; the kind mix and the fling pairing use only the
    # sessions with a complete log (the others would bias the swipe share down).
    truncated = np.asarray(ds.meta.get("stroke_log_truncated_users", []), dtype=np.int64)
    users = ds.events.users()
    complete = ds.events.filter_users(users[~np.isin(users, truncated)])
    out["hmog"] = {
        "source": str(hmog_path),
        "subjects": len(ds.meta.get("subjects", [])),
        "sessions": ds.meta.get("sessions"),
        "sessions_complete_stroke_log": int(users.size - np.isin(users, truncated).sum()),
        "sessions_excluded": "StrokeEvent.csv empty or cut at a 4 KiB buffer boundary (flings missing)",
        "malformed_rows": ds.meta.get("malformed_rows"),
        "gesture_marginals": gesture_marginals(ds.events),
        "gesture_marginals_portrait": gesture_marginals(ds.events, orientation=0),
        "kind_share_complete_sessions": gesture_marginals(complete)["share"],
        "kind_share_note": "use kind_share_complete_sessions for the swipe/scroll mix; gesture_marginals.share "
        "counts every session, including those whose flings were partly lost",
        "fling_pairing": fling_pairing(complete),
        "gesture_shape": gesture_shape(ds.events),
        "gesture_shape_portrait": gesture_shape(ds.events, orientation=0),
    }
    tb = load_taobao(taobao_path)
    out["taobao"] = {
        "source": str(tb.meta.get("source", taobao_path)),
        "users": tb.meta.get("users"),
        "cloud_action_mix": cloud_action_mix(tb.events),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    from edgeintent.errors import EdgeIntentError
    from edgeintent.toolkit.data.dataset import DEFAULT_SHARED_DATA

    parser = argparse.ArgumentParser(
        prog="python -m edgeintent.toolkit.data.calibration",
        description="Print the simulator's calibration figures measured on the real data sets, as JSON.",
    )
    parser.add_argument("--hmog", default=str(DEFAULT_SHARED_DATA / "hmog"), help="HMOG root folder")
    parser.add_argument(
        "--taobao", default=str(DEFAULT_SHARED_DATA / "taobao_userbehavior"), help="UserBehavior CSV or its folder"
    )
    parser.add_argument("--out", default=None, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    try:
        result = calibrate(hmog=args.hmog, taobao=args.taobao)
    except EdgeIntentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {"command": "python -m edgeintent.toolkit.data.calibration", **result}
    text = json.dumps(result, indent=2, sort_keys=False)
    print(text)
    if args.out:
        from edgeintent.io import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
