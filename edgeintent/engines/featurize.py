"""``features build --engine local|ray``: events → samples, written as a sharded Parquet data set.

Both engines write the same rows (:func:`~edgeintent.toolkit.features.windows.samples_table`): one
Parquet file per user bucket (``fmix64(user_id) mod B``, :func:`~edgeintent.toolkit.features.windows.user_bucket`)
on the local engine, Ray's own file names (or one per block) on Ray, plus ``_feature_spec.json`` (readers skip ``_`` files).

- ``local``: :func:`~edgeintent.toolkit.features.windows.build_samples` over the whole log in this process;
- ``ray``: events and decision points as one Ray Dataset of :func:`engine_rows` with a ``bucket`` column
  (:class:`RowSource`; the simulator is generated block by block in Ray tasks, other sources are loaded
  by the driver and handed over in blocks). A source whose blocks hold whole users (``user_partitioned``)
  is featurized block by block where it is read, with no shuffle (:func:`_featurize_partitions`). Any
  other: one global pass for the data end (``max(ts_ms)``), the event count and the rows' bytes; then,
  in waves of users sized by ``EngineOptions.shuffle_budget_bytes``,
  ``groupby("bucket").map_groups(featurize_batch)``, so every user's events and decision points meet in
  one call (a plain ``map_batches`` would split users across blocks and silently cut their windows).

The data set is built in a temp directory beside ``out`` and renamed into place: readers see it whole
or not at all.
"""

from __future__ import annotations

import math
import os
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
    refresh_observed,
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
    #: bytes of engine rows one group-by shuffle may hold; more data runs in waves, each a slice of the
    #: buckets (None: half the object store of the session)
    shuffle_budget_bytes: int | None = None
    #: the number of waves (None: from ``shuffle_budget_bytes`` and the data's size)
    waves: int | None = None
    #: featurize a source's user-partitioned blocks where they are read, without a shuffle (False: always shuffle)
    use_partitions: bool = True


#: engine name → ``fn(source, spec, out_dir, options) -> events read`` (or a dict with ``events`` and how
#: the engine ran), writing Parquet files into ``out_dir``
#: (``source``: a loaded Dataset or a source spec, which an engine may read its own way)
ENGINES: Registry[Callable[[str | Dataset, FeatureSpec, Path, EngineOptions], int | dict]] = Registry("engine")


@ENGINES.register("local")
def _local(source: str | Dataset, spec: FeatureSpec, out_dir: Path, opts: EngineOptions) -> int:
    ds = source if isinstance(source, Dataset) else _load(source)
    table = samples_table(build_samples(ds.events, spec, ds.decisions), spec)
    bucket = user_bucket(table.column("user_id").to_numpy(), opts.buckets)
    for b in np.unique(bucket):
        pq.write_table(table.filter(pa.array(bucket == b)), out_dir / f"part-{int(b):05d}.parquet")
    return ds.events.n_events


@ENGINES.register("ray")
def _ray(source: str | Dataset, spec: FeatureSpec, out_dir: Path, opts: EngineOptions) -> dict:
    ray = ray_session(opts.num_cpus)
    from ray.data.context import ShuffleStrategy

    ray.data.DataContext.get_current().shuffle_strategy = ShuffleStrategy(opts.shuffle)  # datasets copy it
    src = _ray_rows(ray, source, opts)
    with deadline(opts.timeout_s, "the ray featurization job"):
        if src.user_partitioned and opts.use_partitions:
            return _featurize_partitions(ray, src, spec, out_dir, _name(source))
        # the one global pass: the data end (for the observed flags), the event count, the rows' bytes
        stats = src.rows().map_batches(_block_stats, batch_format="pyarrow", batch_size=None).to_arrow_refs()
        stats = pa.concat_tables(ray.get(stats))
        n_events = int(pc.sum(stats.column("events")).as_py() or 0)
        if not n_events:
            raise DataError(f"{_name(source)}: no events to featurize")
        kwargs = {"spec": spec, "data_end_ms": int(pc.max(stats.column("end")).as_py()), "has_decisions": src.has_decisions}
        waves = opts.waves or plan_waves(int(pc.sum(stats.column("bytes")).as_py()), opts.shuffle_budget_bytes
                                         or _store_budget(ray))  # fmt: skip
        for wave in range(waves):
            rows = src.rows()
            if waves > 1:  # only this wave's users go through the shuffle; its spill is freed before the next
                rows = rows.map_batches(_wave_rows, batch_format="pyarrow", batch_size=None,
                                        fn_kwargs={"buckets": opts.buckets, "waves": waves, "wave": wave})  # fmt: skip
            out = rows.groupby(BUCKET, num_partitions=opts.buckets).map_groups(  # num_partitions: hash shuffle only
                _featurize_group, batch_format="pyarrow", fn_kwargs=kwargs)
            _write_wave(out, out_dir, wave, waves)
    return {"events": n_events, "path": "shuffle", "waves": waves}


def plan_waves(total_bytes: int, budget_bytes: int) -> int:
    """The number of waves that keeps each wave's shuffle within ``budget_bytes`` (the buckets are
    hashed, so a wave of 1/W of the bucket space holds about 1/W of the rows)."""
    if budget_bytes <= 0:
        raise DataError(f"the shuffle budget must be positive, got {budget_bytes} bytes")
    return max(1, math.ceil(total_bytes / budget_bytes))


def wave_of(user_id: np.ndarray, buckets: int, waves: int) -> np.ndarray:
    """The wave of each user: ``(fmix64(user_id) mod B·W) div B``. It is independent of the bucket
    ``fmix64 mod B``, so every wave holds a slice of every bucket and any number of waves works."""
    return user_bucket(user_id, buckets * waves) // buckets


def _wave_rows(rows: pa.Table, buckets: int, waves: int, wave: int) -> pa.Table:
    return rows.filter(pa.array(wave_of(rows.column("user_id").to_numpy(), buckets, waves) == wave))


def _write_wave(out, out_dir: Path, wave: int, waves: int) -> None:
    if waves == 1:
        out.write_parquet(str(out_dir))
        return
    part = out_dir / f".wave-{wave:04d}"
    out.write_parquet(str(part))
    for f in part.iterdir():
        f.rename(out_dir / f"w{wave:04d}-{f.name}")
    part.rmdir()


def _store_budget(ray) -> int:
    """Half the session's object store (the shuffle's map outputs and the reduce tasks' inputs share it)."""
    return int(ray.cluster_resources().get("object_store_memory", 4 << 30) // 2)


def _block_stats(rows: pa.Table) -> pa.Table:
    """One row per block: its events, its last event time, the bytes of its engine rows."""
    ev = rows.filter(pc.equal(rows.column(IS_EVENT), 1)) if rows.num_rows else rows
    end = pc.max(ev.column("ts_ms")).as_py() if ev.num_rows else None
    return pa.table({"events": pa.array([ev.num_rows], pa.int64()), "end": pa.array([end], pa.int64()),
                     "bytes": pa.array([rows.nbytes], pa.int64())})  # fmt: skip


#: the data end given to a block without events (every negative label unobserved until refreshed)
_NO_END = -(2**62)


def _featurize_partitions(ray, src: RowSource, spec: FeatureSpec, out_dir: Path, name: str) -> dict:
    """A user-partitioned source in one pass and no shuffle: each task reads a block, featurizes it with
    the block's own data end and writes its Parquet file (named by the block's first and last user, so
    a retried task overwrites its own file). The global data end is known only when every block is
    done; the tasks report, per file, the smallest data end at which an ``observed`` flag of it would
    change, and only the files whose flags the global end does change are read again and refreshed
    (labels do not depend on the data end; :func:`refresh_observed`)."""
    stats = src.blocks.map_batches(_featurize_block, batch_size=1 if src.read else None, batch_format="pyarrow",
                                   fn_kwargs={"read": src.read, "read_kwargs": src.read_kwargs, "spec": spec,
                                              "has_decisions": src.has_decisions, "out_dir": str(out_dir)})  # fmt: skip
    stats = pa.concat_tables(ray.get(stats.to_arrow_refs()))
    n_events = int(pc.sum(stats.column("events")).as_py() or 0)
    if not n_events:
        raise DataError(f"{name}: no events to featurize")
    end = int(pc.max(stats.column("end")).as_py())
    stale = stats.filter(pc.less_equal(stats.column("next_change"), end)).column("file").to_pylist()
    refresh = ray.remote(_refresh_file)
    ray.get([refresh.remote(f, spec, end) for f in stale])  # in parallel, one task per file
    for f in out_dir.glob(".part-*.tmp"):  # left by a task that died while writing (its retry wrote the file)
        f.unlink()
    return {"events": n_events, "path": "user-partitioned", "waves": 0, "refreshed_files": len(stale)}


def _refresh_file(path: str, spec: FeatureSpec, data_end_ms: int) -> None:
    table, _ = refresh_observed(pq.read_table(path), spec, data_end_ms)
    _write_parquet(table, Path(path))


def _featurize_block(batch: pa.Table, read, read_kwargs: dict, spec: FeatureSpec, has_decisions: bool,
                     out_dir: str) -> pa.Table:  # fmt: skip
    """One user-partitioned block: read, featurized and written in one task; returns its one-row report."""
    rows = read(batch, **read_kwargs) if read else batch
    ts = rows.filter(pc.equal(rows.column(IS_EVENT), 1)).column("ts_ms")
    end = pc.max(ts).as_py() if len(ts) else None
    samples = _featurize_group(rows, spec, _NO_END if end is None else int(end), has_decisions)
    path, next_change = None, None
    if samples.num_rows:
        _, next_change = refresh_observed(samples.select(["t_ms"] + [c for c in samples.column_names
                                                                    if c.startswith(("y_", "obs_"))]), spec, end if end is not None else _NO_END)  # fmt: skip
        users = samples.column("user_id")
        path = Path(out_dir) / f"part-{pc.min(users).as_py()}-{pc.max(users).as_py()}.parquet"
        _write_parquet(samples, path)
    return pa.table({"file": pa.array([str(path) if path else None], pa.string()), "events": pa.array([len(ts)], pa.int64()),
                     "end": pa.array([end], pa.int64()), "next_change": pa.array([next_change], pa.int64())})  # fmt: skip


def _write_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


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


@dataclass
class RowSource:
    """What a source gives the Ray engine: ``blocks``, a Ray Dataset that ``read`` turns (a batch of
    one block's row → that block's :func:`engine_rows`) into the engine rows (``read`` None: the blocks
    are the rows). ``user_partitioned`` declares that every user's rows are in one block, so the
    engine may featurize each block where it is read, with no shuffle."""

    blocks: object
    read: Callable[..., pa.Table] | None
    read_kwargs: dict
    has_decisions: bool
    user_partitioned: bool = False

    def rows(self):
        if self.read is None:
            return self.blocks
        return self.blocks.map_batches(self.read, batch_size=1, batch_format="pyarrow", fn_kwargs=self.read_kwargs)


#: source scheme (``sim`` of ``sim:N``) → ``fn(ray, source, opts) -> RowSource``: sources the Ray
#: engine reads in its own tasks; any other source is loaded by the driver and handed over in blocks
RAY_READERS: Registry[Callable] = Registry("ray reader")


@RAY_READERS.register("sim")
def _sim_reader(ray, source: str, opts: EngineOptions) -> RowSource:
    """The simulator generated block by block in Ray tasks (the driver never holds the events); every
    user's events are generated in one block, so the blocks are user-partitioned."""
    from edgeintent.toolkit.data.simulator import SimConfig
    from edgeintent.toolkit.data.sources import _parse_sim

    users, seed = _parse_sim(source)
    cfg = SimConfig(users=users, seed=seed)
    blocks = ray.data.range(cfg.n_blocks, override_num_blocks=cfg.n_blocks)
    return RowSource(blocks, _sim_rows, {"cfg": cfg, "buckets": opts.buckets}, has_decisions=True, user_partitioned=True)


def _ray_rows(ray, source: str | Dataset, opts: EngineOptions) -> RowSource:
    """The source as a :class:`RowSource`: read in Ray tasks if ``RAY_READERS`` has its scheme, else
    loaded here and handed to Ray in blocks of ``block_rows`` (users split across blocks)."""
    scheme = source.split(":", 1)[0] if isinstance(source, str) else None
    if scheme in RAY_READERS:
        return RAY_READERS.get(scheme)(ray, source, opts)
    ds = source if isinstance(source, Dataset) else _load(source)
    rows = engine_rows(ds.events, ds.decisions, opts.buckets)
    size = opts.block_rows or max(1, math.ceil(rows.num_rows / (4 * opts.num_cpus)))
    blocks = ray.data.from_arrow([rows.slice(lo, size) for lo in range(0, rows.num_rows, size)])
    return RowSource(blocks, None, {}, has_decisions=ds.decisions is not None)


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
        ran = run(source, spec, staging, opts)
        ran = ran if isinstance(ran, dict) else {"events": ran}
        secs = time.perf_counter() - t0
        spec.save(staging / SPEC_FILE)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = sorted(p.name for p in out.glob("*.parquet"))
    rows = sum(pq.ParquetFile(out / f).metadata.num_rows for f in files)
    return {"engine": engine, **ran, "samples": rows, "files": len(files),
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
