"""What the featurizers read from an event: column values, categorical codes and derived numbers.

Shared by fitting (:mod:`~edgeintent.toolkit.features.spec`: vocabularies from the codes, bucket edges
from the derived values) and encoding (:mod:`~edgeintent.toolkit.features.encoding`: the same values
turned into ids), so both see exactly the same numbers. Tables are one stream's events sorted by
(user_id, ts_ms), as :class:`~edgeintent.toolkit.data.schema.EventLog` keeps them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def column(table: pa.Table, name: str) -> np.ndarray:
    """One column as a numpy array."""
    return table.column(name).to_numpy()


def categorical(table: pa.Table, name: str) -> tuple[np.ndarray, list]:
    """(codes, distinct values) of a column, whatever its encoding (dictionary, string or int)."""
    col = table.column(name)
    if pa.types.is_dictionary(col.type):
        arr = col.unify_dictionaries().combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        if isinstance(arr, pa.ChunkedArray):  # pragma: no cover - pyarrow version differences
            arr = arr.combine_chunks()
        return arr.indices.to_numpy(zero_copy_only=False).astype(np.int64), arr.dictionary.to_pylist()
    values = col.to_numpy()
    uniq, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), uniq.tolist()


def gaps_ms(user: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Time since the same user's previous event (events sorted by user, ts); NaN for a first event."""
    out = np.full(len(ts), np.nan)
    if len(ts) > 1:
        same = user[1:] == user[:-1]
        d = (ts[1:] - ts[:-1]).astype(np.float64)
        out[1:] = np.where(same, d, np.nan)
    return out


def derived_values(stream: str, table: pa.Table) -> dict[str, np.ndarray]:
    """Numeric values the bucket/sector/cell features read, per event (vectorised)."""
    user, ts = column(table, "user_id"), column(table, "ts_ms")
    out: dict[str, np.ndarray] = {"gap_ms": gaps_ms(user, ts)}
    if stream == "gesture":
        x0, y0, x1, y1 = (column(table, c).astype(np.float64) for c in ("x0", "y0", "x1", "y1"))
        vx, vy = column(table, "vx").astype(np.float64), column(table, "vy").astype(np.float64)
        dx, dy = x1 - x0, y1 - y0
        with np.errstate(over="ignore"):  # |v| past 1.3e154 squares to inf: the speed is inf, the top bucket
            speed = np.sqrt(vx * vx + vy * vy)
        out.update(
            dx=dx,
            dy=dy,
            distance=np.sqrt(dx * dx + dy * dy),
            speed=speed,
            abs_vx=np.abs(vx),
            abs_vy=np.abs(vy),
            duration_ms=column(table, "duration_ms").astype(np.float64),
            pressure=column(table, "pressure").astype(np.float64),
            size=column(table, "size").astype(np.float64),
            x0=x0,
            y0=y0,
            x1=x1,
            y1=y1,
        )
    elif stream == "cloud":
        out["price"] = column(table, "price").astype(np.float64)
    return out


def jsonable(v):
    """A numpy scalar as the Python value JSON (and a vocabulary) holds; anything else unchanged."""
    if isinstance(v, np.generic):
        return v.item()
    return v
