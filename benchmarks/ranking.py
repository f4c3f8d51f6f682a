"""Scenario coarse ranking (edgeintent/rank): held-out quality on Taobao, and the on-device costs.

    python benchmarks/ranking.py --json                      # Taobao (../shared/data) + timing
    python benchmarks/ranking.py --sim sim:3000:1 --json     # the simulator as well
    python benchmarks/ranking.py --no-quality --json         # timing only
    python benchmarks/ranking.py --seeds 0,1,2,3 --json      # Taobao on four user splits

Quality: ``fit_ranker`` on the Taobao UserBehavior sample (``taobao:../shared/data/taobao_userbehavior``;
skipped with a reason when absent). Users are split by user (80 % fit, 20 % held out); for each
held-out user and each day after their first, the ranker scores every vocabulary category at the
user's first event of that day from the history before it, and is judged on the categories the user
engages with (fav, cart, buy) that day: recall@10 and NDCG@10 of each scenario scorer alone, the fused
ranker, a popularity baseline (engagements of the training users per category) and a heuristic
baseline, ``recency+popularity`` (recency, the categories outside the profile ordered by popularity).
Ties are broken at random (seeded; the same permutation for every scorer).

Timing (this host, one thread, CPU pinned as the device profile says):

- scoring 300 candidates of one request with the exported scorer in the runtime of the device profile
  ``cpu-arm`` (MNN, session API) and, side by side, onnxruntime (profile ``host``): p50 / p99 of the
  house ``Session.run`` (inputs copied in, outputs out, Python API) and, for MNN, of ``runSession``
  alone (inputs already in place: the engine's own time, what a C++ app pays);
- the profile update (``Profile.update``, the reference implementation) per event after 10, 100,
  1,000 and 10,000 past events of a synthetic user (uniform over 500 categories, one event a minute);
- the profile's bytes: the app's state (``Profile.nbytes``) and the scorer's profile inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from edgeintent.rank import RankConfig  # noqa: E402
from edgeintent.rank.fit import fit_ranker, golden_feeds  # noqa: E402
from edgeintent.rank.profile import HOUR_MS, DecayRule, Profile  # noqa: E402
from edgeintent.toolkit.data.dataset import DEFAULT_SHARED_DATA  # noqa: E402
from edgeintent.toolkit.data.sources import load_source  # noqa: E402

SCORERS = ("interest", "context", "keyword", "recency", "fusion", "popularity")
HEURISTIC = "recency+popularity"  # recency, the categories outside the profile ordered by popularity


def quality(source: str, seed: int = 0) -> dict:
    t0 = time.perf_counter()
    ranker, m, golden = fit_ranker(load_source(source), RankConfig(seed=seed))
    out = {"source": source, "seed": seed, "seconds": round(time.perf_counter() - t0, 1), "requests": m["requests"], "users": m["users"],
           "ties": m["ties"], "scores": {k: {kk: round(vv, 4) for kk, vv in m[k].items()} for k in (*SCORERS, HEURISTIC)},
           "info": m["info"]}  # fmt: skip
    f = m["fusion"]["ndcg@10"]
    out["fusion_ndcg_minus"] = {k: round(f - m[k]["ndcg@10"], 4) for k in (*SCORERS, HEURISTIC) if k != "fusion"}
    out["fusion_beats"] = {k: f >= m[k]["ndcg@10"] for k in (*SCORERS, HEURISTIC) if k != "fusion"}
    return out, ranker, golden


def _request(ranker, golden: dict, n: int = 300) -> dict:
    """One request (the first golden request's profile, tags and context) with ``n`` candidates."""
    f = golden_feeds(golden)
    v = len(ranker.vocab)
    cand = (np.arange(n) % (v - 1) + 1).astype(np.int64)
    one = {k: f[k][:1].copy() for k in ("tagsets", "prof_key", "prof_w", "prof_age_h", "context")}
    return {"cand": cand, "row_user": np.zeros(n, np.int64), **one}


def _percentiles(times: list[float]) -> dict:
    a = np.asarray(times) * 1e6
    return {"p50_us": round(float(np.percentile(a, 50)), 2), "p99_us": round(float(np.percentile(a, 99)), 2), "n": len(a)}


def time_scoring(ranker, golden: dict, reps: int) -> dict:
    from edgeintent.exporters import ArtifactMeta, get_target
    from edgeintent.rank.run import export_scorer
    from edgeintent.runtime_sim.devices import get_device
    from edgeintent.runtimes import open_artifact

    feeds = _request(ranker, golden)
    sig = ranker.module().signature()
    out: dict = {"candidates": len(feeds["cand"]), "threads": 1}
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for profile in ("cpu-arm", "host"):
                target = get_device(profile).runtime
                t = get_target(target)
                why = t.missing() or t.run_missing()
                if why:
                    out[profile] = {"skipped": why}
                    continue
                path = Path(tmp) / t.artifact_name("fp32")
                export_scorer(ranker, golden, target, path)
                meta = ArtifactMeta(target, "fp32", str(path), "rank", sig.inputs, sig.outputs, 0)
                with open_artifact(t.artifact(path, meta), threads=1) as sess:
                    for _ in range(50):
                        sess.run(feeds)
                    times = []
                    for _ in range(reps):
                        t0 = time.perf_counter()
                        sess.run(feeds)
                        times.append(time.perf_counter() - t0)
                    row = {"target": target, "runtime": sess.runtime, "session_run": _percentiles(times)}
                    impl = sess._impl
                    if hasattr(impl, "interpreter"):  # MNN: the engine alone, inputs already copied in
                        engine = []
                        for _ in range(reps):
                            t0 = time.perf_counter()
                            impl.interpreter.runSession(impl.session)
                            engine.append(time.perf_counter() - t0)
                        row["run_session_only"] = _percentiles(engine)
                    out[profile] = row
    finally:
        os.sched_setaffinity(0, set(cpus))
    return out


def time_profile(reps: int = 2000) -> dict:
    rule = DecayRule.from_half_lives(np.full(501, 72.0))
    rng = np.random.default_rng(0)
    rows = {}
    for n in (10, 100, 1000, 10_000):
        p = Profile(rule)
        keys = rng.integers(1, 501, n + reps)
        ts = np.arange(n + reps, dtype=np.int64) * 60_000
        for i in range(n):
            p.update(int(ts[i]), int(keys[i]), 1.0)
        times = []
        for i in range(n, n + reps):
            t0 = time.perf_counter()
            p.update(int(ts[i]), int(keys[i]), 1.0)
            times.append(time.perf_counter() - t0)
        rows[str(n)] = {**_percentiles(times), "slots": len(p.slots), "state_bytes": p.nbytes()}
    base = rows["10"]["p50_us"]
    return {"per_event": rows, "p50_ratio_10000_vs_10": round(rows["10000"]["p50_us"] / base, 3),
            "capacity": rule.capacity, "threshold": rule.threshold, "half_life_h": 72.0,
            "scorer_profile_input_bytes": rule.capacity * (8 + 4 + 4),
            "note": "reference implementation in Python (dict of slots, math.exp); a C port does the same O(K) work"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--taobao", default=str(DEFAULT_SHARED_DATA / "taobao_userbehavior"))
    ap.add_argument("--sim", default=None, help="also judge on a simulator source, e.g. sim:3000:1")
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--seeds", default="0", help="comma list: user split (and every seeded fit) per seed, e.g. 0,1,2,3")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res: dict = {"command": "python benchmarks/ranking.py " + " ".join(sys.argv[1:])}
    ranker = golden = None
    if not args.no_quality:
        if Path(args.taobao).exists():
            seeds = [int(x) for x in args.seeds.split(",")]
            res["taobao"], ranker, golden = quality(f"taobao:{args.taobao}")
            if len(seeds) > 1:
                runs = [res["taobao"]] + [quality(f"taobao:{args.taobao}", sd)[0] for sd in seeds if sd != 0]
                res["taobao_seeds"] = {
                    "seeds": [r["seed"] for r in runs],
                    "ndcg@10": {k: [r["scores"][k]["ndcg@10"] for r in runs] for k in (*SCORERS, HEURISTIC)},
                    "fusion_minus_mean": {k: round(float(np.mean([r["fusion_ndcg_minus"][k] for r in runs])), 4)
                                          for k in runs[0]["fusion_ndcg_minus"]},
                }  # fmt: skip
        else:
            res["taobao"] = {"skipped": f"{args.taobao} is absent"}
        if args.sim:
            res["sim"], r2, g2 = quality(args.sim)
            ranker, golden = ranker or r2, golden or g2
    if ranker is None:
        ranker, _, golden = fit_ranker(load_source("sim:600:1"), RankConfig())
        res["timing_ranker"] = "fitted on sim:600:1"
    res["load_average_before_timing"] = [round(x, 2) for x in os.getloadavg()]  # this host is shared
    res["scoring"] = time_scoring(ranker, golden, args.reps)
    res["profile"] = time_profile(args.reps)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
