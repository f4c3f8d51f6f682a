"""Per-event encoding: one stream's events → an ``(n_events, n_features)`` int32 array of ids.

The exact arithmetic of each feature kind (what a phone re-implements):

- ``vocab``: id = 2 + position of the value in ``vocab``, else 1.
- ``bucket``: id = 2 + number of ``edges`` ≤ value (``bisect_right``); a missing value (no previous
  event) is 1.
- ``hash``: id = 2 + fmix64(value + seed mod 2**64) mod ``size`` (MurmurHash3's 64-bit finaliser).
- ``sector``: 8 compass sectors of the displacement (dx, dy) without trigonometry: with T = tan(22.5°),
  |dy| ≤ T·|dx| is east/west, |dx| ≤ T·|dy| is north/south, otherwise the diagonal given by the signs;
  a displacement shorter than ``min_distance`` is 1 ("no movement").
- ``cell``: 2 + 3·row + column of the point on a 3×3 grid of the screen.
- ``hour``: 2 + ((ts_ms + utc_offset_ms) // 3,600,000) mod 24.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from edgeintent.errors import SpecError
from edgeintent.toolkit.features.spec import UNK, Feature, FeatureSpec
from edgeintent.toolkit.features.values import categorical, column, derived_values, jsonable

TAN_22_5 = math.tan(math.pi / 8)


def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser on uint64 (wrapping arithmetic)."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


def _vocab_ids(table: pa.Table, f: Feature) -> np.ndarray:
    codes, values = categorical(table, f.source)
    index = {v: i + 2 for i, v in enumerate(f.vocab)}
    lut = np.array([index.get(jsonable(v), UNK) for v in values] or [UNK], dtype=np.int32)
    return lut[codes] if len(codes) else np.empty(0, np.int32)


def _bucket_ids(values: np.ndarray, f: Feature) -> np.ndarray:
    ids = np.searchsorted(np.asarray(f.edges, dtype=np.float64), values, side="right").astype(np.int32) + 2
    ids[np.isnan(values)] = UNK
    return ids


def _sector_ids(dx: np.ndarray, dy: np.ndarray, f: Feature) -> np.ndarray:
    ax, ay = np.abs(dx), np.abs(dy)
    east_west = ay <= TAN_22_5 * ax
    north_south = ~east_west & (ax <= TAN_22_5 * ay)
    # sectors: 0 E, 1 NE, 2 N, 3 NW, 4 W, 5 SW, 6 S, 7 SE (screen y grows downwards: dy < 0 is north)
    diag = np.where(dx >= 0, np.where(dy < 0, 1, 7), np.where(dy < 0, 3, 5))
    sector = np.where(east_west, np.where(dx >= 0, 0, 4), np.where(north_south, np.where(dy < 0, 2, 6), diag))
    ids = sector.astype(np.int32) + 2
    ids[np.sqrt(dx * dx + dy * dy) < f.min_distance] = UNK
    return ids


def _cell_ids(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    col = np.minimum((x * 3).astype(np.int32), 2)
    row = np.minimum((y * 3).astype(np.int32), 2)
    return (2 + 3 * row + col).astype(np.int32)


def event_ids(stream: str, table: pa.Table, spec: FeatureSpec) -> np.ndarray:
    """(n_events, n_features) int32 ids for one stream's events (sorted by user, ts)."""
    feats = spec.features[stream]
    n = table.num_rows
    out = np.empty((n, len(feats)), dtype=np.int32)
    if n == 0:
        return out
    derived = derived_values(stream, table)
    for j, f in enumerate(feats):
        if f.kind == "vocab":
            out[:, j] = _vocab_ids(table, f)
        elif f.kind == "bucket":
            out[:, j] = _bucket_ids(derived[f.source], f)
        elif f.kind == "hash":
            raw = column(table, f.source).astype(np.int64).view(np.uint64) + np.uint64(f.seed)
            out[:, j] = (fmix64(raw) % np.uint64(f.size)).astype(np.int32) + 2
        elif f.kind == "sector":
            out[:, j] = _sector_ids(derived["dx"], derived["dy"], f)
        elif f.kind == "cell":
            pre = "x0" if f.source == "start" else "x1"
            out[:, j] = _cell_ids(derived[pre], derived["y" + pre[1]])
        elif f.kind == "hour":
            ts = column(table, "ts_ms") + spec.utc_offset_ms
            out[:, j] = ((ts // 3_600_000) % 24).astype(np.int32) + 2
        else:  # pragma: no cover - guarded by Feature.cardinality
            raise SpecError(f"unknown feature kind {f.kind!r}")
    return out
