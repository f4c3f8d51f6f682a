"""FeatureSpec and featurizers: events → per-event integer ids → padded windows per decision point.

Every feature of every event becomes one small integer id, so the phone can featurize with a few
comparisons and table look-ups, exactly as training did. Id 0 is padding, id 1 is "unknown / missing"
(an out-of-vocabulary category, a first event with no previous one), real values start at 2.

Per event (``STREAM_FEATURES`` lists them in order):

- gesture (14): kind, page, orientation, direction sector, distance, duration, speed, |vx|, |vy|,
  start cell, end cell, pressure, size, time since the user's previous gesture
- click (3): widget, page, time since the user's previous click
- cloud (6): action, hashed item, hashed category, price bucket, time since the user's previous
  cloud event, local hour of day

Feature kinds and their exact arithmetic (what a phone re-implements):

- ``vocab``: id = 2 + position of the value in ``vocab`` (values seen at least ``min_count`` times
  when fitted, most frequent first), else 1.
- ``bucket``: id = 2 + number of ``edges`` ≤ value (``bisect_right``); edges are quantiles fitted on
  the data; a missing value (no previous event) is 1.
- ``hash``: id = 2 + fmix64(value + seed mod 2**64) mod ``size`` (MurmurHash3's 64-bit finaliser).
- ``sector``: 8 compass sectors of the displacement (dx, dy) without trigonometry: with T = tan(22.5°),
  |dy| ≤ T·|dx| is east/west, |dx| ≤ T·|dy| is north/south, otherwise the diagonal given by the signs;
  a displacement shorter than ``min_distance`` is 1 ("no movement").
- ``cell``: 2 + 3·row + column of the point on a 3×3 grid of the screen.
- ``hour``: 2 + ((ts_ms + utc_offset_ms) // 3,600,000) mod 24.

A **sample** is a decision point (user, t). Its inputs are the last ``max_len`` events of each
stream with ``ts_ms < t`` (chronological, right-padded, with a length per stream); its labels look
only at events with ``ts_ms > t``: a purchase within the real-time horizon, within the long horizon,
and "stay" (any event within the stay horizon). A label whose horizon runs past the end of the data
is marked unobserved rather than counted as negative.

The vectorised implementation here is what training and export use; ``reference.py`` re-derives
the same arrays row by row, and the tests prove both agree on real data.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edgeintent.errors import ConfigError, DataError, SpecError
from edgeintent.toolkit.data.events import STREAMS, EventLog, atomic_path, atomic_write_text

SPEC_VERSION = 1
PAD, UNK = 0, 1
TAN_22_5 = math.tan(math.pi / 8)

#: (feature name, kind, source field or derived value) per stream, in id-column order.
STREAM_FEATURES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "gesture": (
        ("kind", "vocab", "kind"),
        ("page", "vocab", "page"),
        ("orientation", "vocab", "orientation"),
        ("direction", "sector", "displacement"),
        ("distance", "bucket", "distance"),
        ("duration", "bucket", "duration_ms"),
        ("speed", "bucket", "speed"),
        ("abs_vx", "bucket", "abs_vx"),
        ("abs_vy", "bucket", "abs_vy"),
        ("start_cell", "cell", "start"),
        ("end_cell", "cell", "end"),
        ("pressure", "bucket", "pressure"),
        ("size", "bucket", "size"),
        ("gap", "bucket", "gap_ms"),
    ),
    "click": (
        ("widget", "vocab", "widget"),
        ("page", "vocab", "page"),
        ("gap", "bucket", "gap_ms"),
    ),
    "cloud": (
        ("action", "vocab", "action"),
        ("item", "hash", "item_id"),
        ("category", "hash", "category_id"),
        ("price", "bucket", "price"),
        ("gap", "bucket", "gap_ms"),
        ("hour", "hour", "ts_ms"),
    ),
}
N_FEATURES = {s: len(f) for s, f in STREAM_FEATURES.items()}
LABELS = ("buy_rt", "buy_long", "stay")


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelConfig:
    """Horizons of the labels, in milliseconds after the decision time t."""

    rt_horizon_ms: int = 30 * 60 * 1000
    long_horizon_ms: int = 3 * 24 * 3600 * 1000
    stay_horizon_ms: int = 30 * 60 * 1000

    def __post_init__(self) -> None:
        for name, v in asdict(self).items():
            if v <= 0:
                raise ConfigError(f"{name} must be positive, got {v}")


@dataclass(frozen=True)
class FitConfig:
    """How a FeatureSpec is fitted from data."""

    max_len: tuple[tuple[str, int], ...] = (("gesture", 50), ("click", 20), ("cloud", 20))
    min_count: int = 5
    n_buckets: int = 16
    item_hash_size: int = 4096
    category_hash_size: int = 512
    hash_seed: int = 0x5EED
    min_distance: float = 0.01  # screen units below which a gesture has no direction

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ConfigError(f"min_count must be ≥ 1, got {self.min_count}")
        if not 1 <= self.n_buckets <= 1000:
            raise ConfigError(f"n_buckets must be in 1..1000, got {self.n_buckets}")
        for s, n in self.max_len:
            if s not in STREAMS or n < 1:
                raise ConfigError(f"max_len needs a known stream and a positive length, got {s}={n}")


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # vocab / bucket / hash / sector / cell / hour
    source: str
    vocab: tuple = ()
    edges: tuple[float, ...] = ()
    size: int = 0
    seed: int = 0
    min_distance: float = 0.0

    @property
    def cardinality(self) -> int:
        """Number of distinct ids including padding (0) and unknown (1): the embedding table size."""
        if self.kind == "vocab":
            return 2 + len(self.vocab)
        if self.kind == "bucket":
            return 3 + len(self.edges)
        if self.kind == "hash":
            return 2 + self.size
        if self.kind == "sector":
            return 10
        if self.kind == "cell":
            return 11
        if self.kind == "hour":
            return 26
        raise SpecError(f"unknown feature kind {self.kind!r}")

    def to_json(self) -> dict:
        out: dict = {"name": self.name, "kind": self.kind, "source": self.source, "cardinality": self.cardinality}
        if self.kind == "vocab":
            out["vocab"] = list(self.vocab)
        elif self.kind == "bucket":
            out["edges"] = list(self.edges)
        elif self.kind == "hash":
            out.update(size=self.size, seed=self.seed)
        elif self.kind == "sector":
            out["min_distance"] = self.min_distance
        return out

    @classmethod
    def from_json(cls, d: dict) -> Feature:
        return cls(
            name=d["name"],
            kind=d["kind"],
            source=d["source"],
            vocab=tuple(d.get("vocab", ())),
            edges=tuple(float(e) for e in d.get("edges", ())),
            size=int(d.get("size", 0)),
            seed=int(d.get("seed", 0)),
            min_distance=float(d.get("min_distance", 0.0)),
        )


@dataclass(frozen=True)
class FeatureSpec:
    """Everything the phone needs to featurize exactly as training did (saved as versioned JSON)."""

    features: dict[str, tuple[Feature, ...]]
    max_len: dict[str, int]
    utc_offset_ms: int = 0
    labels: LabelConfig = field(default_factory=LabelConfig)
    version: int = SPEC_VERSION

    @property
    def streams(self) -> list[str]:
        return [s for s in STREAMS if s in self.features]

    def cardinalities(self, stream: str) -> list[int]:
        return [f.cardinality for f in self.features[stream]]

    def to_json(self) -> dict:
        return {
            "spec_version": self.version,
            "utc_offset_ms": self.utc_offset_ms,
            "labels": asdict(self.labels),
            "max_len": dict(self.max_len),
            "streams": {s: [f.to_json() for f in self.features[s]] for s in self.streams},
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n"

    def save(self, path: str | Path) -> Path:
        atomic_write_text(path, self.dumps())
        return Path(path)

    @classmethod
    def from_json(cls, d: dict, source: str = "<json>") -> FeatureSpec:
        try:
            version = int(d["spec_version"])
            if version != SPEC_VERSION:
                raise SpecError(f"{source}: FeatureSpec version {version} is not supported (this edgeintent reads {SPEC_VERSION})")
            features = {}
            for s, feats in d["streams"].items():
                if s not in STREAMS:
                    raise SpecError(f"{source}: unknown stream {s!r} in FeatureSpec")
                parsed = tuple(Feature.from_json(f) for f in feats)
                expected = [name for name, _, _ in STREAM_FEATURES[s]]
                if [f.name for f in parsed] != expected:
                    raise SpecError(f"{source}: stream {s!r} must list features {expected}")
                features[s] = parsed
            return cls(
                features=features,
                max_len={s: int(n) for s, n in d["max_len"].items()},
                utc_offset_ms=int(d.get("utc_offset_ms", 0)),
                labels=LabelConfig(**d.get("labels", {})),
                version=version,
            )
        except SpecError:
            raise
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise SpecError(f"{source}: malformed FeatureSpec ({type(exc).__name__}: {exc})") from None

    @classmethod
    def load(cls, path: str | Path) -> FeatureSpec:
        path = Path(path)
        if not path.exists():
            raise SpecError(f"{path}: no such FeatureSpec file")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(d, dict):
            raise SpecError(f"{path}: a FeatureSpec is a JSON object")
        return cls.from_json(d, source=str(path))


# ---------------------------------------------------------------------------------------------
# Column access and derived values
# ---------------------------------------------------------------------------------------------


def _np(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def _categorical(table: pa.Table, name: str) -> tuple[np.ndarray, list]:
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
    user, ts = _np(table, "user_id"), _np(table, "ts_ms")
    out: dict[str, np.ndarray] = {"gap_ms": gaps_ms(user, ts)}
    if stream == "gesture":
        x0, y0, x1, y1 = (_np(table, c).astype(np.float64) for c in ("x0", "y0", "x1", "y1"))
        vx, vy = _np(table, "vx").astype(np.float64), _np(table, "vy").astype(np.float64)
        dx, dy = x1 - x0, y1 - y0
        out.update(
            dx=dx,
            dy=dy,
            distance=np.sqrt(dx * dx + dy * dy),
            speed=np.sqrt(vx * vx + vy * vy),
            abs_vx=np.abs(vx),
            abs_vy=np.abs(vy),
            duration_ms=_np(table, "duration_ms").astype(np.float64),
            pressure=_np(table, "pressure").astype(np.float64),
            size=_np(table, "size").astype(np.float64),
            x0=x0,
            y0=y0,
            x1=x1,
            y1=y1,
        )
    elif stream == "cloud":
        out["price"] = _np(table, "price").astype(np.float64)
    return out


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------


def quantile_edges(values: np.ndarray, n_buckets: int) -> tuple[float, ...]:
    """Distinct inner quantiles (n_buckets - 1 of them at most) of the finite values."""
    v = values[np.isfinite(values)]
    if v.size == 0 or n_buckets <= 1:
        return ()
    qs = np.quantile(v, np.linspace(0.0, 1.0, n_buckets + 1)[1:-1], method="linear")
    return tuple(float(e) for e in np.unique(qs))


def fit_vocab(codes: np.ndarray, values: list, min_count: int) -> tuple:
    counts = np.bincount(codes, minlength=len(values))
    keep = [(int(-c), _jsonable(values[i])) for i, c in enumerate(counts) if c >= min_count]
    keep.sort(key=lambda kv: (kv[0], str(kv[1])))
    return tuple(v for _, v in keep)


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def fit_spec(
    log: EventLog,
    config: FitConfig | None = None,
    labels: LabelConfig | None = None,
    utc_offset_ms: int = 0,
) -> FeatureSpec:
    """Fit vocabularies and bucket edges on ``log`` (fit on training users only, to avoid leakage)."""
    config = config or FitConfig()
    present = log.present()
    if not present:
        raise DataError(f"{log.report.source}: no events to fit a FeatureSpec on")
    max_len = dict(config.max_len)
    features: dict[str, tuple[Feature, ...]] = {}
    for s in present:
        table = log.stream(s)
        derived = derived_values(s, table)
        feats = []
        for name, kind, src in STREAM_FEATURES[s]:
            if kind == "vocab":
                codes, values = _categorical(table, src)
                feats.append(Feature(name, kind, src, vocab=fit_vocab(codes, values, config.min_count)))
            elif kind == "bucket":
                feats.append(Feature(name, kind, src, edges=quantile_edges(derived[src], config.n_buckets)))
            elif kind == "hash":
                size = config.item_hash_size if src == "item_id" else config.category_hash_size
                feats.append(Feature(name, kind, src, size=size, seed=config.hash_seed))
            elif kind == "sector":
                feats.append(Feature(name, kind, src, min_distance=config.min_distance))
            else:
                feats.append(Feature(name, kind, src))
        features[s] = tuple(feats)
    return FeatureSpec(
        features=features,
        max_len={s: max_len.get(s, 20) for s in present},
        utc_offset_ms=utc_offset_ms,
        labels=labels or LabelConfig(),
    )


# ---------------------------------------------------------------------------------------------
# Per-event transform
# ---------------------------------------------------------------------------------------------


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
    codes, values = _categorical(table, f.source)
    index = {v: i + 2 for i, v in enumerate(f.vocab)}
    lut = np.array([index.get(_jsonable(v), UNK) for v in values] or [UNK], dtype=np.int32)
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
            raw = _np(table, f.source).astype(np.int64).view(np.uint64) + np.uint64(f.seed)
            out[:, j] = (fmix64(raw) % np.uint64(f.size)).astype(np.int32) + 2
        elif f.kind == "sector":
            out[:, j] = _sector_ids(derived["dx"], derived["dy"], f)
        elif f.kind == "cell":
            pre = "x0" if f.source == "start" else "x1"
            out[:, j] = _cell_ids(derived[pre], derived["y" + pre[1]])
        elif f.kind == "hour":
            ts = _np(table, "ts_ms") + spec.utc_offset_ms
            out[:, j] = ((ts // 3_600_000) % 24).astype(np.int32) + 2
        else:  # pragma: no cover - guarded by Feature.cardinality
            raise SpecError(f"unknown feature kind {f.kind!r}")
    return out


# ---------------------------------------------------------------------------------------------
# Decision points, windows and labels
# ---------------------------------------------------------------------------------------------


@dataclass
class Samples:
    """Model inputs and labels for a set of decision points (user, t)."""

    user_id: np.ndarray  # (n,) int64
    t_ms: np.ndarray  # (n,) int64
    x: dict[str, np.ndarray]  # stream → (n, max_len, n_features) int32, right-padded with 0
    length: dict[str, np.ndarray]  # stream → (n,) int32
    age_ms: dict[str, np.ndarray]  # stream → (n, max_len) int64: t − ts of each windowed event (0 for padding)
    labels: dict[str, np.ndarray]  # buy_rt / buy_long / stay → (n,) int8
    observed: dict[str, np.ndarray]  # label → (n,) bool: horizon ends before the data does
    extra: pa.Table | None = None  # source-specific columns of the decision points (offers, tasks, …)

    def __len__(self) -> int:
        return len(self.user_id)

    def mask(self, stream: str) -> np.ndarray:
        n = self.x[stream].shape[1]
        return np.arange(n)[None, :] < self.length[stream][:, None]

    def take(self, idx: np.ndarray) -> Samples:
        return Samples(
            user_id=self.user_id[idx],
            t_ms=self.t_ms[idx],
            x={s: v[idx] for s, v in self.x.items()},
            length={s: v[idx] for s, v in self.length.items()},
            age_ms={s: v[idx] for s, v in self.age_ms.items()},
            labels={k: v[idx] for k, v in self.labels.items()},
            observed={k: v[idx] for k, v in self.observed.items()},
            extra=None if self.extra is None else self.extra.take(pa.array(idx)),
        )


def split_users(users: np.ndarray, valid_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split into (training, validation) users: by user, never by row."""
    perm = np.random.default_rng(seed).permutation(np.sort(np.asarray(users)))
    n_valid = max(1, int(round(len(perm) * valid_share)))
    if n_valid >= len(perm):
        raise DataError(f"need at least 2 users to split into training and validation, got {len(perm)}")
    return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])


def default_decision_points(log: EventLog) -> pa.Table:
    """Right after every non-buy cloud event (t = ts + 1 ms), one per (user, t)."""
    cloud = log.stream("cloud")
    if cloud.num_rows == 0:
        raise DataError(
            f"{log.report.source}: no cloud events, so no default decision points; "
            "give the source's own decision points (e.g. the simulator's sidecar)"
        )
    nonbuy = pc.not_equal(cloud.column("action").cast(pa.string()), "buy")
    sub = cloud.filter(nonbuy)
    user, t = _np(sub, "user_id"), _np(sub, "ts_ms") + 1
    keep = np.ones(len(t), bool)
    keep[1:] = (user[1:] != user[:-1]) | (t[1:] != t[:-1])
    return pa.table({"user_id": user[keep], "t_ms": t[keep]})


class _Keys:
    """Composite sort keys (user rank, time) so a single searchsorted finds per-user positions."""

    def __init__(self, users: np.ndarray, t_lo: int, t_hi: int) -> None:
        self.users = users  # sorted unique
        self.t_lo = t_lo
        self.span = t_hi - t_lo + 2
        if len(users) * self.span >= 2**62:
            raise DataError("time span × number of users too large for one pass; split the data by user")

    def __call__(self, user: np.ndarray, ts: np.ndarray) -> np.ndarray:
        rank = np.searchsorted(self.users, user).astype(np.int64)
        return rank * self.span + (ts.astype(np.int64) - self.t_lo)


def build_samples(
    log: EventLog,
    spec: FeatureSpec,
    decisions: pa.Table | None = None,
    streams: list[str] | None = None,
) -> Samples:
    """Featurize ``log`` at ``decisions`` (default rule if None) under ``spec``."""
    decisions, d_user, d_t = _sorted_decisions(log, decisions)
    streams = streams or spec.streams
    missing = [s for s in streams if s not in spec.features]
    if missing:
        raise SpecError(f"the FeatureSpec has no stream {missing[0]!r} (it has {', '.join(spec.streams)})")

    if len(d_user) == 0:
        raise DataError(f"{log.report.source}: no decision points to featurize")
    keys = _keys_for(log, d_user, d_t)
    d_key = keys(d_user, d_t)
    d_user_key = d_key - (d_t - keys.t_lo)  # the same user at the earliest time: rank * span

    x, length, age = {}, {}, {}
    for s in streams:
        table = log.stream(s)
        ids = event_ids(s, table, spec)
        ts = _np(table, "ts_ms")
        ev_key = keys(_np(table, "user_id"), ts)
        x[s], length[s], idx, real = _windows(ids, ev_key, d_key, d_user_key, spec.max_len[s])
        age[s] = np.where(real, d_t[:, None] - np.concatenate([[0], ts])[idx], 0)

    labels, observed = _labels(log, spec.labels, keys, d_user, d_t, d_key)
    extra_cols = [c for c in decisions.column_names if c not in ("user_id", "t_ms")]
    extra = decisions.select(extra_cols) if extra_cols else None
    return Samples(d_user, d_t, x, length, age, labels, observed, extra)


def label_decisions(
    log: EventLog, decisions: pa.Table | None = None, cfg: LabelConfig | None = None
) -> tuple[pa.Table, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Labels (and whether each is observed) at the decision points, without building windows."""
    decisions, d_user, d_t = _sorted_decisions(log, decisions)
    keys = _keys_for(log, d_user, d_t)
    labels, observed = _labels(log, cfg or LabelConfig(), keys, d_user, d_t, keys(d_user, d_t))
    return decisions, labels, observed


def _sorted_decisions(log: EventLog, decisions: pa.Table | None) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Decision points (the default rule if None) sorted by (user, t), with their user and t arrays."""
    if decisions is None:
        decisions = default_decision_points(log)
    decisions = decisions.sort_by([("user_id", "ascending"), ("t_ms", "ascending")])
    return decisions, _np(decisions, "user_id").astype(np.int64), _np(decisions, "t_ms").astype(np.int64)


def _keys_for(log: EventLog, d_user: np.ndarray, d_t: np.ndarray) -> _Keys:
    users = np.unique(np.concatenate([d_user] + [_np(log.stream(s), "user_id") for s in STREAMS]))
    ts = np.concatenate([d_t] + [_np(log.stream(s), "ts_ms") for s in STREAMS])
    return _Keys(users, int(ts.min()), int(ts.max()))


def _windows(
    ids: np.ndarray, ev_key: np.ndarray, d_key: np.ndarray, d_user_key: np.ndarray, max_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Windows of ids, their lengths, the 1-based event index of each slot (0 = padding), and the
    mask of real slots. ``d_user_key`` is the key of each decision's user at the earliest time."""
    n_feat = ids.shape[1]
    # position of the first event at or after t, and of the user's first event
    hi = np.searchsorted(ev_key, d_key, side="left")
    user_start = np.searchsorted(ev_key, d_user_key, side="left")
    lo = np.maximum(user_start, hi - max_len)
    length = (hi - lo).astype(np.int32)
    padded = np.concatenate([np.zeros((1, n_feat), np.int32), ids])  # row 0 = padding
    steps = np.arange(max_len)
    real = steps[None, :] < length[:, None]
    idx = np.where(real, lo[:, None] + 1 + steps[None, :], 0)
    return np.take(padded, idx, axis=0), length, idx, real


def _labels(
    log: EventLog, cfg: LabelConfig, keys: _Keys, d_user: np.ndarray, d_t: np.ndarray, d_key: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    cloud = log.stream("cloud")
    is_buy = pc.equal(cloud.column("action").cast(pa.string()), "buy") if cloud.num_rows else pa.array([], pa.bool_())
    buys = cloud.filter(is_buy)
    span = log.time_span()
    end = span[1] if span else 0

    def next_after(user: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Time from t to the user's first event strictly after t (inf if none)."""
        key = keys(user, ts)
        order = np.argsort(key, kind="stable")
        key, user, ts = key[order], user[order], ts[order]
        pos = np.searchsorted(key, d_key, side="right")
        ok = pos < len(key)
        pos_c = np.minimum(pos, max(len(key) - 1, 0))
        dt = np.full(len(d_key), np.inf)
        if len(key):
            same = ok & (user[pos_c] == d_user)
            dt[same] = (ts[pos_c][same] - d_t[same]).astype(np.float64)
        return dt

    dt_buy = next_after(_np(buys, "user_id"), _np(buys, "ts_ms"))
    all_u = np.concatenate([_np(log.stream(s), "user_id") for s in STREAMS])
    all_t = np.concatenate([_np(log.stream(s), "ts_ms") for s in STREAMS])
    dt_any = next_after(all_u, all_t)
    labels = {
        "buy_rt": (dt_buy <= cfg.rt_horizon_ms).astype(np.int8),
        "buy_long": (dt_buy <= cfg.long_horizon_ms).astype(np.int8),
        "stay": (dt_any <= cfg.stay_horizon_ms).astype(np.int8),
    }
    # A positive is always observed; a negative only if its horizon ends before the data does.
    observed = {
        "buy_rt": (labels["buy_rt"] == 1) | (d_t + cfg.rt_horizon_ms <= end),
        "buy_long": (labels["buy_long"] == 1) | (d_t + cfg.long_horizon_ms <= end),
        "stay": (labels["stay"] == 1) | (d_t + cfg.stay_horizon_ms <= end),
    }
    return labels, observed


def save_samples(samples: Samples, path: str | Path) -> Path:
    """Write samples as one .npz (temp file, then rename); extra decision columns are not stored."""
    path = Path(path)
    arrays = {"user_id": samples.user_id, "t_ms": samples.t_ms}
    for s in samples.x:
        arrays[f"x_{s}"] = samples.x[s]
        arrays[f"len_{s}"] = samples.length[s]
        arrays[f"age_{s}"] = samples.age_ms[s]
    for k in samples.labels:
        arrays[f"y_{k}"] = samples.labels[k]
        arrays[f"obs_{k}"] = samples.observed[k]
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def load_samples(path: str | Path) -> Samples:
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable samples file ({exc})") from None
    streams = [k[2:] for k in d if k.startswith("x_")]
    labels = [k[2:] for k in d if k.startswith("y_")]
    return Samples(
        user_id=d["user_id"],
        t_ms=d["t_ms"],
        x={s: d[f"x_{s}"] for s in streams},
        length={s: d[f"len_{s}"] for s in streams},
        age_ms={s: d[f"age_{s}"] for s in streams},
        labels={k: d[f"y_{k}"] for k in labels},
        observed={k: d[f"obs_{k}"] for k in labels},
    )
