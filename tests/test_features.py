from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeintent.errors import SpecError
from edgeintent.toolkit import features as F
from edgeintent.toolkit.features import reference as R
from edgeintent.toolkit.data.schema import EventLog

from .helpers import random_columns, random_log


def _decisions(log: EventLog, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    users = rng.choice(log.users(), n)
    t = rng.integers(0, 3 * 24 * 3600 * 1000, n)
    return pa.table({"user_id": users, "t_ms": t})


def test_feature_counts_match_contract():
    assert F.N_FEATURES == {"gesture": 14, "click": 3, "cloud": 6}
    spec = F.fit_spec(random_log(0))
    assert [len(spec.features[s]) for s in ("gesture", "click", "cloud")] == [14, 3, 6]


def test_spec_round_trips_identically(tmp_path):
    spec = F.fit_spec(random_log(1), F.FitConfig(min_count=3, n_buckets=8), utc_offset_ms=3_600_000)
    path = spec.save(tmp_path / "spec.json")
    back = F.FeatureSpec.load(path)
    assert back == spec
    assert back.dumps() == path.read_text()


def test_spec_min_count_and_oov():
    log = random_log(2)
    spec = F.fit_spec(log, F.FitConfig(min_count=10_000))
    assert spec.features["click"][0].vocab == ()  # nothing reaches the minimum count
    ids = F.event_ids("click", log.stream("click"), spec)
    assert (ids[:, 0] == F.UNK).all()
    spec = F.fit_spec(log, F.FitConfig(min_count=1))
    assert "rare_widget" in spec.features["click"][0].vocab


def test_unknown_category_at_transform_time_is_oov_not_crash():
    spec = F.fit_spec(random_log(3))
    cols = random_columns(4)
    cols["click"]["widget"] = ["never_seen"] * len(cols["click"]["widget"])
    ids = F.event_ids("click", EventLog.from_columns(cols).stream("click"), spec)
    assert (ids[:, 0] == F.UNK).all()


def test_ids_within_cardinality():
    log = random_log(5)
    spec = F.fit_spec(log)
    for s in spec.streams:
        ids = F.event_ids(s, log.stream(s), spec)
        card = np.array(spec.cardinalities(s))
        assert (ids >= 1).all() and (ids < card[None, :]).all()


def test_sectors_and_cells_by_hand():
    spec = F.fit_spec(random_log(6))
    f = spec.features["gesture"][3]
    dx = np.array([0.5, 0.5, 0.0, -0.5, -0.5, -0.5, 0.0, 0.5, 0.001])
    dy = np.array([0.0, -0.5, -0.5, -0.5, 0.0, 0.5, 0.5, 0.5, 0.0])
    assert F._sector_ids(dx, dy, f).tolist() == [2, 3, 4, 5, 6, 7, 8, 9, 1]
    assert F._cell_ids(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.5, 1.0])).tolist() == [2, 6, 10]


def test_vectorized_equals_reference_on_random_multistream():
    log = random_log(7)
    spec = F.fit_spec(log, F.FitConfig(max_len=(("gesture", 9), ("click", 4), ("cloud", 5)), min_count=2))
    dec = _decisions(log, 300, 7)
    samples = F.build_samples(log, spec, dec)
    ref = R.build_samples(log, spec, list(zip(samples.user_id.tolist(), samples.t_ms.tolist())))
    for s in spec.streams:
        np.testing.assert_array_equal(samples.x[s], ref["x"][s])
        np.testing.assert_array_equal(samples.length[s], ref["length"][s])
    for k in F.LABELS:
        np.testing.assert_array_equal(samples.labels[k], ref["labels"][k])
    np.testing.assert_array_equal(samples.observed["buy_rt"], ref["observed_rt"])
    assert samples.labels["buy_rt"].sum() > 0 and samples.labels["stay"].sum() > 0


@pytest.mark.parametrize("drop", [(), ("cloud",), ("gesture", "click")])
def test_every_label_equals_the_reference_whichever_streams_have_events(drop):
    """All six labels (the funnel's too) against the per-row reference, with decision points between and
    after events; without cloud events every cloud label is 0 and "stay" reads the other streams."""
    cols = {s: c for s, c in random_columns(5).items() if s not in drop}
    log = EventLog.from_columns(cols)
    spec = F.fit_spec(random_log(5))
    dec = _decisions(log, 400, 5)
    samples = F.build_samples(log, spec, dec)
    ref = R.build_samples(log, spec, list(zip(samples.user_id.tolist(), samples.t_ms.tolist())))
    for k in F.LABELS:
        np.testing.assert_array_equal(samples.labels[k], ref["labels"][k], err_msg=k)
    _, labels, _ = F.label_decisions(log, dec)  # the labels alone, without windows
    for k in F.LABELS:
        np.testing.assert_array_equal(labels[k], samples.labels[k], err_msg=k)
    assert samples.labels["stay"].sum() > 0
    if "cloud" in drop:
        assert not any(samples.labels[k].any() for k in F.LABELS if k != "stay")
    else:
        assert samples.labels["browse_rt"].sum() > 0


def test_huge_velocities_land_in_the_top_speed_bucket_without_a_warning():
    """|vx| = 1e300 squares to inf: the speed is inf in both featurizers, with no RuntimeWarning."""
    import warnings

    cols = random_columns(3)
    g = cols["gesture"]
    g["vx"][:5] = [1e300, -1e300, 1e200, 1.7e308, 0.0]
    g["vy"][:5] = [1e300, 0.0, -1e160, 1.7e308, 1e155]
    log = EventLog.from_columns(cols)
    spec = F.fit_spec(log)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids = F.event_ids("gesture", log.stream("gesture"), spec)
    _, ref = R.featurize_events(log, spec, "gesture")
    np.testing.assert_array_equal(ids, np.asarray(ref))


@pytest.mark.realdata
def test_vectorized_equals_reference_on_taobao(taobao_csv):
    from edgeintent.toolkit.data.taobao import load_taobao

    ds = load_taobao(taobao_csv)
    spec = F.fit_spec(ds.events, utc_offset_ms=ds.utc_offset_ms)
    samples = F.build_samples(ds.events, spec)
    assert len(samples) > 50_000
    _, ids = R.featurize_events(ds.events, spec, "cloud")
    np.testing.assert_array_equal(F.event_ids("cloud", ds.events.stream("cloud"), spec), np.asarray(ids))
    sub = np.arange(0, len(samples), 5)
    ref = R.build_samples(ds.events, spec, list(zip(samples.user_id[sub].tolist(), samples.t_ms[sub].tolist())))
    np.testing.assert_array_equal(samples.x["cloud"][sub], ref["x"]["cloud"])
    np.testing.assert_array_equal(samples.length["cloud"][sub], ref["length"]["cloud"])
    for k in F.LABELS:
        np.testing.assert_array_equal(samples.labels[k][sub], ref["labels"][k])
    # the contract's default Taobao labels have sane rates
    assert 0.02 < samples.labels["buy_rt"].mean() < 0.15


@pytest.mark.realdata
def test_vectorized_equals_reference_on_hmog(hmog_dir):
    from edgeintent.toolkit.data.hmog import load_hmog

    ds = load_hmog(hmog_dir)
    spec = F.fit_spec(ds.events)
    _, ids = R.featurize_events(ds.events, spec, "gesture")
    np.testing.assert_array_equal(F.event_ids("gesture", ds.events.stream("gesture"), spec), np.asarray(ids))
    dec = ds.decisions.slice(0, 2000)
    samples = F.build_samples(ds.events, spec, dec)
    ref = R.build_samples(ds.events, spec, list(zip(samples.user_id.tolist(), samples.t_ms.tolist())))
    np.testing.assert_array_equal(samples.x["gesture"], ref["x"]["gesture"])
    assert (samples.length["gesture"] > 0).all()


def _perturb(cols: dict, user: int, t: int, after: bool, rng: np.random.Generator) -> dict:
    """Change every event of ``user`` on one side of t (values, and add / drop events), keeping the side."""
    out = {}
    for s, c in cols.items():
        u, ts = np.asarray(c["user_id"]), np.asarray(c["ts_ms"])
        side = (ts >= t) if after else (ts < t)
        hit = (u == user) & side
        new = {k: np.asarray(v).copy() for k, v in c.items()}
        if s == "cloud":
            new["action"][hit] = rng.choice(["view", "buy", "cart"], hit.sum())
            new["price"][hit] = rng.exponential(50, hit.sum())
        elif s == "click":
            new["widget"][hit] = rng.choice(["back", "buy_now"], hit.sum())
        else:
            new["vx"][hit] = rng.normal(0, 5, hit.sum())
            new["kind"][hit] = "tap"
        # shift times but stay on the same side of t
        if after:
            new["ts_ms"][hit] = t + rng.integers(0, 10**7, hit.sum())
        else:
            new["ts_ms"][hit] = np.maximum(0, t - 1 - rng.integers(0, 10**7, hit.sum()))
        # drop one event of that side, if any
        idx = np.flatnonzero(hit)
        if idx.size:
            keep = np.ones(len(u), bool)
            keep[idx[0]] = False
            new = {k: v[keep] for k, v in new.items()}
        out[s] = {k: (v.tolist() if v.dtype.kind in "OU" else v) for k, v in new.items()}
    return out


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_leakage(seed):
    cols = random_columns(seed % 50, users=6, events_per_user=30)
    log = EventLog.from_columns(cols)
    spec = F.fit_spec(log, F.FitConfig(max_len=(("gesture", 8), ("click", 4), ("cloud", 4)), min_count=1))
    rng = np.random.default_rng(seed)
    user = int(rng.choice(log.users()))
    t = int(rng.integers(3600_000, 2 * 24 * 3600 * 1000))
    dec = pa.table({"user_id": [user], "t_ms": [t]})
    base = F.build_samples(log, spec, dec)

    after = F.build_samples(EventLog.from_columns(_perturb(cols, user, t, True, rng)), spec, dec)
    for s in spec.streams:
        np.testing.assert_array_equal(base.x[s], after.x[s])  # features never look at or after t

    before = F.build_samples(EventLog.from_columns(_perturb(cols, user, t, False, rng)), spec, dec)
    for k in F.LABELS:
        np.testing.assert_array_equal(base.labels[k], before.labels[k])  # labels never look before t


def test_windows_keep_most_recent_and_right_pad():
    cols = random_columns(9, users=2, events_per_user=30)
    log = EventLog.from_columns(cols)
    spec = F.fit_spec(log, F.FitConfig(max_len=(("gesture", 3), ("click", 50), ("cloud", 2)), min_count=1))
    user = int(log.users()[0])
    cloud = log.stream("cloud").to_pydict()
    ts = [t for u, t in zip(cloud["user_id"], cloud["ts_ms"]) if u == user]
    t = ts[10]
    s = F.build_samples(log, spec, pa.table({"user_id": [user], "t_ms": [t]}))
    ids = F.event_ids("cloud", log.stream("cloud"), spec)
    rows = [i for i, (u, tt) in enumerate(zip(cloud["user_id"], cloud["ts_ms"])) if u == user and tt < t]
    np.testing.assert_array_equal(s.x["cloud"][0], ids[rows[-2:]])
    assert s.length["click"][0] < 50 and (s.x["click"][0, s.length["click"][0]:] == 0).all()


def test_spec_errors(tmp_path):
    p = tmp_path / "spec.json"
    p.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        F.FeatureSpec.load(p)
    p.write_text('{"spec_version": 99, "streams": {}, "max_len": {}}')
    with pytest.raises(SpecError, match="version 99 is not supported"):
        F.FeatureSpec.load(p)
    p.write_text('{"spec_version": 1}')
    with pytest.raises(SpecError, match="malformed"):
        F.FeatureSpec.load(p)


def test_samples_save_load(tmp_path):
    log = random_log(10)
    spec = F.fit_spec(log)
    s = F.build_samples(log, spec, _decisions(log, 50, 1))
    back = F.load_samples(F.save_samples(s, tmp_path / "s.npz"))
    for k in s.x:
        np.testing.assert_array_equal(back.x[k], s.x[k])
    np.testing.assert_array_equal(back.labels["stay"], s.labels["stay"])


def test_vectorized_equals_reference_on_simulator():
    from edgeintent.toolkit.data.simulator import SimConfig, simulate

    sim = simulate(SimConfig(users=150, seed=11))
    spec = F.fit_spec(sim.events)
    samples = F.build_samples(sim.events, spec, sim.decisions)
    ref = R.build_samples(sim.events, spec, list(zip(samples.user_id.tolist(), samples.t_ms.tolist())))
    for s in ("gesture", "click", "cloud"):
        np.testing.assert_array_equal(samples.x[s], ref["x"][s])
    for k in F.LABELS:
        np.testing.assert_array_equal(samples.labels[k], ref["labels"][k])
    # the simulator's own record of the realised outcome agrees with the label read off the events
    offer_idx = [list(sim.config.amounts).index(o) for o in samples.extra.column("offer").to_pylist()]
    realised = np.array([b[i] for b, i in zip(samples.extra.column("buy").to_pylist(), offer_idx)], dtype=np.int8)
    np.testing.assert_array_equal(samples.labels["buy_rt"], realised)


def test_age_of_windowed_events():
    log = random_log(12)
    spec = F.fit_spec(log, F.FitConfig(max_len=(("gesture", 6), ("click", 3), ("cloud", 4))))
    s = F.build_samples(log, spec, _decisions(log, 40, 3))
    for stream in spec.streams:
        m = s.mask(stream)
        age = s.age_ms[stream]
        assert (age[m] > 0).all() and (age[~m] == 0).all()
        # chronological windows: ages decrease along the window
        assert (np.diff(np.where(m, age, 0), axis=1)[m[:, 1:]] <= 0).all()
