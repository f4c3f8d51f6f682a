"""The phone kit's featurizer beside Python's, on the same request, one pinned core.

    python benchmarks/kit_featurizer.py --json
    python benchmarks/kit_featurizer.py --source sim:200:7 --runs 2000 --json

The request is ``edgeintent bench``'s: the decision point of ``--source`` with the fullest windows
(``features.request.pick_request``), its raw events (max_len + 1 per stream) under a FeatureSpec fitted
on the source. Python: ``featurize_request`` (numpy ids + window), timed in this process. C kit: every
raw event pushed and every window taken, in the compiled loop of ``kit_conform --bench`` (host C
compiler, -O2 -ffp-contract=off). Both are checked to give the same ids first. Prints p50/p90 of each
and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeintent.kit.bench import bench_request  # noqa: E402
from edgeintent.toolkit.data.sources import load_source  # noqa: E402
from edgeintent.toolkit.features import build_samples, fit_spec  # noqa: E402
from edgeintent.toolkit.features.request import featurize_request, pick_request  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default="sim:200:7")
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU (default: the last one)")
    _results.add_args(ap)
    args = ap.parse_args()
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})

    ds = load_source(args.source)
    spec = fit_spec(ds.events, utc_offset_ms=ds.utc_offset_ms)
    samples = build_samples(ds.events, spec, ds.decisions)
    req = pick_request(ds.events, samples, spec, spec.streams)

    for _ in range(max(args.runs // 10, 1)):
        featurize_request(req.tables, spec, req.t_ms)
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter_ns()
        featurize_request(req.tables, spec, req.t_ms)
        times.append(time.perf_counter_ns() - t0)
    py = {"p50_ms": float(np.percentile(times, 50)) / 1e6, "p90_ms": float(np.percentile(times, 90)) / 1e6}

    with tempfile.TemporaryDirectory() as tmp:
        kit = bench_request(spec, req.tables, req.t_ms, Path(tmp), args.runs, [cpu])
    out = {
        "source": args.source, "cpu": cpu, "runs": args.runs,
        "request_events": {s: t.num_rows for s, t in req.tables.items()},
        "window_events": {s: int(samples.length[s][req.row]) for s in spec.streams},
        "python": {"runtime": "featurize_request (numpy)", **py},
        "kit": kit,
        "python_over_kit_p50": py["p50_ms"] / kit["p50_ms"],
    }  # fmt: skip
    _results.emit("kit_featurizer", out, args)
    if not args.json:
        print(f"python p50 {py['p50_ms'] * 1000:.1f} µs, kit p50 {kit['p50_ms'] * 1000:.1f} µs "
              f"({out['python_over_kit_p50']:.0f}x), same ids: {kit['matches_python']}")


if __name__ == "__main__":
    main()
