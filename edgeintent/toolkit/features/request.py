"""The featurizer's share of a request: one realistic window featurized with the bundle's FeatureSpec.

On a phone the app keeps the recent raw events of each stream and, at a decision point, turns them
into the model's ids. ``featurize_request`` is that path: :func:`edgeintent.toolkit.features.encoding.event_ids`
on the last ``max_len + 1`` events of each stream (the extra one only gives the first windowed event
its "time since previous"), then the window, its length and the event ages. A test checks that it
gives exactly what ``build_samples`` gives for the same decision point.

``pick_request`` takes the window from recorded (simulated) data: the decision point whose windows
hold the most events (the full window is the most expensive request).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from edgeintent.errors import DataError


@dataclass(frozen=True)
class Request:
    """One decision point: the raw events a phone would hold, and the time of the decision."""

    user_id: int
    t_ms: int
    tables: dict[str, pa.Table]  # stream → raw events (sorted by ts), at most max_len + 1, all before t
    row: int  # index of the decision point in the featurized samples


def featurize_request(tables: dict[str, pa.Table], spec, t_ms: int) -> dict[str, dict[str, np.ndarray]]:
    """stream → {"x": (1, max_len, F) int32, "length": (1,) int32, "age_ms": (1, max_len) int64}."""
    from edgeintent.toolkit.features.encoding import event_ids

    out = {}
    for s, table in tables.items():
        max_len = spec.max_len[s]
        ids = event_ids(s, table, spec)
        ts = table.column("ts_ms").to_numpy()
        keep = np.flatnonzero(ts < t_ms)[-max_len:]
        n = len(keep)
        x = np.zeros((1, max_len, ids.shape[1]), np.int32)
        age = np.zeros((1, max_len), np.int64)
        x[0, :n] = ids[keep]
        age[0, :n] = t_ms - ts[keep]
        out[s] = {"x": x, "length": np.array([n], np.int32), "age_ms": age}
    return out


def pick_request(events, samples, spec, streams: list[str]) -> Request:
    """The decision point with the fullest windows (first on ties) and its raw events."""
    fill = sum(np.minimum(samples.length[s], spec.max_len[s]) for s in streams)
    if len(fill) == 0:
        raise DataError("no decision points to take a request window from")
    row = int(np.argmax(fill))
    user, t = int(samples.user_id[row]), int(samples.t_ms[row])
    tables = {}
    for s in streams:
        table = events.stream(s)
        u = table.column("user_id").to_numpy()
        ts = table.column("ts_ms").to_numpy()
        idx = np.flatnonzero((u == user) & (ts < t))[-(spec.max_len[s] + 1):]
        tables[s] = table.take(pa.array(idx, pa.int64()))
    return Request(user, t, tables, row)


def write_window(tables: dict[str, pa.Table], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for s, t in tables.items():
        with pa.OSFile(str(folder / f"{s}.arrow"), "wb") as sink, pa.ipc.new_file(sink, t.schema) as w:
            w.write_table(t)


def read_window(folder) -> dict[str, pa.Table]:
    out = {}
    for p in sorted(Path(folder).glob("*.arrow")):
        with pa.memory_map(str(p)) as src:
            out[p.stem] = pa.ipc.open_file(src).read_all()
    return out
