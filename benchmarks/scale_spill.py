"""What the Ray engine's group-by shuffle spills, in one wave and in waves, side by side.

    python benchmarks/scale_spill.py --json                       # sim:10000, a 200 MB object store, 1 and 4 waves

Each run is a fresh child process with its own local Ray session whose object store is small
(``--store-mb``) so that the shuffle must spill: the source goes through the shuffle path
(``EngineOptions(use_partitions=False, waves=W)``). Reported per run: the bytes of the engine rows
(from the engine's own global pass), Ray's cumulative ``Spilled N MiB`` from the raylet log, the
peak bytes on disk under the session's temp dir (sampled every second), and the time.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _results  # noqa: E402


def child(source: str, waves: int, store_mb: int, buckets: int) -> dict:
    from edgeintent.engines.session import import_ray

    ray = import_ray()
    from scale import WorkerPeaks

    from edgeintent.engines.featurize import EngineOptions, build_samples_dir
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.features import fit_spec

    tmp = Path(tempfile.mkdtemp(prefix="spill-", dir="/tmp"))  # short: Ray's socket paths
    try:
        ray.init(num_cpus=2, object_store_memory=store_mb << 20, _temp_dir=str(tmp / "r"), include_dashboard=False,
                 log_to_driver=False, configure_logging=False)  # fmt: skip
        spec = fit_spec(load_source("sim:300").events)
        sampler = WorkerPeaks(str(tmp / "r"))
        sampler.start()
        t0 = time.perf_counter()
        summary = build_samples_dir(source, spec, tmp / "out", "ray",
                                    EngineOptions(buckets=buckets, num_cpus=2, use_partitions=False, waves=waves))  # fmt: skip
        secs = time.perf_counter() - t0
        sampler.stop()
        ray.shutdown()
        log = "".join(p.read_text(errors="replace") for p in (tmp / "r").glob("session_*/logs/raylet.out"))
        spilled = [float(m) for m in re.findall(r"Spilled (\d+) MiB", log)]
        return {"waves": waves, "events": summary["events"], "samples": summary["samples"], "seconds": round(secs, 1),
                "spilled_mib": max(spilled, default=0.0), "peak_temp_disk_mb": round(sampler.disk_peak / 2**20, 1)}  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def rows_bytes(source: str, buckets: int) -> int:
    """The bytes of the source's engine rows (as the Ray engine's global pass counts them)."""
    from edgeintent.engines.featurize import engine_rows
    from edgeintent.toolkit.data.sources import load_source

    ds = load_source(source)
    return engine_rows(ds.events, ds.decisions, buckets).nbytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="sim:10000")
    ap.add_argument("--waves", default="1,4", help="comma list of wave counts, one run each")
    ap.add_argument("--store-mb", type=int, default=200, help="object store of each Ray session")
    ap.add_argument("--buckets", type=int, default=16)
    _results.add_args(ap)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.source, args.child, args.store_mb, args.buckets)))
        return
    runs = []
    for w in [int(x) for x in args.waves.split(",")]:
        cmd = [sys.executable, __file__, "--child", str(w), "--source", args.source, "--store-mb", str(args.store_mb),
               "--buckets", str(args.buckets)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if proc.returncode:
            raise SystemExit(f"waves={w} failed:\n{proc.stderr[-3000:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    mb = rows_bytes(args.source, args.buckets) / 2**20
    for r in runs:
        r["spilled_over_rows"] = round(r["spilled_mib"] / mb, 2)
    result = {"source": args.source, "store_mb": args.store_mb, "engine_rows_mib": round(mb, 1), "runs": runs}
    if not args.json:
        for r in runs:
            print(f"{args.source}, {r['waves']} wave(s): spilled {r['spilled_mib']:,.0f} MiB "
                  f"({r['spilled_over_rows']}x the rows), peak temp disk {r['peak_temp_disk_mb']:,.0f} MB, {r['seconds']} s")
    _results.emit("scale_spill", result, args)


if __name__ == "__main__":
    main()
