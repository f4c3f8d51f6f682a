"""Featurization at scale: ``--engine local`` and ``--engine ray`` side by side on the same source.

    python benchmarks/scale.py --json                                   # sim:20000 and the Taobao sample
    python benchmarks/scale.py --source sim:1000000 --json              # 155 M events (needs the memory)

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
import resource
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


class WorkerPeaks(threading.Thread):
    """Samples the Ray workers' VmHWM every 0.2 s, so workers that exit before the end still count."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[int, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            for pid, hwm in _ray_worker_hwm().items():
                self.peaks[pid] = max(hwm, self.peaks.get(pid, 0))

    def stop(self) -> list[int]:
        self.done.set()
        self.join()
        for pid, hwm in _ray_worker_hwm().items():
            self.peaks[pid] = max(hwm, self.peaks.get(pid, 0))
        return sorted(self.peaks.values())


def child(engine: str, source: str, spec_path: str, out: str, workers: int, buckets: int, shuffle: str,
          stream: bool) -> dict:  # fmt: skip
    from edgeintent.engines.featurize import EngineOptions, build_samples_dir
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.features import FeatureSpec

    spec = FeatureSpec.load(spec_path)
    row = {"engine": engine}
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
        sampler = WorkerPeaks()
        sampler.start()
    summary = build_samples_dir(ds, spec, out, engine, EngineOptions(buckets=buckets, num_cpus=workers, shuffle=shuffle))
    row.update(events=summary["events"], samples=summary["samples"], files=summary["files"],
               seconds=summary["seconds"], events_per_s=round(summary["events"] / summary["seconds"]))  # fmt: skip
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if engine == "ray":
        peaks = sampler.stop()
        row["ray_workers"] = len(peaks)
        row["worker_peak_rss_mb"] = [round(p / 2**20, 1) for p in peaks]
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return row


def run(source: str, workers: int, buckets: int, fit_buckets: int, shuffle: str, tmp: Path, engines: list[str],
        stream: bool, fit_source: str | None) -> dict:  # fmt: skip
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
               "--out", str(out), "--workers", str(workers), "--buckets", str(buckets), "--shuffle", shuffle] + (["--stream"] if stream and engine == "ray" else [])  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if proc.returncode:
            raise SystemExit(f"{engine} on {source} failed:\n{proc.stderr[-3000:]}")
        rows[engine] = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {"source": source, "fit": {"source": fit_source or source, "users": int(len(sample)),
                                        "of_users": int(len(users)), "seconds": round(fit_s, 2)}, "engines": rows}  # fmt: skip
    if len(rows) == 2:
        a, _ = read_samples_dir(tmp / "samples-local")
        b, _ = read_samples_dir(tmp / "samples-ray")
        result.update(equal=bool(a.schema.equals(b.schema) and a.equals(b)), rows_compared=a.num_rows,
                      ray_over_local_events_per_s=round(rows["ray"]["events_per_s"] / rows["local"]["events_per_s"], 3))  # fmt: skip
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", action="append", help="repeatable (default: sim:20000 and the Taobao sample)")
    ap.add_argument("--workers", type=int, default=2, help="logical CPUs of the Ray session")
    ap.add_argument("--buckets", type=int, default=16)
    ap.add_argument("--fit-buckets", type=int, default=8, help="fit the spec on users in buckets < K of 64")
    ap.add_argument("--shuffle", default="sort_shuffle_pull_based", help="Ray Data shuffle strategy (EngineOptions.shuffle)")
    ap.add_argument("--engines", default="local,ray", help="comma list: local,ray (ray alone: no equality check)")
    ap.add_argument("--stream", action="store_true", help="Ray reads the source itself (sim: generated in Ray tasks)")
    ap.add_argument("--fit-source", default=None, help="fit the spec on this source instead (e.g. sim:20000)")
    _results.add_args(ap)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.source[0], args.spec, args.out, args.workers, args.buckets, args.shuffle,
                               args.stream)))
        return
    sources = args.source or ["sim:20000"] + ([f"taobao:{TAOBAO}"] if TAOBAO.exists() else [])
    results = []
    for src in sources:
        with tempfile.TemporaryDirectory(prefix="edgeintent-scale-") as tmp:
            results.append(run(src, args.workers, args.buckets, args.fit_buckets, args.shuffle, Path(tmp),
                               args.engines.split(","), args.stream, args.fit_source))  # fmt: skip
            if not args.json:
                r = results[-1]
                rates = ", ".join(f"{e} {v['events_per_s']:,} ev/s" for e, v in r["engines"].items())
                print(f"{src}: {rates}, equal={r.get('equal', 'not checked')}")
    _results.emit("scale", {"workers": args.workers, "buckets": args.buckets, "results": results}, args)


if __name__ == "__main__":
    main()
