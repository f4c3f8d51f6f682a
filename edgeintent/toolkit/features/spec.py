"""FeatureSpec: every feature of every event as one small integer id, and how the spec is fitted.

The spec is what the phone needs to featurize exactly as training did (versioned JSON in the bundle).
Id 0 is padding, id 1 is "unknown / missing" (an out-of-vocabulary category, a first event with no
previous one), real values start at 2.

Per event (``STREAM_FEATURES`` lists them in order):

- gesture (14): kind, page, orientation, direction sector, distance, duration, speed, |vx|, |vy|,
  start cell, end cell, pressure, size, time since the user's previous gesture
- click (3): widget, page, time since the user's previous click
- cloud (6): action, hashed item, hashed category, price bucket, time since the user's previous
  cloud event, local hour of day

:func:`fit_spec` fits the vocabularies (values seen at least ``min_count`` times, most frequent
first) and the bucket edges (quantiles of the data) on the events it is given (the training users'
only, to avoid leakage); hash sizes, the hash seed and the sector's ``min_distance`` come from
:class:`FitConfig`. The arithmetic that turns values into ids is in
:mod:`~edgeintent.toolkit.features.encoding`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeintent.errors import ConfigError, DataError, SpecError, shown
from edgeintent.io import atomic_write_text
from edgeintent.toolkit.data.schema import STREAMS, EventLog
from edgeintent.toolkit.features.values import categorical, derived_values, jsonable

SPEC_VERSION = 1
#: Id 0 is padding, id 1 unknown / missing; real values start at 2.
PAD, UNK = 0, 1

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
#: the longest window a FeatureSpec may ask for, and the largest local-time offset
MAX_LEN = 100_000
DAY_MS = 24 * 3600 * 1000
#: The labels of a sample (see :mod:`~edgeintent.toolkit.features.windows`).
LABELS = ("buy_rt", "buy_long", "stay", "browse_rt", "engage_rt", "buy_skips_cart_rt")
#: The conversion funnel, upstream first: cumulative labels ("reached step ≥ k" within the real-time
#: horizon), so a row's labels never increase along it. ``browse_rt``: at least :data:`BROWSE_VIEWS`
#: further views, or engaged; ``engage_rt``: an add-to-cart or a purchase; ``buy_rt``: a purchase.
FUNNEL = ("browse_rt", "engage_rt", "buy_rt")
#: Views within the real-time horizon that count as browsing deeper (the funnel's first step).
BROWSE_VIEWS = 3


def is_funnel(tasks) -> bool:
    """Whether ``tasks`` are two or more steps of :data:`FUNNEL`, in its order (upstream first)."""
    tasks = tuple(tasks)
    if len(tasks) < 2 or any(t not in FUNNEL for t in tasks):
        return False
    pos = [FUNNEL.index(t) for t in tasks]
    return all(b > a for a, b in zip(pos, pos[1:]))


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
    def from_json(cls, d: dict, expected: tuple[str, str, str] | None = None) -> Feature:
        """A feature from its JSON, every field checked (a ValueError names the first bad one);
        ``expected`` is the (name, kind, source) the contract puts at this position."""
        if not isinstance(d, dict):
            raise ValueError(f"a feature is a JSON object, not {type(d).__name__}")
        name, kind, source = (d.get(k) for k in ("name", "kind", "source"))
        if expected is not None and (name, kind, source) != expected:
            raise ValueError(f"feature {shown(name)} must be {dict(zip(('name', 'kind', 'source'), expected))}")
        feature = cls(
            name=name,
            kind=kind,
            source=source,
            vocab=tuple(_vocab(d.get("vocab", []))) if kind == "vocab" else (),
            edges=_edges(d.get("edges", [])) if kind == "bucket" else (),
            size=_int(d.get("size", 0), "size", 1 if kind == "hash" else 0, 2**31 - 1),
            seed=_int(d.get("seed", 0), "seed", 0, 2**64 - 1),
            min_distance=_number(d.get("min_distance", 0.0), "min_distance", 0.0),
        )
        if "cardinality" in d and d["cardinality"] != feature.cardinality:
            raise ValueError(f"feature {name!r} says cardinality {shown(d['cardinality'])}, its contents give {feature.cardinality}")
        return feature


def _int(v, what: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{what} must be an integer in [{lo}, {hi}], got {shown(v)}")
    return v


def _number(v, what: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{what} must be a finite number in [{lo}, {hi}], got {shown(v)}")
    return float(v)


def _vocab(values) -> list:
    if not isinstance(values, list):
        raise ValueError(f"a vocab is a list, got {shown(values)}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, str | int):
            raise ValueError(f"vocab entries are strings or integers, got {shown(v)}")
    if len(set(values)) != len(values):
        raise ValueError("a vocab lists a value twice")
    return values


def _edges(values) -> tuple[float, ...]:
    if not isinstance(values, list):
        raise ValueError(f"bucket edges are a list, got {shown(values)}")
    edges = tuple(_number(e, "a bucket edge") for e in values)
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError("bucket edges must be strictly increasing")
    return edges


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
            if not isinstance(d, dict):
                raise ValueError("a FeatureSpec is a JSON object")
            version = d.get("spec_version")
            if version != SPEC_VERSION:
                raise SpecError(f"{source}: FeatureSpec version {shown(version)} is not supported (this edgeintent reads {SPEC_VERSION})")
            streams, max_len = d.get("streams"), d.get("max_len")
            if not isinstance(streams, dict) or not streams:
                raise ValueError("\"streams\" must be a non-empty object")
            features = {}
            for s, feats in streams.items():
                if s not in STREAMS:
                    raise SpecError(f"{source}: unknown stream {shown(s)} in FeatureSpec")
                expected = STREAM_FEATURES[s]
                if not isinstance(feats, list) or len(feats) != len(expected):
                    raise SpecError(f"{source}: stream {s!r} must list features {[name for name, _, _ in expected]}")
                features[s] = tuple(Feature.from_json(f, want) for f, want in zip(feats, expected))
            if not isinstance(max_len, dict) or set(max_len) != set(features):
                raise ValueError(f"\"max_len\" must give a length for each of its streams ({', '.join(features)})")
            labels = d.get("labels", {})
            if not isinstance(labels, dict):
                raise ValueError("\"labels\" must be an object")
            return cls(
                features=features,
                max_len={s: _int(n, f"max_len of {s}", 1, MAX_LEN) for s, n in max_len.items()},
                utc_offset_ms=_int(d.get("utc_offset_ms", 0), "utc_offset_ms", -DAY_MS, DAY_MS),
                labels=LabelConfig(**{k: _int(v, k, 1, 2**53) for k, v in labels.items()}),
                version=version,
            )
        except SpecError:
            raise
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise SpecError(f"{source}: malformed FeatureSpec ({exc})") from None

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
    keep = [(int(-c), jsonable(values[i])) for i, c in enumerate(counts) if c >= min_count]
    keep.sort(key=lambda kv: (kv[0], str(kv[1])))
    return tuple(v for _, v in keep)


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
                codes, values = categorical(table, src)
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
