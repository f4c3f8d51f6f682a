"""Decision points, windows and labels: events + a FeatureSpec → :class:`Samples` (a pure batch function).

A **sample** is a decision point (user, t). Its inputs are the last ``max_len`` events of each
stream with ``ts_ms < t`` (chronological, right-padded, with a length per stream); its labels look
only at events with ``ts_ms > t``: a purchase within the real-time horizon, within the long horizon,
and "stay" (any event within the stay horizon). A label whose horizon runs past the end of the data
is marked unobserved rather than counted as negative.

The conversion funnel (``spec.FUNNEL``) adds cumulative real-time labels: ``engage_rt`` (an add-to-cart
or a purchase), ``browse_rt`` (``BROWSE_VIEWS`` further views, or engaged) beside ``buy_rt``; and
``buy_skips_cart_rt`` marks the rows whose raw events break the funnel's order: a purchase within the
horizon with no add-to-cart between t and it (the cumulative labels count such a row as engaged).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edgeintent.errors import DataError, SpecError
from edgeintent.io import atomic_path
from edgeintent.toolkit.data.schema import STREAM_FIELDS, STREAMS, EventLog, ReadReport, check_decisions
from edgeintent.toolkit.features.encoding import event_ids, fmix64
from edgeintent.toolkit.features.spec import BROWSE_VIEWS, LABELS, FeatureSpec, LabelConfig
from edgeintent.toolkit.features.values import categorical, column

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
    user, t = column(sub, "user_id"), column(sub, "ts_ms") + 1
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
    """Featurize ``log`` at ``decisions`` (default rule if None) under ``spec``; the data end (for the
    ``observed`` flags) is the log's last event."""
    span = log.time_span()
    if decisions is None:
        decisions = default_decision_points(log)
    samples = featurize_log(log, spec, decisions, data_end_ms=span[1] if span else 0, streams=streams)
    if len(samples) == 0:
        raise DataError(f"{log.report.source}: no decision points to featurize")
    return samples


def featurize_batch(
    events: pa.Table,
    spec: FeatureSpec,
    *,
    data_end_ms: int,
    decisions: pa.Table | None = None,
    streams: list[str] | None = None,
) -> pa.Table:
    """Samples (:func:`samples_table` rows, sorted by (user_id, t_ms)) of every user in ``events``.

    ``events`` is a long-format table (:func:`events_table`) holding *all* the events of the users it
    has, in any row order; its ``seq`` column orders events with equal timestamps. ``decisions`` are
    those users' decision points (None: the default rule on these events). ``data_end_ms`` (the last
    event of the whole data set) and ``spec`` are global: nothing is taken from the batch but its users'
    events, so any split of the data by user gives the same rows.
    """
    return samples_table(featurize_log(log_from_events(events), spec, decisions, data_end_ms=data_end_ms,
                                       streams=streams), spec, streams)  # fmt: skip


def featurize_log(
    log: EventLog,
    spec: FeatureSpec,
    decisions: pa.Table | None,
    *,
    data_end_ms: int,
    streams: list[str] | None = None,
) -> Samples:
    """The sample builder behind :func:`build_samples` and :func:`featurize_batch` (no decision
    points, e.g. no cloud events under the default rule, gives no samples)."""
    streams = streams or spec.streams
    missing = [s for s in streams if s not in spec.features]
    if missing:
        raise SpecError(f"the FeatureSpec has no stream {missing[0]!r} (it has {', '.join(spec.streams)})")
    if decisions is None and log.stream("cloud").num_rows == 0:  # the default rule finds no points
        decisions = pa.table({"user_id": pa.array([], pa.int64()), "t_ms": pa.array([], pa.int64())})
    decisions, d_user, d_t = _sorted_decisions(log, decisions)
    if len(d_user) == 0:
        return _no_samples(spec, streams, decisions)
    keys = _keys_for(log, d_user, d_t)
    d_key = keys(d_user, d_t)
    d_user_key = d_key - (d_t - keys.t_lo)  # the same user at the earliest time: rank * span

    x, length, age, ev_keys = {}, {}, {}, {}
    for s in streams:
        table = log.stream(s)
        ids = event_ids(s, table, spec)
        ts = column(table, "ts_ms")
        ev_keys[s] = keys(column(table, "user_id"), ts)
        x[s], length[s], idx, real = _windows(ids, ev_keys[s], d_key, d_user_key, spec.max_len[s])
        age[s] = np.where(real, d_t[:, None] - np.concatenate([[0], ts])[idx], 0)

    labels, observed = _labels(log, spec.labels, keys, d_user, d_t, d_key, data_end_ms, ev_keys)
    extra_cols = [c for c in decisions.column_names if c not in ("user_id", "t_ms")]
    extra = decisions.select(extra_cols) if extra_cols else None
    return Samples(d_user, d_t, x, length, age, labels, observed, extra)


def _no_samples(spec: FeatureSpec, streams: list[str], decisions: pa.Table) -> Samples:
    extra_cols = [c for c in decisions.column_names if c not in ("user_id", "t_ms")]
    i8 = np.empty(0, np.int8)
    return Samples(
        user_id=np.empty(0, np.int64),
        t_ms=np.empty(0, np.int64),
        x={s: np.empty((0, spec.max_len[s], len(spec.features[s])), np.int32) for s in streams},
        length={s: np.empty(0, np.int32) for s in streams},
        age_ms={s: np.empty((0, spec.max_len[s]), np.int64) for s in streams},
        labels={k: i8 for k in LABELS},
        observed={k: np.empty(0, bool) for k in LABELS},
        extra=decisions.select(extra_cols).slice(0, 0) if extra_cols else None,
    )


def label_decisions(
    log: EventLog, decisions: pa.Table | None = None, cfg: LabelConfig | None = None
) -> tuple[pa.Table, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Labels (and whether each is observed) at the decision points, without building windows."""
    decisions, d_user, d_t = _sorted_decisions(log, decisions)
    keys = _keys_for(log, d_user, d_t)
    span = log.time_span()
    labels, observed = _labels(log, cfg or LabelConfig(), keys, d_user, d_t, keys(d_user, d_t), span[1] if span else 0)
    return decisions, labels, observed


def _sorted_decisions(log: EventLog, decisions: pa.Table | None) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Decision points (the default rule if None) sorted by (user, t), with their user and t arrays."""
    if decisions is None:
        decisions = default_decision_points(log)
    else:
        decisions = check_decisions(decisions, "the decision points")
    decisions = decisions.sort_by([("user_id", "ascending"), ("t_ms", "ascending")])
    return decisions, column(decisions, "user_id").astype(np.int64), column(decisions, "t_ms").astype(np.int64)


def _keys_for(log: EventLog, d_user: np.ndarray, d_t: np.ndarray) -> _Keys:
    users = np.unique(np.concatenate([d_user] + [column(log.stream(s), "user_id") for s in STREAMS]))
    ts = np.concatenate([d_t] + [column(log.stream(s), "ts_ms") for s in STREAMS])
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


def label_horizons(cfg: LabelConfig) -> dict[str, int]:
    """Each label's horizon (ms after the decision time): it is observed once its horizon has passed."""
    rt = cfg.rt_horizon_ms
    return {"buy_rt": rt, "buy_long": cfg.long_horizon_ms, "stay": cfg.stay_horizon_ms, "browse_rt": rt,
            "engage_rt": rt, "buy_skips_cart_rt": rt}  # fmt: skip


def observed_flags(label: np.ndarray, d_t: np.ndarray, horizon: int, end: int) -> np.ndarray:
    """A positive is always observed; a negative only if its horizon ends by ``end`` (the data's end)."""
    return (label == 1) | (d_t + horizon <= end)


def refresh_observed(table: pa.Table, spec: FeatureSpec, data_end_ms: int) -> tuple[pa.Table, int | None]:
    """:func:`samples_table` rows featurized with an earlier data end, given the ``observed`` flags of
    ``data_end_ms`` (labels do not depend on the data end, only the flags do); and the smallest data
    end at which a flag of the result would still change (None: none would), so that a caller that
    learns the data end later can tell whether the rows need refreshing at all."""
    t = table.column("t_ms").to_numpy()
    next_change = None
    for k, h in label_horizons(spec.labels).items():
        name = f"obs_{k}"
        if name not in table.column_names:
            continue
        obs = observed_flags(table.column(f"y_{k}").to_numpy(), t, h, data_end_ms)
        table = table.set_column(table.column_names.index(name), name, pa.array(obs, pa.bool_()))
        if (~obs).any():
            first = int((t[~obs] + h).min())
            next_change = first if next_change is None else min(next_change, first)
    return table, next_change


def _labels(
    log: EventLog, cfg: LabelConfig, keys: _Keys, d_user: np.ndarray, d_t: np.ndarray, d_key: np.ndarray, end: int,
    ev_keys: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Labels at the decision points and whether each is observed (its horizon ends by ``end``, the
    data's last event). ``ev_keys``: the streams' event keys where the caller has them already.

    Streams are sorted by (user_id, ts_ms) (as :class:`EventLog` keeps them, and as :func:`_windows` reads
    them), so their keys are sorted. One pass over the cloud events serves every label: one search places each decision
    among them; the user's next buy / add-to-cart after t is read from a next-index array per action
    (a reversed running minimum), the views in (t, t + horizon] from a running count, and the next event
    of any stream is the earliest of each stream's next event."""
    cloud = log.stream("cloud")
    c_user, c_ts = column(cloud, "user_id"), column(cloud, "ts_ms")
    c_key = keys(c_user, c_ts) if ev_keys is None or "cloud" not in ev_keys else ev_keys["cloud"]
    n = len(c_key)
    codes, actions = categorical(cloud, "action") if n else (np.empty(0, np.int64), [])
    pos = np.searchsorted(c_key, d_key, side="right")  # the first cloud event after each decision point

    def is_action(name: str) -> np.ndarray:
        return np.isin(codes, [i for i, a in enumerate(actions) if a == name])

    def dt_at(j: np.ndarray, ts: np.ndarray, user: np.ndarray) -> np.ndarray:
        """Time from t to event ``j`` (inf where ``j`` is past the end or another user's)."""
        if not len(ts):
            return np.full(len(d_key), np.inf)
        jc = np.minimum(j, len(ts) - 1)
        same = (j < len(ts)) & (user[jc] == d_user)
        return np.where(same, (ts[jc] - d_t).astype(np.float64), np.inf)

    def next_of(mask: np.ndarray) -> np.ndarray:
        """Time from t to the user's first cloud event of ``mask`` strictly after t (inf if none)."""
        nxt = np.where(mask, np.arange(n), n)
        nxt = np.append(np.minimum.accumulate(nxt[::-1])[::-1], n)  # index of the first such event at or after i
        return dt_at(nxt[pos], c_ts, c_user)

    def count_within(mask: np.ndarray, horizon: int) -> np.ndarray:
        """Cloud events of ``mask`` of the user in (t, t + horizon] (keys of one user never reach the next user's)."""
        running = np.concatenate([[0], np.cumsum(mask)])
        last = d_key + np.minimum(horizon, keys.span - 1 - (d_t - keys.t_lo))
        return running[np.searchsorted(c_key, last, side="right")] - running[pos]

    dt_buy = next_of(is_action("buy"))
    dt_cart = next_of(is_action("cart"))
    dt_any = dt_at(pos, c_ts, c_user)
    for s in STREAMS:  # the next event of any stream: the earliest of each stream's next event
        table = log.stream(s)
        if s == "cloud" or table.num_rows == 0:
            continue
        user, ts = column(table, "user_id"), column(table, "ts_ms")
        key = keys(user, ts) if ev_keys is None or s not in ev_keys else ev_keys[s]
        dt_any = np.minimum(dt_any, dt_at(np.searchsorted(key, d_key, side="right"), ts, user))
    rt = cfg.rt_horizon_ms
    engage = np.minimum(dt_buy, dt_cart) <= rt
    labels = {
        "buy_rt": (dt_buy <= rt).astype(np.int8),
        "buy_long": (dt_buy <= cfg.long_horizon_ms).astype(np.int8),
        "stay": (dt_any <= cfg.stay_horizon_ms).astype(np.int8),
        "browse_rt": (engage | (count_within(is_action("view"), rt) >= BROWSE_VIEWS)).astype(np.int8),
        "engage_rt": engage.astype(np.int8),
        "buy_skips_cart_rt": ((dt_buy <= rt) & (dt_cart > dt_buy)).astype(np.int8),
    }
    horizon = label_horizons(cfg)
    observed = {k: observed_flags(labels[k], d_t, horizon[k], end) for k in labels}
    return labels, observed


# ---------------------------------------------------------------------------------------------
# Batches: long-format events in, one Arrow row per sample out (what the engines move around)
# ---------------------------------------------------------------------------------------------

#: the tie-break column of :func:`events_table`: the event's position in its log (file order for equal times)
SEQ = "seq"


def events_table(log: EventLog) -> pa.Table:
    """The log in long format (:meth:`EventLog.to_long_table`) plus ``seq``, the tie-break for equal
    timestamps that :func:`featurize_batch` sorts by."""
    table = log.to_long_table()
    return table.append_column(SEQ, pa.array(np.arange(table.num_rows, dtype=np.int64)))


def log_from_events(events: pa.Table) -> EventLog:
    """Per-stream tables sorted by (user_id, ts_ms, seq) from long-format rows in any order."""
    if SEQ not in events.column_names:
        raise DataError(f"featurize_batch needs the tie-break column {SEQ!r} (see events_table)")
    stream = events.column("stream")
    streams = {}
    for s in STREAMS:
        sub = events.filter(pc.equal(stream, s))
        if sub.num_rows:
            sub = sub.take(pc.sort_indices(sub, [("user_id", "ascending"), ("ts_ms", "ascending"), (SEQ, "ascending")]))
            sub = sub.select(["user_id", "ts_ms", *STREAM_FIELDS[s]]).combine_chunks()
            for name, typ in STREAM_FIELDS[s].items():  # categoricals dictionary-encoded, as EventLog keeps them
                if pa.types.is_string(typ) and pa.types.is_string(sub.schema.field(name).type):
                    i = sub.column_names.index(name)
                    sub = sub.set_column(i, name, pc.dictionary_encode(sub.column(name)))
            streams[s] = sub
    return EventLog(streams, ReadReport(source="<batch>", rows=events.num_rows))


def user_bucket(user_id: np.ndarray, n_buckets: int) -> np.ndarray:
    """The bucket of each user: ``fmix64(user_id) mod n_buckets`` (int64), the same on every engine."""
    if n_buckets < 1:
        raise DataError(f"the number of buckets must be positive, got {n_buckets}")
    return (fmix64(np.asarray(user_id, np.int64).view(np.uint64)) % np.uint64(n_buckets)).astype(np.int64)


def samples_table(samples: Samples, spec: FeatureSpec, streams: list[str] | None = None) -> pa.Table:
    """One row per sample: ``user_id, t_ms``; per stream ``x_<s>`` (max_len·n_features int32, row-major),
    ``len_<s>``, ``age_<s>`` (max_len int64); per label ``y_<k>``, ``obs_<k>``; then the decisions' own
    columns."""
    n = len(samples)
    cols: dict[str, pa.Array] = {"user_id": pa.array(samples.user_id, pa.int64()), "t_ms": pa.array(samples.t_ms, pa.int64())}
    for s in streams or list(samples.x):
        max_len, n_feat = spec.max_len[s], len(spec.features[s])
        x = np.ascontiguousarray(samples.x[s], np.int32).reshape(-1)
        cols[f"x_{s}"] = pa.FixedSizeListArray.from_arrays(pa.array(x), max_len * n_feat) if n else pa.array(
            [], pa.list_(pa.int32(), max_len * n_feat))
        cols[f"len_{s}"] = pa.array(samples.length[s], pa.int32())
        age = np.ascontiguousarray(samples.age_ms[s], np.int64).reshape(-1)
        cols[f"age_{s}"] = pa.FixedSizeListArray.from_arrays(pa.array(age), max_len) if n else pa.array(
            [], pa.list_(pa.int64(), max_len))
    for k in samples.labels:
        cols[f"y_{k}"] = pa.array(samples.labels[k], pa.int8())
        cols[f"obs_{k}"] = pa.array(samples.observed[k], pa.bool_())
    table = pa.table(cols)
    if samples.extra is not None:
        for name in samples.extra.column_names:
            table = table.append_column(name, samples.extra.column(name))
    return table


def samples_from_table(table: pa.Table, spec: FeatureSpec) -> Samples:
    """The inverse of :func:`samples_table` (rows kept in the table's order)."""
    shapes = {s: (spec.max_len[s], len(spec.features[s])) for s in spec.streams if f"x_{s}" in table.column_names}
    if not shapes or "user_id" not in table.column_names:
        raise DataError("not a samples table of this FeatureSpec (no user_id or x_<stream> columns)")
    table = table.combine_chunks()
    n = table.num_rows

    def flat(name: str) -> np.ndarray:
        col = table.column(name)
        arr = col.chunk(0) if col.num_chunks else pa.array([], col.type)
        return arr.flatten().to_numpy(zero_copy_only=False)

    labels = [c[2:] for c in table.column_names if c.startswith("y_")]
    known = {"user_id", "t_ms"} | {f"{p}_{s}" for s in shapes for p in ("x", "len", "age")} | {
        f"{p}_{k}" for k in labels for p in ("y", "obs")}
    extra_cols = [c for c in table.column_names if c not in known]
    return Samples(
        user_id=column(table, "user_id").astype(np.int64),
        t_ms=column(table, "t_ms").astype(np.int64),
        x={s: flat(f"x_{s}").astype(np.int32).reshape(n, l, f) for s, (l, f) in shapes.items()},
        length={s: column(table, f"len_{s}").astype(np.int32) for s in shapes},
        age_ms={s: flat(f"age_{s}").astype(np.int64).reshape(n, l) for s, (l, _) in shapes.items()},
        labels={k: column(table, f"y_{k}").astype(np.int8) for k in labels},
        observed={k: table.column(f"obs_{k}").to_numpy(zero_copy_only=False).astype(bool) for k in labels},
        extra=table.select(extra_cols) if extra_cols else None,
    )


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
