"""Featurization at scale: ``--engine local`` and ``--engine ray`` side by side on the same source.

    python benchmarks/scale.py --json                                   # sim:20000 and the Taobao sample
    python benchmarks/scale.py --source sim:1000000@ray --stream --fit-source sim:20000 --json  # 164 M events, Ray alone

Per source and engine, each in a fresh child process (so peak RSS is its own): events/s of the
featurization (source loading and the spec fit excluded, the same for both), the child's peak RSS, and
on Ray the peak RSS (VmHWM, sampled every 0.2 s) of every Ray worker process that ran, and Ray's session
start-up time. The two
samples data sets are then read back and checked equal, every column of every row. The FeatureSpec is
fitted once, in the parent, on a deterministic sample of users: those in user buckets 0..K-1 of 64
(``fmix64(user_id) mod 64 < K``, ``--fit-buckets``).

Ray runs with ``--workers`` logical CPUs (the machine's cores are shared); the ratio ``ray / local``
is the figure to read, not the absolute rates.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)
from edgeintent.toolkit.data.dataset import DEFAULT_SHARED_DATA  # noqa: E402

TAOBAO = DEFAULT_SHARED_DATA / "taobao_userbehavior" / "UserBehavior_sample.csv"


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _descends_from_me(pid: int) -> bool:
    me = os.getpid()
    while pid > 1:
        pid = _parent(pid)
        if pid == me:
            return True
    return False


def _own_hwm() -> int:
    """This process's peak RSS (VmHWM, bytes). Not ``ru_maxrss``: Linux carries that across ``exec`` from the
    parent, so a child started by a parent that held a loaded source would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _ray_worker_hwm() -> dict[int, int]:
    """pid → VmHWM (bytes) of this process's live Ray worker processes (names start with ``ray::``;
    other Ray sessions on the machine are not counted)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            if not cmd.startswith(b"ray::") or not _descends_from_me(int(pid)):
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out[int(pid)] = int(line.split()[1]) * 1024
        except OSError:
            continue
    return out


def _dir_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                continue
    return total


class WorkerPeaks(threading.Thread):
    """Samples the Ray workers' VmHWM every 0.2 s, so workers that exit before the end still count, and
    every second the bytes on disk under the session's temp dir (where Ray spills objects)."""

    def __init__(self, temp_dir: str) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[int, int] = {}
        self.temp_dir = temp_dir
        self.disk_peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        tick = 0
        while not self.done.wait(0.2):
            for pid, hwm in _ray_worker_hwm().items():
                self.peaks[pid] = max(hwm, self.peaks.get(pid, 0))
            tick += 1
            if tick % 5 == 0:
                self.disk_peak = max(self.disk_peak, _dir_bytes(self.temp_dir))

    def stop(self) -> list[int]:
        self.done.set()
        self.join()
        for pid, hwm in _ray_worker_hwm().items():
            self.peaks[pid] = max(hwm, self.peaks.get(pid, 0))
        return sorted(self.peaks.values())


def child(engine: str, source: str, spec_path: str, out: str, workers: int, buckets: int, shuffle: str,
          stream: bool, partitions: bool, budget_mb: float | None) -> dict:  # fmt: skip
    from edgeintent.engines.featurize import EngineOptions, build_samples_dir
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.features import FeatureSpec

    spec = FeatureSpec.load(spec_path)
    row = {"engine": engine}
    if engine == "ray-shuffle":  # Ray through the group-by shuffle even where the source is user-partitioned
        engine, partitions = "ray", False
    if stream:  # the engine reads the source itself (the simulator: generated inside Ray tasks)
        ds = source
        row["includes_reading"] = True
    else:
        t0 = time.perf_counter()
        ds = load_source(source)
        row["load_seconds"] = round(time.perf_counter() - t0, 2)
    if engine == "ray":
        from edgeintent.engines.session import ray_session

        t0 = time.perf_counter()
        ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths
        ray = ray_session(num_cpus=workers, temp_dir=ray_tmp)
        row["ray_start_seconds"] = round(time.perf_counter() - t0, 2)
        sampler = WorkerPeaks(ray_tmp)
        sampler.start()
    opts = EngineOptions(buckets=buckets, num_cpus=workers, shuffle=shuffle, use_partitions=partitions,
                         shuffle_budget_bytes=int(budget_mb * 2**20) if budget_mb else None)  # fmt: skip
    summary = build_samples_dir(ds, spec, out, engine, opts)
    row.update(events=summary["events"], samples=summary["samples"], files=summary["files"],
               seconds=summary["seconds"], events_per_s=round(summary["events"] / summary["seconds"]))  # fmt: skip
    row["peak_rss_mb"] = round(_own_hwm() / 2**20, 1)
    if engine == "ray":
        peaks = sampler.stop()
        row["ray_workers"] = len(peaks)
        row["worker_peak_rss_mb"] = [round(p / 2**20, 1) for p in peaks]
        row["max_worker_peak_rss_mb"] = max(row["worker_peak_rss_mb"], default=0.0)
        row["peak_ray_temp_disk_mb"] = round(sampler.disk_peak / 2**20, 1)
        row.update(path=summary["path"], waves=summary["waves"], refreshed_files=summary.get("refreshed_files"))
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return row


def run(source: str, workers: int, buckets: int, fit_buckets: int, shuffle: str, tmp: Path, engines: list[str],
        stream: bool, fit_source: str | None, partitions: bool = True, budget_mb: float | None = None) -> dict:  # fmt: skip
    import numpy as np

    from edgeintent.engines.featurize import read_samples_dir
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.features import fit_spec
    from edgeintent.toolkit.features.windows import user_bucket

    ds = load_source(fit_source or source)
    users = ds.events.users()
    sample = users[user_bucket(users, 64) < fit_buckets]
    t0 = time.perf_counter()
    spec = fit_spec(ds.events.filter_users(sample), utc_offset_ms=ds.utc_offset_ms)
    fit_s = time.perf_counter() - t0
    del ds
    spec_path = tmp / "spec.json"
    spec.save(spec_path)
    rows = {}
    for engine in engines:
        out = tmp / f"samples-{engine}"
        cmd = [sys.executable, __file__, "--child", engine, "--source", source, "--spec", str(spec_path),
               "--out", str(out), "--workers", str(workers), "--buckets", str(buckets), "--shuffle", shuffle] + (["--stream"] if stream and engine.startswith("ray") else [])  # fmt: skip
        cmd += ([] if partitions else ["--no-partitions"]) + (["--shuffle-budget-mb", str(budget_mb)] if budget_mb else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=4 * 3600)
        if proc.returncode:
            raise SystemExit(f"{engine} on {source} failed:\n{proc.stderr[-3000:]}")
        rows[engine] = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {"source": source, "fit": {"source": fit_source or source, "users": int(len(sample)),
                                        "of_users": int(len(users)), "seconds": round(fit_s, 2)}, "engines": rows}  # fmt: skip
    if "local" in rows and len(rows) > 1:
        a, _ = read_samples_dir(tmp / "samples-local")
        result["rows_compared"] = a.num_rows
        for engine in rows:
            if engine != "local":
                b, _ = read_samples_dir(tmp / f"samples-{engine}")
                result[f"{engine}_equal"] = bool(a.schema.equals(b.schema) and a.equals(b))
                result[f"{engine}_over_local_events_per_s"] = round(rows[engine]["events_per_s"] / rows["local"]["events_per_s"], 3)
                del b
        result["equal"] = all(result[f"{e}_equal"] for e in rows if e != "local")
    return result


def table(result: dict) -> str:
    """One row per source and engine (the ``--write-results`` Markdown)."""
    lines = ["| source | engine | path | waves | events | samples | seconds | events/s | driver peak RSS MB | "
             "max worker peak RSS MB | workers | peak Ray temp disk MB | equal to local |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["results"]:
        for engine, e in r["engines"].items():
            equal = "(reference)" if engine == "local" and len(r["engines"]) > 1 else r.get(f"{engine}_equal", "not checked")
            lines.append(f"| {r['source']} | {engine} | {e.get('path', 'in process')} | {e.get('waves', '')} | "
                         f"{e['events']:,} | {e['samples']:,} | {e['seconds']:,.1f} | {e['events_per_s']:,} | "
                         f"{e['peak_rss_mb']:,.0f} | {e.get('max_worker_peak_rss_mb', '')} | {e.get('ray_workers', '')} | "
                         f"{e.get('peak_ray_temp_disk_mb', '')} | {equal} |")  # fmt: skip
    return "\n".join(lines) + f"\n\nRay with {result['workers']} logical CPUs, {result['buckets']} user buckets.\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", action="append",
                    help="repeatable (default: sim:20000 and the Taobao sample); SRC@ray runs only those engines on SRC")
    ap.add_argument("--workers", type=int, default=2, help="logical CPUs of the Ray session")
    ap.add_argument("--buckets", type=int, default=16)
    ap.add_argument("--fit-buckets", type=int, default=8, help="fit the spec on users in buckets < K of 64")
    ap.add_argument("--shuffle", default="sort_shuffle_pull_based", help="Ray Data shuffle strategy (EngineOptions.shuffle)")
    ap.add_argument("--engines", default="local,ray",
                    help="comma list: local,ray,ray-shuffle (ray-shuffle: the group-by even on a user-partitioned source; "
                         "without local: no equality check)")
    ap.add_argument("--stream", action="store_true", help="Ray reads the source itself (sim: generated in Ray tasks)")
    ap.add_argument("--fit-source", default=None, help="fit the spec on this source instead (e.g. sim:20000)")
    ap.add_argument("--no-partitions", action="store_true",
                    help="shuffle even a user-partitioned source (EngineOptions.use_partitions=False)")
    ap.add_argument("--shuffle-budget-mb", type=float, default=None,
                    help="bytes of engine rows per shuffle wave (EngineOptions.shuffle_budget_bytes; default: half the object store)")
    ap.add_argument("--name", default="scale", help="results file name (docs/results/NAME.{json,md})")
    _results.add_args(ap)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.source[0], args.spec, args.out, args.workers, args.buckets, args.shuffle,
                               args.stream, not args.no_partitions, args.shuffle_budget_mb)))
        return
    sources = args.source or ["sim:20000"] + ([f"taobao:{TAOBAO}"] if TAOBAO.exists() else [])
    results = []
    for src in sources:
        src, _, engines = src.partition("@")
        with tempfile.TemporaryDirectory(prefix="edgeintent-scale-") as tmp:
            results.append(run(src, args.workers, args.buckets, args.fit_buckets, args.shuffle, Path(tmp),
                               (engines or args.engines).split(","), args.stream, args.fit_source, not args.no_partitions,
                               args.shuffle_budget_mb))  # fmt: skip
            if not args.json:
                r = results[-1]
                rates = ", ".join(f"{e} {v['events_per_s']:,} ev/s" for e, v in r["engines"].items())
                print(f"{src}: {rates}, equal={r.get('equal', 'not checked')}")
    _results.emit(args.name, {"workers": args.workers, "buckets": args.buckets, "results": results}, args, table=table)


if __name__ == "__main__":
    main()
