"""``features build --engine local|ray``: events → samples, written as a sharded Parquet data set.

Both engines write the same rows (:func:`~edgeintent.toolkit.features.windows.samples_table`): one
Parquet file per user bucket (``fmix64(user_id) mod B``, :func:`~edgeintent.toolkit.features.windows.user_bucket`)
on the local engine, Ray's own file names on Ray, plus ``_feature_spec.json`` (readers skip ``_`` files).

- ``local``: :func:`~edgeintent.toolkit.features.windows.build_samples` over the whole log in this process;
- ``ray``: the log in long format (:func:`~edgeintent.toolkit.features.windows.events_table`) as Ray Data
  blocks with a ``bucket`` column; one global pass (``max(ts_ms)``) for the data end; then
  ``groupby("bucket").map_groups(featurize_batch)``, so every user's events meet in one call (a plain
  ``map_batches`` would split users across blocks and silently cut their windows). Decision points are
  split by bucket in the driver and handed to the groups through the object store.

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
from edgeintent.toolkit.features.spec import FeatureSpec
from edgeintent.toolkit.features.windows import (
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
    #: Ray Data's shuffle for the groupby (``ray.data.context.ShuffleStrategy`` values): the sort-based pull
    #: shuffle runs as tasks; the hash shuffle starts aggregator actors (benchmarks/scale.py compares them)
    shuffle: str = "sort_shuffle_pull_based"


#: engine name → ``fn(dataset, spec, out_dir, options)`` writing Parquet files into ``out_dir``
ENGINES: Registry[Callable[[Dataset, FeatureSpec, Path, EngineOptions], None]] = Registry("engine")


@ENGINES.register("local")
def _local(ds: Dataset, spec: FeatureSpec, out_dir: Path, opts: EngineOptions) -> None:
    table = samples_table(build_samples(ds.events, spec, ds.decisions), spec)
    bucket = user_bucket(table.column("user_id").to_numpy(), opts.buckets)
    for b in np.unique(bucket):
        pq.write_table(table.filter(pa.array(bucket == b)), out_dir / f"part-{int(b):05d}.parquet")


@ENGINES.register("ray")
def _ray(ds: Dataset, spec: FeatureSpec, out_dir: Path, opts: EngineOptions) -> None:
    ray = ray_session(opts.num_cpus)
    from ray.data.context import ShuffleStrategy

    events = events_table(ds.events)
    if events.num_rows == 0:
        raise DataError(f"{ds.name}: no events to featurize")
    bucket = user_bucket(events.column("user_id").to_numpy(), opts.buckets)
    events = events.append_column(BUCKET, pa.array(bucket))
    rows = opts.block_rows or max(1, math.ceil(events.num_rows / (4 * opts.num_cpus)))
    blocks = [events.slice(lo, rows) for lo in range(0, events.num_rows, rows)]
    parts = {}
    if ds.decisions is not None:  # one part per bucket, empty ones too (every group's output has the same columns)
        d_bucket = user_bucket(ds.decisions.column("user_id").to_numpy(), opts.buckets)
        parts = {b: ds.decisions.filter(pa.array(d_bucket == b)) for b in range(opts.buckets)}
    decisions = {b: ray.put(t) for b, t in parts.items()} if parts else None
    ray.data.DataContext.get_current().shuffle_strategy = ShuffleStrategy(opts.shuffle)
    with deadline(opts.timeout_s, "the ray featurization job"):
        data = ray.data.from_arrow(blocks)
        end = int(data.max("ts_ms"))  # the one global pass: the data end for the observed flags
        out = data.groupby(BUCKET, num_partitions=opts.buckets).map_groups(  # a reduce task holds one bucket's events
            _featurize_group, batch_format="pyarrow", fn_kwargs={"spec": spec, "data_end_ms": end, "decisions": decisions}
        )
        out.write_parquet(str(out_dir))
    # decision points of users without events: no group carries them, so they are built here
    empty = events.slice(0, 0).drop_columns([BUCKET])
    for b in sorted(set(parts) - set(np.unique(bucket).tolist())):
        if parts[b].num_rows:
            table = featurize_batch(empty, spec, data_end_ms=end, decisions=parts[b])
            pq.write_table(table, out_dir / f"no-events-{b:05d}.parquet")


def _featurize_group(batch: pa.Table, spec: FeatureSpec, data_end_ms: int, decisions: dict | None) -> pa.Table:
    """One bucket's events (every event of its users) → their samples."""
    import ray

    dec = None if decisions is None else ray.get(decisions[int(batch.column(BUCKET)[0].as_py())])
    return featurize_batch(batch.drop_columns([BUCKET]), spec, data_end_ms=data_end_ms, decisions=dec)


def build_samples_dir(ds: Dataset, spec: FeatureSpec, out: str | Path, engine: str = "local",
                      opts: EngineOptions | None = None, overwrite: bool = False) -> dict:  # fmt: skip
    """Featurize ``ds`` with ``engine`` into the Parquet data set ``out``; returns a summary."""
    run = ENGINES.get(engine)
    opts = opts or EngineOptions()
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; pass --overwrite to replace it")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        t0 = time.perf_counter()
        run(ds, spec, staging, opts)
        secs = time.perf_counter() - t0
        spec.save(staging / SPEC_FILE)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = sorted(p.name for p in out.glob("*.parquet"))
    rows = sum(pq.ParquetFile(out / f).metadata.num_rows for f in files)
    return {"engine": engine, "events": ds.events.n_events, "samples": rows, "files": len(files),
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
