"""Featurizer throughput: vectorised vs the per-row reference, side by side in one process, one core.

    python benchmarks/featurize.py --json                # Taobao sample (../shared/data), else simulator
    python benchmarks/featurize.py --source sim:3000 --json

Two figures per source:

- ``event_features``: events → per-event ids (vocab / bucket / hash / sector / cell / hour), the part
  a phone runs per event; events per second and the ratio to the per-row reference.
- ``samples``: the whole sample builder (ids + last-max_len windows at every decision point + labels);
  events per second, decision points per second and the ratio to the reference.

Timings are medians over repeats, variants interleaved; the machine is noisy, so read the ratios. The
sample builder is timed once per repeat right after the reference (``vectorized_s``: a cold build, its
windows freshly allocated) and then three times back to back; ``best_s`` is the fastest of
those warm builds over all repeats, the figure least moved by other processes on the core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeintent.toolkit import features as F  # noqa: E402
from edgeintent.toolkit.features import reference as R  # noqa: E402
from edgeintent.toolkit.data.dataset import DEFAULT_SHARED_DATA  # noqa: E402
from edgeintent.toolkit.data.sources import load_source  # noqa: E402


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(source: str, repeats: int) -> dict:
    ds = load_source(source)
    log = ds.events
    spec = F.fit_spec(log, utc_offset_ms=ds.utc_offset_ms)
    n_events = log.n_events

    def vec_events():
        for s in spec.streams:
            F.event_ids(s, log.stream(s), spec)

    def ref_events():
        for s in spec.streams:
            R.featurize_events(log, spec, s)

    samples = F.build_samples(log, spec, ds.decisions)
    n_dec = len(samples)
    decisions = list(zip(samples.user_id.tolist(), samples.t_ms.tolist()))

    # correctness first (a fast wrong answer is not a result); this run also times the reference once
    t0 = time.perf_counter()
    ref = R.build_samples(log, spec, decisions)
    t_ref_samples = time.perf_counter() - t0
    for s in spec.streams:
        assert np.array_equal(ref["x"][s], samples.x[s]), f"vectorised != reference on {s}"
    for k in F.LABELS:
        assert np.array_equal(ref["labels"][k], samples.labels[k]), f"vectorised != reference on {k}"

    def build():
        F.build_samples(log, spec, ds.decisions)

    vec_e, ref_e, vec_s, warm = [], [], [], []
    for _ in range(repeats):  # interleave the variants
        vec_e.append(_median_time(vec_events, 3))
        ref_e.append(_median_time(ref_events, 1))
        vec_s.append(_median_time(build, 1))
        warm += [_median_time(build, 1) for _ in range(3)]

    ve, re_, vs = statistics.median(vec_e), statistics.median(ref_e), statistics.median(vec_s)
    return {
        "source": source,
        "events": n_events,
        "streams": spec.streams,
        "decision_points": n_dec,
        "cores": 1,
        "event_features": {
            "vectorized_s": ve,
            "reference_s": re_,
            "vectorized_events_per_s": n_events / ve,
            "reference_events_per_s": n_events / re_,
            "ratio": re_ / ve,
        },
        "samples": {
            "vectorized_s": vs,
            "reference_s": t_ref_samples,
            "vectorized_events_per_s": n_events / vs,
            "vectorized_decisions_per_s": n_dec / vs,
            "ratio": t_ref_samples / vs,
            "best_s": min(warm),
            "best_events_per_s": n_events / min(warm),
        },
        "repeats": repeats,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    taobao = DEFAULT_SHARED_DATA / "taobao_userbehavior"
    ap.add_argument("--source", default=f"taobao:{taobao}" if taobao.exists() else "sim:3000")
    ap.add_argument("--repeats", type=int, default=5)
    _results.add_args(ap)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    out = run(args.source, args.repeats)
    _results.emit("featurize", out, args)
    if not args.json:
        e, s = out["event_features"], out["samples"]
        print(f"{out['source']}: {out['events']:,} events, {out['decision_points']:,} decision points, 1 core")
        print(f"event features: {e['vectorized_events_per_s']:,.0f} events/s, {e['ratio']:.0f}x the per-row reference")
        print(f"samples:        {s['vectorized_events_per_s']:,.0f} events/s, {s['ratio']:.0f}x the per-row reference "
              f"(best warm build {s['best_events_per_s']:,.0f} events/s)")


if __name__ == "__main__":
    main()
