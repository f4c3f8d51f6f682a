"""``features build --engine local|ray``: events → samples, written as a sharded Parquet data set.

Both engines write the same rows (:func:`~edgeintent.toolkit.features.windows.samples_table`): one
Parquet file per user bucket (``fmix64(user_id) mod B``, :func:`~edgeintent.toolkit.features.windows.user_bucket`)
on the local engine, Ray's own file names on Ray, plus ``_feature_spec.json`` (readers skip ``_`` files).

- ``local``: :func:`~edgeintent.toolkit.features.windows.build_samples` over the whole log in this process;
- ``ray``: events and decision points as one Ray Dataset of :func:`engine_rows` with a ``bucket`` column
  (the simulator is generated block by block in Ray tasks; other sources are loaded by the driver and
  handed over in blocks); one global pass for the data end (``max(ts_ms)``) and the event count; then
  ``groupby("bucket").map_groups(featurize_batch)``, so every user's events and decision points meet in
  one call (a plain ``map_batches`` would split users across blocks and silently cut their windows).

The data set is built in a temp directory beside ``out`` and renamed into place: readers see it whole
or not at all.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from edgeintent.errors import DataError
from edgeintent.registry import Registry
from edgeintent.toolkit.data.dataset import Dataset
from edgeintent.toolkit.data.schema import EventLog
from edgeintent.toolkit.features.spec import FeatureSpec
from edgeintent.toolkit.features.windows import (
    SEQ,
    build_samples,
    events_table,
    featurize_batch,
    samples_table,
    user_bucket,
)
from edgeintent.engines.session import deadline, ray_session

#: the FeatureSpec the samples were built with, inside the data set
SPEC_FILE = "_feature_spec.json"
#: the bucket column of the Ray engine's event blocks
BUCKET = "bucket"


@dataclass(frozen=True)
class EngineOptions:
    buckets: int = 16
    num_cpus: int = 4  # logical CPUs of a local Ray session
    block_rows: int | None = None  # events per Ray Data block (None: about 4 blocks per logical CPU)
    timeout_s: float | None = None  # time limit of the whole job
    #: Ray Data's shuffle for the groupby (a ``ray.data.context.ShuffleStrategy`` value). The sort-based pull
    #: shuffle range-partitions by sampled bucket bounds into as many reduce tasks as input blocks, so a
    #: reduce task's size does not grow with the data; the hash shuffle (``num_partitions`` = buckets)
    #: collects partitions in a few aggregator actors, whose memory does (docs/engines.md)
    shuffle: str = "sort_shuffle_pull_based"


#: engine name → ``fn(source, spec, out_dir, options) -> events read``, writing Parquet files into ``out_dir``
#: (``source``: a loaded Dataset or a source spec, which an engine may read its own way)
ENGINES: Registry[Callable[[str | Dataset, FeatureSpec, Path, EngineOptions], int]] = Registry("engine")


@ENGINES.register("local")
def _local(source: str | Dataset, spec: FeatureSpec, out_dir: Path, opts: EngineOptions) -> int:
    ds = source if isinstance(source, Dataset) else _load(source)
    table = samples_table(build_samples(ds.events, spec, ds.decisions), spec)
    bucket = user_bucket(table.column("user_id").to_numpy(), opts.buckets)
    for b in np.unique(bucket):
        pq.write_table(table.filter(pa.array(bucket == b)), out_dir / f"part-{int(b):05d}.parquet")
    return ds.events.n_events


@ENGINES.register("ray")
def _ray(source: str | Dataset, spec: FeatureSpec, out_dir: Path, opts: EngineOptions) -> int:
    ray = ray_session(opts.num_cpus)
    from ray.data.aggregate import Max, Sum
    from ray.data.context import ShuffleStrategy

    ray.data.DataContext.get_current().shuffle_strategy = ShuffleStrategy(opts.shuffle)  # datasets copy it
    data, has_decisions = _ray_rows(ray, source, opts)
    with deadline(opts.timeout_s, "the ray featurization job"):
        # the one global pass: the data end (for the observed flags) and the number of events
        agg = data.select_columns(["ts_ms", IS_EVENT]).aggregate(Max("ts_ms", ignore_nulls=True), Sum(IS_EVENT))
        end, n_events = agg["max(ts_ms)"], int(agg[f"sum({IS_EVENT})"] or 0)
        if not n_events:
            raise DataError(f"{_name(source)}: no events to featurize")
        out = data.groupby(BUCKET, num_partitions=opts.buckets).map_groups(  # num_partitions: hash shuffle only
            _featurize_group, batch_format="pyarrow",
            fn_kwargs={"spec": spec, "data_end_ms": int(end), "has_decisions": has_decisions},
        )  # fmt: skip
        out.write_parquet(str(out_dir))
    return n_events


#: the rows the Ray engine shuffles: events (``events_table`` columns) and decision points
#: (``stream == "decision"``, their time in ``t_ms``, their own columns prefixed) in one table, so that one
#: groupby brings a bucket's events and decision points together (Ray Data has no co-group)
DECISION = "decision"
IS_EVENT = "is_event"
PREFIX = "decision."


def engine_rows(events: EventLog, decisions: pa.Table | None, buckets: int, seq_base: int = 0) -> pa.Table:
    """One table of a log's events and decision points with their user bucket (see ``DECISION``);
    ``seq_base`` offsets ``seq`` so that separately read parts stay apart."""
    ev = events_table(events)
    ev = ev.set_column(ev.column_names.index(SEQ), SEQ, pc.add(ev.column(SEQ), seq_base))
    ev = ev.append_column(IS_EVENT, pa.array(np.ones(ev.num_rows, np.int64)))
    parts = [ev]
    if decisions is not None:
        n = decisions.num_rows
        cols = {"user_id": decisions.column("user_id"), "stream": pa.array([DECISION] * n, pa.string()),
                SEQ: pa.array(seq_base + np.arange(n, dtype=np.int64)), IS_EVENT: pa.array(np.zeros(n, np.int64)),
                "t_ms": decisions.column("t_ms")}  # fmt: skip
        cols.update({PREFIX + c: decisions.column(c) for c in decisions.column_names if c not in ("user_id", "t_ms")})
        parts.append(pa.table(cols))
    rows = pa.concat_tables(parts, promote_options="default")
    return rows.append_column(BUCKET, pa.array(user_bucket(rows.column("user_id").to_numpy(), buckets)))


def _ray_rows(ray, source: str | Dataset, opts: EngineOptions):
    """(Ray Dataset of :func:`engine_rows`, whether the source has decision points of its own). The
    simulator is generated block by block in Ray tasks (the driver never holds the events); any other
    source is loaded here and handed to Ray in blocks of ``block_rows``."""
    if isinstance(source, str) and source.startswith("sim:"):
        from edgeintent.toolkit.data.simulator import SimConfig
        from edgeintent.toolkit.data.sources import _parse_sim

        users, seed = _parse_sim(source)
        cfg = SimConfig(users=users, seed=seed)
        blocks = ray.data.range(cfg.n_blocks, override_num_blocks=cfg.n_blocks)
        return blocks.map_batches(_sim_rows, batch_size=1, batch_format="pyarrow",
                                  fn_kwargs={"cfg": cfg, "buckets": opts.buckets}), True  # fmt: skip
    ds = source if isinstance(source, Dataset) else _load(source)
    rows = engine_rows(ds.events, ds.decisions, opts.buckets)
    size = opts.block_rows or max(1, math.ceil(rows.num_rows / (4 * opts.num_cpus)))
    return ray.data.from_arrow([rows.slice(lo, size) for lo in range(0, rows.num_rows, size)]), ds.decisions is not None


def _sim_rows(batch: pa.Table, cfg, buckets: int) -> pa.Table:
    """One simulator block (``BLOCK_USERS`` users) as engine rows; ``seq`` apart per block."""
    from edgeintent.toolkit.data.simulator import simulate_block

    block = int(batch.column("id")[0].as_py())
    sim = simulate_block(cfg, block)
    return engine_rows(sim.events, sim.decisions, buckets, seq_base=block << 40)


def _featurize_group(rows: pa.Table, spec: FeatureSpec, data_end_ms: int, has_decisions: bool) -> pa.Table:
    """One bucket's rows (every event and decision point of its users) → their samples."""
    is_dec = pc.equal(rows.column("stream"), DECISION)
    events = rows.filter(pc.invert(is_dec))
    events = events.drop_columns([c for c in events.column_names if c in (BUCKET, IS_EVENT, "t_ms") or c.startswith(PREFIX)])
    decisions = None
    if has_decisions:  # in their source order (ties in (user_id, t_ms) keep it), with their own column names
        dec = rows.filter(is_dec)
        dec = dec.take(pc.sort_indices(dec.column(SEQ)))
        decisions = pa.table({"user_id": dec.column("user_id"), "t_ms": dec.column("t_ms"),
                              **{c[len(PREFIX):]: dec.column(c) for c in dec.column_names if c.startswith(PREFIX)}})  # fmt: skip
    return featurize_batch(events, spec, data_end_ms=data_end_ms, decisions=decisions)


def _load(source: str) -> Dataset:
    from edgeintent.toolkit.data.sources import load_source

    return load_source(source)


def _name(source: str | Dataset) -> str:
    return source if isinstance(source, str) else source.name


def build_samples_dir(source: str | Dataset, spec: FeatureSpec, out: str | Path, engine: str = "local",
                      opts: EngineOptions | None = None, overwrite: bool = False) -> dict:  # fmt: skip
    """Featurize ``source`` (a source spec or a loaded Dataset) with ``engine`` into the Parquet data set
    ``out``; returns a summary."""
    run = ENGINES.get(engine)
    opts = opts or EngineOptions()
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; pass --overwrite to replace it")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        t0 = time.perf_counter()
        n_events = run(source, spec, staging, opts)
        secs = time.perf_counter() - t0
        spec.save(staging / SPEC_FILE)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = sorted(p.name for p in out.glob("*.parquet"))
    rows = sum(pq.ParquetFile(out / f).metadata.num_rows for f in files)
    return {"engine": engine, "events": n_events, "samples": rows, "files": len(files),
            "buckets": opts.buckets, "seconds": round(secs, 3), "out": str(out)}  # fmt: skip


def _publish(staging: Path, out: Path) -> None:
    """Rename the finished data set over ``out`` (an old one is moved aside first, then removed)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{time.time_ns()}")
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_samples_dir(path: str | Path, columns: list[str] | None = None) -> tuple[pa.Table, FeatureSpec]:
    """A samples data set (any engine's) as one table sorted by (user_id, t_ms), and its FeatureSpec."""
    path = Path(path)
    if not (path / SPEC_FILE).is_file():
        raise DataError(f"{path}: not a samples data set (no {SPEC_FILE}; build one with `features build`)")
    spec = FeatureSpec.load(path / SPEC_FILE)
    try:
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: unreadable samples data set ({str(exc).splitlines()[0]})") from None
    order = pc.sort_indices(table, [("user_id", "ascending"), ("t_ms", "ascending")])
    return table.take(order).combine_chunks(), spec
