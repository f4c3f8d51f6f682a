"""Engines: featurize_batch is the same on any split of the data by user, in any row order; the Ray
engine's samples equal the local engine's; two Ray Train workers give the single-process weights.

The Ray tests share one local session (``ray_local`` in conftest.py) and give every job a time limit.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeintent.errors import DataError, EngineError
from edgeintent.toolkit.data.schema import EventLog
from edgeintent.toolkit.features import FitConfig, build_samples, fit_spec
from edgeintent.toolkit.features.windows import (
    events_table,
    featurize_batch,
    samples_from_table,
    samples_table,
    user_bucket,
)
from tests.helpers import random_columns

SPEC = fit_spec(EventLog.from_columns(random_columns(0)),
                FitConfig(max_len=(("gesture", 4), ("click", 3), ("cloud", 3)), min_count=2))  # fmt: skip


def _sorted(table: pa.Table) -> pa.Table:
    return table.take(pc.sort_indices(table, [("user_id", "ascending"), ("t_ms", "ascending")]))


def _random_log(seed: int, users: int, span_ms: int) -> EventLog:
    """Random events of every stream; a short time span makes many timestamps equal."""
    cols = random_columns(seed, users=users, events_per_user=8)
    rng = np.random.default_rng(seed + 1)
    for c in cols.values():
        c["ts_ms"] = rng.integers(0, span_ms, len(c["ts_ms"]))
    return EventLog.from_columns(cols)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), users=st.integers(1, 9), span_ms=st.sampled_from([5, 200, 5_000_000]),
       buckets=st.integers(1, 6), own_decisions=st.booleans())  # fmt: skip
def test_any_bucket_split_in_any_row_order_gives_the_whole_tables_samples(seed, users, span_ms, buckets, own_decisions):
    log = _random_log(seed, users, span_ms)
    rng = np.random.default_rng(seed)
    decisions = None
    if own_decisions:  # the source's own points (a coupon column rides along), some at event times
        n = int(rng.integers(1, 30))
        decisions = pa.table({"user_id": rng.integers(1, users + 2, n), "t_ms": rng.integers(0, span_ms + 2, n),
                              "offer": rng.random(n)})  # fmt: skip
    try:
        whole = samples_table(build_samples(log, SPEC, decisions), SPEC)
    except DataError:  # no decision points at all (no cloud event under the default rule)
        whole = None
    end = log.time_span()[1]
    events = events_table(log)
    # the whole table, rows shuffled, in one call
    shuffled = featurize_batch(events.take(rng.permutation(events.num_rows)), SPEC, data_end_ms=end, decisions=decisions)
    # any split by user bucket, each part shuffled; the decision points split alike
    bucket = user_bucket(events.column("user_id").to_numpy(), buckets)
    parts = []
    for b in range(buckets):
        part = events.filter(pa.array(bucket == b))
        part = part.take(rng.permutation(part.num_rows))
        dec = None
        if decisions is not None:
            dec = decisions.filter(pa.array(user_bucket(decisions.column("user_id").to_numpy(), buckets) == b))
        if part.num_rows or (dec is not None and dec.num_rows):
            parts.append(featurize_batch(part, SPEC, data_end_ms=end, decisions=dec))
    split = _sorted(pa.concat_tables(parts))
    if whole is None:
        assert shuffled.num_rows == 0 and split.num_rows == 0
        return
    assert whole.num_rows > 0
    for got in (shuffled, split):
        assert got.schema.equals(whole.schema)
        assert got.equals(whole)  # every column, value for value (extras included)
    # each batch's output is sorted by (user_id, t_ms)
    for p in parts:
        key = p.column("user_id").to_numpy() * (2**32) + p.column("t_ms").to_numpy()
        assert (np.diff(key) >= 0).all()


def test_equal_timestamps_are_ordered_by_seq_not_by_row_order():
    """Two clicks of one user at the same millisecond: the window holds them in seq order, whatever the
    row order; swapping their seq swaps them in the window."""
    cols = random_columns(3, users=1, events_per_user=4)
    cols["click"]["ts_ms"][:] = 1000
    cols["click"]["widget"][:] = ["buy_button", "search_box"] + cols["click"]["widget"][2:]
    log = EventLog.from_columns(cols)
    events = events_table(log)
    dec = pa.table({"user_id": [1], "t_ms": [1001]})
    a = featurize_batch(events, SPEC, data_end_ms=2000, decisions=dec)
    b = featurize_batch(events.take(np.arange(events.num_rows)[::-1]), SPEC, data_end_ms=2000, decisions=dec)
    assert a.equals(b)
    clicks = np.flatnonzero(events.column("stream").to_numpy(zero_copy_only=False) == "click")
    seq = events.column("seq").to_numpy().copy()
    seq[clicks[0]], seq[clicks[1]] = seq[clicks[1]], seq[clicks[0]]
    swapped = events.set_column(events.column_names.index("seq"), "seq", pa.array(seq))
    c = featurize_batch(swapped, SPEC, data_end_ms=2000, decisions=dec)
    xa, xc = samples_from_table(a, SPEC).x["click"][0], samples_from_table(c, SPEC).x["click"][0]
    n = int(samples_from_table(a, SPEC).length["click"][0])
    assert n >= 2 and not np.array_equal(xa[:n], xc[:n])
    # the two tied clicks trade places (widget and page; the gap to the previous event follows the order)
    np.testing.assert_array_equal(xa[n - 2, :2], xc[n - 1, :2])
    np.testing.assert_array_equal(xa[n - 1, :2], xc[n - 2, :2])


def test_the_data_end_is_taken_from_the_caller_not_the_batch():
    log = _random_log(5, 4, 5_000_000)
    events = events_table(log)
    end = log.time_span()[1]
    early = samples_from_table(featurize_batch(events, SPEC, data_end_ms=end), SPEC)
    late = samples_from_table(featurize_batch(events, SPEC, data_end_ms=end + 10**10), SPEC)
    assert (late.observed["buy_long"] >= early.observed["buy_long"]).all()
    assert late.observed["buy_long"].sum() > early.observed["buy_long"].sum()
    np.testing.assert_array_equal(late.labels["buy_long"], early.labels["buy_long"])


def test_observed_flags_refreshed_to_a_later_data_end_equal_featurizing_with_it():
    """Rows featurized with an early data end, refreshed to the real one, equal rows featurized with the
    real one; refreshing to an end before the reported next change leaves them as they are."""
    from edgeintent.toolkit.features.windows import refresh_observed

    log = _random_log(7, 6, 5_000_000)
    events = events_table(log)
    end = log.time_span()[1]
    early_end = end - 3 * 24 * 3600 * 1000
    early = featurize_batch(events, SPEC, data_end_ms=early_end)
    right = featurize_batch(events, SPEC, data_end_ms=end)
    assert not early.equals(right)
    refreshed, _ = refresh_observed(early, SPEC, end)
    assert refreshed.equals(right)
    same, next_change = refresh_observed(early, SPEC, early_end)
    assert same.equals(early) and next_change is not None and next_change > early_end
    assert refresh_observed(early, SPEC, next_change - 1)[0].equals(early)
    assert not refresh_observed(early, SPEC, next_change)[0].equals(early)


def test_samples_table_round_trip_and_bucket_values():
    log = _random_log(2, 6, 5_000_000)
    samples = build_samples(log, SPEC)
    back = samples_from_table(samples_table(samples, SPEC), SPEC)
    for s in SPEC.streams:
        np.testing.assert_array_equal(back.x[s], samples.x[s])
        np.testing.assert_array_equal(back.age_ms[s], samples.age_ms[s])
        np.testing.assert_array_equal(back.length[s], samples.length[s])
    for k in samples.labels:
        np.testing.assert_array_equal(back.labels[k], samples.labels[k])
        np.testing.assert_array_equal(back.observed[k], samples.observed[k])
    # fmix64(1) mod 16, fmix64(2) mod 16 by the reference featurizer's integer arithmetic
    from edgeintent.toolkit.features.reference import fmix64

    users = np.array([1, 2, 3, 10**12, -5])
    expected = [fmix64(int(u) & (2**64 - 1)) % 16 for u in users]
    assert user_bucket(users, 16).tolist() == expected
    with pytest.raises(DataError):
        user_bucket(users, 0)


# -- Ray -----------------------------------------------------------------------------------------


def test_ray_featurization_equals_local_with_small_blocks(ray_local, tmp_path):
    from edgeintent.engines.featurize import EngineOptions, build_samples_dir, read_samples_dir
    from edgeintent.toolkit.data.dataset import Dataset
    from edgeintent.toolkit.data.sources import load_source

    ds = load_source("sim:100:5")  # decision points of its own (offers, propensities), 16 k events
    spec = fit_spec(ds.events, FitConfig())
    # plus two decision points of a user without events, in a bucket no event falls in
    event_buckets = set(user_bucket(ds.events.users(), 64).tolist())
    lonely = next(u for u in range(10**6, 10**6 + 1000) if int(user_bucket(np.array([u]), 64)[0]) not in event_buckets)
    extra = ds.decisions.slice(0, 2)
    extra = extra.set_column(0, "user_id", pa.array([lonely, lonely], pa.int64()))
    ds.decisions = pa.concat_tables([ds.decisions, extra])
    local = build_samples_dir(ds, spec, tmp_path / "local", "local", EngineOptions(buckets=64))
    # ~16 blocks: users are split across blocks, so only the bucket groupby brings their events together
    opts = EngineOptions(buckets=64, block_rows=1000, timeout_s=120)
    ray = build_samples_dir(ds, spec, tmp_path / "ray", "ray", opts)
    assert local["samples"] == ray["samples"] == len(ds.decisions) > 300
    a, spec_a = read_samples_dir(tmp_path / "local")
    b, _ = read_samples_dir(tmp_path / "ray")
    assert spec_a == spec
    assert a.schema.equals(b.schema) and a.equals(b)
    assert (b.column("user_id").to_numpy() == lonely).sum() == 2
    assert not list(tmp_path.glob(".*"))  # the staging directories are gone
    with pytest.raises(DataError, match="already exists"):
        build_samples_dir(ds, spec, tmp_path / "ray", "ray", opts)
    # without decision points of its own (the default rule, as on Taobao): rows carry no decision columns;
    # this job uses the hash shuffle (the others the default sort-based one): both are checked against local
    bare = Dataset(name="bare", events=ds.events)
    build_samples_dir(bare, spec, tmp_path / "bare-local", "local", EngineOptions(buckets=4))
    build_samples_dir(bare, spec, tmp_path / "bare-ray", "ray", EngineOptions(buckets=4, block_rows=3000, timeout_s=120,
                                                                          shuffle="hash_shuffle"))
    d, _ = read_samples_dir(tmp_path / "bare-local")
    e, _ = read_samples_dir(tmp_path / "bare-ray")
    assert d.num_rows > 300 and d.equals(e)
    # (the simulator given by name, read in Ray tasks: test_ray_user_partitioned_source_is_featurized_without_a_shuffle)


def test_ray_job_past_its_time_limit_is_a_one_line_error(ray_local, tmp_path):
    from edgeintent.engines.featurize import EngineOptions, build_samples_dir
    from edgeintent.toolkit.data.sources import load_source

    ds = load_source("sim:60:1")
    with pytest.raises(EngineError, match="time limit of 0.01 s"):
        build_samples_dir(ds, fit_spec(ds.events), tmp_path / "out", "ray", EngineOptions(buckets=2, timeout_s=0.01))
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def test_two_ray_train_workers_give_the_single_process_weights(ray_local, tmp_path, trained):
    """dipn on sim:400:3, one epoch, global batch 128 in 2 slices: two DDP workers (gloo) and one process
    give the same weights; the bundle verifies, evaluates, exports and passes parity like any other."""
    from safetensors.numpy import load_file

    from edgeintent.engines.ray_train import train_bundle_on_ray
    from edgeintent.exporters import export_bundle
    from edgeintent.parity import run_parity
    from edgeintent.toolkit.training.trainer import TrainConfig, evaluate_bundle

    cfg = TrainConfig(epochs=1, batch_size=128, patience=1, golden_rows=24, micro_batches=2)
    local = trained("dipn", cfg)
    summary = train_bundle_on_ray("dipn", "sim:400:3", tmp_path / "ray", cfg, 2, buckets=4, timeout_s=300)
    a, b = load_file(str(local / "weights.safetensors")), load_file(str(tmp_path / "ray" / "weights.safetensors"))
    assert a.keys() == b.keys()
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    assert worst <= 1e-6, worst
    assert [round(r["loss"], 6) for r in summary["history"]] == [round(r["loss"], 6) for r in trained.summaries[local]["history"]]
    report = evaluate_bundle(tmp_path / "ray")
    assert report["tasks"]["buy_rt"]["auc"] == pytest.approx(trained.summaries[local]["valid"]["buy_rt"]["auc"], abs=1e-6)
    export_bundle(tmp_path / "ray", "onnx")
    assert run_parity(tmp_path / "ray", ["onnx"])["passed"]


def test_micro_batches_must_be_a_multiple_of_the_workers():
    from edgeintent.errors import ConfigError
    from edgeintent.toolkit.training.trainer import Replica

    with pytest.raises(ConfigError, match="multiple of the workers"):
        Replica(0, 2, 3)
    assert Replica(1, 2, 4).slices(10) == [(5, 7), (7, 10)]
    assert Replica().slices(7) == [(0, 7)]


@pytest.mark.parametrize("args, message", [
    (["features", "build", "sim:20", "--spec", "SPEC", "--out", "OUT/s.npz", "--engine", "ray"], "writes a Parquet data set"),
    (["features", "build", "sim:20", "--spec", "SPEC", "--out", "OUT/s", "--engine", "spark"], "unknown engine 'spark'"),
    (["train", "--model", "dipn", "--data", "sim:20", "--out", "OUT/b", "--engine", "ray", "--workers", "2",
      "--micro-batches", "3"], "multiple of the workers"),
    (["train", "--model", "dipn", "--data", "sim:20", "--out", "OUT/b", "--engine", "ray", "--workers", "4",
      "--batch-size", "6"], "cannot be cut into 4 slices"),
])  # fmt: skip
def test_cli_engine_errors_are_one_line_before_any_work(tmp_path, args, message):
    from click.testing import CliRunner

    from edgeintent.cli import main

    spec = tmp_path / "spec.json"
    fit_spec(EventLog.from_columns(random_columns(1))).save(spec)
    args = [a.replace("SPEC", str(spec)).replace("OUT", str(tmp_path)) for a in args]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    assert message in res.output and res.output.strip().count("\n") == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]


def test_cli_builds_a_samples_data_set_that_reads_back(tmp_path):
    """``features build --out DIR`` (local engine) writes the sharded Parquet data set of build_samples."""
    import json

    from click.testing import CliRunner

    from edgeintent.cli import main
    from edgeintent.engines.featurize import read_samples_dir
    from edgeintent.toolkit.data.sources import load_source

    ds = load_source("sim:60:2")
    spec = fit_spec(ds.events)
    spec.save(tmp_path / "spec.json")
    res = CliRunner().invoke(main, ["features", "build", "sim:60:2", "--spec", str(tmp_path / "spec.json"),
                                    "--out", str(tmp_path / "samples"), "--buckets", "3", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["files"] == len(list((tmp_path / "samples").glob("*.parquet"))) == 3
    table, spec_back = read_samples_dir(tmp_path / "samples")
    assert spec_back == spec
    assert table.equals(samples_table(build_samples(ds.events, spec, ds.decisions), spec))


# -- Ray: bounded shuffles (waves) and user-partitioned sources ----------------------------------------


def _sim_and_local(tmp_path):
    from edgeintent.engines.featurize import EngineOptions, build_samples_dir, read_samples_dir
    from edgeintent.toolkit.data.sources import load_source

    ds = load_source("sim:100:5")
    spec = fit_spec(ds.events, FitConfig())
    build_samples_dir(ds, spec, tmp_path / "local", "local", EngineOptions(buckets=8))
    return ds, spec, read_samples_dir(tmp_path / "local")[0]


def test_ray_shuffle_in_waves_equals_local(ray_local, tmp_path):
    """The group-by in several waves, each a slice of the users, over small blocks that split users: the
    same rows as local; a shuffle budget below the data's size gives several waves by itself."""
    from edgeintent.engines.featurize import EngineOptions, build_samples_dir, plan_waves, read_samples_dir, wave_of

    ds, spec, local = _sim_and_local(tmp_path)
    # ~4 MB of engine rows in 2,000-row blocks (users straddle blocks); a 1.5 MB budget: 3 waves
    summary = build_samples_dir(ds, spec, tmp_path / "waves", "ray",
                                EngineOptions(buckets=8, block_rows=2000, shuffle_budget_bytes=3 << 19, timeout_s=120))  # fmt: skip
    assert summary["path"] == "shuffle" and summary["waves"] >= 3
    got, _ = read_samples_dir(tmp_path / "waves")
    assert got.equals(local)
    assert not [p for p in (tmp_path / "waves").iterdir() if p.name.startswith(".")]  # the wave dirs are gone
    # waves are independent of buckets: every (wave, bucket) pair occurs, and a user's wave is fixed
    users = np.arange(1, 2001)
    w = wave_of(users, 8, 3)
    assert set(w.tolist()) == {0, 1, 2}
    assert len(set(zip(w.tolist(), user_bucket(users, 8).tolist()))) == 24
    assert plan_waves(10, 3) == 4 and plan_waves(1, 100) == 1
    with pytest.raises(DataError, match="budget"):
        plan_waves(10, 0)


def test_ray_user_partitioned_source_is_featurized_without_a_shuffle(ray_local, tmp_path, monkeypatch):
    """A source that declares its blocks user-partitioned is featurized block by block with no group-by;
    the rows equal local. Here a reader cuts the log into 4 blocks of whole users (plus the simulator,
    which is user-partitioned by construction)."""
    from edgeintent.engines import featurize as fz

    ds, spec, local = _sim_and_local(tmp_path)
    rows = fz.engine_rows(ds.events, ds.decisions, 8)
    part = user_bucket(rows.column("user_id").to_numpy(), 4)

    def reader(ray, source, opts):
        blocks = [rows.filter(pa.array(part == p)) for p in range(4)]
        return fz.RowSource(ray.data.from_arrow(blocks), None, {}, has_decisions=True, user_partitioned=True)

    monkeypatch.setitem(fz.RAY_READERS._entries, "userblocks", reader)
    summary = fz.build_samples_dir("userblocks:x", spec, tmp_path / "parts", "ray", fz.EngineOptions(buckets=8, timeout_s=120))
    assert summary["path"] == "user-partitioned" and summary["events"] == ds.events.n_events
    assert summary["files"] == 4  # one file per block: no shuffle regrouped the rows
    assert summary["refreshed_files"] >= 1  # a block's own data end was earlier than the data's for some flag
    got, _ = fz.read_samples_dir(tmp_path / "parts")
    assert got.equals(local)
    # the same declared source, told not to use its partitions, goes through the shuffle
    shuffled = fz.build_samples_dir("userblocks:x", spec, tmp_path / "shuf", "ray",
                                    fz.EngineOptions(buckets=8, timeout_s=120, use_partitions=False))  # fmt: skip
    assert shuffled["path"] == "shuffle" and fz.read_samples_dir(tmp_path / "shuf")[0].equals(local)
    sim = fz.build_samples_dir("sim:100:5", spec, tmp_path / "sim", "ray", fz.EngineOptions(buckets=8, timeout_s=120))
    assert sim["path"] == "user-partitioned"
    assert fz.read_samples_dir(tmp_path / "sim")[0].equals(local)
